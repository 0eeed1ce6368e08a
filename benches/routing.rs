//! Routing cost per request: `Router::route` (host, then longest path prefix) and
//! `Snapshot::lookup` (the route plus its action and header rules), over the 60-domain config of
//! `common` and a mix of exact, wildcard, port-carrying, upper-case and unknown hosts.
//!
//! `cargo bench --bench routing`

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strait::bench::Request;

fn routing(c: &mut Criterion) {
    let snapshot = common::snapshot();
    let requests = common::requests();
    let headers = http::HeaderMap::new();
    let mut g = c.benchmark_group("routing");
    g.throughput(Throughput::Elements(requests.len() as u64));
    g.bench_function("Router::route x64", |b| {
        b.iter(|| {
            for (host, path) in &requests {
                let req = Request::simple(black_box(host), black_box(path), &headers);
                black_box(snapshot.router.route(&req));
            }
        })
    });
    g.bench_function("Snapshot::lookup x64", |b| {
        b.iter(|| {
            for (host, path) in &requests {
                let req = Request::simple(black_box(host), black_box(path), &headers);
                black_box(snapshot.lookup(&req).is_some());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
