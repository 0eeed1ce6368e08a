//! Freshness: each header that makes a response fresh, `Age`, and revalidation with 304.

use std::thread;
use std::time::{Duration, SystemTime};

use crate::support::origin::{Reply, Seen};

use super::{
    by_path, cached, expect, expect_not_stored, get, header, http_date, start, SMALL_CACHE,
};

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
    let s = start(&cache, &[cached("fresh.test", &o)], None);
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
    let s = start(SMALL_CACHE, &[cached("age.test", &o)], None);
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
    let s = start(SMALL_CACHE, &[cached("reval.test", &o)], None);
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

/// RFC 9213: `Strait-Cache-Control`, then `CDN-Cache-Control`, decide for strait's cache over
/// `Cache-Control`, and clients get neither; an `Age` list counts by its first member.
#[test]
fn targeted_cache_control_and_age_lists() {
    let o = by_path("o", |req| {
        let r = Reply::new(200).body(format!("{} {:?}", req.target, req.at));
        match req.target.as_str() {
            "/cdn" => r
                .header("Cache-Control", "no-store")
                .header("CDN-Cache-Control", "max-age=600"),
            "/strait" => r
                .header("Cache-Control", "max-age=600")
                .header("CDN-Cache-Control", "max-age=600")
                .header("Strait-Cache-Control", "no-store"),
            "/aged" => r
                .header("Cache-Control", "max-age=100")
                .header("Age", "7200, 0"),
            _ => r,
        }
    });
    let s = start(SMALL_CACHE, &[cached("t.test", &o)], None);
    let first = get(&s, "t.test", "/cdn");
    expect(&first, "MISS");
    assert_eq!(first.header("cache-control"), Some("no-store"));
    assert_eq!(first.header("cdn-cache-control"), None);
    let hit = get(&s, "t.test", "/cdn");
    expect(&hit, "HIT");
    assert_eq!(hit.header("cdn-cache-control"), None);
    assert_eq!(hit.body, first.body);

    expect_not_stored(&get(&s, "t.test", "/strait"), "no-store");
    let again = get(&s, "t.test", "/strait");
    assert_ne!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.header("strait-cache-control"), None);
    assert_eq!(again.header("cache-control"), Some("max-age=600"));
    assert_eq!(o.hits_path("/strait"), 2);

    // Age 7200 against max-age 100: already stale when it arrived, so not served as a hit.
    get(&s, "t.test", "/aged");
    assert_ne!(get(&s, "t.test", "/aged").header("x-cache"), Some("HIT"));
}
