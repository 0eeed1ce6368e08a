//! `rate_limit`: `requests` per `per`, counted per key (client IP, a header's value, or the
//! route) with pingora-limits' `Rate`, a fixed window per limit.
//!
//! `Rate` starts a new window on the first request after the previous one ended, and counts
//! with a count-min sketch: it never under-counts, and with the default 4×1024 table it is
//! exact unless thousands of keys share a window. A new snapshot takes over the limiters of
//! the one it replaces ([`RateLimiters`]), keyed by what they limit, so a reload or an admin
//! change that keeps a limit keeps its counts; a limit that changes starts afresh.
//!
//! A `scope: cluster` limit counts in Redis instead (`cluster_rate.rs`); its `Rate` then
//! counts only the decisions the node makes alone while Redis cannot answer.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora_limits::rate::Rate;

use super::cluster_rate::ClusterCounter;
use crate::config::{Cluster, RateKey, RateLimit, RateScope};

/// One configured limit with its counters.
pub struct RateLimiter {
    /// This node's own counts: the whole count of a local limit; for a cluster limit, the
    /// count its fallback share is checked against while Redis cannot answer.
    rate: Rate,
    pub limit: RateLimit,
    id: Id,
    /// `scope: cluster`: where the nodes count together (`cluster_rate.rs`).
    cluster: Option<Arc<ClusterCounter>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// The outcome of counting one request, with what the `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Until the current window ends, rounded up to whole seconds (at least 1).
    pub reset_secs: u64,
}

/// What a request is counted under.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum RateKeyValue<'a> {
    Ip(IpAddr),
    Header(&'a [u8]),
    Route(&'a str),
    /// No client address is known (e.g. a Unix socket listener): all such requests share.
    Unknown,
}

/// What a limiter counts for: the domain (its hosts), the route when it has a limit of its
/// own, and the limit.
type Id = (String, Option<String>, RateLimit);

/// The limiters of one snapshot being built: those of the snapshot it replaces, plus any new
/// ones. Dropped with the build; the limiters live on in the snapshot's handlers.
#[derive(Default)]
pub struct RateLimiters {
    kept: HashMap<Id, Arc<RateLimiter>>,
    /// The Redis connection cluster limits use: the previous snapshot's while `cluster` is
    /// unchanged, so a reload keeps the connection.
    cluster: Option<Arc<ClusterCounter>>,
}

impl RateLimiters {
    /// Starts from the limiters a previous snapshot holds; `cluster` is the new config's.
    pub fn carried(
        previous: impl IntoIterator<Item = Arc<RateLimiter>>,
        cluster: &Cluster,
    ) -> RateLimiters {
        let kept: HashMap<Id, Arc<RateLimiter>> =
            previous.into_iter().map(|l| (l.id.clone(), l)).collect();
        let same = kept
            .values()
            .filter_map(|l| l.cluster.clone())
            .find(|c| c.settings == *cluster);
        RateLimiters {
            cluster: same.or_else(|| ClusterCounter::new(cluster).map(Arc::new)),
            kept,
        }
    }

    /// The limiter for `limit` on `domain` (and `route`, when it has a limit of its own):
    /// the carried one when there is one.
    pub fn get(
        &mut self,
        domain: &str,
        route: Option<&str>,
        limit: &RateLimit,
    ) -> Arc<RateLimiter> {
        let id: Id = (domain.to_string(), route.map(str::to_string), limit.clone());
        let cluster = match limit.scope {
            RateScope::Local => None,
            RateScope::Cluster => self.cluster.clone(),
        };
        let same_counter = |l: &RateLimiter| match (&l.cluster, &cluster) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        match self.kept.get(&id) {
            Some(l) if same_counter(l) => l.clone(),
            _ => {
                let l = Arc::new(RateLimiter::new(id.clone(), cluster));
                self.kept.insert(id, l.clone());
                l
            }
        }
    }
}

impl RateLimiter {
    fn new(id: Id, cluster: Option<Arc<ClusterCounter>>) -> RateLimiter {
        RateLimiter {
            rate: Rate::new(id.2.per),
            limit: id.2.clone(),
            id,
            cluster,
        }
    }

    /// The Redis connection of a cluster limit.
    pub(crate) fn cluster(&self) -> Option<&Arc<ClusterCounter>> {
        self.cluster.as_ref()
    }

    /// Counts one request under `key`: in Redis for a cluster limit (at most
    /// `cluster.redis.timeout`; then, and while Redis is down, against this node's share),
    /// here for a local one.
    pub async fn decide(&self, key: &RateKeyValue<'_>) -> RateState {
        let Some(cluster) = &self.cluster else {
            return self.check(key);
        };
        let name = self.redis_key(key);
        match cluster
            .decide(&name, self.limit.requests, self.limit.per)
            .await
        {
            Ok(d) => RateState {
                allowed: d.allowed,
                limit: self.limit.requests,
                remaining: d.remaining,
                reset_secs: ceil_secs(d.reset).max(1),
            },
            Err(_) => self.count(key, (self.limit.requests / cluster.live_nodes()).max(1)),
        }
    }

    /// The Redis key a cluster limit counts `key` under: the limit's identity (so a changed
    /// limit starts afresh, as a local one does) and the key, kind-tagged so a header value
    /// cannot pose as an address.
    fn redis_key(&self, key: &RateKeyValue<'_>) -> Vec<u8> {
        let (domain, route, limit) = &self.id;
        let mut out = format!(
            "strait:rate:{domain}|{}|{}/{}ms|",
            route.as_deref().unwrap_or(""),
            limit.requests,
            limit.per.as_millis()
        )
        .into_bytes();
        match key {
            RateKeyValue::Ip(ip) => out.extend_from_slice(format!("ip:{ip}").as_bytes()),
            RateKeyValue::Header(v) => {
                out.extend_from_slice(b"h:");
                out.extend_from_slice(v);
            }
            RateKeyValue::Route(r) => {
                out.extend_from_slice(b"r:");
                out.extend_from_slice(r.as_bytes());
            }
            RateKeyValue::Unknown => out.extend_from_slice(b"-"),
        }
        out
    }

    /// The key this request counts under: `header:NAME` falls back to the client IP when the
    /// request lacks the header (so omitting it cannot dodge the limit).
    pub fn key<'a>(
        &self,
        client_ip: Option<IpAddr>,
        header: impl FnOnce(&str) -> Option<&'a [u8]>,
        route: &'a str,
    ) -> RateKeyValue<'a> {
        let by_ip = || client_ip.map_or(RateKeyValue::Unknown, RateKeyValue::Ip);
        match &self.limit.key {
            RateKey::ClientIp => by_ip(),
            RateKey::Route => RateKeyValue::Route(route),
            RateKey::Header(name) => header(name).map_or_else(by_ip, RateKeyValue::Header),
        }
    }

    /// Counts one request under `key` on this node alone.
    pub fn check(&self, key: &RateKeyValue<'_>) -> RateState {
        self.count(key, self.limit.requests)
    }

    /// Counts one request under `key` here, against `limit`.
    fn count(&self, key: &RateKeyValue<'_>, limit: u64) -> RateState {
        let seen = self.rate.observe(key, 1).max(0) as u64;
        // After `observe` (which starts a new window when the last one is over), the fraction
        // of the current window already gone.
        let gone = self.rate.rate_with(key, |c| c.current_interval_fraction);
        let left = self.limit.per.mul_f64((1.0 - gone).clamp(0.0, 1.0));
        RateState {
            allowed: seen <= limit,
            limit,
            remaining: limit.saturating_sub(seen),
            reset_secs: ceil_secs(left).max(1),
        }
    }
}

impl RateLimiter {
    /// What `check` would answer for one more request under `key`, without counting it
    /// (`POST /explain`): `remaining` is what is left before that request.
    pub fn peek(&self, key: &RateKeyValue<'_>) -> RateState {
        let (seen, gone) = self.rate.rate_with(key, |c| {
            (c.curr_samples.max(0) as u64, c.current_interval_fraction)
        });
        let left = self.limit.per.mul_f64((1.0 - gone).clamp(0.0, 1.0));
        let limit = self.limit.requests;
        RateState {
            allowed: seen < limit,
            limit,
            remaining: limit.saturating_sub(seen),
            reset_secs: ceil_secs(left).max(1),
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(requests: u64, per: Duration, key: RateKey) -> RateLimit {
        RateLimit {
            requests,
            per,
            key,
            scope: crate::config::RateScope::Local,
        }
    }

    #[test]
    fn counts_exactly_per_key_within_a_window() {
        let l = RateLimiter::new(
            (
                "t".into(),
                None,
                limit(3, Duration::from_secs(60), RateKey::ClientIp),
            ),
            None,
        );
        let a = RateKeyValue::Ip("10.0.0.1".parse().unwrap());
        let b = RateKeyValue::Ip("10.0.0.2".parse().unwrap());
        let states: Vec<_> = (0..5).map(|_| l.check(&a)).collect();
        assert_eq!(
            states
                .iter()
                .map(|s| (s.allowed, s.remaining))
                .collect::<Vec<_>>(),
            [(true, 2), (true, 1), (true, 0), (false, 0), (false, 0)]
        );
        assert!(states
            .iter()
            .all(|s| s.limit == 3 && (1..=60).contains(&s.reset_secs)));
        assert!(l.check(&b).allowed);
    }

    #[test]
    fn peeking_counts_nothing() {
        let l = RateLimiter::new(
            (
                "t".into(),
                None,
                limit(2, Duration::from_secs(60), RateKey::ClientIp),
            ),
            None,
        );
        let a = RateKeyValue::Ip("10.0.0.1".parse().unwrap());
        for _ in 0..3 {
            let p = l.peek(&a);
            assert!(p.allowed && p.remaining == 2, "{p:?}");
        }
        assert_eq!(l.check(&a).remaining, 1);
        assert_eq!(l.peek(&a).remaining, 1);
        assert!(l.check(&a).allowed);
        let p = l.peek(&a);
        assert!(!p.allowed && p.remaining == 0, "{p:?}");
        assert!(!l.check(&a).allowed);
    }

    #[test]
    fn a_new_window_starts_afresh() {
        let l = RateLimiter::new(
            (
                "t".into(),
                None,
                limit(1, Duration::from_millis(50), RateKey::Route),
            ),
            None,
        );
        let k = RateKeyValue::Route("/x");
        assert!(l.check(&k).allowed);
        assert!(!l.check(&k).allowed);
        std::thread::sleep(Duration::from_millis(120));
        assert!(l.check(&k).allowed);
    }

    #[test]
    fn header_keys_fall_back_to_the_client() {
        let l = RateLimiter::new(
            (
                "t".into(),
                None,
                limit(1, Duration::from_secs(1), RateKey::Header("X-Key".into())),
            ),
            None,
        );
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(
            l.key(Some(ip), |_| Some(b"k1"), "/"),
            RateKeyValue::Header(b"k1")
        );
        assert_eq!(l.key(Some(ip), |_| None, "/"), RateKeyValue::Ip(ip));
        assert_eq!(l.key(None, |_| None, "/"), RateKeyValue::Unknown);
    }

    #[test]
    fn counters_carry_over_to_the_next_snapshot() {
        let l = limit(2, Duration::from_secs(60), RateKey::ClientIp);
        let mut build = RateLimiters::carried([], &Cluster::default());
        let first = build.get("reg.test", Some("/a/"), &l);
        let again = build.get("reg.test", Some("/a/"), &l);
        assert!(Arc::ptr_eq(&first, &again));
        let other = build.get("reg.test", None, &l);
        assert!(!Arc::ptr_eq(&first, &other));
        let mut next = RateLimiters::carried([first.clone()], &Cluster::default());
        assert!(Arc::ptr_eq(&first, &next.get("reg.test", Some("/a/"), &l)));
        let changed = next.get("reg.test", Some("/a/"), &limit(3, l.per, l.key.clone()));
        assert!(!Arc::ptr_eq(&first, &changed));
    }
}
