//! Serving stale: `stale-while-revalidate` and `stale-if-error`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::support::eventually_msg;
use crate::support::origin::Reply;

use super::{by_path, cached, expect, get, start, SMALL_CACHE};

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
    let s = start(SMALL_CACHE, &[cached("swr.test", &o)], None);
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
        &[cached("sie.test", &o)
            .field("connect_timeout", "1s")
            .field("max_retries", "0")],
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

/// stale-if-error also covers an origin that takes the request and closes the connection
/// without a byte of response.
#[test]
fn stale_if_error_covers_a_close_before_the_response() {
    let o = by_path("o", |_| {
        Reply::new(200)
            .header("Cache-Control", "max-age=1")
            .body("kept")
    });
    let cache = format!("{SMALL_CACHE}  stale_if_error: 1m\n");
    let s = start(&cache, &[cached("sie.test", &o)], None);
    expect(&get(&s, "sie.test", "/page"), "MISS");
    thread::sleep(Duration::from_millis(1300));
    o.set_drop_requests(true);
    let r = get(&s, "sie.test", "/page");
    expect(&r, "STALE");
    assert_eq!(r.text(), "kept");
    assert!(o.hits() >= 2, "the origin was asked and closed");
}
