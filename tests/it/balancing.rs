//! The five balancing strategies, measured at real origins.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::support::client::{self, Conn};
use crate::support::{
    eventually_msg, names, send_many, served_by, tally, weighted_backends, Behaviour, Domain,
    Origin, Strait,
};

/// `lb.test` balanced with `strategy`; each test adds its backends.
fn lb_test(strategy: &str) -> Domain {
    Domain::new("lb.test").strategy(strategy)
}

fn count(t: &BTreeMap<String, usize>, name: &str) -> usize {
    t.get(name).copied().unwrap_or(0)
}

#[track_caller]
fn assert_within(t: &BTreeMap<String, usize>, name: &str, expected: f64, n: usize) {
    let got = count(t, name) as f64;
    let slack = 0.05 * n as f64;
    assert!(
        (got - expected).abs() <= slack,
        "{name}: {got} of {n}, expected {expected} ± {slack} (all: {t:?})"
    );
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Which origin serves client IP `ip` (fresh connection from that address).
fn served_from(s: &Strait, ip: IpAddr) -> String {
    let r = client::get_from(ip, s.addr(), "lb.test", "/")
        .unwrap_or_else(|e| panic!("GET from {ip} failed: {e}\n{}", s.stderr()));
    assert_eq!(r.status, 200, "GET from {ip}: {}", r.text());
    served_by(&r)
}

#[test]
fn round_robin_splits_exactly_evenly() {
    let (a, b, c) = (Origin::plain("a"), Origin::plain("b"), Origin::plain("c"));
    let s = Strait::start(&lb_test("round_robin").origins(&[&a, &b, &c]).config());
    let got = names(&send_many(&s, "lb.test", "/", 300));
    let t = tally(got.iter().cloned());
    assert_eq!(
        (count(&t, "a"), count(&t, "b"), count(&t, "c")),
        (100, 100, 100),
        "{t:?}"
    );
    assert_eq!((a.hits(), b.hits(), c.hits()), (100, 100, 100));
}

#[test]
fn weighted_round_robin_is_smooth_and_exact() {
    let (a, b, c) = (Origin::plain("a"), Origin::plain("b"), Origin::plain("c"));
    let s = Strait::start(
        &lb_test("weighted_round_robin")
            .backends(weighted_backends(&[(&a, 5), (&b, 1), (&c, 1)]))
            .config(),
    );
    let first = names(&send_many(&s, "lb.test", "/", 14));
    let cycle = ["a", "a", "b", "a", "c", "a", "a"];
    assert_eq!(
        first[..7],
        cycle,
        "smooth order from a fresh start (a weight-5 backend must not take 5 in a row)"
    );
    assert_eq!(first[7..], cycle, "the cycle repeats");
    let n = 700;
    let t = tally(names(&send_many(&s, "lb.test", "/", n)));
    assert_within(&t, "a", 500.0, n);
    assert_within(&t, "b", 100.0, n);
    assert_within(&t, "c", 100.0, n);
}

#[test]
fn random_is_weighted_and_not_a_fixed_pattern() {
    let (a, b) = (Origin::plain("a"), Origin::plain("b"));
    let s = Strait::start(
        &lb_test("random")
            .backends(weighted_backends(&[(&a, 3), (&b, 1)]))
            .config(),
    );
    let n = 1000;
    let got = names(&send_many(&s, "lb.test", "/", n));
    let t = tally(got.iter().cloned());
    assert_within(&t, "a", 750.0, n);
    assert_within(&t, "b", 250.0, n);
    // With independent picks about 1 in 16 pairs is b,b (≈60 here); any deterministic
    // interleaving of 3:1 has none.
    let bb = got
        .windows(2)
        .filter(|w| w[0] == "b" && w[1] == "b")
        .count();
    assert!(bb > 0, "no two consecutive picks of b in {n}: not random");
}

#[test]
fn least_connections_gives_the_slow_backend_fewer_requests() {
    let slow = Arc::new(Origin::start(
        "slow",
        Behaviour::default().delay(Duration::from_millis(400)),
    ));
    let fast = Arc::new(Origin::plain("fast"));
    let s = Arc::new(Strait::start(
        &lb_test("least_connections")
            .origins(&[&slow, &fast])
            .field("read_timeout", "10s")
            .config(),
    ));
    let clients = 6;
    let per_client = 12;
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let s = Arc::clone(&s);
            thread::spawn(move || {
                let mut conn = Conn::connect(s.addr()).expect("connect");
                let mut got = Vec::new();
                for _ in 0..per_client {
                    if conn.is_closed() {
                        conn = Conn::connect(s.addr()).expect("reconnect");
                    }
                    let r = conn.get("lb.test", "/").expect("GET through strait");
                    got.push(served_by(&r));
                }
                got
            })
        })
        .collect();
    let all: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect();
    let t = tally(all.iter().cloned());
    let total = clients * per_client;
    assert_eq!(
        count(&t, "slow") + count(&t, "fast"),
        total,
        "every request answered by an origin: {t:?}"
    );
    // Round robin would give the slow backend half; least-connections sends new requests to
    // the fast one while the slow one is busy.
    assert!(
        count(&t, "slow") * 4 <= total,
        "slow backend got {} of {total} requests: {t:?}",
        count(&t, "slow")
    );
}

#[test]
fn ip_hash_sticks_each_client_ip_to_one_backend() {
    let (a, b, c) = (Origin::plain("a"), Origin::plain("b"), Origin::plain("c"));
    let s = Strait::start(&lb_test("ip_hash").origins(&[&a, &b, &c]).config());
    // 127.0.0.1: on one keep-alive connection and on fresh connections.
    let mut seen: BTreeSet<String> = names(&send_many(&s, "lb.test", "/", 15))
        .into_iter()
        .collect();
    for _ in 0..15 {
        seen.insert(served_by(&s.get("lb.test", "/")));
    }
    assert_eq!(seen.len(), 1, "127.0.0.1 was spread over {seen:?}");
    // Thirty more client addresses, four fresh connections each.
    let mut owners = BTreeSet::new();
    for last in 10..40 {
        let ip = loopback(last);
        let got: BTreeSet<String> = (0..4).map(|_| served_from(&s, ip)).collect();
        assert_eq!(got.len(), 1, "client {ip} was spread over {got:?}");
        owners.extend(got);
    }
    assert!(
        owners.len() >= 2,
        "30 client IPs all hashed to {owners:?}: the client address is not used"
    );
}

/// Client IP → backend for 127.0.0.{first..first+n}.
fn ip_map(s: &Strait, first: u8, n: u8) -> BTreeMap<IpAddr, String> {
    (first..first + n)
        .map(|last| (loopback(last), served_from(s, loopback(last))))
        .collect()
}

#[test]
fn ip_hash_moves_only_the_clients_of_a_backend_taken_out_by_health_checks() {
    let (a, b, c) = (Origin::plain("a"), Origin::plain("b"), Origin::plain("c"));
    let origins = [&a, &b, &c];
    let s = Strait::start(
        &lb_test("ip_hash")
            .origins(&origins)
            .health_check("{ type: http, path: /health, interval: 200ms, timeout: 200ms, fail_threshold: 2, success_threshold: 1 }")
            .config(),
    );
    // Measure once the first health round has passed for everyone: the first result
    // applies at once, so the map is only stable from then on.
    eventually_msg(
        Duration::from_secs(5),
        "two good checks on every backend",
        || origins.iter().all(|o| o.health_ok() >= 2),
    );
    let before = ip_map(&s, 50, 40);
    assert_eq!(before, ip_map(&s, 50, 40), "the mapping is stable");
    let per_backend = tally(before.values().cloned());
    // The backend with the most clients is taken out.
    let (victim_name, _) = per_backend
        .iter()
        .max_by_key(|(_, n)| **n)
        .expect("some clients");
    let victim = origins
        .iter()
        .find(|o| o.name() == victim_name)
        .expect("victim origin");
    victim.set_healthy(false);
    let moved: Vec<IpAddr> = before
        .iter()
        .filter(|(_, o)| *o == victim_name)
        .map(|(ip, _)| *ip)
        .collect();
    eventually_msg(
        Duration::from_secs(5),
        "health checks to take the victim out",
        || moved.iter().all(|ip| served_from(&s, *ip) != *victim_name),
    );
    let victim_hits = victim.hits();
    let after = ip_map(&s, 50, 40);
    for (ip, was) in &before {
        let now = &after[ip];
        if was == victim_name {
            assert_ne!(
                now, victim_name,
                "client {ip} still on the unhealthy backend"
            );
        } else {
            assert_eq!(
                now, was,
                "client {ip} moved from {was} to {now} though its backend stayed healthy"
            );
        }
    }
    assert_eq!(
        victim.hits(),
        victim_hits,
        "the unhealthy backend got requests"
    );
    assert_eq!(after, ip_map(&s, 50, 40), "moved clients are sticky too");
}

#[test]
fn ip_hash_keeps_clients_when_a_backend_is_removed_from_the_config() {
    let (a, b, c) = (Origin::plain("a"), Origin::plain("b"), Origin::plain("c"));
    let before = {
        let s = Strait::start(&lb_test("ip_hash").origins(&[&a, &b, &c]).config());
        ip_map(&s, 100, 40)
    };
    // The middle backend goes: index-based hashing would move most clients.
    let s = Strait::start(&lb_test("ip_hash").origins(&[&a, &c]).config());
    let after = ip_map(&s, 100, 40);
    assert!(
        before.values().any(|o| o == "b"),
        "no client hashed to b: {before:?}"
    );
    for (ip, was) in &before {
        let now = &after[ip];
        if was == "b" {
            assert_ne!(now, "b");
        } else {
            assert_eq!(now, was, "client {ip} moved from {was} to {now}");
        }
    }
}
