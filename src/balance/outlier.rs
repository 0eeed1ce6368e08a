//! Passive health (outlier detection): consecutive failures seen in real traffic eject a
//! backend for a while, as Envoy's outlier detection does. The first ejection lasts
//! `ejection_time`, each consecutive one twice as long, up to `max_ejection_time`. When an
//! ejection ends the backend is on probation: it takes one request at a time, and the first
//! outcome decides (a success readmits it and forgets its past, a failure ejects it again).
//! Active health checks and ejection combine: a backend serves only if neither says down.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::config::PassiveHealth;

const ORD: Ordering = Ordering::Relaxed;

/// Milliseconds since a process-wide start, so an ejection deadline fits in one atomic.
pub(crate) fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One backend's outlier state.
#[derive(Debug, Default)]
pub(crate) struct Outlier {
    /// Failures in a row since the last success.
    consecutive: AtomicU32,
    /// Ejections in a row since the last readmission on probation.
    ejections: AtomicU32,
    /// While ejected: when the ejection ends (`now_ms`); 0 when not ejected.
    until_ms: AtomicU64,
    /// After an ejection ended, until the first outcome.
    probation: AtomicBool,
    /// Ejections over the backend's lifetime (for metrics).
    total: AtomicU64,
}

/// What an outcome changed, for the one log line per change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    Ejected(Duration),
    Readmitted,
}

impl Outlier {
    /// Whether the backend is out now. A passed deadline starts probation. The clock is read
    /// only while an ejection is on: this runs for every candidate of every pick.
    pub(crate) fn ejected(&self) -> bool {
        let until = self.until_ms.load(ORD);
        if until == 0 {
            return false;
        }
        if now_ms() < until {
            return true;
        }
        if self.until_ms.compare_exchange(until, 0, ORD, ORD).is_ok() {
            self.probation.store(true, ORD);
        }
        false
    }

    /// On probation a backend takes one request at a time.
    pub(crate) fn on_probation(&self) -> bool {
        self.probation.load(ORD)
    }

    /// When the current ejection ends, if there is one.
    pub(crate) fn ejected_until_ms(&self) -> Option<u64> {
        Some(self.until_ms.load(ORD)).filter(|&u| u > now_ms())
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive.load(ORD)
    }

    pub(crate) fn total_ejections(&self) -> u64 {
        self.total.load(ORD)
    }

    pub(crate) fn success(&self) -> Change {
        self.consecutive.store(0, ORD);
        if self.probation.swap(false, ORD) {
            self.ejections.store(0, ORD);
            return Change::Readmitted;
        }
        Change::None
    }

    /// Counts a failure; ejects when the threshold is reached (or at once on probation) and
    /// `may_eject` (the pool's `max_ejected_percent`) allows it.
    pub(crate) fn failure(&self, policy: &PassiveHealth, may_eject: bool) -> Change {
        let n = self.consecutive.fetch_add(1, ORD).saturating_add(1);
        let probation = self.probation.load(ORD);
        if !(probation || n >= policy.consecutive_failures) || !may_eject {
            return Change::None;
        }
        if self.until_ms.load(ORD) != 0 {
            return Change::None; // ejected already (a request in flight when it happened)
        }
        let k = self.ejections.fetch_add(1, ORD).min(16);
        let time = policy
            .ejection_time
            .saturating_mul(1 << k)
            .min(policy.max_ejection_time);
        let ms = u64::try_from(time.as_millis()).unwrap_or(u64::MAX);
        self.until_ms.store(now_ms().saturating_add(ms).max(1), ORD);
        self.probation.store(false, ORD);
        self.consecutive.store(0, ORD);
        self.total.fetch_add(1, ORD);
        Change::Ejected(time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PassiveHealth {
        PassiveHealth {
            consecutive_failures: 3,
            ejection_time: Duration::from_millis(40),
            max_ejection_time: Duration::from_millis(100),
            max_ejected_percent: 50,
        }
    }

    #[test]
    fn ejects_after_the_threshold_then_probation_decides() {
        let o = Outlier::default();
        let p = policy();
        assert_eq!(o.failure(&p, true), Change::None);
        assert_eq!(o.failure(&p, true), Change::None);
        assert_eq!(o.success(), Change::None);
        assert_eq!(o.failure(&p, true), Change::None);
        assert_eq!(o.failure(&p, true), Change::None);
        assert_eq!(
            o.failure(&p, true),
            Change::Ejected(Duration::from_millis(40))
        );
        assert!(o.ejected());
        std::thread::sleep(Duration::from_millis(50));
        assert!(!o.ejected());
        assert!(o.on_probation());
        // One failure on probation ejects again, for twice as long.
        assert_eq!(
            o.failure(&p, true),
            Change::Ejected(Duration::from_millis(80))
        );
        assert!(o.ejected());
        // Capped at max_ejection_time.
        o.until_ms.store(1, ORD);
        assert!(!o.ejected());
        assert_eq!(
            o.failure(&p, true),
            Change::Ejected(Duration::from_millis(100))
        );
        o.until_ms.store(1, ORD);
        assert!(!o.ejected());
        assert_eq!(o.success(), Change::Readmitted);
        assert!(!o.on_probation());
        assert_eq!(o.total_ejections(), 3);
    }

    #[test]
    fn the_pool_may_refuse_an_ejection() {
        let o = Outlier::default();
        let p = policy();
        for _ in 0..10 {
            assert_eq!(o.failure(&p, false), Change::None);
        }
        assert!(!o.ejected());
    }
}
