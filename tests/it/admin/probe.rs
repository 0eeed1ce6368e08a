//! The probe listener: `/ready` waits for the first health round and drops on SIGTERM.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::support::client;
use crate::support::{config, domains, eventually_msg, Strait};

use super::{rr, Ports};

/// A backend that accepts connections (the kernel does) but never answers: its first health
/// check takes the whole timeout.
fn black_hole() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

#[test]
fn ready_waits_for_the_first_health_round_and_drops_on_sigterm() {
    let (_hole, hole) = black_hole();
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "server: {{ drain_delay: 5s, grace_period: 5s }}\n{}{}",
        p.yaml(true),
        domains(&[rr("ready.test")
            .backends(format!("[{{ addr: {hole} }}]"))
            .health_check("{ type: http, path: /health, interval: 10s, timeout: 2s }")])
    )));
    let started = Instant::now();
    eventually_msg(Duration::from_secs(5), "the probe listener", || {
        client::get(p.probe, "probe", "/live").is_ok()
    });
    let first = p.probe("/ready");
    assert_eq!(
        first.status,
        503,
        "ready {:?} after start, before the first health check could finish: {}",
        started.elapsed(),
        first.text()
    );
    assert!(first.text().contains("health"), "{}", first.text());
    assert_eq!(p.probe("/live").status, 200);
    eventually_msg(
        Duration::from_secs(6),
        "/ready 200 after the first round",
        || p.probe("/ready").status == 200,
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "ready before the 2s health check could have finished"
    );

    // SIGTERM: not ready any more, still live and serving during the drain delay.
    // SAFETY: kill(2) on the child we started.
    unsafe { libc::kill(s.pid() as i32, libc::SIGTERM) };
    eventually_msg(Duration::from_secs(2), "/ready 503 while draining", || {
        p.probe("/ready").status == 503
    });
    let r = p.probe("/ready");
    assert!(r.text().contains("draining"), "{}", r.text());
    assert_eq!(p.probe("/live").status, 200);
    assert_eq!(p.probe("/nope").status, 404);
}
