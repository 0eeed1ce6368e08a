//! `retry_budget`: retries onto another backend may add at most `percent` of the pool's
//! requests per second, or `min_per_second`, whichever is more (Envoy's retry budgets, by
//! rate). Counted over a one-second window that slides in whole seconds: the current second
//! and the one before it, weighted by how much of the previous one still overlaps.

use std::sync::atomic::{AtomicU64, Ordering};

use super::outlier::now_ms;
use crate::config::RetryBudget;

const ORD: Ordering = Ordering::Relaxed;

/// One pool's request and retry counts.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    /// The second the counts below belong to.
    second: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    prev_requests: AtomicU64,
    prev_retries: AtomicU64,
}

impl Budget {
    /// Moves the window to the current second; races between two requests crossing the same
    /// second boundary lose a few counts at worst, which a budget can afford.
    fn roll(&self, now: u64) -> u64 {
        let second = now / 1000;
        let seen = self.second.load(ORD);
        if seen != second && self.second.compare_exchange(seen, second, ORD, ORD).is_ok() {
            let (req, ret) = if second == seen + 1 {
                (self.requests.load(ORD), self.retries.load(ORD))
            } else {
                (0, 0)
            };
            self.prev_requests.store(req, ORD);
            self.prev_retries.store(ret, ORD);
            self.requests.store(0, ORD);
            self.retries.store(0, ORD);
        }
        now % 1000
    }

    /// Counts one request (first attempts only).
    pub(crate) fn request(&self) {
        self.roll(now_ms());
        self.requests.fetch_add(1, ORD);
    }

    /// Whether one more retry fits the budget; counts it when it does.
    pub(crate) fn try_retry(&self, budget: &RetryBudget) -> bool {
        let into = self.roll(now_ms());
        // The part of the previous second still inside a one-second window ending now.
        let overlap = |prev: u64| prev * (1000 - into) / 1000;
        let requests = self.requests.load(ORD) + overlap(self.prev_requests.load(ORD));
        let retries = self.retries.load(ORD) + overlap(self.prev_retries.load(ORD));
        let allowed =
            (requests * u64::from(budget.percent) / 100).max(u64::from(budget.min_per_second));
        if retries >= allowed {
            return false;
        }
        self.retries.fetch_add(1, ORD);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stay_within_the_budget() {
        let b = Budget::default();
        let budget = RetryBudget {
            percent: 20,
            min_per_second: 2,
        };
        for _ in 0..100 {
            b.request();
        }
        let granted = (0..100).filter(|_| b.try_retry(&budget)).count();
        // 20 % of 100 requests (the window may have rolled once: then fewer).
        assert!((2..=20).contains(&granted), "{granted}");
        let quiet = Budget::default();
        let granted = (0..10).filter(|_| quiet.try_retry(&budget)).count();
        assert_eq!(granted, 2, "min_per_second when there is no traffic");
    }
}
