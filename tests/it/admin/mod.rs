//! The admin API (design §4): auth on every endpoint, runtime backend changes under load,
//! drain, purge, bad input, and the probe's `/ready` flipping. This file holds the shared
//! helpers (admin/probe ports, a load generator); the tests are in the submodules.

mod add;
mod auth;
mod bad_input;
mod dashboard;
mod drain;
mod one_backend;
mod probe;
mod purge;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::Value;

use crate::support::client::{self, is_stale_connection, Conn};
use crate::support::strait::free_port;
use crate::support::{eventually_msg, Domain, Response};

pub const TOKEN: &str = "s3cret-token";

/// Where the admin and probe listeners of a test instance are.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub admin: SocketAddr,
    pub probe: SocketAddr,
}

impl Ports {
    pub fn new() -> Ports {
        Ports {
            admin: SocketAddr::from(([127, 0, 0, 1], free_port())),
            probe: SocketAddr::from(([127, 0, 0, 1], free_port())),
        }
    }

    /// The `admin:` (with [`TOKEN`] unless `token` is false) and `probe:` sections.
    pub fn yaml(&self, token: bool) -> String {
        let token = if token {
            format!("\n  token: {TOKEN}")
        } else {
            String::new()
        };
        format!(
            "admin:\n  addr: {}{token}\nprobe:\n  addr: {}\n",
            self.admin, self.probe
        )
    }

    /// One admin request; `token` None sends no `Authorization`.
    #[track_caller]
    pub fn admin(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Host", "admin")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        client::request(self.admin, method, path, &headers, body.as_bytes())
            .unwrap_or_else(|e| panic!("{method} {path} on the admin listener: {e}"))
    }

    /// An admin request with the right token.
    #[track_caller]
    pub fn call(&self, method: &str, path: &str, body: &str) -> Response {
        self.admin(method, path, Some(TOKEN), body)
    }

    #[track_caller]
    pub fn probe(&self, path: &str) -> Response {
        client::get(self.probe, "probe", path)
            .unwrap_or_else(|e| panic!("GET {path} on the probe listener: {e}"))
    }

    /// Waits until both listeners answer (they start alongside the proxy listener).
    #[track_caller]
    pub fn wait_up(&self) {
        eventually_msg(Duration::from_secs(10), "admin and probe listeners", || {
            client::get(self.admin, "admin", "/").is_ok()
                && client::get(self.probe, "probe", "/live").is_ok()
        });
    }
}

/// The JSON body of a response (panics with the text when it is not JSON).
#[track_caller]
pub fn json(r: &Response) -> Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): status {} body {:?}", r.status, r.text()))
}

/// `addr` of each backend in `GET /backends`.
fn listed(p: &Ports, query: &str) -> Vec<Value> {
    let r = p.call("GET", &format!("/backends?{query}"), "");
    assert_eq!(r.status, 200, "{}", r.text());
    json(&r).as_array().cloned().expect("an array")
}

fn addrs(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|b| b["addr"].as_str().unwrap_or("").to_string())
        .collect()
}

fn find<'a>(list: &'a [Value], url: &str) -> &'a Value {
    list.iter()
        .find(|b| b["addr"] == url)
        .unwrap_or_else(|| panic!("{url} not in {list:?}"))
}

fn enc(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
}

/// One request of a [`Load`]: (status, served by) or the transport error.
pub type Outcome = Result<(u16, String), String>;

/// Requests sent in a loop from several threads until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    /// Requests answered 200 so far, across all threads.
    ok: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<Vec<Outcome>>>,
}

impl Load {
    pub fn start(addr: SocketAddr, host: &str, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let threads = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                let ok = ok.clone();
                let host = host.to_string();
                thread::spawn(move || {
                    let mut out = Vec::new();
                    let mut conn: Option<Conn> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let c = match conn.as_mut() {
                            Some(c) if !c.is_closed() => c,
                            _ => match Conn::connect(addr) {
                                Ok(c) => conn.insert(c),
                                Err(e) => {
                                    out.push(Err(format!("connect: {e}")));
                                    continue;
                                }
                            },
                        };
                        let reused = c.answered() > 0;
                        let result = match c.get(&host, "/") {
                            Err(e) if reused && is_stale_connection(&e) => Conn::connect(addr)
                                .and_then(|fresh| conn.insert(fresh).get(&host, "/")),
                            other => other,
                        };
                        match result {
                            Ok(r) => {
                                if r.status == 200 {
                                    ok.fetch_add(1, Ordering::SeqCst);
                                }
                                out.push(Ok((r.status, crate::support::served_by(&r))))
                            }
                            Err(e) => {
                                out.push(Err(e.to_string()));
                                conn = None;
                            }
                        }
                    }
                    out
                })
            })
            .collect();
        Load { stop, ok, threads }
    }

    /// Requests answered 200 so far. Two readings bracket a window: their difference is how
    /// much load actually went through in it, so a "nothing reached X" check is not vacuous.
    pub fn answered(&self) -> usize {
        self.ok.load(Ordering::SeqCst)
    }

    pub fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().expect("load thread"))
            .collect()
    }
}

/// Every request answered 200; returns how many there were.
#[track_caller]
pub fn assert_all_ok(results: &[Outcome]) -> usize {
    let failed: Vec<_> = results
        .iter()
        .filter(|r| !matches!(r, Ok((200, _))))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, e.g. {:?}",
        failed.len(),
        results.len(),
        &failed[..failed.len().min(5)]
    );
    results.len()
}

/// A round-robin domain `host`; each test adds its backends.
fn rr(host: &str) -> Domain {
    Domain::new(host).strategy("round_robin")
}
