//! `tcp` listeners: every connection relayed as bytes to a pool. Real HTTP origins stand in
//! for any TCP service (strait does not look at the bytes): balancing, a backend killed
//! mid-test, the per-connection access-log line and metrics, and the idle timeout.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::admin::{json, Ports};
use crate::support::client;
use crate::support::strait::{free_port, temp_dir};
use crate::support::{eventually_msg, served_by, Behaviour, Origin, Strait};

/// An HTTP listener on `{listen}` (the harness waits on it), a `tcp` listener `db` on its own
/// port with `tcp` as its settings, admin and probe, and an access log in `dir`.
fn tcp_config(dir: &std::path::Path, ports: &Ports, db: SocketAddr, tcp: &str) -> String {
    format!(
        concat!(
            "listeners:\n  - addr: \"{{listen}}\"\n",
            "  - name: db\n    addr: {db}\n    tcp: {tcp}\n",
            "{admin}logging:\n  access_log: {d}/access.log\n",
            "domains:\n  - hosts: [\"*\"]\n    respond: {{ body: http }}\n",
        ),
        db = db,
        tcp = tcp,
        admin = ports.yaml(true),
        d = dir.display(),
    )
}

fn log_lines(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("access.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &Value| l["kind"] == "tcp")
        .collect()
}

/// `GET /` through the relay on a fresh connection: the origin that answered.
fn through(db: SocketAddr) -> String {
    let r = client::get(db, "db.test", "/").expect("a response through the tcp listener");
    served_by(&r)
}

#[test]
fn a_tcp_listener_balances_and_new_connections_avoid_a_killed_backend() {
    let a = Origin::start("a", Behaviour::default());
    let b = Origin::start("b", Behaviour::default());
    let dir = temp_dir("tcp");
    let ports = Ports::new();
    let db = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let tcp = format!(
        "{{ backends: [\"{}\", \"{}\"], load_balancer: round_robin, connect_timeout: 1s }}",
        a.addr(),
        b.addr()
    );
    let s = Strait::start(&tcp_config(&dir, &ports, db, &tcp));
    ports.wait_up();
    assert_eq!(
        s.get("x.test", "/").text(),
        "http",
        "the HTTP listener serves"
    );

    let before: Vec<String> = (0..4).map(|_| through(db)).collect();
    assert_eq!(before.iter().filter(|n| *n == "a").count(), 2, "{before:?}");
    assert_eq!(before.iter().filter(|n| *n == "b").count(), 2, "{before:?}");

    // The pool is in the admin API under its listener; a drained backend gets no new
    // connections.
    let listed = json(&ports.call("GET", "/backends?listener=db", ""));
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    let drain = format!("/backends/enabled?listener=db&addr={}", a.addr());
    assert_eq!(
        ports.call("PUT", &drain, r#"{"enabled": false}"#).status,
        200
    );
    let drained: Vec<String> = (0..3).map(|_| through(db)).collect();
    assert!(drained.iter().all(|n| n == "b"), "{drained:?}");
    assert_eq!(
        ports.call("PUT", &drain, r#"{"enabled": true}"#).status,
        200
    );

    a.stop();
    // Every new connection is answered: a connect to `a` fails and is retried on `b`.
    let after: Vec<String> = (0..6).map(|_| through(db)).collect();
    assert!(after.iter().all(|n| n == "b"), "{after:?}");

    let m = ports.probe("/metrics").text();
    let failures = format!(
        "strait_l4_connect_failures_total{{backend=\"{}\",pool=\"db\"}}",
        a.addr()
    );
    assert!(m.contains(&failures), "no {failures} in\n{m}");

    // One access-log line per connection: client, backend, bytes, duration, close reason.
    eventually_msg(Duration::from_secs(10), "thirteen tcp lines", || {
        log_lines(&dir).len() == 13
    });
    for line in log_lines(&dir) {
        assert_eq!(line["listener"], "db", "{line}");
        assert_eq!(line["client"], "127.0.0.1", "{line}");
        assert!(
            line["backend"] == a.addr().to_string() || line["backend"] == b.addr().to_string(),
            "{line}"
        );
        assert!(line["bytes_in"].as_u64().unwrap() > 20, "{line}");
        assert!(line["bytes_out"].as_u64().unwrap() > 20, "{line}");
        assert!(line["duration_ms"].as_f64().is_some(), "{line}");
        assert!(
            matches!(
                line["close"].as_str(),
                Some("client_closed" | "backend_closed")
            ),
            "{line}"
        );
    }
    let retried = log_lines(&dir)
        .iter()
        .filter(|l| l["attempts"] == 2)
        .count();
    assert!(retried >= 1, "some connection was retried on b");
}

#[test]
fn an_idle_relayed_connection_is_closed_and_logged() {
    let a = Origin::start("a", Behaviour::default());
    let dir = temp_dir("tcp-idle");
    let ports = Ports::new();
    let db = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let tcp = format!("{{ backends: [\"{}\"], idle_timeout: 300ms }}", a.addr());
    let _s = Strait::start(&tcp_config(&dir, &ports, db, &tcp));
    ports.wait_up();

    let mut quiet = TcpStream::connect(db).expect("connect");
    quiet
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    let n = quiet.read(&mut buf).expect("closed, not timed out");
    assert_eq!(n, 0, "the relay closes the idle connection");
    eventually_msg(Duration::from_secs(10), "the idle line", || {
        log_lines(&dir).iter().any(|l| l["close"] == "idle_timeout")
    });
    let m = ports.probe("/metrics").text();
    let idle = format!(
        "strait_l4_connections_total{{backend=\"{}\",close=\"idle_timeout\",pool=\"db\"}} 1",
        a.addr()
    );
    assert!(m.contains(&idle), "no {idle} in\n{m}");
}

#[test]
fn no_usable_backend_closes_the_connection_and_says_why() {
    let dir = temp_dir("tcp-none");
    let ports = Ports::new();
    let db = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let refused = crate::support::origin::Refusing::new();
    let tcp = format!(
        "{{ backends: [\"127.0.0.1:{}\"], max_retries: 1 }}",
        refused.port()
    );
    let _s = Strait::start(&tcp_config(&dir, &ports, db, &tcp));
    ports.wait_up();
    let mut conn = TcpStream::connect(db).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    let n = conn.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    eventually_msg(Duration::from_secs(10), "the failed line", || {
        log_lines(&dir)
            .iter()
            .any(|l| l["close"] == "connect_failed")
    });
    let line = log_lines(&dir).remove(0);
    assert_eq!(line["backend"], Value::Null, "{line}");
    assert_eq!(
        line["attempts"], 1,
        "one attempt: the pool has one backend {line}"
    );
}
