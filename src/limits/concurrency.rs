//! `max_connections` on a backend: at most that many requests from this process on it at
//! once. A request whose pick is full tries the pool's other backends; when every candidate is
//! full it queues for a slot, up to the route's `connect_timeout`, and is then answered 503
//! (`X-Strait-Error: backend-busy`).

use std::time::{Duration, Instant};

use pingora::ErrorType;

use crate::balance::{Lease, Pool};

/// Raised by `upstream_peer` when the queue wait for a slot ran out.
pub(crate) const BACKEND_BUSY: ErrorType = ErrorType::Custom("backend-busy");

/// How often a queued request looks at every full backend again (it is also woken as soon as
/// the first one it waits on frees a slot).
const RECHECK: Duration = Duration::from_millis(20);

#[derive(Debug)]
pub(crate) enum Pick {
    Got(usize, Lease),
    /// No usable backend that this request has not tried.
    NoBackend,
    /// Usable backends exist, but all stayed at their `max_connections` for `wait`.
    Busy,
}

/// Picks a backend with the pool's strategy and takes a slot on it. `preferred` is tried first
/// (the backend the `on_request` hooks were shown); `tried` are skipped.
pub(crate) async fn select(
    pool: &Pool,
    key: Option<u64>,
    tried: &[usize],
    mut preferred: Option<usize>,
    wait: Duration,
) -> Pick {
    let deadline = Instant::now() + wait;
    let mut full: Vec<usize> = Vec::new();
    loop {
        if let Some(i) = preferred.take() {
            if let Some(b) = pool.backends.get(i).filter(|b| b.is_usable()) {
                if !tried.contains(&i) {
                    match b.try_lease() {
                        Some(lease) => return Pick::Got(i, lease),
                        None => full.push(i),
                    }
                }
            }
        }
        // Each round skips one more full backend, so this ends within the pool's size.
        while let Some(i) = pool.pick(key, &|i| tried.contains(&i) || full.contains(&i)) {
            match pool.backends.get(i).and_then(|b| b.try_lease()) {
                Some(lease) => return Pick::Got(i, lease),
                None => full.push(i),
            }
        }
        let Some(&first) = full.first() else {
            return Pick::NoBackend;
        };
        let now = Instant::now();
        if now >= deadline {
            return Pick::Busy;
        }
        if let Some(b) = pool.backends.get(first) {
            let _ = tokio::time::timeout(RECHECK.min(deadline - now), b.slot_freed()).await;
        }
        full.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::balance::Backend;
    use crate::config::{BackendConfig, Pos, Scheme, Strategy};

    fn pool(limits: &[Option<u32>]) -> Pool {
        let backends = limits
            .iter()
            .enumerate()
            .map(|(n, &max_connections)| {
                let config = BackendConfig {
                    url: format!("http://b{n}.test:80"),
                    scheme: Scheme::Http,
                    host: format!("b{n}.test"),
                    port: 80,
                    weight: 1,
                    max_connections,
                    pos: Pos::default(),
                    path: String::new(),
                };
                Arc::new(Backend::new(config, "127.0.0.1:80".parse().unwrap(), true))
            })
            .collect();
        Pool::new("t", Strategy::RoundRobin, backends, None)
    }

    fn got(p: Pick) -> (usize, Lease) {
        match p {
            Pick::Got(i, l) => (i, l),
            other => panic!("expected a backend, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn full_backends_are_skipped_then_queued_for() {
        let p = pool(&[Some(1), Some(1)]);
        let wait = Duration::from_millis(300);
        let (a, lease_a) = got(select(&p, None, &[], None, wait).await);
        let (b, lease_b) = got(select(&p, None, &[], None, wait).await);
        assert_ne!(a, b, "the second request goes to the backend with room");
        // Both full: a third request waits, and gets the first slot given back.
        let waiter = select(&p, None, &[], None, Duration::from_secs(5));
        let release = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(lease_b);
        };
        let (picked, ()) = tokio::join!(waiter, release);
        let (again, _lease_again) = got(picked);
        assert_eq!(again, b);
        // Nothing freed within the wait: busy.
        let started = Instant::now();
        assert!(matches!(
            select(&p, None, &[], None, wait).await,
            Pick::Busy
        ));
        assert!(started.elapsed() >= wait);
        drop(lease_a);
    }

    #[tokio::test]
    async fn unlimited_and_preferred() {
        let p = pool(&[None, None, None]);
        let (i, _l) = got(select(&p, None, &[], Some(2), Duration::ZERO).await);
        assert_eq!(i, 2);
        let (i, _l) = got(select(&p, None, &[2], Some(2), Duration::ZERO).await);
        assert_ne!(i, 2, "a tried backend is not preferred again");
        assert!(matches!(
            select(&p, None, &[0, 1, 2], None, Duration::ZERO).await,
            Pick::NoBackend
        ));
        assert_eq!(
            p.backends[0].active() + p.backends[1].active() + p.backends[2].active(),
            2
        );
    }
}
