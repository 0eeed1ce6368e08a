//! `sticky`: a cookie that keeps a client on the backend that served it (HAProxy's `cookie`
//! persistence). The cookie names the backend by an opaque token, a keyed hash (BLAKE2s) of
//! the pool's name and the backend's target: it reveals neither address nor position, and
//! survives reordering of the backend list and restarts. A token that names no usable backend
//! is ignored; the request gets a new pick and a new cookie.

use blake2::{Blake2s256, Digest};

use super::Backend;
use crate::config::Sticky;

/// The token of `backend` in the pool named `pool`.
pub(crate) fn token(pool: &str, backend: &Backend) -> String {
    let mut h = Blake2s256::new();
    h.update(b"strait sticky v1\0");
    h.update(pool.as_bytes());
    h.update(b"\0");
    h.update(backend.config.host.to_ascii_lowercase().as_bytes());
    h.update(backend.config.port.to_be_bytes());
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The value of cookie `name` in `Cookie` header values, if present.
pub(crate) fn cookie_value<'a>(
    headers: impl Iterator<Item = &'a [u8]>,
    name: &str,
) -> Option<&'a [u8]> {
    headers
        .flat_map(|v| v.split(|&b| b == b';'))
        .map(<[u8]>::trim_ascii)
        .find_map(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
        })
}

/// The `Set-Cookie` value for `token`.
pub(crate) fn set_cookie(s: &Sticky, token: &str) -> String {
    let mut out = format!("{}={token}; Path=/", s.cookie);
    if let Some(ttl) = s.ttl {
        out.push_str(&format!("; Max-Age={}", ttl.as_secs()));
    }
    if s.secure {
        out.push_str("; Secure");
    }
    if s.http_only {
        out.push_str("; HttpOnly");
    }
    if let Some(same_site) = &s.same_site {
        out.push_str("; SameSite=");
        out.push_str(same_site);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tests::backends;
    use super::*;

    #[test]
    fn tokens_are_opaque_stable_and_distinct() {
        let b = backends(&[1, 1]);
        let t0 = token("p", &b[0]);
        assert_eq!(t0, token("p", &b[0]));
        assert_ne!(t0, token("p", &b[1]));
        assert_ne!(t0, token("q", &b[0]));
        assert_eq!(t0.len(), 24);
        assert!(!t0.contains(&b[0].config.port.to_string()));
    }

    #[test]
    fn cookies_are_found_and_written() {
        let v = [&b"a=1; srv=abc ; b=2"[..], b"srv=zzz"];
        assert_eq!(cookie_value(v.into_iter(), "srv"), Some(&b"abc"[..]));
        assert_eq!(cookie_value([&b"xsrv=1"[..]].into_iter(), "srv"), None);
        let s = Sticky {
            cookie: "srv".into(),
            ttl: Some(Duration::from_secs(3600)),
            secure: true,
            http_only: true,
            same_site: Some("Lax".into()),
        };
        assert_eq!(
            set_cookie(&s, "t"),
            "srv=t; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax"
        );
    }
}
