//! Shared harness for strait's integration tests: real origins, a real strait process, a
//! small HTTP/1.1 client, and bounded waiting. Not every test uses every helper.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod dns;
pub mod h2c_origin;
pub mod origin;
pub mod otlp;
pub mod pebble;
pub mod pki;
pub mod plugin_script;
pub mod redis;
pub mod strait;
pub mod wait;
pub mod websocket;
pub mod yaml;

pub use client::{Conn, Response};
pub use origin::{Behaviour, Origin};
pub use strait::{Check, Strait};
pub use wait::{eventually, eventually_msg, try_eventually};
pub use yaml::{domains, Domain};

use std::collections::BTreeMap;

/// A config: a listener on `{listen}` (filled in by [`Strait::start`]) followed by `rest`.
pub fn config(rest: &str) -> String {
    format!("listeners:\n  - addr: \"{{listen}}\"\n{rest}")
}

/// Sends `n` sequential `GET path` requests with `Host: host` over keep-alive connections.
/// Like any HTTP client, it resends once on a fresh connection when a reused one turns out
/// to be closed before anything was answered (see `error_responses_keep_alive_or_close_cleanly`
/// for the test that holds strait to announcing such closes). Panics on any other failure.
#[track_caller]
pub fn send_many(s: &Strait, host: &str, path: &str, n: usize) -> Vec<Response> {
    let mut out = Vec::with_capacity(n);
    let mut conn: Option<Conn> = None;
    for i in 0..n {
        let c = match conn.as_mut() {
            Some(c) if !c.is_closed() => c,
            _ => conn.insert(Conn::connect(s.addr()).expect("connect to strait")),
        };
        let reused = c.answered() > 0;
        let result = match c.get(host, path) {
            Err(e) if reused && client::is_stale_connection(&e) => {
                let fresh = conn.insert(Conn::connect(s.addr()).expect("connect to strait"));
                fresh.get(host, path)
            }
            other => other,
        };
        match result {
            Ok(r) => out.push(r),
            Err(e) => panic!(
                "request {i} of {n} (GET http://{host}{path}) failed: {e}\n--- strait stderr ---\n{}",
                s.stderr()
            ),
        }
    }
    out
}

/// Which origin served each response (see [`served_by`]).
pub fn names(responses: &[Response]) -> Vec<String> {
    responses.iter().map(served_by).collect()
}

/// `[{ addr: http://127.0.0.1:P }, ...]` (a YAML flow sequence) for these origins.
pub fn backends(origins: &[&Origin]) -> String {
    let items: Vec<String> = origins
        .iter()
        .map(|o| format!("{{ addr: {} }}", o.url()))
        .collect();
    format!("[{}]", items.join(", "))
}

/// `[{ addr: http://127.0.0.1:P, weight: W }, ...]`
pub fn weighted_backends(origins: &[(&Origin, u32)]) -> String {
    let items: Vec<String> = origins
        .iter()
        .map(|(o, w)| format!("{{ addr: {}, weight: {w} }}", o.url()))
        .collect();
    format!("[{}]", items.join(", "))
}

/// Counts how often each value occurs.
pub fn tally<I, S>(items: I) -> BTreeMap<String, usize>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item.into()).or_insert(0) += 1;
    }
    counts
}

/// Which origin answered (its `X-Origin` header), or `"<STATUS>"` when none did.
pub fn served_by(r: &Response) -> String {
    r.header("x-origin")
        .map(str::to_string)
        .unwrap_or_else(|| format!("<{}>", r.status))
}
