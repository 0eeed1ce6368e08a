//! Load balancing: per-backend runtime state, the five strategies, and `Pool`, which ties one
//! backend list to one strategy.
//!
//! Nothing here touches the network or Pingora: a strategy is a function of the backend list,
//! the backends' atomics and its own small state, so it is tested with plain values. Backends
//! are `Arc`s shared across config snapshots; balancer state (cursors, WRR scores, the hash
//! ring) belongs to one snapshot's `Pool` and is rebuilt with it.

mod backend;
mod consistent_hash;
mod lease;
mod least_connections;
mod least_latency;
mod outlier;
mod random;
mod retry_budget;
mod round_robin;
mod sticky;
mod weighted_round_robin;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use crate::config::{HashKey, HealthCheck, PoolPolicy, Strategy};

pub(crate) use backend::{Backend, MAX_WEIGHT};
pub use consistent_hash::hash_ip;
pub(crate) use consistent_hash::{hash_bytes, moved_share, ConsistentHash};
pub(crate) use lease::Lease;
pub(crate) use least_connections::LeastConnections;
pub(crate) use least_latency::LeastLatency;
pub(crate) use outlier::{now_ms, Change};
pub(crate) use random::Random;
pub(crate) use round_robin::RoundRobin;
pub(crate) use weighted_round_robin::WeightedRoundRobin;

/// One load-balancing strategy.
///
/// `pick` returns the index in `backends` of a usable backend (healthy, enabled, not ejected)
/// for which `skip(i)` is false, or `None` when there is none. `key` is the request's
/// affinity key (see `Pool::key`), which only the hashing strategies read. `skip` marks backends already tried for
/// this request, so a retry lands somewhere else. Implementations must not panic, whatever the
/// list (empty, or not the one they were built from), and must stay O(n) without allocating:
/// this runs for every request. (`IpHash` walks ring points past down backends: a step or two
/// per pick unless most of the pool is down, and only after checking that the walk will end.)
pub(crate) trait Balancer: Send + Sync {
    fn pick(
        &self,
        backends: &[Arc<Backend>],
        key: Option<u64>,
        skip: &dyn Fn(usize) -> bool,
    ) -> Option<usize>;

    /// The index the next `pick` (skipping nothing) would return for `client`, changing no
    /// state: what `POST /explain` reports. `None` when no backend is usable, and always for
    /// `random`, whose next pick is not decided yet.
    fn peek(&self, backends: &[Arc<Backend>], key: Option<u64>) -> Option<usize>;

    /// `ip_hash` only: where `client` lands on the ring.
    fn ring_spot(&self, _key: u64) -> Option<RingSpot> {
        None
    }
}

/// Where a client address lands on an `ip_hash` ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RingSpot {
    /// The address's hash (the ring position it looks up, low index bits cleared).
    pub hash: u64,
    /// The index of the first ring point at or after it.
    pub point: usize,
    /// Points on the ring.
    pub points: usize,
    /// The backend owning that point (before skipping unusable ones).
    pub owner: usize,
}

/// The balancer for `strategy`; those that precompute (the hash ring) do so from `backends`,
/// and must then be used with that same list.
pub(crate) fn build(strategy: Strategy, backends: &[Arc<Backend>]) -> Box<dyn Balancer> {
    match strategy {
        Strategy::RoundRobin => Box::new(RoundRobin::new()),
        Strategy::WeightedRoundRobin => Box::new(WeightedRoundRobin::new(backends)),
        Strategy::LeastConnections => Box::new(LeastConnections::new()),
        Strategy::IpHash | Strategy::ConsistentHash => Box::new(ConsistentHash::new(backends)),
        Strategy::Random => Box::new(Random::new()),
        Strategy::LeastLatency => Box::new(LeastLatency::new()),
    }
}

fn is_candidate(backends: &[Arc<Backend>], i: usize, skip: &dyn Fn(usize) -> bool) -> bool {
    backends.get(i).is_some_and(|b| b.is_usable()) && !skip(i)
}

/// A backend list with its strategy and health policy, as one config snapshot sees it.
pub struct Pool {
    pub name: String,
    /// Kept together with `balancer`, which may have been built from it: build a new `Pool`
    /// rather than editing this list in place.
    pub backends: Vec<Arc<Backend>>,
    pub health_check: Option<HealthCheck>,
    pub strategy: Strategy,
    /// Passive health, hash key, sticky cookie and retry budget.
    pub policy: PoolPolicy,
    balancer: Box<dyn Balancer>,
    /// The sticky token of each backend (empty without `sticky`).
    tokens: Vec<String>,
    budget: retry_budget::Budget,
}

impl Pool {
    /// A pool with only a strategy and active checks (no passive health, no retry budget).
    pub fn new(
        name: impl Into<String>,
        strategy: Strategy,
        backends: Vec<Arc<Backend>>,
        health_check: Option<HealthCheck>,
    ) -> Self {
        Pool::with_policy(
            name,
            backends,
            PoolPolicy {
                strategy,
                health_check,
                passive_health: None,
                hash_key: HashKey::ClientIp,
                sticky: None,
                retry_budget: None,
            },
        )
    }

    pub fn with_policy(
        name: impl Into<String>,
        backends: Vec<Arc<Backend>>,
        policy: PoolPolicy,
    ) -> Self {
        let name = name.into();
        let balancer = build(policy.strategy, &backends);
        let tokens = match &policy.sticky {
            Some(_) => backends.iter().map(|b| sticky::token(&name, b)).collect(),
            None => Vec::new(),
        };
        Pool {
            name,
            backends,
            health_check: policy.health_check.clone(),
            strategy: policy.strategy,
            policy,
            balancer,
            tokens,
            budget: retry_budget::Budget::default(),
        }
    }

    /// The request's affinity key for the hashing strategies: the client address for
    /// `ip_hash`, the `hash_key` for `consistent_hash`; `None` (round robin) when the request
    /// lacks it, and for every other strategy.
    pub fn key(
        &self,
        req: &pingora::http::RequestHeader,
        client: Option<std::net::IpAddr>,
    ) -> Option<u64> {
        let key = match self.strategy {
            Strategy::IpHash => &HashKey::ClientIp,
            Strategy::ConsistentHash => &self.policy.hash_key,
            _ => return None,
        };
        match key {
            HashKey::ClientIp => client.map(hash_ip),
            HashKey::Header(name) => req
                .headers
                .get(name.as_str())
                .map(|v| hash_bytes(v.as_bytes())),
            HashKey::Cookie(name) => sticky::cookie_value(
                req.headers
                    .get_all(http::header::COOKIE)
                    .iter()
                    .map(|v| v.as_bytes()),
                name,
            )
            .map(hash_bytes),
            HashKey::Query(name) => req.uri.query().and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| hash_bytes(v.as_bytes()))
            }),
            HashKey::Path => Some(hash_bytes(req.uri.path().as_bytes())),
        }
    }

    /// The backend a sticky cookie in `req` names, if the pool is sticky and it is usable.
    pub fn sticky_pick(&self, req: &pingora::http::RequestHeader) -> Option<usize> {
        let s = self.policy.sticky.as_ref()?;
        let value = sticky::cookie_value(
            req.headers
                .get_all(http::header::COOKIE)
                .iter()
                .map(|v| v.as_bytes()),
            &s.cookie,
        )?;
        let i = self.tokens.iter().position(|t| t.as_bytes() == value)?;
        self.backends.get(i).filter(|b| b.is_usable()).map(|_| i)
    }

    /// The `Set-Cookie` for a response served by backend `index`, unless the request already
    /// carries that very cookie.
    pub fn sticky_cookie(
        &self,
        index: usize,
        req: &pingora::http::RequestHeader,
    ) -> Option<String> {
        let s = self.policy.sticky.as_ref()?;
        let token = self.tokens.get(index)?;
        let sent = sticky::cookie_value(
            req.headers
                .get_all(http::header::COOKIE)
                .iter()
                .map(|v| v.as_bytes()),
            &s.cookie,
        );
        (sent != Some(token.as_bytes())).then(|| sticky::set_cookie(s, token))
    }

    /// Counts a request's first attempt for the retry budget.
    pub fn count_request(&self) {
        if self.policy.retry_budget.is_some() {
            self.budget.request();
        }
    }

    /// Whether the retry budget allows one more retry (counting it when it does).
    pub fn retry_allowed(&self) -> bool {
        self.policy
            .retry_budget
            .as_ref()
            .is_none_or(|b| self.budget.try_retry(b))
    }

    /// Feeds one request's outcome on backend `index` to passive health, within
    /// `max_ejected_percent`; logs and counts each ejection and readmission.
    pub fn outcome(&self, index: usize, ok: bool) {
        let (Some(policy), Some(b)) = (&self.policy.passive_health, self.backends.get(index))
        else {
            return;
        };
        let may_eject = !ok && {
            let ejected = self
                .backends
                .iter()
                .filter(|b| b.outlier.ejected_until_ms().is_some())
                .count();
            (ejected + 1) * 100 <= self.backends.len() * policy.max_ejected_percent as usize
        };
        match b.passive_outcome(ok, policy, may_eject) {
            Change::Ejected(time) => {
                log::warn!(
                    "pool {}: backend {} ejected for {:?} after {} failures in a row (passive health)",
                    self.name,
                    b.config.url,
                    time,
                    policy.consecutive_failures
                );
                crate::metrics::record_ejection(&b.config.url);
            }
            Change::Readmitted => {
                log::info!(
                    "pool {}: backend {} readmitted after a good trial request",
                    self.name,
                    b.config.url
                );
            }
            Change::None => {}
        }
    }

    /// Picks a backend for a request and takes an in-flight slot on it. `tried` holds the
    /// indices already used by this request; a retry passes them so it goes elsewhere. `None`
    /// means no usable backend is left (503 on a first attempt, give up on a retry).
    pub fn select(&self, key: Option<u64>, tried: &[usize]) -> Option<(usize, Lease)> {
        let skip = |i: usize| tried.contains(&i);
        let i = self.balancer.pick(&self.backends, key, &skip)?;
        match self.backends.get(i) {
            Some(b) => Some((i, b.lease())),
            None => {
                log::error!(
                    "pool {}: {} balancer returned index {i} of {} backends",
                    self.name,
                    self.strategy.name(),
                    self.backends.len()
                );
                None
            }
        }
    }

    /// The backend the strategy would pick, without taking a slot on it: callers that must
    /// check a backend's capacity first take the slot themselves (`Backend::try_lease`).
    pub fn pick(&self, key: Option<u64>, skip: &dyn Fn(usize) -> bool) -> Option<usize> {
        self.balancer.pick(&self.backends, key, skip)
    }

    /// What the next pick for `key` would be, changing nothing (see [`Balancer::peek`]).
    pub fn peek(&self, key: Option<u64>) -> Option<usize> {
        self.balancer.peek(&self.backends, key)
    }

    /// Hashing pools: where `key` lands on the ring.
    pub(crate) fn ring_spot(&self, key: u64) -> Option<RingSpot> {
        self.balancer.ring_spot(key)
    }

    /// The backend a sticky cookie among `headers` (name, value) names, if usable (explain).
    pub(crate) fn sticky_pick_for(&self, headers: &[(String, String)]) -> Option<usize> {
        let s = self.policy.sticky.as_ref()?;
        let value = sticky::cookie_value(
            headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
                .map(|(_, v)| v.as_bytes()),
            &s.cookie,
        )?;
        let i = self.tokens.iter().position(|t| t.as_bytes() == value)?;
        self.backends.get(i).filter(|b| b.is_usable()).map(|_| i)
    }

    /// Whether any backend could take a request now (for `/ready` and quick 503s).
    pub fn has_usable(&self) -> bool {
        self.backends.iter().any(|b| b.is_usable())
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .field("strategy", &self.strategy)
            .field("backends", &self.backends)
            .field("health_check", &self.health_check)
            .finish_non_exhaustive()
    }
}
