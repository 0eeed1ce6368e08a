//! Helpers shared by the strategies' tests, and the properties every strategy must have.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::*;
use crate::config::{BackendConfig, Pos, Scheme};

const ALL: [Strategy; 7] = [
    Strategy::RoundRobin,
    Strategy::WeightedRoundRobin,
    Strategy::LeastConnections,
    Strategy::IpHash,
    Strategy::Random,
    Strategy::ConsistentHash,
    Strategy::LeastLatency,
];

/// Backend `n` of a test pool: a distinct made-up host and loopback port, never connected to.
pub(super) fn backend(n: u16, weight: u32) -> Arc<Backend> {
    let port = 3001 + n;
    let host = format!("b{n}.test");
    let config = BackendConfig {
        url: format!("http://{host}:{port}"),
        scheme: Scheme::Http,
        host,
        port,
        weight,
        max_connections: None,
        pos: Pos::default(),
        path: format!("test.backends[{n}]"),
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    Arc::new(Backend::new(config, addr, true))
}

pub(super) fn backends(weights: &[u32]) -> Vec<Arc<Backend>> {
    (0..).zip(weights).map(|(n, &w)| backend(n, w)).collect()
}

pub(super) fn no_skip(_: usize) -> bool {
    false
}

/// How often each backend is picked in `n` sequential picks without a client address, each
/// request finishing (its lease dropping) before the next starts.
pub(super) fn counts(b: &dyn Balancer, backends: &[Arc<Backend>], n: usize) -> Vec<usize> {
    let mut c = vec![0; backends.len()];
    for _ in 0..n {
        let i = b.pick(backends, None, &no_skip).expect("a usable backend");
        drop(backends[i].lease());
        c[i] += 1;
    }
    c
}

fn clients() -> impl Iterator<Item = Option<u64>> {
    [None]
        .into_iter()
        .chain((1..=40u8).map(|n| Some(super::hash_ip(IpAddr::V4(Ipv4Addr::new(203, 0, 113, n))))))
}

#[test]
fn empty_list_gives_none() {
    for s in ALL {
        let b = build(s, &[]);
        for client in clients() {
            assert_eq!(b.pick(&[], client, &no_skip), None, "{s:?}");
        }
        let pool = Pool::new("empty", s, Vec::new(), None);
        assert!(pool.select(None, &[]).is_none());
        assert!(!pool.has_usable());
    }
}

#[test]
fn nothing_usable_gives_none() {
    for s in ALL {
        let list = backends(&[1, 3, 2, 1]);
        let b = build(s, &list);
        list[0].set_healthy(false);
        list[1].set_enabled(false);
        list[2].set_healthy(false);
        list[3].set_healthy(false);
        list[3].set_enabled(false);
        for client in clients() {
            assert_eq!(b.pick(&list, client, &no_skip), None, "{s:?}");
        }
        // Usable but all tried is the same as none usable.
        list[0].set_healthy(true);
        for client in clients() {
            assert_eq!(b.pick(&list, client, &|i| i == 0), None, "{s:?}");
            assert_eq!(b.pick(&list, client, &no_skip), Some(0), "{s:?}");
        }
    }
}

#[test]
fn retries_never_repeat_a_backend() {
    for s in ALL {
        let list = backends(&[1, 3, 1, 2, 1]);
        list[2].set_healthy(false);
        let pool = Pool::new("p", s, list.clone(), None);
        for client in clients() {
            for _ in 0..5 {
                let mut tried = Vec::new();
                let mut leases = Vec::new();
                while let Some((i, lease)) = pool.select(client, &tried) {
                    assert!(!tried.contains(&i), "{s:?} repeated {i} after {tried:?}");
                    assert!(Arc::ptr_eq(lease.backend(), &list[i]));
                    tried.push(i);
                    // A retry replaces the previous attempt's lease.
                    leases.clear();
                    leases.push(lease);
                    assert!(tried.len() <= 4, "{s:?}");
                }
                tried.sort_unstable();
                assert_eq!(tried, vec![0, 1, 3, 4], "{s:?}: every usable one, once");
            }
        }
        assert!(list.iter().all(|b| b.active() == 0), "{s:?}");
        assert_eq!(list[2].requests(), 0, "{s:?}");
    }
}

#[test]
fn skipped_and_down_backends_are_never_picked() {
    for s in ALL {
        let list = backends(&[2, 1, 5, 1]);
        list[3].set_enabled(false);
        let b = build(s, &list);
        for client in clients() {
            for _ in 0..20 {
                let i = b.pick(&list, client, &|i| i == 2).unwrap();
                assert!(i == 0 || i == 1, "{s:?} picked {i}");
            }
        }
    }
}

#[test]
fn pool_select_counts_requests_and_leases() {
    for s in ALL {
        let list = backends(&[1, 1, 1]);
        let pool = Pool::new(format!("pool-{}", s.name()), s, list.clone(), None);
        assert!(pool.has_usable());
        let held: Vec<_> = (0..30).map(|_| pool.select(None, &[]).unwrap()).collect();
        assert_eq!(list.iter().map(|b| b.active()).sum::<u64>(), 30);
        assert_eq!(list.iter().map(|b| b.requests()).sum::<u64>(), 30);
        for (i, lease) in &held {
            assert!(Arc::ptr_eq(lease.backend(), &pool.backends[*i]));
        }
        drop(held);
        assert_eq!(list.iter().map(|b| b.active()).sum::<u64>(), 0);
        for b in &list {
            b.set_healthy(false);
        }
        assert!(!pool.has_usable());
        assert!(pool.select(None, &[]).is_none());
        assert_eq!(list.iter().map(|b| b.requests()).sum::<u64>(), 30);
    }
}

#[test]
fn list_other_than_the_built_one_does_not_panic() {
    for s in ALL {
        let list = backends(&[1, 2, 3, 4]);
        let b = build(s, &list[..2]);
        for client in clients() {
            assert!(b.pick(&list, client, &no_skip).is_some(), "{s:?}");
            assert!(
                matches!(b.pick(&list[..1], client, &no_skip), Some(0)),
                "{s:?}"
            );
            assert_eq!(b.pick(&[], client, &no_skip), None, "{s:?}");
        }
    }
}

#[test]
fn concurrent_picks_keep_counts_right() {
    for s in ALL {
        let list = backends(&[1, 2, 3]);
        let pool = Arc::new(Pool::new("c", s, list.clone(), None));
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let pool = Arc::clone(&pool);
                std::thread::spawn(move || {
                    for n in 0..2_000u32 {
                        let client =
                            Some(super::hash_ip(IpAddr::V4(Ipv4Addr::new(10, t, 0, n as u8))));
                        let (first, lease) = pool.select(client, &[]).unwrap();
                        if n % 7 == 0 {
                            let (second, _retry) = pool.select(client, &[first]).unwrap();
                            assert_ne!(first, second);
                        }
                        drop(lease);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(list.iter().all(|b| b.active() == 0), "{s:?}");
        let total: u64 = list.iter().map(|b| b.requests()).sum();
        assert_eq!(total, 4 * (2_000 + 2_000u64.div_ceil(7)), "{s:?}");
    }
}

/// `peek` foretells the next `pick` (and changes nothing), for every strategy but `random`,
/// whatever the weights, loads and down backends.
#[test]
fn peek_is_the_next_pick() {
    for strategy in ALL {
        // Random draws; least_latency draws two random candidates.
        if matches!(strategy, Strategy::Random | Strategy::LeastLatency) {
            continue;
        }
        let b = backends(&[3, 1, 2, 1]);
        b[2].set_healthy(false);
        let pool = Pool::new("t", strategy, b.clone(), None);
        // Some load so least_connections has something to weigh.
        let _held = [b[0].lease(), b[0].lease(), b[3].lease()];
        for client in clients().take(12) {
            for _ in 0..3 {
                let foretold = pool.peek(client);
                assert_eq!(
                    pool.peek(client),
                    foretold,
                    "{strategy:?}: peeking moved it"
                );
                let picked = pool.pick(client, &no_skip);
                assert_eq!(foretold, picked, "{strategy:?} {client:?}");
            }
        }
        // Nothing usable: nothing foretold.
        for x in &b {
            x.set_enabled(false);
        }
        assert_eq!(
            pool.peek(Some(super::hash_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)))),
            None,
            "{strategy:?}"
        );
    }
}
