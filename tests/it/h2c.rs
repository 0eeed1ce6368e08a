//! `h2c://` backends: strait speaks HTTP/2 without TLS to them (prior knowledge), keeps the
//! connection for many requests, and health-checks them over HTTP/2 too.

use std::time::Duration;

use crate::support::h2c_origin::H2cOrigin;
use crate::support::{config, eventually_msg, send_many, Strait};

fn start(origin: &H2cOrigin, extra: &str) -> Strait {
    Strait::start(&config(&format!(
        "domains:\n  - hosts: [h2.test]\n    backends:\n      - {{ addr: \"{}\" }}\n{extra}",
        origin.url()
    )))
}

#[test]
fn requests_reach_an_h2c_backend_over_one_connection() {
    let origin = H2cOrigin::start();
    let s = start(&origin, "");
    let r = s.get("h2.test", "/hello");
    assert_eq!(r.status, 200, "{r:?}\n{}", s.stderr());
    assert_eq!(r.header("x-proto"), Some("h2"));
    assert_eq!(r.text(), "h2c:/hello");

    let responses = send_many(&s, "h2.test", "/again", 20);
    assert!(responses
        .iter()
        .all(|r| r.status == 200 && r.text() == "h2c:/again"));
    assert_eq!(origin.hits("/again"), 20);
    // HTTP/2 multiplexes: one pooled connection carries the sequential requests.
    assert!(
        origin.connections() <= 2,
        "{} connections for 21 requests",
        origin.connections()
    );
}

#[test]
fn h2c_backends_are_health_checked_over_http2() {
    let origin = H2cOrigin::start();
    let s = start(
        &origin,
        "    health_check: { type: http, path: /health, interval: 200ms, timeout: 200ms }\n",
    );
    eventually_msg(
        Duration::from_secs(10),
        "two health checks over h2c",
        || origin.hits("/health") >= 2,
    );
    let r = s.get("h2.test", "/after-checks");
    assert_eq!(
        r.status, 200,
        "a checked h2c backend must stay in rotation: {r:?}"
    );
    assert_eq!(r.text(), "h2c:/after-checks");
}
