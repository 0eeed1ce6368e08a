//! Upstream read timeouts: 504 `upstream-timeout`, without waiting for the slow origin.

use std::time::{Duration, Instant};

use crate::support::{config, Behaviour, Origin, Strait};

#[test]
fn origin_slower_than_read_timeout_gives_504() {
    let slow = Origin::start("slow", Behaviour::default().delay(Duration::from_secs(4)));
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [slow.test]
    backends: [{{ addr: {} }}]
    read_timeout: 300ms
    max_retries: 0
",
        slow.url()
    )));
    let t = Instant::now();
    let r = s.get("slow.test", "/");
    let took = t.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.header("x-strait-error"), Some("upstream-timeout"));
    let ctype = r.header("content-type").unwrap_or_default();
    assert!(ctype.starts_with("text/plain"), "content-type {ctype:?}");
    assert!(!r.body.is_empty() && r.body.len() < 200, "{:?}", r.text());
    assert!(
        took >= Duration::from_millis(250),
        "answered after {took:?}, before the 300ms timeout"
    );
    assert!(
        took < Duration::from_millis(2500),
        "answered after {took:?}: the timeout did not fire"
    );
    assert_eq!(slow.hits(), 1);
}

#[test]
fn origin_within_read_timeout_is_served() {
    let o = Origin::start("o", Behaviour::default().delay(Duration::from_millis(200)));
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [ok.test]
    backends: [{{ addr: {} }}]
    read_timeout: 3s
",
        o.url()
    )));
    let r = s.get("ok.test", "/");
    assert_eq!((r.status, r.text().as_str()), (200, "o"));
}

#[test]
fn route_read_timeout_overrides_the_domain() {
    let o = Origin::start("o", Behaviour::default().delay(Duration::from_millis(700)));
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [mixed.test]
    backends: [{{ addr: {} }}]
    read_timeout: 250ms
    max_retries: 0
    routes:
      - {{ path_prefix: /reports/, read_timeout: 5s }}
",
        o.url()
    )));
    let r = s.get("mixed.test", "/fast");
    assert_eq!(r.status, 504, "the domain's 250ms applies: {}", r.text());
    assert_eq!(r.header("x-strait-error"), Some("upstream-timeout"));
    let r = s.get("mixed.test", "/reports/q3");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "o"),
        "the route's 5s applies"
    );
}
