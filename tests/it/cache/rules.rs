//! What is stored and why not: size limits, rules, `Authorization`, `max_ttl`, `default_ttl`,
//! and URLs remembered as uncacheable.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::support::client;
use crate::support::origin::Reply;
use crate::support::Domain;

use super::{by_path, cached, expect, expect_not_stored, get, send, start, SMALL_CACHE};

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
    let s = start(cache, &[cached("lim.test", &o)], None);
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
    let domains = [
        cached("plain.test", &o),
        Domain::new("ttl.test")
            .origins(&[&o])
            .field("cache", "{ default_ttl: 1m }"),
        Domain::new("off.test").origins(&[&o]),
    ];
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
    let s = start(SMALL_CACHE, &[cached("learn.test", &o)], None);
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
