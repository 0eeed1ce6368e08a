//! Purging: one object, one domain, or everything; each returns how many entries it removed.
//! The admin API (`DELETE /cache...`, design §4) calls these; unsafe requests (POST, PUT,
//! DELETE, PATCH) call [`invalidate`] for the URL they changed (RFC 9111 §4.4).

use super::key::{self, normalize_host};
use super::storage::MemoryStore;

/// Removes every stored response.
pub(crate) fn purge_all(store: &MemoryStore) -> usize {
    store.remove_where(|_| true)
}

/// Removes every response stored for `host` (any port, any letter case). `*.example.com`
/// removes the responses of every subdomain of example.com, as the domain's host pattern does.
pub(crate) fn purge_domain(store: &MemoryStore, host: &str) -> usize {
    let pattern = host.trim();
    if let Some(suffix) = pattern.strip_prefix("*.") {
        let suffix = format!(".{}", normalize_host(suffix));
        return store.remove_where(|e| {
            e.parts()
                .is_some_and(|p| p.host.len() > suffix.len() && p.host.ends_with(suffix.as_str()))
        });
    }
    let host = normalize_host(pattern);
    store.remove_where(|e| e.parts().is_some_and(|p| p.host == host))
}

/// Removes one object: `path` with its query string if it has one (`/a?x=1` removes exactly
/// that), or `path` under every query string if it has none (`/a` removes `/a`, `/a?x=1`, ...).
/// All schemes and all `Vary` variants go. `method`: `GET`/`HEAD` (or empty) purge the GET
/// entries; other methods are never cached, so they purge nothing.
pub(crate) fn purge_object(store: &MemoryStore, host: &str, path: &str, method: &str) -> usize {
    let method = if method.is_empty() { "GET" } else { method };
    let Ok(m) = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
        return 0;
    };
    let Some(class) = key::method_class(&m) else {
        return 0;
    };
    let host = normalize_host(host);
    let exact = path.contains('?');
    store.remove_where(|e| {
        e.parts().is_some_and(|p| {
            p.host == host
                && p.method_class == class
                && if exact {
                    p.target == path
                } else {
                    p.path() == path
                }
        })
    })
}

/// Invalidation after a successful unsafe request: the effective request URI, under both
/// schemes, with all its variants. A hash lookup, no scan.
pub(crate) fn invalidate(store: &MemoryStore, host: &str, target: &str) -> usize {
    let host = normalize_host(host);
    ["http", "https"]
        .iter()
        .map(|scheme| store.remove_primary(&key::primary(scheme, &host, "GET", target)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::storage::StoredMeta;
    use bytes::Bytes;
    use pingora::cache::key::CacheHashKey;
    use pingora::cache::{CacheKey, CacheMeta};
    use pingora::http::ResponseHeader;
    use std::time::{Duration, SystemTime};

    fn put(s: &MemoryStore, scheme: &str, host: &str, target: &str) {
        let k = CacheKey::new(key::primary(scheme, host, "GET", target), "");
        let now = SystemTime::now();
        let meta = CacheMeta::new(
            now + Duration::from_secs(60),
            now,
            0,
            0,
            ResponseHeader::build(200, None).unwrap(),
        );
        s.insert(
            k.primary_key().into(),
            k.primary_bin(),
            None,
            StoredMeta::of(&meta).unwrap(),
            Bytes::from_static(b"x"),
        )
        .unwrap();
    }

    fn filled() -> MemoryStore {
        let s = MemoryStore::new(1 << 20, 1000);
        for (scheme, host, target) in [
            ("http", "a.test", "/x"),
            ("https", "a.test", "/x"),
            ("http", "a.test", "/x?q=1"),
            ("http", "a.test", "/y"),
            ("http", "b.test", "/x"),
            ("http", "s1.w.test", "/x"),
            ("http", "s2.w.test", "/x"),
            ("http", "w.test", "/x"),
        ] {
            put(&s, scheme, host, target);
        }
        s
    }

    #[test]
    fn purge_object_by_path_or_exact_target() {
        let s = filled();
        assert_eq!(purge_object(&s, "A.test:8080", "/x?q=1", "GET"), 1);
        assert_eq!(purge_object(&s, "a.test", "/x", ""), 2);
        assert_eq!(purge_object(&s, "a.test", "/y", "POST"), 0);
        assert_eq!(purge_object(&s, "a.test", "/y", "head"), 1);
        assert_eq!(s.stats().entries, 4);
    }

    #[test]
    fn purge_domain_and_wildcards() {
        let s = filled();
        assert_eq!(purge_domain(&s, "*.w.test"), 2);
        assert_eq!(purge_domain(&s, "A.TEST"), 4);
        assert_eq!(s.stats().entries, 2);
        assert_eq!(purge_all(&s), 2);
        assert_eq!(s.stats().entries, 0);
        assert_eq!(s.stats().bytes, 0);
        assert_eq!(s.stats().purged, 8);
    }

    #[test]
    fn invalidation_hits_both_schemes_only_for_the_exact_target() {
        let s = filled();
        assert_eq!(invalidate(&s, "a.test", "/x"), 2);
        assert_eq!(invalidate(&s, "a.test", "/x"), 0);
        assert_eq!(s.stats().entries, 6);
    }
}
