//! One backend pick per request: `Pool::select` (the strategy's pick plus taking the in-flight
//! lease, given back when it drops) for each of the five strategies over 3 and 10 backends,
//! with varied client addresses (ip_hash) and weights 1-3 (weighted_round_robin).
//!
//! `cargo bench --bench balance`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const STRATEGIES: [&str; 7] = [
    "round_robin",
    "weighted_round_robin",
    "least_connections",
    "ip_hash",
    "random",
    "consistent_hash",
    "least_latency",
];

fn pool_config(strategy: &str, backends: usize) -> String {
    let mut y = format!(
        "listeners:\n  - addr: 127.0.0.1:18080\ndomains:\n  - hosts: [\"*\"]\n    load_balancer: {strategy}\n    backends:\n"
    );
    for b in 0..backends {
        y.push_str(&format!(
            "      - {{ addr: \"http://10.0.0.{}:8080\", weight: {} }}\n",
            b + 1,
            1 + b % 3
        ));
    }
    y
}

fn balance(c: &mut Criterion) {
    let clients: Vec<Option<u64>> = (0..256u32)
        .map(|i| {
            Some(strait::bench::hash_ip(IpAddr::V4(Ipv4Addr::from(
                0xC633_6400 + i * 7919,
            ))))
        })
        .collect();
    let mut g = c.benchmark_group("Pool::select");
    for strategy in STRATEGIES {
        for n in [3usize, 10] {
            let config =
                strait::config::load_str(&pool_config(strategy, n), "bench.yaml", &|_| None)
                    .unwrap_or_else(|e| panic!("{e:?}"));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let snapshot = rt
                .block_on(strait::bench::Snapshot::build(config, None))
                .unwrap_or_else(|e| panic!("{e:?}"));
            let pool = snapshot.pools[0].clone();
            let mut next = 0usize;
            g.bench_with_input(BenchmarkId::new(strategy, n), &n, |b, _| {
                b.iter(|| {
                    next = (next + 1) & 255;
                    let picked = pool.select(black_box(clients[next]), black_box(&[]));
                    black_box(picked.map(|(i, _lease)| i))
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, balance);
criterion_main!(benches);
