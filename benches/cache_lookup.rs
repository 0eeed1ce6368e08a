//! Hit-path cost of strait's response cache: building the key, finding the entry (index,
//! full-key check, LRU promotion), rebuilding the `CacheMeta`, and reading the body, on a store
//! holding 10,000 entries of 4 KiB with a realistic header.
//!
//! `cargo bench --bench cache_lookup`

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use pingora::cache::key::CacheHashKey;
use pingora::cache::{CacheKey, CacheMeta, Storage};
use pingora::http::ResponseHeader;
use strait::bench::key;
use strait::bench::MemoryStore;
use strait::bench::StoredMeta;

const ENTRIES: usize = 10_000;
const BODY: usize = 4096;

fn cache_key(i: usize) -> CacheKey {
    CacheKey::new(
        key::primary(
            "https",
            "www.example.com",
            "GET",
            &format!("/assets/item/{i}?v=3"),
        ),
        "",
    )
}

fn meta() -> CacheMeta {
    let now = SystemTime::now();
    let mut h = ResponseHeader::build(200, None).unwrap();
    for (k, v) in [
        ("content-type", "text/html; charset=utf-8"),
        ("cache-control", "public, max-age=3600"),
        ("etag", "\"5f3c-1b2a9d\""),
        ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ("content-length", "4096"),
        ("server", "origin"),
        ("x-request-id", "0f6a8c3e-2d7b-4b1e-9a55-3c1d2e4f5a6b"),
        ("vary", "Accept-Encoding"),
    ] {
        h.append_header(k, v).unwrap();
    }
    CacheMeta::new(now + Duration::from_secs(3600), now, 0, 0, h)
}

fn filled() -> &'static MemoryStore {
    let store = Box::leak(Box::new(MemoryStore::new(1 << 30, 1_000_000)));
    let stored = StoredMeta::of(&meta()).unwrap();
    let body = Bytes::from(vec![b'x'; BODY]);
    for i in 0..ENTRIES {
        let k = cache_key(i);
        store
            .insert(
                k.primary_key().into(),
                k.primary_bin(),
                None,
                stored.clone(),
                body.clone(),
            )
            .unwrap();
    }
    store
}

fn bench(c: &mut Criterion) {
    let store = filled();
    let keys: Vec<CacheKey> = (0..ENTRIES).map(cache_key).collect();
    let mut i = 0usize;
    let mut next = || {
        i = (i + 7919) % ENTRIES;
        &keys[i]
    };

    c.bench_function("key: frame + blake2 hash", |b| {
        let mut n = 0usize;
        b.iter(|| {
            n = (n + 1) % ENTRIES;
            let k = cache_key(black_box(n));
            black_box(k.primary_bin())
        })
    });

    c.bench_function("find: index + full key check + LRU promote", |b| {
        b.iter(|| black_box(store.find(black_box(next())).is_some()))
    });

    c.bench_function("hit: find + CacheMeta + 4 KiB body", |b| {
        b.iter(|| {
            let (meta, mut hit) = store.hit(black_box(next())).unwrap().unwrap();
            black_box(meta.is_fresh(SystemTime::now()));
            black_box(hit.next_chunk())
        })
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let span = pingora::cache::trace::Span::inactive().handle();
    c.bench_function("Storage::lookup (async trait path)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (meta, mut hit) = store.lookup(next(), &span).await.unwrap().unwrap();
                black_box(meta.is_fresh(SystemTime::now()));
                black_box(hit.read_body().await.unwrap())
            })
        })
    });

    c.bench_function("miss: lookup of an absent key", |b| {
        let absent = cache_key(ENTRIES + 1);
        b.iter(|| black_box(store.find(black_box(&absent)).is_none()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = bench
}
criterion_main!(benches);
