//! Retries on another backend (docs/balancing.md): connect failures for any method; an
//! idempotent request whose reused pooled connection was closed before any response byte;
//! nothing else, not a timeout, not anything the backend may have acted on. Within the
//! pool's retry budget.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::client::{self, Conn};
use crate::support::{
    backends, config, eventually_msg, names, send_many, served_by, tally, Behaviour, Domain,
    Origin, Strait,
};

/// `rt.test`, round robin over `origins` with a 1s connect timeout; each test adds its
/// `max_retries`.
fn rt_test(origins: &[&Origin]) -> Domain {
    Domain::new("rt.test")
        .strategy("round_robin")
        .origins(origins)
        .field("connect_timeout", "1s")
}

/// An origin that was started and stopped: its port now refuses connections.
fn dead_origin(name: &str) -> Origin {
    let o = Origin::plain(name);
    o.stop();
    o
}

#[test]
fn backend_killed_mid_loop_loses_no_get() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let s = Strait::start(&rt_test(&[&a, &b]).field("max_retries", "2").config());
    let mut conn = Conn::connect(s.addr()).expect("connect");
    let mut failures = Vec::new();
    let mut served = Vec::new();
    for i in 0..300 {
        if i == 100 {
            b.stop();
        }
        if conn.is_closed() {
            conn = Conn::connect(s.addr()).expect("reconnect");
        }
        match conn.get("rt.test", &format!("/n/{i}")) {
            Ok(r) if r.status == 200 => served.push(served_by(&r)),
            Ok(r) => failures.push(format!(
                "#{i}: {} {:?} {}",
                r.status,
                r.header("x-strait-error"),
                r.text()
            )),
            Err(e) => {
                failures.push(format!("#{i}: {e}"));
                conn = Conn::connect(s.addr()).expect("reconnect");
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed GETs: {failures:?}",
        failures.len()
    );
    let before = tally(served[..100].iter().cloned());
    assert_eq!(
        before.get("b"),
        Some(&50),
        "both served before the kill: {before:?}"
    );
    assert!(
        served[100..].iter().all(|n| n == "a"),
        "only a can answer after b died"
    );
}

#[test]
fn get_in_flight_on_a_dying_backend_is_not_retried() {
    let a = Origin::plain("a");
    let b = Arc::new(Origin::start(
        "b",
        Behaviour::default().delay(Duration::from_secs(3)),
    ));
    let s = Arc::new(Strait::start(
        &rt_test(&[&a, &b])
            .field("max_retries", "1")
            .field("read_timeout", "10s")
            .config(),
    ));
    let killed = Arc::new(AtomicBool::new(false));
    let client = {
        let (s, killed) = (Arc::clone(&s), Arc::clone(&killed));
        thread::spawn(move || {
            let mut out = Vec::new();
            let mut after_kill = 0;
            // Bounded: at most 20 requests, and 4 once b is dead.
            for i in 0..20 {
                if killed.load(Ordering::SeqCst) {
                    after_kill += 1;
                    if after_kill > 4 {
                        break;
                    }
                }
                let t = Instant::now();
                let r = client::get(s.addr(), "rt.test", &format!("/n/{i}"));
                out.push((r.map(|r| (r.status, served_by(&r))), t.elapsed()));
            }
            out
        })
    };
    eventually_msg(Duration::from_secs(5), "a request in flight on b", || {
        b.in_flight() == 1
    });
    b.stop();
    killed.store(true, Ordering::SeqCst);
    let results = client.join().expect("client thread");
    // The backend had the request when it died: it may have acted on it, so the client
    // gets the failure (at once, not after b's delay), and only that one request fails.
    let mut failed = 0;
    for (i, (r, took)) in results.iter().enumerate() {
        match r {
            Ok((200, name)) => assert_eq!(name, "a", "request {i}: only a can answer"),
            Ok((502, _)) => {
                failed += 1;
                assert!(
                    *took < Duration::from_millis(2500),
                    "request {i} took {took:?}: the failure was not answered at once"
                );
            }
            other => panic!("request {i} failed: {other:?}\n{}", s.stderr()),
        }
    }
    assert_eq!(failed, 1, "exactly the request in flight on b failed");
    assert_eq!(b.hits(), 1, "exactly one request reached b");
}

#[test]
fn dropped_requests_are_not_retried_and_the_backend_is_ejected() {
    let a = Origin::plain("a");
    let d = Origin::start("d", Behaviour::default().drop_requests());
    let s = Strait::start(
        &rt_test(&[&a, &d])
            .field("max_retries", "1")
            .field(
                "passive_health",
                "{ consecutive_failures: 3, ejection_time: 1m }",
            )
            .config(),
    );
    let mut failed = 0;
    for i in 0..20 {
        let r = client::request(
            s.addr(),
            if i % 2 == 0 { "GET" } else { "POST" },
            "/orders",
            &[("Host", "rt.test")],
            b"x",
        )
        .expect("a request through strait");
        match r.status {
            200 => assert_eq!(served_by(&r), "a"),
            502 => {
                assert_eq!(r.header("x-strait-error"), Some("upstream-failed"));
                failed += 1;
            }
            other => panic!("request {i}: unexpected {other}: {}", r.text()),
        }
    }
    // Each request that reached d failed (GET or POST alike: d may have acted on it), and
    // after 3 failures in a row d was ejected and got nothing more.
    assert_eq!(d.hits(), 3, "d is ejected after consecutive_failures");
    assert_eq!(failed, 3);
    assert_eq!(a.hits(), 17, "no request was sent twice");
    assert!(s.stderr().contains("ejected for"), "{}", s.stderr());
}

#[test]
fn a_stale_pooled_connection_is_retried_on_another_backend() {
    let a = Origin::plain("a");
    let stale = Origin::start("stale", Behaviour::default().drop_reused());
    let s = Strait::start(
        &rt_test(&[&stale, &a])
            .field("max_retries", "1")
            .field("passive_health", "false")
            .config(),
    );
    // One keep-alive connection from the client, so requests alternate over the pool and
    // strait reuses its pooled connection to `stale` from the second visit on.
    let got = send_many(&s, "rt.test", "/", 10);
    for r in &got {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(
        stale.stale_drops() >= 1,
        "no request went out on a reused connection to stale"
    );
    assert_eq!(
        got.iter().filter(|r| served_by(r) == "a").count(),
        10 - stale.hits(),
        "every request the stale connection dropped was answered by a"
    );
}

#[test]
fn retries_stay_within_the_budget() {
    let a = Origin::plain("a");
    let dead = dead_origin("dead");
    let ports = crate::admin::Ports::new();
    let s = Strait::start(&format!(
        "{}{}",
        ports.yaml(true),
        rt_test(&[&dead, &a])
            .field("max_retries", "1")
            .field("passive_health", "false")
            .field("retry_budget", "{ percent: 20, min_per_second: 0 }")
            .config()
    ));
    ports.wait_up();
    let got = send_many(&s, "rt.test", "/", 40);
    let failed = got.iter().filter(|r| r.status == 502).count();
    assert_eq!(failed + got.iter().filter(|r| r.status == 200).count(), 40);
    let m = crate::metrics::scrape(&ports);
    let retried = m.value("strait_retries_total", &[("outcome", "retried")]) as usize;
    let refused = m.value("strait_retries_total", &[("outcome", "budget_exhausted")]) as usize;
    // Every first attempt on the dead backend wanted a retry; the budget allowed at most
    // 20 % of the 40 requests, and every refused retry is a 502.
    assert!(
        retried <= 8,
        "{retried} retries for 40 requests: the budget is 20 %"
    );
    assert!(refused >= 1, "no retry was refused");
    assert_eq!(refused, failed, "each refused retry is a failed request");
}

#[test]
fn refused_connections_are_retried_for_any_method() {
    let a = Origin::plain("a");
    let dead = dead_origin("dead");
    let s = Strait::start(&rt_test(&[&dead, &a]).field("max_retries", "1").config());
    let got = names(&send_many(&s, "rt.test", "/", 20));
    assert!(got.iter().all(|n| n == "a"), "{got:?}");
    for i in 0..6 {
        let r = client::request(s.addr(), "POST", "/p", &[("Host", "rt.test")], b"x")
            .expect("POST through strait");
        assert_eq!(
            (r.status, served_by(&r)),
            (200, "a".to_string()),
            "POST {i}: a refused connect sent nothing, so it is retried: {}",
            r.text()
        );
    }
}

#[test]
fn without_retries_a_refused_backend_gives_502() {
    let a = Origin::plain("a");
    let dead = dead_origin("dead");
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [one.test]
    backends: {}
    connect_timeout: 1s
    max_retries: 0
  - hosts: [two.test]
    load_balancer: round_robin
    backends: {}
    connect_timeout: 1s
    max_retries: 0
",
        backends(&[&dead]),
        backends(&[&dead, &a])
    )));
    let r = s.get("one.test", "/");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-strait-error"), Some("upstream-failed"));
    let ctype = r.header("content-type").unwrap_or_default();
    assert!(ctype.starts_with("text/plain"), "content-type {ctype:?}");
    assert!(!r.body.is_empty() && r.body.len() < 200, "{:?}", r.text());

    let got = send_many(&s, "two.test", "/", 10);
    let failed = got.iter().filter(|r| r.status == 502).count();
    let ok = got.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok + failed, 10);
    assert!(
        failed >= 1,
        "max_retries: 0 must not retry, yet every request succeeded"
    );
}

/// After an error page on a keep-alive connection, strait either says `Connection: close`
/// (and closes), or keeps serving on that connection. Advertising keep-alive and then
/// closing breaks clients that do not resend (and no client may resend a POST).
#[test]
fn error_responses_keep_alive_or_close_cleanly() {
    let dead = dead_origin("dead");
    let down = dead_origin("down");
    let slow = Origin::start("slow", Behaviour::default().delay(Duration::from_secs(3)));
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [dead.test]
    backends: {}
    max_retries: 0
  - hosts: [down.test]
    backends: {}
    health_check: {{ type: tcp, interval: 200ms, timeout: 200ms, fail_threshold: 1, success_threshold: 1 }}
  - hosts: [slow.test]
    backends: {}
    read_timeout: 200ms
    max_retries: 0
",
        backends(&[&dead]),
        backends(&[&down]),
        backends(&[&slow])
    )));
    eventually_msg(Duration::from_secs(5), "down.test answering 503", || {
        s.get("down.test", "/").status == 503
    });
    let mut broken = Vec::new();
    for (host, status) in [
        ("nope.test", 404),
        ("dead.test", 502),
        ("down.test", 503),
        ("slow.test", 504),
    ] {
        let mut conn = Conn::connect(s.addr()).expect("connect");
        let r = conn.get(host, "/first").expect("first request");
        assert_eq!(r.status, status, "{host}: {}", r.text());
        if r.closes() {
            continue;
        }
        match conn.get(host, "/second") {
            Ok(r) => assert_eq!(r.status, status, "{host}: {}", r.text()),
            Err(e) => broken.push(format!(
                "{host}: the {status} said `Connection: {}`, then the next request failed: {e}",
                r.header("connection").unwrap_or("(none, i.e. keep-alive)")
            )),
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}
