//! `least_latency`: power of two choices over a peak-sensitive moving average of response time
//! multiplied by the requests in flight (plus one), as linkerd's and Finagle's peak-EWMA
//! balancers do. A latency above the average replaces it at once (peaks count fully); lower
//! ones pull it down with a decay of `DECAY` (the weight of the old value is e^(-Δt/DECAY)). A
//! backend without a measurement (new, or back from an ejection) counts at the median of those
//! with one, so it is neither flooded nor starved.

use std::sync::Arc;

use rand::Rng;

use super::{is_candidate, Backend, Balancer};

#[derive(Debug, Default)]
pub(crate) struct LeastLatency;

impl LeastLatency {
    pub(crate) fn new() -> Self {
        LeastLatency
    }
}

fn cost(b: &Backend, median_ns: u64) -> u128 {
    let latency = match b.latency_ns() {
        0 => median_ns.max(1),
        ns => ns,
    };
    u128::from(latency) * u128::from(b.active() + 1)
}

fn median_latency(backends: &[Arc<Backend>]) -> u64 {
    let mut known: Vec<u64> = backends
        .iter()
        .map(|b| b.latency_ns())
        .filter(|&ns| ns > 0)
        .collect();
    if known.is_empty() {
        return 1;
    }
    let mid = known.len() / 2;
    *known.select_nth_unstable(mid).1
}

impl Balancer for LeastLatency {
    /// One draw of the two random choices (the real pick draws again).
    fn peek(&self, backends: &[Arc<Backend>], key: Option<u64>) -> Option<usize> {
        self.pick(backends, key, &|_| false)
    }

    fn pick(
        &self,
        backends: &[Arc<Backend>],
        _key: Option<u64>,
        skip: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let n = backends.len();
        if n == 0 {
            return None;
        }
        let mut rng = rand::thread_rng();
        // Two distinct random candidates; when they are not usable, fall back to a scan from a
        // random start, so a mostly-down pool still finds its usable backends.
        let a = rng.gen_range(0..n);
        let b = if n > 1 {
            (a + rng.gen_range(1..n)) % n
        } else {
            a
        };
        let ok = |i: usize| is_candidate(backends, i, skip);
        let (a, b) = match (ok(a), ok(b)) {
            (true, true) => (a, b),
            (true, false) => return Some(a),
            (false, true) => return Some(b),
            (false, false) => {
                let start = rng.gen_range(0..n);
                let mut found = (0..n).map(|s| (start + s) % n).filter(|&i| ok(i));
                let first = found.next()?;
                match found.next() {
                    Some(second) => (first, second),
                    None => return Some(first),
                }
            }
        };
        let needs_median = backends[a].latency_ns() == 0 || backends[b].latency_ns() == 0;
        let median = if needs_median {
            median_latency(backends)
        } else {
            0
        };
        if cost(&backends[a], median) <= cost(&backends[b], median) {
            Some(a)
        } else {
            Some(b)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tests::{backends, no_skip};
    use super::*;

    #[test]
    fn a_slow_backend_gets_few_requests() {
        let b = backends(&[1, 1, 1]);
        b[0].observe_latency(Duration::from_millis(100));
        b[1].observe_latency(Duration::from_millis(10));
        b[2].observe_latency(Duration::from_millis(10));
        let l = LeastLatency::new();
        let mut slow = 0;
        for _ in 0..3000 {
            if l.pick(&b, None, &no_skip) == Some(0) {
                slow += 1;
            }
        }
        // With two random choices, the slowest of three is picked only when both choices are
        // it, which P2C never draws: it should get (almost) nothing.
        assert!(slow < 300, "slow backend got {slow} of 3000");
    }

    #[test]
    fn unmeasured_backends_count_at_the_median() {
        let b = backends(&[1, 1, 1]);
        b[0].observe_latency(Duration::from_millis(10));
        b[1].observe_latency(Duration::from_millis(30));
        assert_eq!(median_latency(&b), 30_000_000);
        assert_eq!(cost(&b[2], median_latency(&b)), 30_000_000);
    }
}
