//! Invalidation: unsafe methods drop the URL's entry; purge by object, domain or all.

use crate::admin::{json, Ports};
use crate::support::origin::Reply;

use super::{by_path, cached, expect, get, send, start, stats, SMALL_CACHE};

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
    let s = start(SMALL_CACHE, &[cached("inv.test", &o)], None);
    // RFC 9111 §4.4: every method not known to be safe, unknown ones included.
    for method in ["POST", "PUT", "DELETE", "PATCH", "M-SEARCH"] {
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
fn purge_by_object_domain_and_everything() {
    let o = by_path("o", |req| {
        Reply::new(200)
            .header("Cache-Control", "max-age=600")
            .body(req.target.clone())
    });
    let p = Ports::new();
    let s = start(
        SMALL_CACHE,
        &[cached("one.test", &o), cached("two.test", &o)],
        Some(&p),
    );
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
