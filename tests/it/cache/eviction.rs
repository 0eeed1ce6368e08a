//! The cache's budget under concurrent writers, LRU eviction, and the hit rate it gives.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use crate::admin::Ports;
use crate::support::client::Conn;
use crate::support::origin::Reply;

use super::{by_path, cached, expect, get, start, stats};

#[test]
fn budget_holds_under_eight_concurrent_writers() {
    // Random sizes, eight clients, a 64 KiB budget; the admin API's stats are sampled throughout.
    let o = by_path("o", |req| {
        let size: usize = req
            .target
            .trim_start_matches("/size/")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        Reply::new(200)
            .header("Cache-Control", "max-age=600")
            .body(vec![b'z'; size])
    });
    let p = Ports::new();
    let cache = "  max_bytes: 64KiB\n  max_entries: 10000\n  max_entry_bytes: 16KiB\n";
    let s = Arc::new(start(cache, &[cached("budget.test", &o)], Some(&p)));
    let done = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let s = s.clone();
            let done = done.clone();
            thread::spawn(move || {
                let mut seed = 0x9E37_79B9u64 ^ (w as u64 * 7919);
                for i in 0..40 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let size = 100 + (seed % 12_000) as usize;
                    let r = get(&s, "budget.test", &format!("/size/{size}/{w}/{i}"));
                    assert_eq!(r.status, 200);
                    assert_eq!(r.body.len(), size);
                }
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let mut samples = 0;
    let mut peak = 0;
    while done.load(Ordering::SeqCst) < 8 {
        let st = stats(&p);
        let bytes = st["bytes"].as_u64().unwrap();
        peak = peak.max(bytes);
        assert!(
            bytes <= 64 * 1024,
            "cache holds {bytes} bytes, over max_bytes: {st}"
        );
        samples += 1;
    }
    for w in writers {
        w.join().unwrap();
    }
    let st = stats(&p);
    assert!(st["bytes"].as_u64().unwrap() <= 64 * 1024);
    assert!(
        st["evictions"].as_u64().unwrap() > 0,
        "the budget forced evictions: {st}"
    );
    assert!(
        peak > 32 * 1024,
        "the writers filled the cache (peak {peak})"
    );
    eprintln!("budget: {samples} samples, peak {peak} bytes, final {st}");
}

#[test]
fn eviction_drops_the_least_recently_used() {
    let o = by_path("o", |req| {
        Reply::new(200)
            .header("Cache-Control", "max-age=600")
            .body(req.target.clone())
    });
    let cache = "  max_bytes: 1MiB\n  max_entries: 3\n  max_entry_bytes: 64KiB\n";
    let s = start(cache, &[cached("lru.test", &o)], None);
    for p in ["/1", "/2", "/3"] {
        expect(&get(&s, "lru.test", p), "MISS");
    }
    expect(&get(&s, "lru.test", "/1"), "HIT"); // /2 is now the least recently used
    expect(&get(&s, "lru.test", "/4"), "MISS"); // evicts /2
    for p in ["/1", "/3", "/4"] {
        expect(&get(&s, "lru.test", p), "HIT");
    }
    expect(&get(&s, "lru.test", "/2"), "MISS");
    assert_eq!(o.hits_path("/2"), 2);
    assert_eq!(o.hits_path("/1"), 1);
}

#[test]
fn hit_rate_of_a_skewed_workload() {
    // 600 requests over 60 URLs, popularity ~ 1/rank, a cache holding 20 of them.
    let o = by_path("o", |req| {
        Reply::new(200)
            .header("Cache-Control", "max-age=600")
            .body(vec![b'h'; 2000 + req.target.len()])
    });
    let cache = "  max_bytes: 1MiB\n  max_entries: 20\n  max_entry_bytes: 64KiB\n";
    let s = start(cache, &[cached("rate.test", &o)], None);
    let weights: Vec<f64> = (1..=60).map(|r| 1.0 / r as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut seed = 42u64;
    let mut hits = 0;
    let n = 600;
    let mut conn = Conn::connect(s.addr()).unwrap();
    for _ in 0..n {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut x = (seed >> 11) as f64 / (1u64 << 53) as f64 * total;
        let mut rank = 0;
        while x > weights[rank] && rank < 59 {
            x -= weights[rank];
            rank += 1;
        }
        if conn.is_closed() {
            conn = Conn::connect(s.addr()).unwrap();
        }
        let r = conn.get("rate.test", &format!("/item/{rank}")).unwrap();
        assert_eq!(r.status, 200);
        if r.header("x-cache") == Some("HIT") {
            hits += 1;
        }
    }
    let rate = hits as f64 / n as f64;
    eprintln!(
        "hit rate: {hits}/{n} = {rate:.3} (origin requests: {})",
        o.hits()
    );
    assert_eq!(o.hits(), n - hits);
    assert!(rate > 0.5, "hit rate {rate}");
}
