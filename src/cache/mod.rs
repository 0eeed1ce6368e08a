//! The response cache: pingora-cache driven by strait's own memory storage.
//!
//! - [`storage`]: the memory `Storage` (budgets, eviction, hit and miss handlers)
//! - [`key`]: the framed cache key
//! - [`policy`]: RFC 9111 cacheability and freshness
//! - [`rules`]: per-domain settings and per-path rules
//! - [`vary`]: secondary keys
//! - [`precompress`]: gzip copies
//! - [`stats`] and [`purge`]: what the admin API and the metrics read and call
//!
//! The proxy phases that use all this live in `proxy/cache.rs`.
//!
//! Pingora needs `&'static` storage, so there is one store per process, created on first use
//! and sized from the config each time a snapshot is built (start and every reload): budgets
//! follow reloads, shrinking evicts at once. The budgets are the top-level `cache:` section's;
//! `max_bytes`/`max_entries` in a domain's own `cache:` map do not carve out a separate store
//! (when there is no top-level section, the largest of the domains' budgets is used).

pub mod key;
pub(crate) mod policy;
pub(crate) mod precompress;
pub(crate) mod purge;
pub(crate) mod rules;
pub(crate) mod stats;
pub(crate) mod storage;
pub(crate) mod vary;

use std::time::Duration;

use once_cell::sync::Lazy;
use pingora::cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora::cache::predictor::{CacheablePredictor, Predictor};

use crate::config::{CacheSettings, Config, DomainCache};

pub(crate) use rules::RouteCache;
pub(crate) use stats::{CacheStats, Outcome};
pub use storage::MemoryStore;

/// How long one fill may hold a key's lock before waiting requests compete for it again.
pub(crate) const LOCK_AGE_TIMEOUT: Duration = Duration::from_secs(10);

static STORE: Lazy<MemoryStore> = Lazy::new(|| MemoryStore::new(256 << 20, 10_000));
static LOCK: Lazy<Box<CacheKeyLockImpl>> = Lazy::new(|| CacheLock::new_boxed(LOCK_AGE_TIMEOUT));
/// URLs whose last response was not storable (32 shards x 1024 keys): later requests skip
/// the lookup and the cache lock, until a response is storable again.
static PREDICTOR: Lazy<Predictor<32>> = Lazy::new(|| Predictor::new(1024, Some(request_specific)));

/// Refusals that depend on the request rather than the URL are not remembered: another
/// client's request for the same URL may well be storable.
fn request_specific(reason: &'static str) -> bool {
    reason == "authorization"
}

/// The process-wide store.
pub(crate) fn store() -> &'static MemoryStore {
    &STORE
}

/// The process-wide cache lock: concurrent misses for one key make one origin request.
pub(crate) fn cache_lock() -> &'static CacheKeyLockImpl {
    LOCK.as_ref()
}

/// The process-wide cacheability predictor.
pub(crate) fn predictor() -> &'static (dyn CacheablePredictor + Sync) {
    &*PREDICTOR
}

/// The store budgets a config asks for; `None` when no domain caches.
pub(crate) fn budgets(config: &Config) -> Option<(u64, u64)> {
    if let Some(global) = &config.cache {
        return Some((global.max_bytes, global.max_entries as u64));
    }
    let customs = config
        .domains
        .iter()
        .flat_map(|d| d.handlings().map(|h| &h.cache))
        .filter_map(|c| match c {
            DomainCache::Custom(s) => Some(&**s),
            _ => None,
        });
    customs.fold(None, |acc: Option<(u64, u64)>, s: &CacheSettings| {
        let (b, e) = acc.unwrap_or((0, 0));
        Some((b.max(s.max_bytes), e.max(s.max_entries as u64)))
    })
}

/// Sizes the store for `config` (called whenever a snapshot is built).
pub(crate) fn apply_budgets(config: &Config) {
    if let Some((bytes, entries)) = budgets(config) {
        store().set_limits(bytes, entries);
    }
}

/// Entries, bytes, hits, misses, stale served, evictions and more (`GET /cache/stats`).
pub(crate) fn stats() -> CacheStats {
    store().stats()
}

/// `DELETE /cache`: removes everything; returns how many entries.
pub(crate) fn purge_all() -> usize {
    purge::purge_all(store())
}

/// `DELETE /cache?domain=D`: removes one host's entries (`*.example.com` for a wildcard).
pub(crate) fn purge_domain(host: &str) -> usize {
    purge::purge_domain(store(), host)
}

/// `DELETE /cache?domain=D&path=/x[&method=GET]`: removes one object, all its variants.
pub(crate) fn purge_object(host: &str, path: &str, method: &str) -> usize {
    purge::purge_object(store(), host, path, method)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn load(text: &str) -> Config {
        load_str(text, "test.yaml", &|_| None).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn budgets_come_from_the_top_level_section_or_the_largest_domain_map() {
        let global = load(
            "listeners: [{ addr: \"127.0.0.1:1\" }]
cache: { max_bytes: 8MiB, max_entries: 7 }
domains:
  - hosts: [a.test]
    backends: [{ addr: \"http://127.0.0.1:2\" }]
    cache: { max_bytes: 1GiB }
",
        );
        assert_eq!(budgets(&global), Some((8 << 20, 7)));
        let per_domain = load(
            "listeners: [{ addr: \"127.0.0.1:1\" }]
domains:
  - hosts: [a.test]
    backends: [{ addr: \"http://127.0.0.1:2\" }]
    cache: { max_bytes: 5MiB, max_entries: 5 }
  - hosts: [b.test]
    backends: [{ addr: \"http://127.0.0.1:2\" }]
    cache: { max_bytes: 6MiB, max_entries: 2 }
",
        );
        assert_eq!(budgets(&per_domain), Some((6 << 20, 5)));
        let none = load(
            "listeners: [{ addr: \"127.0.0.1:1\" }]
domains:
  - hosts: [a.test]
    backends: [{ addr: \"http://127.0.0.1:2\" }]
",
        );
        assert_eq!(budgets(&none), None);
    }

    #[test]
    fn routes_inherit_or_override_their_domains_policy() {
        let c = load(
            "listeners: [{ addr: \"127.0.0.1:1\" }]
cache: { default_ttl: 1m }
domains:
  - hosts: [a.test]
    backends: [{ addr: \"http://127.0.0.1:2\" }]
    cache: true
    routes:
      - { path_prefix: /inherit/ }
      - { path_prefix: /off/, cache: false }
      - { path_prefix: /own/, cache: { default_ttl: 5s } }
",
        );
        let d = &c.domains[0];
        let global = c.cache.as_ref();
        let domain = RouteCache::resolve(&d.handling.cache, global).unwrap();
        assert_eq!(domain.settings.default_ttl, Some(Duration::from_secs(60)));
        let by_prefix = |p: &str| {
            let r = d.routes.iter().find(|r| r.name == p).unwrap();
            RouteCache::resolve(&r.handling.cache, global)
        };
        assert_eq!(
            by_prefix("/inherit/").unwrap().settings.default_ttl,
            Some(Duration::from_secs(60))
        );
        assert!(by_prefix("/off/").is_none());
        assert_eq!(
            by_prefix("/own/").unwrap().settings.default_ttl,
            Some(Duration::from_secs(5))
        );
    }
}
