//! Active health checks: thresholds, the first result applying at once, TCP checks, and the
//! 503 when nothing healthy is left.

use std::time::{Duration, Instant};

use crate::support::{
    eventually_msg, names, send_many, try_eventually, Behaviour, Domain, Origin, Strait,
};

/// `hc.test`, round robin over `origins`; each test adds its `health_check`.
fn hc_test(origins: &[&Origin]) -> Domain {
    Domain::new("hc.test")
        .strategy("round_robin")
        .origins(origins)
}

/// Whether the next `n` requests are all served by `name`.
fn all_from(s: &Strait, name: &str, n: usize) -> bool {
    names(&send_many(s, "hc.test", "/", n))
        .iter()
        .all(|got| got == name)
}

/// Whether `name` serves any of the next `n` requests.
fn any_from(s: &Strait, name: &str, n: usize) -> bool {
    names(&send_many(s, "hc.test", "/", n))
        .iter()
        .any(|got| got == name)
}

#[test]
fn failing_backend_is_taken_out_then_brought_back() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let interval = Duration::from_millis(200);
    let (fail_threshold, success_threshold) = (3, 2);
    let s = Strait::start(
        &hc_test(&[&a, &b])
            .health_check(&format!(
                "{{ type: http, path: /health, interval: 200ms, timeout: 200ms, fail_threshold: {fail_threshold}, success_threshold: {success_threshold} }}"
            ))
            .config(),
    );
    // Start from a settled state: the first check result applies at once, so wait until
    // every backend passed two checks and both are in rotation.
    eventually_msg(Duration::from_secs(5), "two good checks on a and b", || {
        a.health_ok() >= 2 && b.health_ok() >= 2
    });
    eventually_msg(Duration::from_secs(5), "both backends serving", || {
        any_from(&s, "b", 4) && any_from(&s, "a", 4)
    });

    // Out: within interval × fail_threshold (plus slack), and not before fail_threshold
    // failed checks.
    let fails_before = b.health_fail();
    let t0 = Instant::now();
    b.set_healthy(false);
    eventually_msg(Duration::from_secs(5), "b taken out", || {
        all_from(&s, "a", 6)
    });
    let took = t0.elapsed();
    let failed = b.health_fail() - fails_before;
    assert!(
        failed >= fail_threshold,
        "b was taken out after only {failed} failed checks (fail_threshold {fail_threshold})"
    );
    let limit = interval * fail_threshold as u32 + Duration::from_millis(1500);
    assert!(
        took <= limit,
        "b taken out after {took:?} (limit {limit:?})"
    );

    // While out it gets no requests at all.
    let hits = b.hits();
    let got = names(&send_many(&s, "hc.test", "/", 20));
    assert!(got.iter().all(|n| n == "a"), "{got:?}");
    assert_eq!(b.hits(), hits, "an unhealthy backend received requests");

    // Back: after success_threshold good checks.
    let ok_before = b.health_ok();
    let t1 = Instant::now();
    b.set_healthy(true);
    eventually_msg(Duration::from_secs(5), "b back in rotation", || {
        any_from(&s, "b", 4)
    });
    let took = t1.elapsed();
    let passed = b.health_ok() - ok_before;
    assert!(
        passed >= success_threshold,
        "b came back after only {passed} good checks (success_threshold {success_threshold})"
    );
    let limit = interval * success_threshold as u32 + Duration::from_millis(1500);
    assert!(took <= limit, "b back after {took:?} (limit {limit:?})");
    let got = names(&send_many(&s, "hc.test", "/", 10));
    assert_eq!(
        got.iter().filter(|n| *n == "b").count(),
        5,
        "round robin over two healthy backends again: {got:?}"
    );
}

#[test]
fn first_check_result_applies_at_once() {
    let a = Origin::plain("a");
    let b = Origin::start("b", Behaviour::default().unhealthy());
    // With fail_threshold 5 × 400ms, counting failures from the start would keep b in for 2s.
    let s = Strait::start(
        &hc_test(&[&a, &b])
            .health_check("{ type: http, path: /health, interval: 400ms, timeout: 400ms, fail_threshold: 5, success_threshold: 1 }")
            .config(),
    );
    let started = Instant::now();
    eventually_msg(Duration::from_secs(5), "b's first health check", || {
        b.health_fail() >= 1
    });
    let out = try_eventually(Duration::from_millis(1200), || all_from(&s, "a", 6));
    assert!(
        out,
        "b (failing its very first check) still served requests {:?} after start; it had {} failed checks",
        started.elapsed(),
        b.health_fail()
    );
    assert!(
        b.health_fail() < 5,
        "measured too late to tell the first result from the threshold"
    );
    let hits = b.hits();
    assert!(all_from(&s, "a", 10));
    assert_eq!(b.hits(), hits);
}

#[test]
fn all_backends_unhealthy_gives_503_no_healthy_backend() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let s = Strait::start(
        &hc_test(&[&a, &b])
            .health_check("{ type: http, path: /health, interval: 200ms, timeout: 200ms, fail_threshold: 1, success_threshold: 1 }")
            .config(),
    );
    eventually_msg(Duration::from_secs(5), "a 200 first", || {
        s.get("hc.test", "/").status == 200
    });
    a.set_healthy(false);
    b.set_healthy(false);
    eventually_msg(Duration::from_secs(5), "a 503", || {
        s.get("hc.test", "/").status == 503
    });
    let (ha, hb) = (a.hits(), b.hits());
    for r in send_many(&s, "hc.test", "/", 5) {
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.header("x-strait-error"), Some("no-healthy-backend"));
        let ctype = r.header("content-type").unwrap_or_default();
        assert!(ctype.starts_with("text/plain"), "content-type {ctype:?}");
        assert!(!r.body.is_empty() && r.body.len() < 200, "{:?}", r.text());
    }
    assert_eq!(
        (a.hits(), b.hits()),
        (ha, hb),
        "no request reached a backend"
    );
    a.set_healthy(true);
    eventually_msg(Duration::from_secs(5), "a back", || {
        let r = s.get("hc.test", "/");
        r.status == 200 && r.text() == "a"
    });
}

#[test]
fn stopped_backends_give_503_once_checks_see_them_down() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let s = Strait::start(
        &hc_test(&[&a, &b])
            .health_check("{ type: http, path: /health, interval: 200ms, timeout: 200ms, fail_threshold: 1, success_threshold: 1 }")
            .config(),
    );
    eventually_msg(Duration::from_secs(5), "a 200 first", || {
        s.get("hc.test", "/").status == 200
    });
    a.stop();
    b.stop();
    eventually_msg(Duration::from_secs(5), "503 no-healthy-backend", || {
        let r = s.get("hc.test", "/");
        r.status == 503 && r.header("x-strait-error") == Some("no-healthy-backend")
    });
}

#[test]
fn tcp_check_takes_a_closed_port_out() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let s = Strait::start(
        &hc_test(&[&a, &b])
            .health_check("{ type: tcp, interval: 200ms, timeout: 200ms, fail_threshold: 2, success_threshold: 1 }")
            .config(),
    );
    eventually_msg(Duration::from_secs(5), "both backends serving", || {
        any_from(&s, "b", 4) && any_from(&s, "a", 4)
    });
    assert_eq!(b.health_checks(), 0, "a tcp check sends no HTTP request");
    b.stop();
    eventually_msg(Duration::from_secs(5), "b taken out", || {
        send_many(&s, "hc.test", "/", 6)
            .iter()
            .all(|r| r.status == 200 && r.text() == "a")
    });
    let got = send_many(&s, "hc.test", "/", 10);
    assert!(
        got.iter().all(|r| r.status == 200 && r.text() == "a"),
        "{:?}",
        got.iter().map(|r| (r.status, r.text())).collect::<Vec<_>>()
    );
}
