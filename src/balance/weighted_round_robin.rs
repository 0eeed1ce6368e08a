//! Smooth weighted round robin (the nginx algorithm).
//!
//! Each pick raises every candidate's running score by its weight, takes the highest, and lowers
//! the winner by the sum of the candidates' weights. Over one cycle each backend is picked exactly
//! `weight` times, and the picks of a heavy backend are spread through the cycle instead of coming
//! in a burst (weights 5,1,1 give a a b a c a a, not a a a a a b c), so a heavy backend never
//! receives a run of back-to-back requests that a light one never sees.

use std::sync::{Arc, Mutex};

use super::{is_candidate, Backend, Balancer};

#[derive(Debug, Default)]
pub(crate) struct WeightedRoundRobin {
    // A pick reads and writes every score, so the scores change together under one lock; it is
    // per pool and held for one O(n) pass without allocation.
    scores: Mutex<Vec<i64>>,
}

impl WeightedRoundRobin {
    pub(crate) fn new(backends: &[Arc<Backend>]) -> Self {
        WeightedRoundRobin {
            scores: Mutex::new(vec![0; backends.len()]),
        }
    }
}

impl Balancer for WeightedRoundRobin {
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
        // A panic elsewhere while holding the lock leaves plain integers behind, still valid.
        let mut scores = self.scores.lock().unwrap_or_else(|e| e.into_inner());
        if scores.len() != n {
            // Handed a list other than the one it was built for: start over rather than index
            // out of bounds.
            scores.clear();
            scores.resize(n, 0);
        }
        choose(&mut scores, backends, skip)
    }

    fn peek(&self, backends: &[Arc<Backend>], _key: Option<u64>) -> Option<usize> {
        // The same step on a copy of the scores: what the next pick will do, undone.
        let mut scores = self
            .scores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if scores.len() != backends.len() {
            scores = vec![0; backends.len()];
        }
        choose(&mut scores, backends, &|_| false)
    }
}

/// One step of smooth weighted round robin over `scores` (one per backend).
fn choose(
    scores: &mut [i64],
    backends: &[Arc<Backend>],
    skip: &dyn Fn(usize) -> bool,
) -> Option<usize> {
    let n = backends.len().min(scores.len());
    let mut total: i64 = 0;
    let mut best: Option<usize> = None;
    for i in 0..n {
        // Backends that cannot take this request keep their score: they neither gain credit
        // while down nor distort the survivors' shares.
        if !is_candidate(backends, i, skip) {
            continue;
        }
        let weight = i64::from(backends[i].weight());
        scores[i] += weight;
        total += weight;
        best = match best {
            Some(b) if scores[b] >= scores[i] => Some(b),
            _ => Some(i),
        };
    }
    if let Some(b) = best {
        scores[b] -= total;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::super::tests::{backends, counts, no_skip};
    use super::*;

    fn sequence(w: &WeightedRoundRobin, b: &[Arc<Backend>], n: usize) -> String {
        (0..n)
            .map(|_| (b'a' + w.pick(b, None, &no_skip).unwrap() as u8) as char)
            .collect()
    }

    #[test]
    fn smooth_sequence_5_1_1() {
        let b = backends(&[5, 1, 1]);
        let w = WeightedRoundRobin::new(&b);
        assert_eq!(sequence(&w, &b, 7), "aabacaa");
        // The cycle repeats exactly: scores return to zero after each one.
        assert_eq!(sequence(&w, &b, 14), "aabacaaaabacaa");
    }

    #[test]
    fn exact_counts_3_2_1() {
        let b = backends(&[3, 2, 1]);
        let w = WeightedRoundRobin::new(&b);
        assert_eq!(counts(&w, &b, 600), vec![300, 200, 100]);
    }

    #[test]
    fn heavy_backend_interleaved() {
        // A non-smooth WRR would give a ten times in a row, then b, then c.
        let b = backends(&[10, 1, 1]);
        let w = WeightedRoundRobin::new(&b);
        assert_eq!(sequence(&w, &b, 12), "aaaabaaacaaa");
    }

    #[test]
    fn ratio_holds_with_one_down() {
        let b = backends(&[3, 2, 1]);
        let w = WeightedRoundRobin::new(&b);
        // Warm the scores up mid-cycle, then take one out.
        for _ in 0..4 {
            w.pick(&b, None, &no_skip);
        }
        b[1].set_healthy(false);
        let c = counts(&w, &b, 400);
        assert_eq!(c[1], 0);
        // 3:1 over 400 picks is 300:100; a cycle started mid-way can be off by the weights.
        assert!(c[0].abs_diff(300) <= 3 && c[2].abs_diff(100) <= 3, "{c:?}");

        // From a fresh balancer the ratio is exact.
        let w = WeightedRoundRobin::new(&b);
        assert_eq!(counts(&w, &b, 400), vec![300, 0, 100]);
        let seq = sequence(&w, &b, 4);
        assert_eq!(seq.matches('a').count(), 3);

        // And back up: the full ratio again.
        b[1].set_healthy(true);
        let c = counts(&w, &b, 600);
        assert!(
            c[0].abs_diff(300) <= 6 && c[1].abs_diff(200) <= 6 && c[2].abs_diff(100) <= 6,
            "{c:?}"
        );
    }

    #[test]
    fn stale_list_length_does_not_panic() {
        let b = backends(&[1, 1, 1]);
        let w = WeightedRoundRobin::new(&b[..1]);
        assert_eq!(counts(&w, &b, 30), vec![10, 10, 10]);
    }
}
