//! Load balancing: per-backend runtime state, the five strategies, and `Pool`, which ties one
//! backend list to one strategy.
//!
//! Nothing here touches the network or Pingora: a strategy is a function of the backend list,
//! the backends' atomics and its own small state, so it is tested with plain values. Backends
//! are `Arc`s shared across config snapshots; balancer state (cursors, WRR scores, the hash
//! ring) belongs to one snapshot's `Pool` and is rebuilt with it.

mod backend;
mod ip_hash;
mod lease;
mod least_connections;
mod random;
mod round_robin;
mod weighted_round_robin;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{HealthCheck, Strategy};

pub(crate) use backend::{Backend, MAX_WEIGHT};
pub(crate) use ip_hash::{moved_share, IpHash};
pub(crate) use lease::Lease;
pub(crate) use least_connections::LeastConnections;
pub(crate) use random::Random;
pub(crate) use round_robin::RoundRobin;
pub(crate) use weighted_round_robin::WeightedRoundRobin;

/// One load-balancing strategy.
///
/// `pick` returns the index in `backends` of a usable backend (healthy and enabled) for which
/// `skip(i)` is false, or `None` when there is none. `skip` marks backends already tried for
/// this request, so a retry lands somewhere else. Implementations must not panic, whatever the
/// list (empty, or not the one they were built from), and must stay O(n) without allocating:
/// this runs for every request. (`IpHash` walks ring points past down backends: a step or two
/// per pick unless most of the pool is down, and only after checking that the walk will end.)
pub(crate) trait Balancer: Send + Sync {
    fn pick(
        &self,
        backends: &[Arc<Backend>],
        client: Option<IpAddr>,
        skip: &dyn Fn(usize) -> bool,
    ) -> Option<usize>;

    /// The index the next `pick` (skipping nothing) would return for `client`, changing no
    /// state: what `POST /explain` reports. `None` when no backend is usable, and always for
    /// `random`, whose next pick is not decided yet.
    fn peek(&self, backends: &[Arc<Backend>], client: Option<IpAddr>) -> Option<usize>;

    /// `ip_hash` only: where `client` lands on the ring.
    fn ring_spot(&self, _client: IpAddr) -> Option<RingSpot> {
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
        Strategy::IpHash => Box::new(IpHash::new(backends)),
        Strategy::Random => Box::new(Random::new()),
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
    balancer: Box<dyn Balancer>,
}

impl Pool {
    pub fn new(
        name: impl Into<String>,
        strategy: Strategy,
        backends: Vec<Arc<Backend>>,
        health_check: Option<HealthCheck>,
    ) -> Self {
        let balancer = build(strategy, &backends);
        Pool {
            name: name.into(),
            backends,
            health_check,
            strategy,
            balancer,
        }
    }

    /// Picks a backend for a request and takes an in-flight slot on it. `tried` holds the
    /// indices already used by this request; a retry passes them so it goes elsewhere. `None`
    /// means no usable backend is left (503 on a first attempt, give up on a retry).
    pub fn select(&self, client: Option<IpAddr>, tried: &[usize]) -> Option<(usize, Lease)> {
        let skip = |i: usize| tried.contains(&i);
        let i = self.balancer.pick(&self.backends, client, &skip)?;
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
    pub fn pick(&self, client: Option<IpAddr>, skip: &dyn Fn(usize) -> bool) -> Option<usize> {
        self.balancer.pick(&self.backends, client, skip)
    }

    /// What the next pick for `client` would be, changing nothing (see [`Balancer::peek`]).
    pub fn peek(&self, client: Option<IpAddr>) -> Option<usize> {
        self.balancer.peek(&self.backends, client)
    }

    /// `ip_hash` pools: where `client` lands on the ring.
    pub(crate) fn ring_spot(&self, client: IpAddr) -> Option<RingSpot> {
        self.balancer.ring_spot(client)
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
