//! The storage's unit tests.

use super::*;
use std::time::Duration;

fn key(host: &str, path: &str) -> CacheKey {
    CacheKey::new(key::primary("http", host, "GET", path), "")
}

fn meta() -> CacheMeta {
    let now = SystemTime::now();
    let mut h = ResponseHeader::build(200, None).unwrap();
    h.append_header("content-type", "text/plain").unwrap();
    CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, h)
}

fn leak(store: MemoryStore) -> &'static MemoryStore {
    Box::leak(Box::new(store))
}

fn put(store: &MemoryStore, k: &CacheKey, body: &[u8]) -> Result<Arc<Entry>> {
    store.insert(
        k.primary_key().into(),
        k.primary_bin(),
        k.variance_bin(),
        StoredMeta::of(&meta()).unwrap(),
        Bytes::copy_from_slice(body),
    )
}

fn body_of(store: &MemoryStore, k: &CacheKey) -> Option<Vec<u8>> {
    let (_, mut hit) = store.hit(k).unwrap()?;
    Some(hit.next_chunk().unwrap_or_default().to_vec())
}

static RT: Lazy<tokio::runtime::Runtime> = Lazy::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
});

#[test]
fn stores_and_finds_with_the_full_key() {
    let s = MemoryStore::new(1 << 20, 100);
    let k = key("a.test", "/x");
    put(&s, &k, b"hello").unwrap();
    assert_eq!(body_of(&s, &k).unwrap(), b"hello");
    assert!(body_of(&s, &key("b.test", "/x")).is_none());
    // Same hash, different key bytes: never served.
    let mut forged = CacheKey::new(b"something else".to_vec(), "");
    forged.set_primary_bin_override(k.primary_bin());
    assert!(s.hit(&forged).unwrap().is_none());
    let st = s.stats();
    assert_eq!(st.entries, 1);
    assert_eq!(st.bytes as usize, s.find(&k).unwrap().weight());
}

#[test]
fn variants_live_side_by_side_and_go_together() {
    let s = MemoryStore::new(1 << 20, 100);
    let primary = key("a.test", "/v");
    let mut fr = key("a.test", "/v");
    fr.set_variance_key([1; 16]);
    let mut de = key("a.test", "/v");
    de.set_variance_key([2; 16]);
    put(&s, &primary, b"p").unwrap();
    put(&s, &fr, b"fr").unwrap();
    put(&s, &de, b"de").unwrap();
    assert_eq!(body_of(&s, &fr).unwrap(), b"fr");
    assert_eq!(body_of(&s, &de).unwrap(), b"de");
    assert_eq!(body_of(&s, &primary).unwrap(), b"p");
    assert_eq!(s.remove_primary(primary.primary_key()), 3);
    assert_eq!(s.stats().entries, 0);
    assert_eq!(s.stats().bytes, 0);
}

#[test]
fn replacing_a_key_does_not_leak_budget() {
    let s = MemoryStore::new(1 << 20, 100);
    let k = key("a.test", "/r");
    put(&s, &k, &[0; 100]).unwrap();
    let w = put(&s, &k, &[0; 300]).unwrap().weight();
    assert_eq!(s.stats().entries, 1);
    assert_eq!(s.stats().bytes as usize, w);
    assert_eq!(body_of(&s, &k).unwrap().len(), 300);
}

#[test]
fn eviction_is_least_recently_used_first() {
    let s = MemoryStore::new(1 << 20, 3);
    let keys: Vec<CacheKey> = (0..4).map(|i| key("a.test", &format!("/{i}"))).collect();
    for k in &keys[..3] {
        put(&s, k, b"x").unwrap();
    }
    // /0 is read, so /1 is now the least recently used.
    assert!(s.find(&keys[0]).is_some());
    put(&s, &keys[3], b"x").unwrap();
    assert!(s.find(&keys[1]).is_none(), "/1 should have been evicted");
    for i in [0, 2, 3] {
        assert!(s.find(&keys[i]).is_some(), "/{i} should still be cached");
    }
    assert_eq!(s.stats().evictions, 1);
    assert_eq!(s.stats().entries, 3);
}

#[test]
fn oversized_entries_are_refused_and_budgets_shrink_on_demand() {
    let s = MemoryStore::new(2000, 100);
    assert!(put(&s, &key("a.test", "/big"), &[0; 3000]).is_err());
    for i in 0..5 {
        put(&s, &key("a.test", &format!("/{i}")), &[0; 300]).unwrap();
    }
    assert!(s.stats().bytes <= 2000);
    s.set_limits(1000, 100);
    assert!(s.stats().bytes <= 1000);
    s.set_limits(1 << 20, 1);
    assert_eq!(s.stats().entries, 1);
}

#[test]
fn budget_is_never_exceeded_by_concurrent_writers() {
    use rand::Rng;
    use std::sync::atomic::AtomicBool;
    const MAX: u64 = 64 * 1024;
    let s: &'static MemoryStore = leak(MemoryStore::new(MAX, 1_000_000));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut samples = 0u64;
            let mut peak = 0;
            while !stop.load(Relaxed) {
                let b = s.stats().bytes;
                peak = peak.max(b);
                assert!(b <= MAX, "cache holds {b} bytes, over its {MAX}");
                samples += 1;
            }
            (samples, peak)
        })
    };
    let writers: Vec<_> = (0..8)
        .map(|w| {
            std::thread::spawn(move || {
                let mut rng = rand::thread_rng();
                for i in 0..400 {
                    let size = rng.gen_range(0..8000);
                    let k = key("a.test", &format!("/{w}/{}", i % 50));
                    let _ = put(s, &k, &vec![7u8; size]);
                    let _ = s.find(&key(
                        "a.test",
                        &format!("/{}/{}", rng.gen_range(0..8), rng.gen_range(0..50)),
                    ));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Relaxed);
    let (samples, peak) = watcher.join().unwrap();
    assert!(samples > 0);
    assert!(
        peak > MAX / 2,
        "the test should have filled the cache (peak {peak})"
    );
    // The counts agree with what is actually indexed.
    let mut indexed = 0u64;
    let mut n = 0u64;
    for shard in s.index.iter() {
        for v in shard.read().unwrap().values() {
            for e in v {
                indexed += e.weight as u64;
                n += 1;
            }
        }
    }
    assert_eq!((indexed, n), (s.stats().bytes, s.stats().entries));
    assert_eq!(s.lru.len() as u64, n);
}

#[test]
fn fills_publish_only_when_finished_and_respect_their_limit() {
    let s = leak(MemoryStore::new(1 << 20, 100));
    RT.block_on(async {
        let span = pingora::cache::trace::Span::inactive().handle();
        let k = key("a.test", "/fill");
        let mut miss = s.get_miss_handler(&k, &meta(), &span).await.unwrap();
        miss.write_body(Bytes::from_static(b"hel"), false)
            .await
            .unwrap();
        assert!(
            s.lookup(&k, &span).await.unwrap().is_none(),
            "partial write visible"
        );
        miss.write_body(Bytes::from_static(b"lo"), true)
            .await
            .unwrap();
        miss.finish().await.unwrap();
        assert_eq!(body_of(s, &k).unwrap(), b"hello");

        // A dropped fill leaves nothing.
        let k2 = key("a.test", "/dropped");
        let mut miss = s.get_miss_handler(&k2, &meta(), &span).await.unwrap();
        miss.write_body(Bytes::from_static(b"abc"), false)
            .await
            .unwrap();
        drop(miss);
        assert!(s.lookup(&k2, &span).await.unwrap().is_none());

        // Over its per-entry limit: refused at finish, never an error mid-stream.
        let mut k3 = key("a.test", "/limited");
        k3.extensions.insert(FillOptions {
            max_body_bytes: Some(4),
            precompress: None,
        });
        let mut miss = s.get_miss_handler(&k3, &meta(), &span).await.unwrap();
        miss.write_body(Bytes::from_static(b"abc"), false)
            .await
            .unwrap();
        miss.write_body(Bytes::from_static(b"def"), true)
            .await
            .unwrap();
        assert!(miss.finish().await.is_err());
        assert!(s.lookup(&k3, &span).await.unwrap().is_none());
    });
}

#[test]
fn gzip_copies_are_attached_in_the_background() {
    let s = leak(MemoryStore::new(1 << 20, 100));
    let text = "compress me please ".repeat(100);
    RT.block_on(async {
        let span = pingora::cache::trace::Span::inactive().handle();
        let mut k = key("a.test", "/gz");
        k.extensions.insert(FillOptions {
            max_body_bytes: None,
            precompress: Some(Precompress {
                level: 6,
                min_bytes: 10,
            }),
        });
        let mut miss = s.get_miss_handler(&k, &meta(), &span).await.unwrap();
        miss.write_body(Bytes::from(text.clone()), true)
            .await
            .unwrap();
        miss.finish().await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !s.find(&k).unwrap().has_gzip() {
            assert!(std::time::Instant::now() < deadline, "no gzip copy");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let (_, mut hit) = s.hit(&key("a.test", "/gz")).unwrap().unwrap();
    let gz_len = hit.use_gzip().unwrap();
    let gz = hit.next_chunk().unwrap();
    assert_eq!(gz.len(), gz_len);
    let mut out = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out).unwrap();
    assert_eq!(out, text);
    let e = s.find(&key("a.test", "/gz")).unwrap();
    assert_eq!(s.stats().bytes as usize, e.weight());
}

#[test]
fn update_meta_keeps_the_body_and_the_budget_right() {
    let s = MemoryStore::new(1 << 20, 100);
    let k = key("a.test", "/m");
    put(&s, &k, b"body").unwrap();
    let mut m = meta();
    m.response_header_mut()
        .insert_header("x-version", "2")
        .unwrap();
    assert!(s.replace_meta(&k, StoredMeta::of(&m).unwrap()));
    let (stored, mut hit) = s.hit(&k).unwrap().unwrap();
    assert_eq!(stored.headers().get("x-version").unwrap(), "2");
    assert_eq!(hit.next_chunk().unwrap(), &b"body"[..]);
    assert_eq!(s.stats().bytes as usize, s.find(&k).unwrap().weight());
    assert!(!s.replace_meta(&key("a.test", "/nope"), StoredMeta::of(&meta()).unwrap()));
}

#[test]
fn stored_meta_round_trips_every_field() {
    let now = SystemTime::now();
    let mut h = ResponseHeader::build(203, None).unwrap();
    h.append_header("etag", "\"e\"").unwrap();
    h.append_header("x-a", "1").unwrap();
    let mut m = CacheMeta::new(now + Duration::from_secs(9), now, 7, 8, h);
    m.set_variance([3; 16]);
    m.set_epoch_override(now - Duration::from_secs(30));
    let stored = StoredMeta::of(&m).unwrap();
    assert!(stored.fields.is_some(), "a fresh meta takes the fast path");
    assert_round_trip(&m, &stored.to_meta().unwrap());
    // A revalidated meta (`updated` moved) is decoded from its bytes.
    std::thread::sleep(Duration::from_millis(2));
    m.update_freshness(now + Duration::from_secs(60), 7, 8);
    let stored = StoredMeta::of(&m).unwrap();
    assert!(stored.fields.is_none());
    assert_round_trip(&m, &stored.to_meta().unwrap());
}

fn assert_round_trip(m: &CacheMeta, back: &CacheMeta) {
    assert_eq!(back.fresh_until(), m.fresh_until());
    assert_eq!(back.created(), m.created());
    assert_eq!(back.updated(), m.updated());
    assert_eq!(back.provenance(), m.provenance());
    assert_eq!(back.variance(), m.variance());
    assert_eq!(back.epoch_override(), m.epoch_override());
    assert_eq!(back.stale_while_revalidate_sec(), 7);
    assert_eq!(back.stale_if_error_sec(), 8);
    assert_eq!(back.response_header().status, 203);
    assert_eq!(back.headers(), m.headers());
    assert_eq!(back.serialize().unwrap(), m.serialize().unwrap());
}

#[test]
fn seek_serves_ranges_of_the_identity_body() {
    let s = MemoryStore::new(1 << 20, 100);
    let k = key("a.test", "/range");
    put(&s, &k, b"0123456789").unwrap();
    let (_, mut hit) = s.hit(&k).unwrap().unwrap();
    assert!(hit.can_seek());
    hit.seek(2, Some(5)).unwrap();
    assert_eq!(hit.next_chunk().unwrap(), &b"234"[..]);
    assert!(hit.next_chunk().is_none());
    assert!(hit.seek(10, None).is_err());
}
