//! Runtime state of one backend.
//!
//! A `Backend` outlives config snapshots: a reload that keeps a backend's target and weight keeps
//! the same `Arc<Backend>`, so health, drain state and counters carry over instead of resetting
//! to "healthy, idle" on every SIGHUP.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::BackendConfig;

use super::outlier::{self, Change, Outlier};
use super::Lease;
use crate::config::PassiveHealth;

// Every counter and flag here is read independently (no invariant spans two of them), so Relaxed
// ordering is enough; nothing synchronises other memory through these atomics.
const ORD: Ordering = Ordering::Relaxed;

/// The largest weight the config accepts.
pub(crate) const MAX_WEIGHT: u32 = 100;

#[derive(Debug)]
pub struct Backend {
    pub config: BackendConfig,
    /// Resolved by the caller, so balancing never waits on DNS.
    pub addr: SocketAddr,
    healthy: AtomicBool,
    enabled: AtomicBool,
    pub(super) active: AtomicU64,
    pub(super) requests: AtomicU64,
    failures: AtomicU64,
    check_successes: AtomicU32,
    check_failures: AtomicU32,
    /// `max_connections` of the current config; 0: unlimited. Not part of the identity a
    /// reload keeps, so a snapshot build refreshes it (see `set_max_connections`).
    max_connections: AtomicU32,
    /// Woken when a lease on a limited backend is given back (requests queued for a slot).
    pub(super) freed: tokio::sync::Notify,
    /// Passive health (see `outlier.rs`).
    pub(crate) outlier: Outlier,
    /// Peak-EWMA of response time, in ns; 0 until measured (see `least_latency.rs`).
    latency_ns: AtomicU64,
    /// When `latency_ns` was last updated (`outlier::now_ms`).
    latency_at_ms: AtomicU64,
}

/// How fast the latency average forgets: the weight of an old value is e^(-age/DECAY).
const DECAY: Duration = Duration::from_secs(10);

impl Backend {
    /// `healthy` is the starting state: the caller decides whether a backend that has never been
    /// probed takes traffic (Pingora assumes yes; a pool with a health check may prefer no).
    pub fn new(config: BackendConfig, addr: SocketAddr, healthy: bool) -> Self {
        Backend {
            addr,
            healthy: AtomicBool::new(healthy),
            enabled: AtomicBool::new(true),
            active: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            check_successes: AtomicU32::new(0),
            check_failures: AtomicU32::new(0),
            max_connections: AtomicU32::new(config.max_connections.unwrap_or(0)),
            freed: tokio::sync::Notify::new(),
            outlier: Outlier::default(),
            latency_ns: AtomicU64::new(0),
            latency_at_ms: AtomicU64::new(0),
            config,
        }
    }

    /// The concurrency cap in force (`None`: unlimited).
    pub fn max_connections(&self) -> Option<u32> {
        Some(self.max_connections.load(ORD)).filter(|&n| n > 0)
    }

    /// Applies a reloaded config's `max_connections` to a backend kept across the reload.
    pub fn set_max_connections(&self, limit: Option<u32>) {
        self.max_connections.store(limit.unwrap_or(0), ORD);
        // Requests queued under a lower limit may fit now.
        self.freed.notify_waiters();
    }

    /// Takes an in-flight slot only if that keeps the backend within `max_connections`
    /// (always, when unlimited). The check and the increment are one atomic step, so
    /// concurrent requests cannot overshoot the cap.
    pub fn try_lease(self: &Arc<Self>) -> Option<Lease> {
        let limit = self.max_connections.load(ORD);
        if limit == 0 {
            return Some(self.lease());
        }
        self.active
            .fetch_update(ORD, ORD, |n| (n < u64::from(limit)).then_some(n + 1))
            .ok()?;
        Some(Lease::adopt(Arc::clone(self)))
    }

    /// Waits until a lease on this backend is given back (or the limit changes).
    pub async fn slot_freed(&self) {
        self.freed.notified().await
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(ORD)
    }

    /// Returns whether the state changed, so the caller logs and counts transitions only.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        self.healthy.swap(healthy, ORD) != healthy
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(ORD)
    }

    /// Returns whether the state changed. A disabled backend gets no new requests; leases
    /// already taken on it run to completion (drain).
    pub fn set_enabled(&self, enabled: bool) -> bool {
        self.enabled.swap(enabled, ORD) != enabled
    }

    /// Healthy by its checks, enabled, not ejected; on probation after an ejection, only
    /// while no request is in flight on it (one trial at a time).
    pub fn is_usable(&self) -> bool {
        self.is_healthy()
            && self.is_enabled()
            && !self.outlier.ejected()
            && (!self.outlier.on_probation() || self.active() == 0)
    }

    /// Feeds one request's outcome to passive health; `may_eject` is the pool's
    /// `max_ejected_percent` verdict. Returns what changed, for the caller's log line.
    pub(crate) fn passive_outcome(
        &self,
        ok: bool,
        policy: &PassiveHealth,
        may_eject: bool,
    ) -> Change {
        if ok {
            return self.outlier.success();
        }
        let change = self.outlier.failure(policy, may_eject);
        if let Change::Ejected(_) = change {
            // Back from an ejection it starts at the pool's median again, not at a stale value.
            self.latency_ns.store(0, ORD);
        }
        change
    }

    /// Feeds one response time to the latency average (peak-EWMA).
    pub(crate) fn observe_latency(&self, took: Duration) {
        let sample = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        let now = outlier::now_ms();
        let then = self.latency_at_ms.swap(now, ORD);
        let old = self.latency_ns.load(ORD);
        let next = if old == 0 || sample > old {
            sample
        } else {
            let age = Duration::from_millis(now.saturating_sub(then));
            let w = (-age.as_secs_f64() / DECAY.as_secs_f64()).exp();
            (old as f64 * w + sample as f64 * (1.0 - w)) as u64
        };
        self.latency_ns.store(next.max(1), ORD);
    }

    /// The latency average in ns; 0 when not measured.
    pub(crate) fn latency_ns(&self) -> u64 {
        self.latency_ns.load(ORD)
    }

    /// Requests in flight on this backend right now.
    pub fn active(&self) -> u64 {
        self.active.load(ORD)
    }

    /// Times this backend was picked (every lease, retries included).
    pub fn requests(&self) -> u64 {
        self.requests.load(ORD)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(ORD)
    }

    pub fn record_failure(&self) {
        self.failures.fetch_add(1, ORD);
    }

    /// The configured weight within 1..=`MAX_WEIGHT`. Validation already enforces that range;
    /// clamping again here means no strategy has to guard against a zero weight (division, an
    /// empty random range) or a huge one (overflow, a giant hash ring) in a hand-built config.
    pub fn weight(&self) -> u32 {
        self.config.weight.clamp(1, MAX_WEIGHT)
    }

    /// Takes an in-flight slot; it is given back when the `Lease` drops.
    pub fn lease(self: &Arc<Self>) -> Lease {
        Lease::new(Arc::clone(self))
    }

    /// Whether a reloaded config entry denotes this same backend, i.e. whether a reload may keep
    /// this `Arc` (and its health and counters) for it.
    pub fn same_target(&self, other: &BackendConfig) -> bool {
        self.config.scheme == other.scheme
            && self.config.host.eq_ignore_ascii_case(&other.host)
            && self.config.port == other.port
            && self.config.weight == other.weight
    }

    /// Consecutive successful active checks since the last failed one.
    pub fn check_successes(&self) -> u32 {
        self.check_successes.load(ORD)
    }

    /// Consecutive failed active checks since the last successful one.
    pub fn check_failures(&self) -> u32 {
        self.check_failures.load(ORD)
    }

    /// Feeds one active health-check result and flips health once `success_threshold`
    /// consecutive successes (or `fail_threshold` consecutive failures) are seen, so one lost
    /// probe does not eject a backend and one lucky probe does not readmit it. Thresholds of 0
    /// act as 1. Returns whether health changed.
    ///
    /// Meant for the single process-wide health checker: two concurrent callers for the same
    /// backend could interleave the reset and the increment.
    pub fn observe_check(&self, ok: bool, success_threshold: u32, fail_threshold: u32) -> bool {
        let (streak, other, threshold) = if ok {
            (
                &self.check_successes,
                &self.check_failures,
                success_threshold,
            )
        } else {
            (&self.check_failures, &self.check_successes, fail_threshold)
        };
        other.store(0, ORD);
        let prev = streak
            .fetch_update(ORD, ORD, |n| Some(n.saturating_add(1)))
            .unwrap_or(u32::MAX);
        if prev.saturating_add(1) >= threshold.max(1) {
            self.set_healthy(ok)
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::backends;

    #[test]
    fn flags_report_changes() {
        let b = backends(&[1]).remove(0);
        assert!(b.is_usable());
        assert!(!b.set_healthy(true));
        assert!(b.set_healthy(false));
        assert!(!b.is_usable());
        assert!(b.set_healthy(true));
        assert!(b.set_enabled(false));
        assert!(!b.set_enabled(false));
        assert!(b.is_healthy() && !b.is_enabled() && !b.is_usable());
    }

    #[test]
    fn check_thresholds() {
        let b = backends(&[1]).remove(0);
        // fail_threshold 3: two failures, a success, then two failures must not eject.
        assert!(!b.observe_check(false, 2, 3));
        assert!(!b.observe_check(false, 2, 3));
        assert!(!b.observe_check(true, 2, 3));
        assert!(!b.observe_check(false, 2, 3));
        assert!(!b.observe_check(false, 2, 3));
        assert!(b.is_healthy());
        assert!(b.observe_check(false, 2, 3));
        assert!(!b.is_healthy());
        assert_eq!(b.check_failures(), 3);
        assert!(!b.observe_check(false, 2, 3));
        // success_threshold 2.
        assert!(!b.observe_check(true, 2, 3));
        assert_eq!(b.check_failures(), 0);
        assert!(b.observe_check(true, 2, 3));
        assert!(b.is_healthy());
        assert_eq!(b.check_successes(), 2);
        // Threshold 0 behaves as 1.
        assert!(b.observe_check(false, 0, 0));
        assert!(b.observe_check(true, 0, 0));
    }

    #[test]
    fn weight_clamped() {
        let mut cfg = backends(&[1]).remove(0).config.clone();
        cfg.weight = 0;
        let b = super::Backend::new(cfg.clone(), "127.0.0.1:1".parse().unwrap(), true);
        assert_eq!(b.weight(), 1);
        cfg.weight = u32::MAX;
        let b = super::Backend::new(cfg, "127.0.0.1:1".parse().unwrap(), true);
        assert_eq!(b.weight(), super::MAX_WEIGHT);
    }

    #[test]
    fn same_target_ignores_position_and_host_case() {
        let b = backends(&[2]).remove(0);
        let mut cfg = b.config.clone();
        cfg.pos.line += 10;
        cfg.path = "elsewhere".into();
        cfg.host = cfg.host.to_uppercase();
        assert!(b.same_target(&cfg));
        cfg.weight = 3;
        assert!(!b.same_target(&cfg));
        cfg.weight = 2;
        cfg.port += 1;
        assert!(!b.same_target(&cfg));
    }
}
