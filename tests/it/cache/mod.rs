//! The response cache (issue 3): freshness, Vary, revalidation, invalidation, budgets and
//! eviction, stale serving, the cache lock, pre-compression, purge, key isolation and the
//! hit-path body drain. Every test runs a real origin that counts what reaches it. This file
//! holds the shared helpers; the tests are in the submodules.

mod body_drain;
mod eviction;
mod freshness;
mod invalidation;
mod keys;
mod lock;
mod precompress;
mod rules;
mod stale;

use std::time::SystemTime;

use serde_json::Value;

use crate::admin::{json, Ports};
use crate::support::client;
use crate::support::origin::{Reply, Seen};
use crate::support::{config, domains, Behaviour, Domain, Origin, Response, Strait};

/// A domain `host` served by `o`, with the cache on.
fn cached(host: &str, o: &Origin) -> Domain {
    Domain::new(host).origins(&[o]).cache()
}

/// strait with a top-level `cache:` section (`cache` is its body, indented by two) and
/// these domains.
fn start(cache: &str, list: &[Domain], ports: Option<&Ports>) -> Strait {
    let admin = ports.map(|p| p.yaml(true)).unwrap_or_default();
    let s = Strait::start(&config(&format!("{admin}cache:\n{cache}{}", domains(list))));
    if let Some(p) = ports {
        p.wait_up();
    }
    s
}

const SMALL_CACHE: &str = "  max_bytes: 1MiB\n  max_entries: 1000\n  max_entry_bytes: 256KiB\n";

/// One request with `Host: host` on a fresh connection.
#[track_caller]
fn send(s: &Strait, method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut all = vec![("Host", host), ("X-Cache-Debug", "1")];
    all.extend_from_slice(headers);
    client::request(s.addr(), method, path, &all, b"").unwrap_or_else(|e| {
        panic!(
            "{method} http://{host}{path} failed: {e}\n--- stderr ---\n{}",
            s.stderr()
        )
    })
}

#[track_caller]
fn get(s: &Strait, host: &str, path: &str) -> Response {
    send(s, "GET", host, path, &[])
}

fn x_cache(r: &Response) -> String {
    format!(
        "{} ({})",
        r.header("x-cache").unwrap_or("-"),
        r.header("x-cache-reason").unwrap_or("")
    )
}

#[track_caller]
fn expect(r: &Response, status: &str) {
    assert_eq!(r.status, 200, "body {:?}", r.text());
    assert_eq!(
        r.header("x-cache"),
        Some(status),
        "{} {:?}",
        x_cache(r),
        r.headers
    );
}

/// Not stored, for `reason`: a MISS the first time; later requests for the URL may skip the
/// lookup (BYPASS) because the cache remembers the URL as uncacheable.
#[track_caller]
fn expect_not_stored(r: &Response, reason: &str) {
    assert_eq!(r.status, 200, "body {:?}", r.text());
    let status = r.header("x-cache").unwrap_or("-");
    assert!(
        status == "MISS" || status == "BYPASS",
        "{} {:?}",
        x_cache(r),
        r.headers
    );
    assert_eq!(r.header("x-cache-reason"), Some(reason), "{}", x_cache(r));
}

fn header<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.header(name)
}

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// `GET /cache/stats` from the admin API.
#[track_caller]
fn stats(p: &Ports) -> Value {
    let r = p.call("GET", "/cache/stats", "");
    assert_eq!(r.status, 200, "{}", r.text());
    json(&r)
}

/// An origin answering by path with a fixed `Cache-Control` per path prefix.
fn by_path(name: &str, f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Origin {
    Origin::start(name, Behaviour::default().respond_with(f))
}
