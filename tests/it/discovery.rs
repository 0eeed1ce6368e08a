//! `discovery.dns` (docs/cluster.md): a domain's backends are the A records of a name, served
//! by a tiny real DNS server over UDP on loopback; strait re-resolves and changes the pool
//! while a client keeps sending.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::admin::{json, Ports};
use crate::support::client;
use crate::support::dns::Dns;
use crate::support::{config, eventually_msg, Behaviour, Origin, Strait};

const HOST: &str = "api.test";
const NAME: &str = "api.service.test";

/// Two origins on one port: 127.0.0.1:P and 127.0.0.2:P (a DNS answer carries addresses only).
fn two_origins() -> (Origin, Origin) {
    for _ in 0..5 {
        let a = Origin::start("a", Behaviour::default());
        let other = SocketAddr::from(([127, 0, 0, 2], a.port()));
        if let Ok(b) = Origin::start_on("b", other, Behaviour::default()) {
            return (a, b);
        }
    }
    panic!("no port free on both 127.0.0.1 and 127.0.0.2");
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an IP")
}

fn pool(ports: &Ports) -> Vec<String> {
    let r = ports.call("GET", &format!("/backends?domain={HOST}"), "");
    let list = json(&r);
    let mut out: Vec<String> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|b| b["addr"].as_str().unwrap_or("").to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn dns_discovery_adds_and_removes_addresses_with_no_failed_request() {
    let (a, b) = two_origins();
    let port = a.port();
    let dns = Dns::start(1);
    dns.set(NAME, &[ip("127.0.0.1")]);
    let ports = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}domains:
  - hosts: [{HOST}]
    discovery: {{ dns: {{ name: {NAME}, port: {port}, interval: 1s, resolver: \"{}\" }} }}
    health_check: {{ path: /health, interval: 200ms, timeout: 150ms, fail_threshold: 1, success_threshold: 1 }}
",
        ports.yaml(true),
        dns.addr()
    )));
    ports.wait_up();
    let wait = Duration::from_secs(10);
    eventually_msg(wait, "the first address to serve", || {
        client::get(s.addr(), HOST, "/").is_ok_and(|r| r.status == 200)
    });

    // A client sends one request after another through every change below.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(u16, String)>>> = Arc::default();
    let looper = {
        let (stop, seen, addr) = (stop.clone(), seen.clone(), s.addr());
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let r = client::get(addr, HOST, "/");
                let entry = match r {
                    Ok(r) => (r.status, r.header("X-Origin").unwrap_or("").to_string()),
                    Err(e) => (0, e.to_string()),
                };
                seen.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
                thread::sleep(Duration::from_millis(5));
            }
        })
    };

    // Added: joins after its first good health check.
    dns.set(NAME, &[ip("127.0.0.1"), ip("127.0.0.2")]);
    eventually_msg(wait, "the added address to get traffic", || b.hits() > 0);
    assert_eq!(
        pool(&ports),
        [
            format!("http://127.0.0.1:{port}"),
            format!("http://127.0.0.2:{port}")
        ]
    );

    // Removed: leaves the pool; requests go to the other.
    dns.set(NAME, &[ip("127.0.0.2")]);
    eventually_msg(wait, "the vanished address to leave the pool", || {
        pool(&ports) == [format!("http://127.0.0.2:{port}")]
    });
    let a_hits = a.hits();
    let b_hits = b.hits();
    eventually_msg(wait, "more requests on the remaining address", || {
        b.hits() >= b_hits + 20
    });
    assert_eq!(a.hits(), a_hits, "the removed address still got requests");

    // A reload keeps the discovered pool (the file has no backends for it).
    let r = ports.call("POST", "/reload", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(pool(&ports), [format!("http://127.0.0.2:{port}")]);

    // A failing lookup keeps the last good set, and is counted.
    dns.set_failing(true);
    eventually_msg(wait, "a failed lookup to be counted", || {
        ports.probe("/metrics").text().lines().any(|l| {
            l.starts_with("strait_discovery_lookups_total") && l.contains("outcome=\"error\"")
        })
    });
    assert_eq!(pool(&ports), [format!("http://127.0.0.2:{port}")]);
    let b_hits = b.hits();
    eventually_msg(wait, "requests served after the failed lookup", || {
        b.hits() >= b_hits + 10
    });

    stop.store(true, Ordering::SeqCst);
    looper.join().expect("the client loop");
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    let failed: Vec<_> = seen.iter().filter(|(status, _)| *status != 200).collect();
    eprintln!(
        "dns discovery: {} requests during the changes, {} failed",
        seen.len(),
        failed.len()
    );
    assert!(seen.len() > 50, "only {} requests", seen.len());
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(
        s.stderr_has("looking up api.service.test failed"),
        "{}",
        s.stderr()
    );
}
