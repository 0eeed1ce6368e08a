//! `rate_limit: { scope: cluster }`: two strait nodes counting in one real Redis
//! (docs/cluster.md), and each node's fallback share when Redis is gone (`cluster.nodes`, or
//! the nodes registered in etcd).

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use crate::admin::{json, Ports};
use crate::support::client::Conn;
use crate::support::etcd::Etcd;
use crate::support::redis::Redis;
use crate::support::{config, eventually_msg, Strait};

const HOST: &str = "rl.test";

fn node(redis: &Redis, ports: &Ports, timeout: &str) -> Strait {
    let s = Strait::start(&config(&format!(
        "{}cluster:
  nodes: 2
  redis: {{ url: \"{}\", timeout: {timeout} }}
domains:
  - hosts: [{HOST}]
    rate_limit: {{ requests: 100, per: 1s, scope: cluster }}
    routes: [{{ path_prefix: /, respond: {{ status: 200, body: ok }} }}]
",
        ports.yaml(true),
        redis.url()
    )));
    ports.wait_up();
    s
}

/// Sends requests back to back until `until`; (when the answer came, its status) each.
/// A 429 closes its connection, so the next request opens a new one.
fn hammer(addr: SocketAddr, until: Instant) -> Vec<(Instant, u16)> {
    let mut out = Vec::new();
    let mut conn: Option<Conn> = None;
    while Instant::now() < until {
        let c = match conn.as_mut() {
            Some(c) if !c.is_closed() => c,
            _ => match Conn::connect(addr) {
                Ok(c) => conn.insert(c),
                Err(e) => panic!("connect to {addr}: {e}"),
            },
        };
        match c.get(HOST, "/") {
            Ok(r) => out.push((Instant::now(), r.status)),
            // A connection strait closed after a 429 that the client had not noticed yet.
            Err(_) => conn = None,
        }
    }
    out
}

/// `threads` clients on each address until `until`; the answers per address.
fn load(addrs: &[SocketAddr], threads: usize, until: Instant) -> Vec<Vec<(Instant, u16)>> {
    let handles: Vec<Vec<_>> = addrs
        .iter()
        .map(|&a| {
            (0..threads)
                .map(|_| thread::spawn(move || hammer(a, until)))
                .collect()
        })
        .collect();
    handles
        .into_iter()
        .map(|hs| {
            hs.into_iter()
                .flat_map(|h| h.join().expect("load thread"))
                .collect()
        })
        .collect()
}

fn admitted(answers: &[(Instant, u16)], from: Instant, to: Instant) -> usize {
    answers
        .iter()
        .filter(|(at, status)| *status == 200 && *at >= from && *at < to)
        .count()
}

fn metric(ports: &Ports, name: &str) -> f64 {
    let text = ports.probe("/metrics").text();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Loads each node for 3 s with Redis gone and checks what it admitted alone: its share of
/// the limit per one-second window of its local limiter. Those windows are aligned to when the
/// limiter was made, not to the load, so 3 s of load touches 3 or 4 of them: `share` x 3 to
/// `share` x 4 (a node that divided by too few nodes would admit twice that).
fn fallback_shares(nodes: &[(&str, SocketAddr, &Ports)], share: usize) {
    let addrs: Vec<SocketAddr> = nodes.iter().map(|(_, a, _)| *a).collect();
    let start = Instant::now();
    let end = start + Duration::from_secs(3);
    let answers = load(&addrs, 2, end);
    for ((name, _, _), node_answers) in nodes.iter().zip(&answers) {
        let n = admitted(node_answers, start, end);
        eprintln!("node {name} without Redis: {n} admitted in 3s (share {share} per second)");
        assert!(
            (share * 3 - share / 10..=share * 4).contains(&n),
            "node {name} admitted {n} in 3s, expected {} to {}",
            share * 3,
            share * 4
        );
    }
}

#[test]
fn two_nodes_share_one_limit_and_fall_back_to_half_each_without_redis() {
    let mut redis = Redis::start();
    let (pa, pb) = (Ports::new(), Ports::new());
    // A generous timeout: this part measures Redis' counting, which a loaded machine's slow
    // answer must not turn into fallback decisions.
    let a = node(&redis, &pa, "1s");
    let b = node(&redis, &pb, "1s");

    // GCRA lets a whole budget through at once, then one request per 10ms: after the first
    // second, the cluster admits 100 per second whatever the load on each node.
    let start = Instant::now();
    let (warm, end) = (
        start + Duration::from_secs(1),
        start + Duration::from_secs(4),
    );
    let answers = load(&[a.addr(), b.addr()], 2, end);
    let per_node: Vec<usize> = answers.iter().map(|n| admitted(n, warm, end)).collect();
    let total: usize = per_node.iter().sum();
    let refused = answers.iter().flatten().filter(|(_, s)| *s == 429).count();
    eprintln!(
        "cluster limit 100/s on two nodes: {total} admitted in 3s ({:.1}/s; per node {per_node:?}), {refused} refused",
        total as f64 / 3.0
    );
    assert!(
        (285..=315).contains(&total),
        "admitted {total} in 3s (per node {per_node:?}), expected 300 ± 5 %"
    );
    assert!(per_node.iter().all(|&n| n > 0), "{per_node:?}");
    for p in [&pa, &pb] {
        let state = json(&p.call("GET", "/cluster/redis", ""));
        assert_eq!(state["state"], "up", "{state}");
        assert_eq!(state["fallbacks"], 0, "{state}");
        let ready = p.probe("/ready");
        assert_eq!(ready.status, 200);
        assert!(ready.text().contains("redis: up"), "{}", ready.text());
    }

    // Redis gone: each node decides alone with half the limit (cluster.nodes: 2).
    redis.kill();
    fallback_shares(&[("a", a.addr(), &pa), ("b", b.addr(), &pb)], 50);
    for ports in [&pa, &pb] {
        assert!(
            metric(ports, "strait_cluster_rate_fallbacks_total") > 0.0,
            "fallbacks are counted"
        );
        let state = json(&ports.call("GET", "/cluster/redis", ""));
        assert_eq!(state["state"], "down", "{state}");
        assert!(state["fallbacks"].as_u64() > Some(0), "{state}");
        let ready = ports.probe("/ready");
        assert_eq!(ready.status, 200, "Redis down does not make a node unready");
        assert!(ready.text().contains("redis: down"), "{}", ready.text());
    }
    drop((a, b));
}

/// A node on `etcd` and `redis` whose file says it is alone (`nodes: 1`).
fn registered_node(redis: &Redis, etcd: &Etcd, ports: &Ports, name: &str) -> Strait {
    let s = Strait::start(&config(&format!(
        "{}cluster:
  nodes: 1
  redis: {{ url: \"{}\", timeout: 1s }}
  etcd: {{ endpoints: [{}], prefix: /rl/, node_name: {name} }}
domains:
  - hosts: [{HOST}]
    rate_limit: {{ requests: 100, per: 1s, scope: cluster }}
    routes: [{{ path_prefix: /, respond: {{ status: 200, body: ok }} }}]
",
        ports.yaml(true),
        redis.url(),
        etcd.url()
    )));
    ports.wait_up();
    s
}

#[test]
fn without_redis_the_share_follows_the_nodes_registered_in_etcd() {
    let mut redis = Redis::start();
    let etcd = Etcd::start();
    let (pa, pb) = (Ports::new(), Ports::new());
    let a = registered_node(&redis, &etcd, &pa, "rl-a");
    let b = registered_node(&redis, &etcd, &pb, "rl-b");
    for p in [&pa, &pb] {
        eventually_msg(Duration::from_secs(10), "both nodes registered", || {
            json(&p.call("GET", "/cluster", ""))["live_nodes"] == 2
        });
    }
    // The file says one node; the registry says two: each node's share is half the limit.
    for p in [&pa, &pb] {
        let state = json(&p.call("GET", "/cluster/redis", ""));
        assert_eq!(state["nodes"], 2, "{state}");
    }
    redis.kill();
    fallback_shares(&[("a", a.addr(), &pa), ("b", b.addr(), &pb)], 50);
    for p in [&pa, &pb] {
        let state = json(&p.call("GET", "/cluster/redis", ""));
        assert_eq!(state["state"], "down", "{state}");
        assert_eq!(state["nodes"], 2, "{state}");
    }
    drop((a, b));
}
