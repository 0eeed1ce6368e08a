//! Per-request state carried through Pingora's phases.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::balance::Lease;
use crate::config::HeaderRules;
use crate::lifecycle::{InFlight, InFlightCounter};
use crate::router::Hit;
use crate::snapshot::{Snapshot, Target};

pub(crate) struct Ctx {
    pub(crate) started: Instant,
    /// Counts this request as in flight until the context is dropped (graceful exit).
    _in_flight: InFlight,
    /// The one snapshot this request reads, so a reload never splits a request across configs.
    pub(crate) snapshot: Option<Arc<Snapshot>>,
    pub(crate) target: Option<Arc<Target>>,
    pub(crate) headers: Option<Arc<HeaderRules>>,
    /// The client: the TCP peer, or whom `X-Forwarded-For` names behind a trusted proxy.
    pub(crate) client_ip: Option<IpAddr>,
    /// The TCP peer (what this hop appends to `X-Forwarded-For`).
    pub(crate) peer_ip: Option<IpAddr>,
    /// The domain and route the request matched.
    pub(crate) hit: Option<Hit>,
    /// A WebSocket (HTTP/1.1 `Upgrade`) request.
    pub(crate) upgrade: bool,
    /// The backend shown to `on_request` hooks, which the first attempt then uses if it can.
    pub(crate) first_pick: Option<usize>,
    /// Limits state (see `proxy/request.rs`).
    pub(crate) limits: super::request::LimitsCtx,
    /// Hook state (see `proxy/hook_calls.rs`).
    pub(crate) hook: super::hook_calls::HookCtx,
    /// Indexes (into the target's pool) of backends already tried on this request.
    pub(crate) tried: Vec<usize>,
    /// Holds the in-flight count of the backend in use; replaced on retry, released on drop.
    pub(crate) lease: Option<Lease>,
    pub(crate) backend_index: Option<usize>,
    pub(crate) attempts: u32,
    /// An upstream response header arrived: from here on a failure cannot be retried.
    pub(crate) upstream_responded: bool,
    /// Request id and upstream timing for the access log and metrics.
    pub(crate) observe: super::logging::Observe,
    /// Response-cache state (see `proxy/cache.rs`).
    pub(crate) cache: super::cache::CacheCtx,
}

impl Ctx {
    pub(crate) fn new(in_flight: &InFlightCounter) -> Ctx {
        Ctx {
            started: Instant::now(),
            _in_flight: in_flight.start(),
            snapshot: None,
            target: None,
            headers: None,
            client_ip: None,
            peer_ip: None,
            hit: None,
            upgrade: false,
            first_pick: None,
            limits: Default::default(),
            hook: Default::default(),
            tried: Vec::new(),
            lease: None,
            backend_index: None,
            attempts: 0,
            upstream_responded: false,
            observe: Default::default(),
            cache: Default::default(),
        }
    }

    /// Whether a retry could go to a backend this request has not tried yet.
    pub(crate) fn can_retry(&self) -> bool {
        let Some(target) = &self.target else {
            return false;
        };
        if self.attempts > target.options.max_retries {
            return false;
        }
        target
            .pool
            .backends
            .iter()
            .enumerate()
            .any(|(i, b)| b.is_usable() && !self.tried.contains(&i))
    }
}
