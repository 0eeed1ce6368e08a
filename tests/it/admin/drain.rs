//! Removing and draining a backend under load: requests in flight finish, no new ones
//! arrive, and a drained backend can come back.

use std::thread;
use std::time::Duration;

use crate::support::{
    config, domains, eventually_msg, names, send_many, try_eventually, Behaviour, Origin, Strait,
};

use super::{addrs, assert_all_ok, enc, find, json, listed, rr, Load, Ports};

#[test]
fn removed_backend_finishes_in_flight_requests_with_zero_failures() {
    let a = Origin::plain("a");
    let b = Origin::start("b", Behaviour::default().delay(Duration::from_millis(150)));
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}{}",
        p.yaml(true),
        domains(&[rr("rm.test").origins(&[&a, &b])])
    )));
    p.wait_up();
    let load = Load::start(s.addr(), "rm.test", 6);
    eventually_msg(Duration::from_secs(5), "requests in flight on b", || {
        b.in_flight() >= 2
    });
    let r = p.call(
        "DELETE",
        &format!("/backends?domain=rm.test&addr={}", enc(&b.url())),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    let in_flight = v["removed"]["active"].as_u64().unwrap_or(0);
    assert!(
        in_flight >= 1,
        "no request was in flight on b at removal: {v}"
    );
    assert_eq!(v["persisted"], false);
    // Requests already on b finish there; nothing new goes to it.
    eventually_msg(
        Duration::from_secs(5),
        "b's in-flight requests done",
        || b.in_flight() == 0,
    );
    let (b_hits, a_hits, ok_before) = (b.hits(), a.hits(), load.answered());
    thread::sleep(Duration::from_millis(500));
    let (a_served, answered) = (a.hits() - a_hits, load.answered() - ok_before);
    let results = load.finish();
    let n = assert_all_ok(&results);
    assert_eq!(b.hits(), b_hits, "b received requests after its removal");
    // The load kept going through a in that window, so b's silence means something.
    assert!(
        a_served > 0 && answered > 0,
        "the load stalled after b's removal: a served {a_served}, {answered} answered 200"
    );
    assert_eq!(addrs(&listed(&p, "domain=rm.test")), vec![a.url()]);
    let by_b = results
        .iter()
        .filter(|r| matches!(r, Ok((_, by)) if by == "b"))
        .count();
    eprintln!(
        "remove under load: {n} requests, 0 failed, {by_b} served by b ({in_flight} in flight at removal)"
    );
}

#[test]
fn drained_backend_gets_no_new_requests_and_comes_back() {
    let a = Origin::plain("a");
    let b = Origin::start("b", Behaviour::default().delay(Duration::from_millis(300)));
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}{}",
        p.yaml(true),
        domains(&[rr("drain.test").origins(&[&a, &b])])
    )));
    p.wait_up();
    let load = Load::start(s.addr(), "drain.test", 4);
    eventually_msg(Duration::from_secs(5), "a request in flight on b", || {
        b.in_flight() >= 1
    });
    let q = format!("/backends/enabled?domain=drain.test&addr={}", enc(&b.url()));
    let r = p.call("PUT", &q, "{\"enabled\": false}");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    assert_eq!(v["backend"]["enabled"], false);
    assert_eq!(v["changed"], true);
    // Requests that had picked b before the drain finish there; then no new one arrives.
    eventually_msg(
        Duration::from_secs(5),
        "b's active count draining to 0",
        || find(&listed(&p, "domain=drain.test"), &b.url())["active"] == 0,
    );
    let (hits_at_drain, a_at_drain, ok_at_drain) = (b.hits(), a.hits(), load.answered());
    thread::sleep(Duration::from_millis(500));
    let (a_served, answered) = (a.hits() - a_at_drain, load.answered() - ok_at_drain);
    assert_eq!(
        b.hits(),
        hits_at_drain,
        "a drained backend got new requests"
    );
    // The load kept going through a in that window, so b's silence means something.
    assert!(
        a_served > 0 && answered > 0,
        "the load stalled after b's drain: a served {a_served}, {answered} answered 200"
    );
    let results = load.finish();
    assert_all_ok(&results);
    let entry = find(&listed(&p, "domain=drain.test"), &b.url()).clone();
    assert_eq!(entry["enabled"], false);
    assert_eq!(entry["healthy"], true);

    // Drained is still a member: undrain brings it back.
    let r = p.call("PUT", &q, "{\"enabled\": true}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(try_eventually(Duration::from_secs(5), || {
        names(&send_many(&s, "drain.test", "/", 4)).contains(&"b".to_string())
    }));
    // Repeating a state is fine and says nothing changed.
    let r = p.call("PUT", &q, "{\"enabled\": true}");
    assert_eq!(json(&r)["changed"], false);
}
