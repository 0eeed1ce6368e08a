//! Cache purge and stats through the admin API.

use crate::support::{config, domains, Domain, Origin, Strait};

use super::{json, rr, Ports};

#[test]
fn purge_removes_objects_domains_and_everything() {
    let a = Origin::plain("a");
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}cache: {{ max_bytes: 8MiB, default_ttl: 1m }}\n{}",
        p.yaml(true),
        domains(&[
            rr("purge.test").origins(&[&a]).cache(),
            Domain::new("other.test").origins(&[&a]).cache(),
        ]),
    )));
    p.wait_up();
    let x_cache = |host: &str, path: &str| {
        let r = s.get(host, path);
        assert_eq!(r.status, 200);
        r.header("x-cache").unwrap_or("-").to_string()
    };
    let fill = || {
        for (h, path) in [
            ("purge.test", "/one"),
            ("purge.test", "/two"),
            ("other.test", "/one"),
        ] {
            x_cache(h, path);
            assert_eq!(x_cache(h, path), "HIT", "{h}{path} not cached");
        }
    };
    let purged = |query: &str| {
        let r = p.call("DELETE", &format!("/cache{query}"), "");
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        json(&r)["purged"].as_u64().expect("purged count")
    };
    fill();
    let st = json(&p.call("GET", "/cache/stats", ""));
    for k in [
        "entries",
        "bytes",
        "hits",
        "misses",
        "stale_served",
        "evictions",
    ] {
        assert!(st[k].is_u64(), "{k} missing in {st}");
    }
    assert_eq!(st["entries"], 3, "{st}");
    assert!(st["hits"].as_u64() >= Some(3), "{st}");

    // One object: only it goes.
    assert_eq!(purged("?domain=purge.test&path=/one&method=GET"), 1);
    assert_eq!(x_cache("purge.test", "/one"), "MISS");
    assert_eq!(x_cache("purge.test", "/two"), "HIT");
    assert_eq!(x_cache("other.test", "/one"), "HIT");
    // One domain: its objects, not the other domain's.
    assert_eq!(purged("?domain=purge.test"), 2);
    assert_eq!(x_cache("other.test", "/one"), "HIT");
    assert_eq!(x_cache("purge.test", "/two"), "MISS");
    // Everything.
    fill();
    assert_eq!(purged(""), 3);
    assert_eq!(json(&p.call("GET", "/cache/stats", ""))["entries"], 0);
    assert_eq!(purged(""), 0);
    // Unknown domains are an error, not a silent zero.
    let r = p.call("DELETE", "/cache?domain=nope.test", "");
    assert_eq!(r.status, 404, "{}", r.text());

    // The cache's verdicts are counted in the metrics, and its size is exported.
    let m = crate::metrics::scrape(&p);
    assert!(m.value("strait_cache_requests_total", &[("result", "hit")]) >= 6.0);
    assert!(m.value("strait_cache_requests_total", &[("result", "miss")]) >= 6.0);
    assert_eq!(m.value("strait_cache_entries", &[]), 0.0);
}
