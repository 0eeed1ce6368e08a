//! What a domain or route caches: its effective `cache:` settings and the per-path rules.
//!
//! A [`RouteCache`] is built once per domain and route when a snapshot is built, so the request
//! path only matches prefixes. `cache: false` (or no `cache:` at all) gives no policy, and
//! nothing of the cache runs for that domain, not even the `X-Cache` header.

use std::sync::Arc;

use crate::config::{CacheRule, CacheSettings, DomainCache};

#[derive(Debug)]
pub struct RouteCache {
    pub settings: CacheSettings,
}

/// Why a request does not use the cache at all (`X-Cache: BYPASS`).
pub(crate) type BypassReason = &'static str;

/// What the request phase decided for one request.
#[derive(Debug, Clone, Copy)]
pub struct RequestPlan {
    /// Index of the matching rule in `settings.rules` (see [`RouteCache::rule`]).
    pub rule: Option<usize>,
    /// Largest body admitted for this request.
    pub max_entry_bytes: u64,
}

impl RouteCache {
    pub fn new(settings: CacheSettings) -> RouteCache {
        RouteCache { settings }
    }

    /// The policy for a domain or route's `cache:` value (`global` is the top-level section).
    pub fn resolve(cache: &DomainCache, global: Option<&CacheSettings>) -> Option<Arc<RouteCache>> {
        match cache {
            DomainCache::Off => None,
            DomainCache::Global => global.map(|g| Arc::new(RouteCache::new(g.clone()))),
            DomainCache::Custom(s) => Some(Arc::new(RouteCache::new((**s).clone()))),
        }
    }

    /// The first rule whose prefix matches `path` (rules are in file order; first wins).
    pub fn rule_for(&self, path: &str) -> Option<&CacheRule> {
        self.rule(self.rule_index(path))
    }

    fn rule_index(&self, path: &str) -> Option<usize> {
        self.settings
            .rules
            .iter()
            .position(|r| path.starts_with(r.path_prefix.as_str()))
    }

    /// The rule a [`RequestPlan`] matched.
    pub fn rule(&self, index: Option<usize>) -> Option<&CacheRule> {
        index.and_then(|i| self.settings.rules.get(i))
    }

    /// Whether a request with this method and path may use the cache, and with what limits.
    /// `method` is the request method in upper case.
    pub fn plan(&self, method: &str, path: &str) -> Result<RequestPlan, BypassReason> {
        if method != "GET" && method != "HEAD" {
            return Err("method");
        }
        let index = self.rule_index(path);
        let rule = self.rule(index);
        if let Some(r) = rule {
            if !r.enabled {
                return Err("rule-off");
            }
            // HEAD is answered from the GET entry, so a rule that admits GET admits HEAD.
            let allowed = r.methods.is_empty()
                || r.methods.iter().any(|m| m == method)
                || (method == "HEAD" && r.methods.iter().any(|m| m == "GET"));
            if !allowed {
                return Err("method");
            }
        }
        let max_entry_bytes = rule
            .and_then(|r| r.max_entry_bytes)
            .unwrap_or(self.settings.max_entry_bytes);
        Ok(RequestPlan {
            rule: index,
            max_entry_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rule(prefix: &str) -> CacheRule {
        CacheRule {
            path_prefix: prefix.to_string(),
            enabled: true,
            ttl: None,
            methods: Vec::new(),
            statuses: Vec::new(),
            max_entry_bytes: None,
        }
    }

    fn settings(rules: Vec<CacheRule>) -> CacheSettings {
        CacheSettings {
            max_bytes: 1 << 20,
            max_entries: 100,
            max_entry_bytes: 1000,
            default_ttl: None,
            max_ttl: Duration::from_secs(3600),
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            precompress: crate::config::Precompress {
                enabled: false,
                level: 6,
                min_bytes: 256,
            },
            rules,
            forward_targeted_cache_control: false,
        }
    }

    #[test]
    fn first_matching_rule_wins() {
        let mut a = rule("/api/");
        a.ttl = Some(Duration::from_secs(1));
        let mut b = rule("/api/v1/");
        b.ttl = Some(Duration::from_secs(2));
        let p = RouteCache::new(settings(vec![a, b]));
        assert_eq!(p.rule_for("/api/v1/x").unwrap().path_prefix, "/api/");
        assert!(p.rule_for("/other").is_none());
    }

    #[test]
    fn plans_respect_rule_switches_methods_and_limits() {
        let mut off = rule("/private/");
        off.enabled = false;
        let mut get_only = rule("/get/");
        get_only.methods = vec!["GET".into()];
        let mut big = rule("/big/");
        big.max_entry_bytes = Some(5000);
        let p = RouteCache::new(settings(vec![off, get_only, big]));
        assert_eq!(p.plan("POST", "/x").unwrap_err(), "method");
        assert_eq!(p.plan("GET", "/private/a").unwrap_err(), "rule-off");
        assert!(p.plan("HEAD", "/get/a").is_ok());
        assert_eq!(p.plan("GET", "/big/a").unwrap().max_entry_bytes, 5000);
        assert_eq!(p.plan("GET", "/x").unwrap().max_entry_bytes, 1000);
    }

    #[test]
    fn off_domains_have_no_policy() {
        let g = settings(Vec::new());
        assert!(RouteCache::resolve(&DomainCache::Off, Some(&g)).is_none());
        assert!(RouteCache::resolve(&DomainCache::Global, None).is_none());
        assert!(RouteCache::resolve(&DomainCache::Global, Some(&g)).is_some());
    }
}
