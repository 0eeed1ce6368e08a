//! Passive health (ejection, probation, max_ejected_percent), sticky cookies, consistent
//! hashing on a header, and least_latency, through real requests (docs/balancing.md).

use std::collections::HashMap;
use std::time::Duration;

use crate::admin::{json, Ports};
use crate::support::client::{self, Conn};
use crate::support::origin::Reply;
use crate::support::{eventually_msg, send_many, served_by, Behaviour, Domain, Origin, Strait};

/// An origin that answers with the body it received.
fn body_echo(name: &str) -> Origin {
    Origin::start(
        name,
        Behaviour::default().respond_with(|seen| Reply::new(200).body(seen.body.clone())),
    )
}

fn get(s: &Strait, host: &str, path: &str, headers: &[(&str, &str)]) -> client::Response {
    let mut all = vec![("Host", host)];
    all.extend_from_slice(headers);
    client::request(s.addr(), "GET", path, &all, b"").expect("a request through strait")
}

#[test]
fn an_ejected_backend_gets_one_trial_per_ejection_period() {
    let a = Origin::plain("a");
    let d = Origin::start("d", Behaviour::default().drop_requests());
    let ports = Ports::new();
    let s = Strait::start(&format!(
        "{}{}",
        ports.yaml(true),
        Domain::new("ph.test")
            .strategy("round_robin")
            .origins(&[&a, &d])
            .field("max_retries", "0")
            .field(
                "passive_health",
                "{ consecutive_failures: 2, ejection_time: 1s, max_ejection_time: 4s }"
            )
            .config()
    ));
    ports.wait_up();
    let got = send_many(&s, "ph.test", "/", 12);
    assert_eq!(d.hits(), 2, "ejected after exactly consecutive_failures");
    assert_eq!(got.iter().filter(|r| r.status == 502).count(), 2);
    // The admin API shows it out.
    let backends = json(&ports.call("GET", "/backends?domain=ph.test", ""));
    let d_state = backends
        .as_array()
        .and_then(|l| l.iter().find(|b| b["addr"] == d.url().as_str()))
        .cloned()
        .expect("d in /backends");
    assert_eq!(d_state["passive"]["ejected"], true, "{d_state}");
    // After the ejection period: one trial request, which fails, and it is out for twice as
    // long; meanwhile a serves everything.
    eventually_msg(Duration::from_secs(5), "d's trial request", || {
        get(&s, "ph.test", "/", &[]);
        d.hits() == 3
    });
    let during = send_many(&s, "ph.test", "/", 20);
    assert!(during.iter().all(|r| r.status == 200), "a served them all");
    assert_eq!(d.hits(), 3, "one trial per ejection period");
    // d recovers: its next trial succeeds and it is readmitted.
    d.set_drop_requests(false);
    eventually_msg(Duration::from_secs(6), "d readmitted", || {
        send_many(&s, "ph.test", "/", 4);
        d.hits() >= 5
    });
    assert!(s.stderr().contains("readmitted"), "{}", s.stderr());
}

#[test]
fn max_ejected_percent_keeps_a_failing_pool_serving() {
    let d1 = Origin::start("d1", Behaviour::default().drop_requests());
    let d2 = Origin::start("d2", Behaviour::default().drop_requests());
    let s = Strait::start(
        &Domain::new("all.test")
            .strategy("round_robin")
            .origins(&[&d1, &d2])
            .field("max_retries", "0")
            .field(
                "passive_health",
                "{ consecutive_failures: 1, ejection_time: 1m, max_ejected_percent: 50 }",
            )
            .config(),
    );
    let got = send_many(&s, "all.test", "/", 10);
    assert!(got.iter().all(|r| r.status == 502));
    // One of the two may be ejected (50 %); the other keeps taking every request.
    let (h1, h2) = (d1.hits(), d2.hits());
    assert_eq!(h1 + h2, 10, "no request went nowhere: {h1} + {h2}");
    assert!(
        h1.min(h2) == 1,
        "exactly one backend ejected after one failure: {h1}, {h2}"
    );
}

#[test]
fn sticky_cookies_keep_a_client_on_its_backend_and_move_when_it_drains() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let ports = Ports::new();
    let s = Strait::start(&format!(
        "{}{}",
        ports.yaml(true),
        Domain::new("st.test")
            .strategy("round_robin")
            .origins(&[&a, &b])
            .field("sticky", "{ cookie: srv, ttl: 1h, same_site: lax }")
            .config()
    ));
    ports.wait_up();
    let first = get(&s, "st.test", "/", &[]);
    let cookie = first
        .header("set-cookie")
        .expect("a sticky cookie")
        .to_string();
    assert!(cookie.starts_with("srv="), "{cookie}");
    assert!(
        cookie.contains("Max-Age=3600")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let token = cookie
        .split(';')
        .next()
        .and_then(|p| p.strip_prefix("srv="))
        .unwrap()
        .to_string();
    assert!(!token.contains(&a.port().to_string()) && !token.contains(&b.port().to_string()));
    let home = served_by(&first);
    let sent = format!("srv={token}");
    for i in 0..100 {
        let r = get(&s, "st.test", "/", &[("Cookie", &sent)]);
        assert_eq!(served_by(&r), home, "request {i} left its backend");
        assert_eq!(r.header("set-cookie"), None, "no new cookie while it holds");
    }
    // Drain the home backend: the client moves, and gets a new cookie.
    let home_url = if home == "a" { a.url() } else { b.url() };
    let addr = home_url.trim_start_matches("http://");
    let r = ports.call(
        "PUT",
        &format!("/backends/enabled?domain=st.test&addr={addr}"),
        r#"{"enabled": false}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let moved = get(&s, "st.test", "/", &[("Cookie", &sent)]);
    assert_ne!(served_by(&moved), home);
    let new_cookie = moved.header("set-cookie").expect("a new cookie");
    assert!(!new_cookie.contains(&token));
}

#[test]
fn consistent_hash_on_a_header_keeps_each_key_on_one_backend() {
    let origins: Vec<Origin> = (0..4).map(|i| Origin::plain(&format!("o{i}"))).collect();
    let refs: Vec<&Origin> = origins.iter().collect();
    let s = Strait::start(
        &Domain::new("ch.test")
            .strategy("consistent_hash")
            .origins(&refs)
            .field("hash_key", "{ header: X-User-Id }")
            .config(),
    );
    let mut c = Conn::connect(s.addr()).unwrap();
    let mut home: HashMap<u32, String> = HashMap::new();
    for round in 0..3 {
        for user in 0..40u32 {
            let r = c
                .request(
                    "GET",
                    "/",
                    &[("Host", "ch.test"), ("X-User-Id", &user.to_string())],
                    b"",
                )
                .unwrap();
            let by = served_by(&r);
            let before = home.entry(user).or_insert_with(|| by.clone());
            assert_eq!(*before, by, "user {user} moved in round {round}");
        }
    }
    let spread: std::collections::HashSet<_> = home.values().collect();
    assert!(
        spread.len() >= 3,
        "40 keys landed on {} backends",
        spread.len()
    );
    // Without the key: round robin.
    let got = send_many(&s, "ch.test", "/", 8);
    let names: std::collections::HashSet<String> = got.iter().map(served_by).collect();
    assert_eq!(
        names.len(),
        4,
        "requests without the key are spread round robin"
    );
}

#[test]
fn least_latency_sends_little_to_a_slow_backend() {
    let fast = Origin::start("fast", Behaviour::default().delay(Duration::from_millis(5)));
    let slow = Origin::start(
        "slow",
        Behaviour::default().delay(Duration::from_millis(50)),
    );
    let s = Strait::start(
        &Domain::new("ll.test")
            .strategy("least_latency")
            .origins(&[&fast, &slow])
            .config(),
    );
    send_many(&s, "ll.test", "/", 100);
    let share = slow.hits() as f64 / 100.0;
    assert!(
        share < 0.10,
        "the 10x slower backend got {:.0} % of requests",
        share * 100.0
    );
    assert!(fast.hits() > 90);
}

#[test]
fn a_slow_upload_is_buffered_before_a_backend_is_chosen() {
    let o = body_echo("o");
    let s = Strait::start(
        &Domain::new("buf.test")
            .origins(&[&o])
            .field("buffer_request_body", "16KiB")
            .config(),
    );
    let body = b"0123456789abcdefghij";
    let mut c = Conn::connect(s.addr()).unwrap();
    c.send_raw(
        format!(
            "POST /up HTTP/1.1\r\nHost: buf.test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    // Dripped over two seconds: no backend connection is made meanwhile.
    for chunk in body.chunks(2) {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            o.connections(),
            0,
            "a backend connection was opened mid-upload"
        );
        c.send_raw(chunk).unwrap();
    }
    let r = c.read_response("POST").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "0123456789abcdefghij");
    assert_eq!(o.connections(), 1);
}

#[test]
fn a_buffered_post_is_retried_after_a_connect_failure() {
    let a = body_echo("a");
    let dead = Origin::plain("dead");
    dead.stop();
    let s = Strait::start(
        &Domain::new("bp.test")
            .strategy("round_robin")
            .origins(&[&dead, &a])
            .field("max_retries", "1")
            .field("connect_timeout", "1s")
            .field("passive_health", "false")
            .field("buffer_request_body", "16KiB")
            .config(),
    );
    for i in 0..4 {
        let body = format!("order {i}");
        let r = client::request(
            s.addr(),
            "POST",
            "/o",
            &[("Host", "bp.test")],
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), body);
    }
    assert_eq!(a.hits(), 4);
}

#[test]
fn connections_past_max_connections_wait_until_one_closes() {
    let o = Origin::plain("o");
    let s = Strait::start(&format!(
        "server:\n  max_connections: 2\n{}",
        Domain::new("mc.test").origins(&[&o]).config()
    ));
    let mut first = Conn::connect(s.addr()).unwrap();
    let mut second = Conn::connect(s.addr()).unwrap();
    assert_eq!(first.get("mc.test", "/").unwrap().status, 200);
    assert_eq!(second.get("mc.test", "/").unwrap().status, 200);
    let third = std::thread::spawn({
        let addr = s.addr();
        move || {
            let r = client::get(addr, "mc.test", "/");
            (r.map(|r| r.status), std::time::Instant::now())
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !third.is_finished(),
        "a third connection was served at once"
    );
    // What matters is the order, not a duration measured on a busy machine: the answer comes
    // only after a slot was freed.
    let freed = std::time::Instant::now();
    drop(first);
    let (status, answered) = third.join().unwrap();
    match status {
        Ok(code) => assert_eq!(code, 200),
        Err(e) => panic!(
            "the waiting connection failed {:?} after the first closed: {e}\n{}",
            answered.saturating_duration_since(freed),
            s.stderr()
        ),
    }
    assert!(
        answered >= freed,
        "answered before the first connection closed"
    );
    assert_eq!(second.get("mc.test", "/").unwrap().status, 200);
}

#[test]
fn max_idle_conns_zero_reuses_nothing_even_where_another_domain_pools() {
    let o = Origin::plain("o");
    let s = Strait::start(&crate::support::config(&crate::support::domains(&[
        Domain::new("pooled.test").origins(&[&o]),
        Domain::new("fresh.test")
            .origins(&[&o])
            .field("max_idle_conns", "0"),
    ])));
    send_many(&s, "pooled.test", "/", 5);
    let pooled = o.connections();
    assert!(pooled <= 2, "pooled.test reused its connections: {pooled}");
    send_many(&s, "fresh.test", "/", 5);
    assert_eq!(
        o.connections(),
        pooled + 5,
        "each fresh.test request opened its own connection"
    );
}
