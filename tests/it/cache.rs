//! The response cache (issue 3): freshness, Vary, revalidation, invalidation, budgets and
//! eviction, stale serving, the cache lock, pre-compression, purge, key isolation and the
//! hit-path body drain. Every test runs a real origin that counts what reaches it.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::admin::{json, Ports};
use crate::support::client::{self, Conn};
use crate::support::origin::{Reply, Seen};
use crate::support::{config, eventually_msg, try_eventually, Behaviour, Origin, Response, Strait};

/// One domain entry for `domains:`.
fn domain(host: &str, o: &Origin, extra: &str) -> String {
    format!(
        "  - hosts: [{host}]\n    backends: [{{ addr: {} }}]\n    cache: true\n{extra}",
        o.url()
    )
}

/// strait with a top-level `cache:` section (`cache` is its body, indented by two) and
/// `domains` (already indented list items).
fn start(cache: &str, domains: &str, ports: Option<&Ports>) -> Strait {
    let admin = ports.map(|p| p.yaml(true)).unwrap_or_default();
    let s = Strait::start(&config(&format!(
        "{admin}cache:\n{cache}domains:\n{domains}"
    )));
    if let Some(p) = ports {
        p.wait_up();
    }
    s
}

const SMALL_CACHE: &str = "  max_bytes: 1MiB\n  max_entries: 1000\n  max_entry_bytes: 256KiB\n";

/// One request with `Host: host` on a fresh connection.
#[track_caller]
fn send(s: &Strait, method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut all = vec![("Host", host), ("X-Cache-Debug", "1")];
    all.extend_from_slice(headers);
    client::request(s.addr(), method, path, &all, b"").unwrap_or_else(|e| {
        panic!(
            "{method} http://{host}{path} failed: {e}\n--- stderr ---\n{}",
            s.stderr()
        )
    })
}

#[track_caller]
fn get(s: &Strait, host: &str, path: &str) -> Response {
    send(s, "GET", host, path, &[])
}

fn x_cache(r: &Response) -> String {
    format!(
        "{} ({})",
        r.header("x-cache").unwrap_or("-"),
        r.header("x-cache-reason").unwrap_or("")
    )
}

#[track_caller]
fn expect(r: &Response, status: &str) {
    assert_eq!(r.status, 200, "body {:?}", r.text());
    assert_eq!(
        r.header("x-cache"),
        Some(status),
        "{} {:?}",
        x_cache(r),
        r.headers
    );
}

/// Not stored, for `reason`: a MISS the first time; later requests for the URL may skip the
/// lookup (BYPASS) because the cache remembers the URL as uncacheable.
#[track_caller]
fn expect_not_stored(r: &Response, reason: &str) {
    assert_eq!(r.status, 200, "body {:?}", r.text());
    let status = r.header("x-cache").unwrap_or("-");
    assert!(
        status == "MISS" || status == "BYPASS",
        "{} {:?}",
        x_cache(r),
        r.headers
    );
    assert_eq!(r.header("x-cache-reason"), Some(reason), "{}", x_cache(r));
}

fn header<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.header(name)
}

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// `GET /cache/stats` from the admin API.
#[track_caller]
fn stats(p: &Ports) -> Value {
    let r = p.call("GET", "/cache/stats", "");
    assert_eq!(r.status, 200, "{}", r.text());
    json(&r)
}

/// An origin answering by path with a fixed `Cache-Control` per path prefix.
fn by_path(name: &str, f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Origin {
    Origin::start(name, Behaviour::default().respond_with(f))
}

#[test]
fn freshness_from_each_header() {
    let o = by_path("o", |req| {
        let now = SystemTime::now();
        let body = format!(
            "{} #{}",
            req.target,
            now.elapsed().map(|d| d.as_nanos()).unwrap_or(0)
        );
        let r = Reply::new(200).body(body);
        match req.target.as_str() {
            "/max-age" => r.header("Cache-Control", "max-age=2"),
            "/s-maxage" => r.header("Cache-Control", "max-age=600, s-maxage=2"),
            "/expires" => r
                .header("Date", http_date(now))
                .header("Expires", http_date(now + Duration::from_secs(2))),
            "/long" => r.header("Cache-Control", "max-age=600"),
            "/ruled/x" => r,
            "/silent" => r,
            "/no-store" => r.header("Cache-Control", "no-store, max-age=600"),
            "/private" => r.header("Cache-Control", "private, max-age=600"),
            "/no-cache" => r.header("Cache-Control", "no-cache"),
            other => panic!("unexpected {other}"),
        }
    });
    let cache = format!("{SMALL_CACHE}  rules:\n    - {{ path_prefix: /ruled/, ttl: 10m }}\n");
    let s = start(&cache, &domain("fresh.test", &o, ""), None);
    let paths = ["/max-age", "/s-maxage", "/expires", "/long", "/ruled/x"];
    for p in paths {
        expect(&get(&s, "fresh.test", p), "MISS");
        let hit = get(&s, "fresh.test", p);
        expect(&hit, "HIT");
        assert!(hit.header("age").is_some(), "a hit carries Age");
        assert_eq!(o.hits_path(p), 1, "{p}");
    }
    for (p, reason) in [
        ("/silent", "no-rule"),
        ("/no-store", "no-store"),
        ("/private", "private"),
        ("/no-cache", "no-cache"),
    ] {
        for _ in 0..2 {
            expect_not_stored(&get(&s, "fresh.test", p), reason);
        }
        assert_eq!(o.hits_path(p), 2, "{p} must never be served from the cache");
    }
    thread::sleep(Duration::from_millis(2300));
    for p in ["/max-age", "/s-maxage", "/expires"] {
        let r = get(&s, "fresh.test", p);
        expect(&r, "EXPIRED");
        assert_eq!(o.hits_path(p), 2, "{p} refetched once expired");
    }
    for p in ["/long", "/ruled/x"] {
        expect(&get(&s, "fresh.test", p), "HIT");
        assert_eq!(o.hits_path(p), 1, "{p}");
    }
}

#[test]
fn age_is_emitted_and_counts_against_freshness() {
    let o = by_path("o", |req| match req.target.as_str() {
        "/aged" => Reply::new(200)
            .header("Cache-Control", "max-age=600")
            .header("Age", "30")
            .body("a"),
        _ => Reply::new(200)
            .header("Cache-Control", "max-age=3")
            .header("Age", "2")
            .body("b"),
    });
    let s = start(SMALL_CACHE, &domain("age.test", &o, ""), None);
    expect(&get(&s, "age.test", "/aged"), "MISS");
    expect(&get(&s, "age.test", "/nearly-stale"), "MISS");
    thread::sleep(Duration::from_millis(1200));
    let hit = get(&s, "age.test", "/aged");
    expect(&hit, "HIT");
    let age: u64 = hit.header("age").unwrap().parse().unwrap();
    assert!(
        (31..=40).contains(&age),
        "Age {age}: 30 on arrival + ~1s stored"
    );
    // max-age=3 with Age: 2 left one second of freshness.
    let r = get(&s, "age.test", "/nearly-stale");
    expect(&r, "EXPIRED");
}

#[test]
fn vary_keeps_variants_apart_and_vary_star_is_never_served() {
    let o = by_path("o", |req| {
        let lang = header(req, "accept-language").unwrap_or("none").to_string();
        let r = Reply::new(200)
            .header("Cache-Control", "max-age=600")
            .body(format!("lang={lang}"));
        if req.target == "/star" {
            r.header("Vary", "*")
        } else {
            r.header("Vary", "Accept-Language")
        }
    });
    let s = start(SMALL_CACHE, &domain("vary.test", &o, ""), None);
    let ask = |lang: Option<&str>| {
        let h: Vec<(&str, &str)> = lang
            .map(|l| vec![("Accept-Language", l)])
            .unwrap_or_default();
        send(&s, "GET", "vary.test", "/page", &h)
    };
    expect(&ask(Some("fr")), "MISS");
    expect(&ask(Some("de")), "MISS");
    expect(&ask(None), "MISS");
    for (lang, body) in [
        (Some("fr"), "lang=fr"),
        (Some("de"), "lang=de"),
        (None, "lang=none"),
    ] {
        let r = ask(lang);
        expect(&r, "HIT");
        assert_eq!(r.text(), body);
    }
    assert_eq!(o.hits_path("/page"), 3);
    for _ in 0..2 {
        let r = send(
            &s,
            "GET",
            "vary.test",
            "/star",
            &[("Accept-Language", "fr")],
        );
        expect_not_stored(&r, "vary-star");
    }
    assert_eq!(o.hits_path("/star"), 2);
}

#[test]
fn revalidation_with_304_updates_the_stored_headers() {
    // Version 1 is fresh for one second; a conditional request gets a 304 carrying version 2.
    let o = by_path("o", |req| {
        let (validator, matches) = if req.target == "/etag" {
            ("ETag", header(req, "if-none-match") == Some("\"v1\""))
        } else {
            (
                "Last-Modified",
                header(req, "if-modified-since") == Some("Mon, 01 Jan 2024 00:00:00 GMT"),
            )
        };
        let value = if validator == "ETag" {
            "\"v1\""
        } else {
            "Mon, 01 Jan 2024 00:00:00 GMT"
        };
        if matches {
            Reply::new(304)
                .header(validator, value)
                .header("Cache-Control", "max-age=600")
                .header("X-Version", "2")
        } else {
            Reply::new(200)
                .header(validator, value)
                .header("Cache-Control", "max-age=1")
                .header("X-Version", "1")
                .body("the payload")
        }
    });
    let s = start(SMALL_CACHE, &domain("reval.test", &o, ""), None);
    for p in ["/etag", "/last-modified"] {
        let first = get(&s, "reval.test", p);
        expect(&first, "MISS");
        assert_eq!(first.header("x-version"), Some("1"));
    }
    thread::sleep(Duration::from_millis(1300));
    for p in ["/etag", "/last-modified"] {
        let r = get(&s, "reval.test", p);
        expect(&r, "EXPIRED");
        assert_eq!(r.header("x-cache-reason"), Some("revalidated"));
        assert_eq!(
            r.text(),
            "the payload",
            "{p}: the stored body is served after a 304"
        );
        assert_eq!(r.header("x-version"), Some("2"), "{p}");
        let again = get(&s, "reval.test", p);
        expect(&again, "HIT");
        assert_eq!(
            again.header("x-version"),
            Some("2"),
            "{p}: the 304's fields were stored"
        );
        assert_eq!(again.text(), "the payload");
        assert_eq!(o.hits_path(p), 2, "{p}");
    }
    let conditional: Vec<Seen> = o.requests().into_iter().skip(2).collect();
    assert_eq!(header(&conditional[0], "if-none-match"), Some("\"v1\""));
    assert!(header(&conditional[1], "if-modified-since").is_some());
}

#[test]
fn unsafe_methods_invalidate_the_url() {
    let o = by_path("o", |req| {
        if req.method != "GET" {
            let status = if req.target == "/broken" { 500 } else { 200 };
            return Reply::new(status).body("changed");
        }
        Reply::new(200)
            .header("Cache-Control", "max-age=600")
            .body(format!("v{}", req.at.elapsed().as_nanos()))
    });
    let s = start(SMALL_CACHE, &domain("inv.test", &o, ""), None);
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        expect(&get(&s, "inv.test", "/item"), "MISS");
        expect(&get(&s, "inv.test", "/item"), "HIT");
        let w = send(&s, method, "inv.test", "/item", &[]);
        assert_eq!(w.status, 200);
        assert_eq!(w.header("x-cache"), Some("BYPASS"));
        assert_eq!(w.header("x-cache-reason"), Some("method"));
    }
    // A failed write changes nothing, so it invalidates nothing.
    expect(&get(&s, "inv.test", "/broken"), "MISS");
    assert_eq!(send(&s, "POST", "inv.test", "/broken", &[]).status, 500);
    expect(&get(&s, "inv.test", "/broken"), "HIT");
    // HEAD is answered from the cached GET.
    let head = send(&s, "HEAD", "inv.test", "/broken", &[]);
    expect(&head, "HIT");
    assert!(head.body.is_empty());
    let head_first = send(&s, "HEAD", "inv.test", "/head-first", &[]);
    expect(&head_first, "MISS");
    let full = get(&s, "inv.test", "/head-first");
    expect(&full, "HIT");
    assert!(
        full.text().starts_with('v'),
        "the HEAD miss stored the full GET response"
    );
    assert_eq!(
        o.requests()
            .iter()
            .filter(|r| r.target == "/head-first")
            .map(|r| r.method.as_str())
            .collect::<Vec<_>>(),
        ["GET"]
    );
}

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
    let s = Arc::new(start(cache, &domain("budget.test", &o, ""), Some(&p)));
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
    let s = start(cache, &domain("lru.test", &o, ""), None);
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
fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let version = Arc::new(AtomicUsize::new(0));
    let v = version.clone();
    let o = by_path("o", move |_| {
        let n = v.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::new(200)
            .header("Cache-Control", "max-age=1, stale-while-revalidate=60")
            .body(format!("version {n}"))
    });
    let s = start(SMALL_CACHE, &domain("swr.test", &o, ""), None);
    expect(&get(&s, "swr.test", "/swr"), "MISS");
    thread::sleep(Duration::from_millis(1300));
    // The refresh takes a while; everyone meanwhile gets the stale copy at once.
    o.set_delay(Duration::from_millis(1500));
    for _ in 0..5 {
        let r = get(&s, "swr.test", "/swr");
        expect(&r, "STALE");
        assert_eq!(r.header("x-cache-reason"), Some("stale-while-revalidate"));
        assert_eq!(r.text(), "version 1");
    }
    eventually_msg(Duration::from_secs(10), "the background refresh", || {
        get(&s, "swr.test", "/swr").text() == "version 2"
    });
    expect(&get(&s, "swr.test", "/swr"), "HIT");
    assert_eq!(o.hits_path("/swr"), 2, "exactly one refresh");
}

#[test]
fn stale_if_error_covers_an_outage() {
    let o = by_path("o", |req| {
        let cc = if req.target == "/strict" {
            "max-age=1, must-revalidate"
        } else {
            "max-age=1"
        };
        Reply::new(200).header("Cache-Control", cc).body("kept")
    });
    let cache = format!("{SMALL_CACHE}  stale_if_error: 1m\n");
    let s = start(
        &cache,
        &domain(
            "sie.test",
            &o,
            "    connect_timeout: 1s\n    max_retries: 0\n",
        ),
        None,
    );
    expect(&get(&s, "sie.test", "/page"), "MISS");
    expect(&get(&s, "sie.test", "/strict"), "MISS");
    thread::sleep(Duration::from_millis(1300));
    o.stop();
    let r = get(&s, "sie.test", "/page");
    expect(&r, "STALE");
    assert_eq!(r.header("x-cache-reason"), Some("stale-if-error"));
    assert_eq!(r.text(), "kept");
    // must-revalidate forbids it.
    let strict = get(&s, "sie.test", "/strict");
    assert_eq!(strict.status, 502, "{}", strict.text());
}

#[test]
fn fifty_concurrent_misses_make_one_origin_request() {
    let o = Origin::start(
        "o",
        Behaviour::default()
            .delay(Duration::from_millis(400))
            .respond_with(|_| {
                Reply::new(200)
                    .header("Cache-Control", "max-age=600")
                    .body("shared body")
            }),
    );
    let s = Arc::new(start(SMALL_CACHE, &domain("herd.test", &o, ""), None));
    let gate = Arc::new(Barrier::new(50));
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let s = s.clone();
            let gate = gate.clone();
            thread::spawn(move || {
                gate.wait();
                get(&s, "herd.test", "/hot")
            })
        })
        .collect();
    let responses: Vec<Response> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(
        o.hits_path("/hot"),
        1,
        "the cache lock collapses the misses"
    );
    for r in &responses {
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "shared body");
    }
    let misses = responses
        .iter()
        .filter(|r| r.header("x-cache") == Some("MISS"))
        .count();
    assert_eq!(
        misses,
        1,
        "{:?}",
        responses.iter().map(x_cache).collect::<Vec<_>>()
    );
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

#[test]
fn gzip_copies_decompress_to_the_origin_body() {
    let text: String = (0..400)
        .map(|i| format!("line {i} of a compressible page\n"))
        .collect();
    let already = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"pre-compressed by the origin").unwrap();
        e.finish().unwrap()
    };
    let t = text.clone();
    let a = already.clone();
    let o = by_path("o", move |req| match req.target.as_str() {
        "/page" => Reply::new(200)
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Cache-Control", "max-age=600")
            .header("ETag", "\"p1\"")
            .body(t.clone()),
        _ => Reply::new(200)
            .header("Content-Type", "text/plain")
            .header("Content-Encoding", "gzip")
            .header("Cache-Control", "max-age=600")
            .body(a.clone()),
    });
    let cache =
        format!("{SMALL_CACHE}  precompress: {{ enabled: true, level: 6, min_bytes: 256 }}\n");
    let s = start(&cache, &domain("gz.test", &o, ""), None);
    let gzip = [("Accept-Encoding", "gzip, br")];
    let first = send(&s, "GET", "gz.test", "/page", &gzip);
    expect(&first, "MISS");
    assert_eq!(first.text(), text);
    assert!(first
        .header_all("vary")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("accept-encoding")));
    assert_eq!(
        header(&o.last_request().unwrap(), "accept-encoding"),
        Some("identity")
    );
    // The copy is made in the background right after the fill.
    let mut zipped = None;
    eventually_msg(Duration::from_secs(10), "a gzip hit", || {
        let r = send(&s, "GET", "gz.test", "/page", &gzip);
        let is_gz = r.header("content-encoding") == Some("gzip");
        zipped = Some(r);
        is_gz
    });
    let zipped = zipped.unwrap();
    expect(&zipped, "HIT");
    assert!(
        zipped.body.len() < text.len() / 4,
        "{} bytes",
        zipped.body.len()
    );
    assert_eq!(gunzip(&zipped.body), text.as_bytes());
    assert_eq!(zipped.header("etag"), Some("W/\"p1\""));
    assert!(zipped
        .header_all("vary")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("accept-encoding")));
    for headers in [
        &[][..],
        &[("Accept-Encoding", "identity")][..],
        &[("Accept-Encoding", "gzip;q=0")][..],
    ] {
        let plain = send(&s, "GET", "gz.test", "/page", headers);
        expect(&plain, "HIT");
        assert_eq!(plain.header("content-encoding"), None);
        assert_eq!(plain.text(), text);
        assert!(plain
            .header_all("vary")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("accept-encoding")));
    }
    // A range is served from the identity body.
    let ranged = send(
        &s,
        "GET",
        "gz.test",
        "/page",
        &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-3")],
    );
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.text(), "line");
    // Already encoded by the origin: stored and served as is, never compressed twice.
    send(&s, "GET", "gz.test", "/pre", &gzip);
    // The fill completes after the first response: poll until it is served from the cache.
    let mut pre = None;
    eventually_msg(
        Duration::from_secs(10),
        "the pre-compressed object as a hit",
        || {
            let r = send(&s, "GET", "gz.test", "/pre", &gzip);
            let hit = r.header("x-cache") == Some("HIT");
            pre = Some(r);
            hit
        },
    );
    let pre = pre.unwrap();
    expect(&pre, "HIT");
    assert_eq!(pre.body, already);
    assert_eq!(gunzip(&pre.body), b"pre-compressed by the origin");
    assert_eq!(o.hits_path("/page"), 1);
}

#[test]
fn purge_by_object_domain_and_everything() {
    let o = by_path("o", |req| {
        Reply::new(200)
            .header("Cache-Control", "max-age=600")
            .body(req.target.clone())
    });
    let p = Ports::new();
    let domains = format!(
        "{}{}",
        domain("one.test", &o, ""),
        domain("two.test", &o, "")
    );
    let s = start(SMALL_CACHE, &domains, Some(&p));
    let fill = |host: &str, path: &str| expect(&get(&s, host, path), "MISS");
    for (h, path) in [
        ("one.test", "/a"),
        ("one.test", "/b"),
        ("one.test", "/a?x=1"),
        ("two.test", "/a"),
        ("two.test", "/c"),
    ] {
        fill(h, path);
    }
    let before = stats(&p);
    assert_eq!(before["entries"], 5, "{before}");
    let purge = |q: &str| {
        let r = p.call("DELETE", q, "");
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        json(&r)["purged"].as_u64().unwrap()
    };
    assert_eq!(
        purge("/cache?domain=one.test&path=/a&method=GET"),
        2,
        "/a and /a?x=1"
    );
    expect(&get(&s, "one.test", "/a"), "MISS");
    expect(&get(&s, "one.test", "/b"), "HIT");
    assert_eq!(purge("/cache?domain=one.test"), 2, "/b and the refilled /a");
    expect(&get(&s, "two.test", "/a"), "HIT");
    expect(&get(&s, "one.test", "/b"), "MISS");
    assert_eq!(purge("/cache"), 3);
    assert_eq!(stats(&p)["entries"], 0);
    expect(&get(&s, "two.test", "/c"), "MISS");
}

#[test]
fn hosts_never_share_entries() {
    let o = by_path("o", |req| {
        let host = header(req, "x-forwarded-host").unwrap_or("?").to_string();
        Reply::new(200)
            .header("Cache-Control", "max-age=600")
            .body(host)
    });
    let domains = format!(
        "{}{}",
        domain("a.test", &o, ""),
        domain("\"*.w.test\"", &o, "")
    );
    let s = start(SMALL_CACHE, &domains, None);
    for host in ["a.test", "x.w.test", "y.w.test"] {
        let r = get(&s, host, "/same");
        expect(&r, "MISS");
        assert_eq!(r.text(), host);
    }
    for host in ["a.test", "x.w.test", "y.w.test"] {
        let r = get(&s, host, "/same");
        expect(&r, "HIT");
        assert_eq!(r.text(), host, "no entry crosses hosts");
    }
    // Port and letter case are not part of the host.
    let r = get(&s, "A.TEST:8080", "/same");
    expect(&r, "HIT");
    assert_eq!(r.text(), "a.test");
    assert_eq!(o.hits_path("/same"), 3);
}

#[test]
fn a_body_sent_with_a_cache_hit_is_never_read_as_a_request() {
    // CVE-2025-4366: a hit answered without consuming the request body left that body to be
    // parsed as the next request. Here each body is itself a request for /smuggled. strait
    // (Pingora 0.9.1) either drains the body and keeps the connection, or announces
    // `Connection: close` and closes it; in no case is /smuggled ever answered or fetched.
    let o = by_path("o", |req| {
        Reply::new(200)
            .header("Cache-Control", "max-age=600")
            .body(format!("path {}", req.target))
    });
    let s = start(SMALL_CACHE, &domain("drain.test", &o, ""), None);
    expect(&get(&s, "drain.test", "/cached"), "MISS");
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: drain.test\r\n\r\n";
    let framings = [
        format!("Content-Length: {}\r\n\r\n{smuggled}", smuggled.len()),
        format!(
            "Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
            smuggled.len()
        ),
    ];
    for framing in framings {
        let mut conn = Conn::connect(s.addr()).unwrap();
        let first = format!("GET /cached HTTP/1.1\r\nHost: drain.test\r\n{framing}");
        conn.send_raw(first.as_bytes()).unwrap();
        let r1 = conn.read_response("GET").unwrap();
        expect(&r1, "HIT");
        assert_eq!(r1.text(), "path /cached");
        // The client's next request on the same connection, if the server keeps it.
        let _ = conn.send_raw(b"GET /second HTTP/1.1\r\nHost: drain.test\r\n\r\n");
        match conn.read_response("GET") {
            Ok(r2) => {
                assert!(!r1.closes(), "a response after `Connection: close`");
                assert_eq!(
                    r2.text(),
                    "path /second",
                    "the body was parsed as a request"
                );
            }
            Err(e) => assert!(r1.closes(), "closed without announcing it: {e}"),
        }
        // Whatever happened, the server is fine for the next client.
        expect(&get(&s, "drain.test", "/cached"), "HIT");
    }
    assert!(!try_eventually(Duration::from_millis(300), || o
        .hits_path("/smuggled")
        > 0));
}

#[test]
fn limits_rules_and_reasons() {
    let o = by_path("o", |req| {
        let big = req.target.starts_with("/big");
        let body = if big {
            vec![b'b'; 4096]
        } else {
            b"small".to_vec()
        };
        let cc = if req.target == "/auth-public" {
            "public, max-age=600"
        } else {
            "max-age=600"
        };
        Reply::new(200).header("Cache-Control", cc).body(body)
    });
    let cache = "  max_bytes: 1MiB\n  max_entries: 100\n  max_entry_bytes: 1KiB\n  max_ttl: 2s\n  rules:\n    - { path_prefix: /nocache/, cache: false }\n    - { path_prefix: /big-ok/, max_entry_bytes: 8KiB }\n";
    let s = start(cache, &domain("lim.test", &o, ""), None);
    for _ in 0..2 {
        let r = get(&s, "lim.test", "/big");
        expect_not_stored(&r, "too-large");
        assert_eq!(
            r.body.len(),
            4096,
            "a too-large response still streams through whole"
        );
    }
    expect(&get(&s, "lim.test", "/big-ok/x"), "MISS");
    expect(&get(&s, "lim.test", "/big-ok/x"), "HIT");
    let off = get(&s, "lim.test", "/nocache/x");
    expect(&off, "BYPASS");
    assert_eq!(off.header("x-cache-reason"), Some("rule-off"));
    let auth = [("Authorization", "Bearer x")];
    for _ in 0..2 {
        let r = send(&s, "GET", "lim.test", "/auth", &auth);
        expect(&r, "MISS");
        assert_eq!(r.header("x-cache-reason"), Some("authorization"));
    }
    expect(&send(&s, "GET", "lim.test", "/auth-public", &auth), "MISS");
    expect(&send(&s, "GET", "lim.test", "/auth-public", &auth), "HIT");
    // max_ttl (2s) caps max-age=600.
    expect(&get(&s, "lim.test", "/capped"), "MISS");
    expect(&get(&s, "lim.test", "/capped"), "HIT");
    thread::sleep(Duration::from_millis(2300));
    expect(&get(&s, "lim.test", "/capped"), "EXPIRED");
    // Without X-Cache-Debug there is no reason header.
    let quiet =
        client::request(s.addr(), "GET", "/nocache/y", &[("Host", "lim.test")], b"").unwrap();
    assert_eq!(quiet.header("x-cache"), Some("BYPASS"));
    assert_eq!(quiet.header("x-cache-reason"), None);
}

#[test]
fn default_ttl_only_where_configured_and_off_domains_untouched() {
    let o = by_path("o", |_| Reply::new(200).body("silent origin"));
    let url = o.url();
    let domains = format!(
        "{}  - hosts: [ttl.test]\n    backends: [{{ addr: {url} }}]\n    cache: {{ default_ttl: 1m }}\n  - hosts: [off.test]\n    backends: [{{ addr: {url} }}]\n",
        domain("plain.test", &o, ""),
    );
    let s = start(SMALL_CACHE, &domains, None);
    expect(&get(&s, "plain.test", "/x"), "MISS");
    expect_not_stored(&get(&s, "plain.test", "/x"), "no-rule");
    expect(&get(&s, "ttl.test", "/x"), "MISS");
    expect(&get(&s, "ttl.test", "/x"), "HIT");
    let off = get(&s, "off.test", "/x");
    assert_eq!(off.status, 200);
    assert_eq!(
        off.header("x-cache"),
        None,
        "domains without cache get no X-Cache"
    );
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
    let s = start(cache, &domain("rate.test", &o, ""), None);
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

#[test]
fn a_url_remembered_as_uncacheable_is_cached_once_it_allows_it() {
    let cacheable = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = cacheable.clone();
    let o = by_path("o", move |_| {
        let cc = if flag.load(Ordering::SeqCst) {
            "max-age=600"
        } else {
            "no-store"
        };
        Reply::new(200).header("Cache-Control", cc).body(cc)
    });
    let s = start(SMALL_CACHE, &domain("learn.test", &o, ""), None);
    expect_not_stored(&get(&s, "learn.test", "/flip"), "no-store");
    let r = get(&s, "learn.test", "/flip");
    expect_not_stored(&r, "no-store");
    assert_eq!(
        r.header("x-cache"),
        Some("BYPASS"),
        "remembered as uncacheable"
    );
    cacheable.store(true, Ordering::SeqCst);
    let stored = get(&s, "learn.test", "/flip");
    assert_eq!(stored.text(), "max-age=600");
    assert_ne!(stored.header("x-cache"), Some("HIT"));
    let hit = get(&s, "learn.test", "/flip");
    expect(&hit, "HIT");
    assert_eq!(hit.text(), "max-age=600");
    assert_eq!(o.hits_path("/flip"), 3);
}
