//! What a reload costs before the swap: `config::load_str` (YAML parse, decode, validation) and
//! `Snapshot::build` (pools, prebuilt peers, router) for the 60-domain, ~400-backend config of
//! `common`. Backends are IP literals, so no DNS is involved.
//!
//! `cargo bench --bench snapshot`

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

fn snapshot(c: &mut Criterion) {
    let yaml = common::config_yaml();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("snapshot");
    g.sample_size(20);
    g.bench_function("config::load_str", |b| {
        b.iter(|| strait::config::load_str(black_box(&yaml), "bench.yaml", &|_| None).is_ok())
    });
    g.bench_function("Snapshot::build", |b| {
        b.iter_batched(
            common::config,
            |config| {
                rt.block_on(strait::bench::Snapshot::build(config, None))
                    .is_ok()
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("load_str + Snapshot::build", |b| {
        b.iter(|| {
            let config =
                strait::config::load_str(black_box(&yaml), "bench.yaml", &|_| None).unwrap();
            rt.block_on(strait::bench::Snapshot::build(config, None))
                .is_ok()
        })
    });
    g.finish();
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
