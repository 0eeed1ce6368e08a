//! Adding a backend at runtime: it serves at once, or only after a good health check when
//! the domain checks its backends.

use std::time::{Duration, Instant};

use crate::support::{
    config, domains, eventually_msg, names, send_many, Behaviour, Origin, Strait,
};

use super::{assert_all_ok, find, json, listed, rr, Load, Ports};

#[test]
fn added_backend_takes_traffic_only_after_a_good_health_check() {
    let a = Origin::plain("a");
    let c = Origin::start("c", Behaviour::default().unhealthy());
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}{}",
        p.yaml(true),
        domains(&[rr("add.test").origins(&[&a]).health_check(
            "{ type: http, path: /health, interval: 500ms, timeout: 500ms, fail_threshold: 3, success_threshold: 1 }"
        )])
    )));
    p.wait_up();
    let load = Load::start(s.addr(), "add.test", 3);
    eventually_msg(Duration::from_secs(5), "load reaching a", || a.hits() >= 20);

    let (a_at_add, ok_at_add) = (a.hits(), load.answered());
    let r = p.call(
        "POST",
        "/backends?domain=add.test",
        &format!("{{\"addr\": \"{}\", \"weight\": 2}}", c.url()),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let v = json(&r);
    assert_eq!(
        v["backend"]["healthy"], false,
        "a new checked backend starts out: {v}"
    );
    assert_eq!(v["backend"]["weight"], 2);
    assert_eq!(v["persisted"], false);

    // It is probed at once, fails, and gets nothing meanwhile.
    // Generous: a's own checks must not time out on a loaded machine, and c needs three.
    eventually_msg(Duration::from_secs(10), "c's first health checks", || {
        c.health_fail() >= 3
    });
    assert_eq!(c.hits(), 0, "c got requests before passing a health check");
    // ... while the load kept going (through a), so c's silence means something.
    let (a_served, answered) = (a.hits() - a_at_add, load.answered() - ok_at_add);
    assert!(
        a_served > 0 && answered > 0,
        "the load stalled while c failed its checks: a served {a_served}, {answered} answered 200"
    );
    let entry = find(&listed(&p, "domain=add.test"), &c.url()).clone();
    assert_eq!(entry["healthy"], false, "{entry}");

    let switched = Instant::now();
    c.set_healthy(true);
    eventually_msg(
        Duration::from_secs(5),
        "c taking traffic once healthy",
        || c.hits() >= 10,
    );
    let results = load.finish();
    let n = assert_all_ok(&results);
    assert!(
        c.requests().iter().all(|r| r.at > switched),
        "c served a request before its first good health check"
    );
    assert!(c.health_ok() >= 1);
    let served_c = results
        .iter()
        .filter(|r| matches!(r, Ok((_, by)) if by == "c"))
        .count();
    assert!(served_c >= 10, "{served_c} of {n} served by c");
    assert_eq!(
        find(&listed(&p, "domain=add.test"), &c.url())["healthy"],
        true
    );
}

#[test]
fn added_backend_without_health_check_serves_at_once() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}{}",
        p.yaml(true),
        domains(&[rr("nocheck.test").origins(&[&a])])
    )));
    p.wait_up();
    let r = p.call(
        "POST",
        "/backends?domain=nocheck.test",
        &format!("{{\"addr\": \"{}\"}}", b.url()),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(json(&r)["backend"]["healthy"], true);
    let got = names(&send_many(&s, "nocheck.test", "/", 4));
    assert_eq!(
        got,
        vec!["a", "b", "a", "b"],
        "round robin over both right away"
    );
}
