//! Weighted random: each candidate with probability weight / (sum of candidates' weights).
//!
//! Stateless, so it needs no coordination between worker threads at all.

use std::sync::Arc;

use rand::Rng;

use super::{is_candidate, Backend, Balancer};

#[derive(Debug, Default)]
pub(crate) struct Random;

impl Random {
    pub(crate) fn new() -> Self {
        Random
    }
}

impl Balancer for Random {
    fn pick(
        &self,
        backends: &[Arc<Backend>],
        _key: Option<u64>,
        skip: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        pick_with(&mut rand::thread_rng(), backends, skip)
    }

    fn peek(&self, _backends: &[Arc<Backend>], _key: Option<u64>) -> Option<usize> {
        None
    }
}

/// Split out so tests can drive it with a seeded generator and assert tight bounds without
/// being flaky.
fn pick_with<R: Rng + ?Sized>(
    rng: &mut R,
    backends: &[Arc<Backend>],
    skip: &dyn Fn(usize) -> bool,
) -> Option<usize> {
    // Two passes instead of collecting candidates: no allocation per pick.
    let total: u64 = (0..backends.len())
        .filter(|&i| is_candidate(backends, i, skip))
        .map(|i| u64::from(backends[i].weight()))
        .sum();
    if total == 0 {
        return None;
    }
    let mut point = rng.gen_range(0..total);
    let mut last = None;
    for i in 0..backends.len() {
        if !is_candidate(backends, i, skip) {
            continue;
        }
        let weight = u64::from(backends[i].weight());
        if point < weight {
            return Some(i);
        }
        point -= weight;
        last = Some(i);
    }
    // Reached only when a backend went down between the two passes; any survivor will do.
    last
}

#[cfg(test)]
mod tests {
    use super::super::tests::{backends, counts};
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn weighted_1_2_7_within_5_percent() {
        let b = backends(&[1, 2, 7]);
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let mut c = [0usize; 3];
        for _ in 0..20_000 {
            c[pick_with(&mut rng, &b, &|_| false).unwrap()] += 1;
        }
        for (got, want) in c.iter().zip([2_000usize, 4_000, 14_000]) {
            assert!(got.abs_diff(want) * 20 <= want, "{c:?}");
        }
    }

    #[test]
    fn thread_rng_roughly_weighted() {
        // The real entry point, with bounds wide enough (over 8 sigma) never to flake.
        let b = backends(&[1, 2, 7]);
        let c = counts(&Random, &b, 20_000);
        assert!(c[0].abs_diff(2_000) < 400, "{c:?}");
        assert!(c[1].abs_diff(4_000) < 500, "{c:?}");
        assert!(c[2].abs_diff(14_000) < 600, "{c:?}");
    }

    #[test]
    fn down_backend_never_picked_and_weights_renormalise() {
        let b = backends(&[1, 2, 7]);
        b[2].set_enabled(false);
        let mut rng = StdRng::seed_from_u64(7);
        let mut c = [0usize; 3];
        for _ in 0..9_000 {
            c[pick_with(&mut rng, &b, &|_| false).unwrap()] += 1;
        }
        assert_eq!(c[2], 0);
        assert!(c[0].abs_diff(3_000) * 20 <= 3_000, "{c:?}");
        assert!(c[1].abs_diff(6_000) * 20 <= 6_000, "{c:?}");
    }
}
