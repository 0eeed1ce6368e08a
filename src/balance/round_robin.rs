//! Plain round robin: every usable backend in turn, weights ignored.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{is_candidate, Backend, Balancer};

#[derive(Debug, Default)]
pub(crate) struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    pub(crate) fn new() -> Self {
        Self::default()
    }
}

impl Balancer for RoundRobin {
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
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let (i, step) = scan(backends, start, skip)?;
        // Move the cursor past the backends we stepped over. Otherwise the turn of every down
        // backend would land on its right-hand neighbour, which would then take twice (or
        // more) its share.
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
        scan(backends, start, &|_| false).map(|(i, _)| i)
    }
}

/// The first candidate from `start` on, with how many places it is past `start`.
fn scan(
    backends: &[Arc<Backend>],
    start: usize,
    skip: &dyn Fn(usize) -> bool,
) -> Option<(usize, usize)> {
    let n = backends.len();
    (0..n)
        .map(|step| ((start + step) % n, step))
        .find(|&(i, _)| is_candidate(backends, i, skip))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{backends, counts, no_skip};
    use super::*;

    #[test]
    fn exact_even_distribution() {
        let b = backends(&[1, 5, 2, 1]);
        let rr = RoundRobin::new();
        assert_eq!(counts(&rr, &b, 400), vec![100; 4]);
    }

    #[test]
    fn order_is_cyclic() {
        let b = backends(&[1, 1, 1]);
        let rr = RoundRobin::new();
        let seq: Vec<_> = (0..6)
            .map(|_| rr.pick(&b, None, &no_skip).unwrap())
            .collect();
        assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn even_with_one_down() {
        let b = backends(&[1, 1, 1, 1]);
        b[1].set_healthy(false);
        let rr = RoundRobin::new();
        assert_eq!(counts(&rr, &b, 300), vec![100, 0, 100, 100]);
        // Two adjacent down: the survivors still alternate.
        b[2].set_enabled(false);
        assert_eq!(counts(&rr, &b, 300), vec![150, 0, 0, 150]);
    }

    #[test]
    fn recovers_when_backend_returns() {
        let b = backends(&[1, 1, 1]);
        let rr = RoundRobin::new();
        b[0].set_healthy(false);
        assert_eq!(counts(&rr, &b, 100), vec![0, 50, 50]);
        b[0].set_healthy(true);
        assert_eq!(counts(&rr, &b, 300), vec![100, 100, 100]);
    }
}
