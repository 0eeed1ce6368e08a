//! The cache key: a format tag, then scheme, host, method class and request target, each
//! prefixed with its length, so no two different requests frame to the same bytes (a key made
//! of bare concatenation, or one without the host, is how CVE-2026-2836 poisoned caches).
//!
//! The host is the one the client asked for, without its port, without a trailing dot and in
//! lower case: the same normalisation the router applies, so one domain's requests share one
//! key space whatever port or letter case they arrive with. The target is kept byte for byte
//! (query order and percent-encoding are significant to origins).

use std::borrow::Cow;

use http::Method;

/// Bumped whenever the framing changes, so old and new keys can never meet.
const FORMAT: &[u8] = b"strait-key-1";

/// The method class of a cacheable request. HEAD shares GET's entries: the cache fetches the
/// full GET response and answers HEAD from its header.
pub fn method_class(method: &Method) -> Option<&'static str> {
    match *method {
        Method::GET | Method::HEAD => Some("GET"),
        _ => None,
    }
}

/// Lower case, port and trailing dot removed; `[::1]:8080` becomes `::1`.
pub fn normalize_host(host: &str) -> Cow<'_, str> {
    let host = host.trim();
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rfind(':') {
            Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
            _ => host,
        }
    };
    let bare = bare.strip_suffix('.').unwrap_or(bare);
    if bare.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(bare.to_ascii_lowercase())
    } else {
        Cow::Borrowed(bare)
    }
}

/// The primary key bytes for a request. `host` must already be normalised.
pub fn primary(scheme: &str, host: &str, method_class: &str, target: &str) -> Vec<u8> {
    let parts = [
        FORMAT,
        scheme.as_bytes(),
        host.as_bytes(),
        method_class.as_bytes(),
        target.as_bytes(),
    ];
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for part in parts {
        // Targets are bounded by the request-line limit, far below 4 GiB.
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// The components of a primary key, for purging by domain or object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyParts<'a> {
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The normalised host.
    pub host: &'a str,
    /// Which methods share the entry.
    pub method_class: &'a str,
    /// The request target (path and query).
    pub target: &'a str,
}

impl KeyParts<'_> {
    /// The target without its query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(self.target)
    }
}

/// Splits a key made by [`primary`]; `None` for anything else.
pub fn parse(key: &[u8]) -> Option<KeyParts<'_>> {
    let mut rest = key;
    let mut next = || -> Option<&[u8]> {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let part = rest.get(4..4 + len)?;
        rest = &rest[4 + len..];
        Some(part)
    };
    if next()? != FORMAT {
        return None;
    }
    let scheme = std::str::from_utf8(next()?).ok()?;
    let host = std::str::from_utf8(next()?).ok()?;
    let method_class = std::str::from_utf8(next()?).ok()?;
    let target = std::str::from_utf8(next()?).ok()?;
    if !rest.is_empty() {
        return None;
    }
    Some(KeyParts {
        scheme,
        host,
        method_class,
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_normalised_like_the_router() {
        assert_eq!(normalize_host("Example.COM:8080"), "example.com");
        assert_eq!(normalize_host("example.com."), "example.com");
        assert_eq!(normalize_host("[::1]:8443"), "::1");
        assert_eq!(normalize_host("a.example.com"), "a.example.com");
        assert!(matches!(normalize_host("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn head_shares_get_and_unsafe_methods_have_no_class() {
        assert_eq!(method_class(&Method::GET), Some("GET"));
        assert_eq!(method_class(&Method::HEAD), Some("GET"));
        assert_eq!(method_class(&Method::POST), None);
        assert_eq!(method_class(&Method::DELETE), None);
    }

    #[test]
    fn framing_keeps_component_boundaries() {
        // Bare concatenation would make all of these equal.
        let keys = [
            primary("http", "ab", "GET", "/c"),
            primary("http", "a", "GET", "b/c"),
            primary("http", "abG", "ET", "/c"),
            primary("httpa", "b", "GET", "/c"),
            primary("https", "ab", "GET", "/c"),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn host_is_part_of_the_key() {
        assert_ne!(
            primary("http", "a.example", "GET", "/x"),
            primary("http", "b.example", "GET", "/x")
        );
    }

    #[test]
    fn parse_round_trips_and_rejects_garbage() {
        let k = primary("https", "example.com", "GET", "/a/b?q=1");
        let p = parse(&k).unwrap();
        assert_eq!(p.scheme, "https");
        assert_eq!(p.host, "example.com");
        assert_eq!(p.method_class, "GET");
        assert_eq!(p.target, "/a/b?q=1");
        assert_eq!(p.path(), "/a/b");
        assert!(parse(b"/a/b").is_none());
        let mut trailing = k.clone();
        trailing.push(0);
        assert!(parse(&trailing).is_none());
        assert!(parse(&k[..k.len() - 1]).is_none());
    }
}
