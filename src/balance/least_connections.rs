//! Least connections: the backend with the fewest in-flight requests per unit of weight.
//!
//! The in-flight count comes from `Lease`, so it stays right across retries, errors and
//! abandoned requests without any bookkeeping here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{is_candidate, Backend, Balancer};

#[derive(Debug, Default)]
pub(crate) struct LeastConnections {
    next: AtomicUsize,
}

impl LeastConnections {
    pub(crate) fn new() -> Self {
        Self::default()
    }
}

impl Balancer for LeastConnections {
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
        // Scanning from a rotating start and keeping the first strict minimum breaks ties in
        // turn; a fixed start would send every tie (including the idle pool, the common case
        // under light load) to the first backend.
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let (i, step) = least_loaded(backends, start, skip)?;
        // Continue the rotation after the winner, so that ties among the backends behind a busy
        // one are shared out rather than all going to the first of them.
        if step > 0 {
            self.next.fetch_add(step, Ordering::Relaxed);
        }
        Some(i)
    }

    fn peek(&self, backends: &[Arc<Backend>], _key: Option<u64>) -> Option<usize> {
        let n = backends.len();
        if n == 0 {
            return None;
        }
        let start = self.next.load(Ordering::Relaxed) % n;
        least_loaded(backends, start, &|_| false).map(|(i, _)| i)
    }
}

/// The candidate with the fewest in-flight requests per unit of weight, the first such from
/// `start` on, with how many places it is past `start`.
fn least_loaded(
    backends: &[Arc<Backend>],
    start: usize,
    skip: &dyn Fn(usize) -> bool,
) -> Option<(usize, usize)> {
    let n = backends.len();
    // (index, steps from start, active, weight)
    let mut best: Option<(usize, usize, u128, u128)> = None;
    for step in 0..n {
        let i = (start + step) % n;
        if !is_candidate(backends, i, skip) {
            continue;
        }
        let active = u128::from(backends[i].active());
        let weight = u128::from(backends[i].weight());
        // active/weight < best_active/best_weight, kept in integers so that equal loads
        // compare equal (floats would turn some ties into arbitrary wins).
        let better = match best {
            None => true,
            Some((_, _, best_active, best_weight)) => active * best_weight < best_active * weight,
        };
        if better {
            best = Some((i, step, active, weight));
        }
    }
    best.map(|(i, step, _, _)| (i, step))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{backends, counts, no_skip};
    use super::*;
    use crate::balance::Lease;

    #[test]
    fn ties_rotate() {
        let b = backends(&[1, 1, 1]);
        let lc = LeastConnections::new();
        assert_eq!(counts(&lc, &b, 300), vec![100, 100, 100]);
    }

    #[test]
    fn busy_backend_avoided() {
        let b = backends(&[1, 1, 1]);
        let lc = LeastConnections::new();
        let _held: Vec<Lease> = (0..3).map(|_| b[1].lease()).collect();
        // Leases dropped straight away: the others stay at 0 and share evenly.
        assert_eq!(counts(&lc, &b, 300), vec![150, 0, 150]);
    }

    #[test]
    fn held_leases_fill_evenly() {
        let b = backends(&[1, 1, 1, 1]);
        let lc = LeastConnections::new();
        let _held: Vec<Lease> = (0..40)
            .map(|_| b[lc.pick(&b, None, &no_skip).unwrap()].lease())
            .collect();
        let active: Vec<u64> = b.iter().map(|x| x.active()).collect();
        assert_eq!(active, vec![10; 4]);
    }

    #[test]
    fn weighted_proportional() {
        let b = backends(&[1, 2, 3]);
        let lc = LeastConnections::new();
        let mut held = Vec::new();
        for _ in 0..60 {
            held.push(b[lc.pick(&b, None, &no_skip).unwrap()].lease());
        }
        let active: Vec<u64> = b.iter().map(|x| x.active()).collect();
        assert_eq!(active, vec![10, 20, 30]);
        // Free five slots on the weight-3 backend: it is now the least loaded per weight
        // (25/3 < 10/1 = 20/2) until it is refilled.
        let mut freed = 0;
        held.retain(|l| {
            let keep = freed == 5 || !Arc::ptr_eq(l.backend(), &b[2]);
            if !keep {
                freed += 1;
            }
            keep
        });
        for _ in 0..5 {
            let i = lc.pick(&b, None, &no_skip).unwrap();
            assert_eq!(i, 2);
            held.push(b[i].lease());
        }
        assert_eq!(b[2].active(), 30);
    }

    #[test]
    fn drop_decrements_active() {
        let b = backends(&[1, 1, 1]);
        let lc = LeastConnections::new();
        let lease = b[0].lease();
        assert_eq!(b[0].active(), 1);
        assert_ne!(lc.pick(&b, None, &no_skip), Some(0));
        drop(lease);
        assert_eq!(b[0].active(), 0);
        assert_eq!(counts(&lc, &b, 30), vec![10, 10, 10]);
    }

    #[test]
    fn down_backend_ignored_even_when_idle() {
        let b = backends(&[1, 1, 1]);
        let lc = LeastConnections::new();
        let _busy = (b[0].lease(), b[2].lease());
        b[1].set_healthy(false);
        let c = counts(&lc, &b, 100);
        assert_eq!(c, vec![50, 0, 50]);
    }
}
