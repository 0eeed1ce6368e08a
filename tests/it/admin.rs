//! The admin API (design §4): auth on every endpoint, runtime backend changes under load,
//! drain, purge, bad input, and the probe's `/ready` flipping.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::client::{self, is_stale_connection, Conn};
use crate::support::strait::free_port;
use crate::support::{
    backends, config, eventually_msg, names, send_many, try_eventually, Behaviour, Origin,
    Response, Strait,
};

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
    threads: Vec<JoinHandle<Vec<Outcome>>>,
}

impl Load {
    pub fn start(addr: SocketAddr, host: &str, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|_| {
                let stop = stop.clone();
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
                            Ok(r) => out.push(Ok((r.status, crate::support::served_by(&r)))),
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
        Load { stop, threads }
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
fn assert_all_ok(results: &[Outcome]) -> usize {
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

fn domain(name: &str, backends: &str, extra: &str) -> String {
    format!(
        "domains:
  - hosts: [{name}]
    load_balancer: round_robin
    backends: {backends}
{extra}"
    )
}

#[test]
fn every_endpoint_needs_the_token() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}{}",
        p.yaml(true),
        domain("auth.test", &backends(&[&a]), "")
    )));
    p.wait_up();
    let b_url = b.url();
    let add = format!("{{\"addr\": \"{b_url}\"}}");
    let on_b = format!("domain=auth.test&addr={}", enc(&b_url));
    // In order: each call with the token must work given the ones before it.
    let calls: Vec<(&str, String, String, &[u16])> = vec![
        ("GET", "/domains".into(), String::new(), &[200]),
        (
            "GET",
            "/backends?domain=auth.test".into(),
            String::new(),
            &[200],
        ),
        ("POST", "/backends?domain=auth.test".into(), add, &[201]),
        (
            "PUT",
            format!("/backends/enabled?{on_b}"),
            "{\"enabled\": false}".into(),
            &[200],
        ),
        ("DELETE", format!("/backends?{on_b}"), String::new(), &[200]),
        ("GET", "/cache/stats".into(), String::new(), &[200]),
        ("DELETE", "/cache".into(), String::new(), &[200]),
        (
            "DELETE",
            "/cache?domain=auth.test".into(),
            String::new(),
            &[200],
        ),
        ("GET", "/stats".into(), String::new(), &[200]),
        ("POST", "/reload".into(), String::new(), &[200]),
    ];
    for (method, path, body, ok) in &calls {
        let before = listed(&p, "domain=auth.test");
        for bad in [None, Some("wrong"), Some("s3cret-tokeN"), Some("")] {
            let r = p.admin(method, path, bad, body);
            assert_eq!(r.status, 401, "{method} {path} with {bad:?}: {}", r.text());
            assert!(json(&r)["error"].is_string());
            assert!(r.header("www-authenticate").is_some());
        }
        // A token in another scheme is not a bearer token.
        let r = client::request(
            p.admin,
            method,
            path,
            &[
                ("Host", "admin"),
                ("Authorization", &format!("Basic {TOKEN}")),
            ],
            body.as_bytes(),
        )
        .expect("admin request");
        assert_eq!(r.status, 401);
        // The refused calls changed nothing.
        assert_eq!(listed(&p, "domain=auth.test"), before, "{method} {path}");

        let r = p.call(method, path, body);
        assert!(
            ok.contains(&r.status),
            "{method} {path} with the token: {} {}",
            r.status,
            r.text()
        );
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{method} {path}: {:?}",
            r.headers
        );
        let v = json(&r);
        if matches!(*method, "POST" | "PUT" | "DELETE") && path.starts_with("/backends") {
            assert_eq!(v["persisted"], false, "{v}");
        }
    }
    // `Bearer` is case-insensitive and surrounding blanks are ignored.
    let r = client::request(
        p.admin,
        "GET",
        "/domains",
        &[
            ("Host", "admin"),
            ("Authorization", &format!("bearer  {TOKEN} ")),
        ],
        b"",
    )
    .expect("admin request");
    assert_eq!(r.status, 200, "{}", r.text());
    drop(s);
}

#[test]
fn loopback_admin_without_token_is_open_and_non_loopback_is_refused() {
    let a = Origin::plain("a");
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}{}",
        p.yaml(false),
        domain("open.test", &backends(&[&a]), "")
    )));
    p.wait_up();
    let r = p.admin("GET", "/domains", None, "");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    assert_eq!(v["domains"][0]["name"], "open.test");
    assert_eq!(v["domains"][0]["pool"]["backends"], 1);
    drop(s);

    // Validation and an actual start both refuse an open admin port on all interfaces.
    let yaml = config(&format!(
        "admin:\n  addr: 0.0.0.0:{}\n{}",
        free_port(),
        domain("open.test", &backends(&[&a]), "")
    ));
    let check = Strait::check(&yaml);
    check.assert_error(4, 3, "admin.token", &["required", "loopback"]);

    let dir = crate::support::strait::temp_dir("admin-refused");
    let file = dir.join("strait.yaml");
    std::fs::write(
        &file,
        yaml.replace("{listen}", &format!("127.0.0.1:{}", free_port())),
    )
    .unwrap();
    let out = std::process::Command::new(crate::support::strait::BIN)
        .arg("-c")
        .arg(&file)
        .output()
        .expect("run strait");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("admin.token"),
        "{out:?}"
    );
}

#[test]
fn bad_input_is_refused_and_nothing_is_applied() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}{}",
        p.yaml(true),
        domain(
            "bad.test",
            &backends(&[&a]),
            "    routes:\n      - { path_prefix: /ping, respond: { status: 200, body: pong } }\n      - { path_prefix: /own/, backends: [] }\n  - hosts: [nopool.test]\n    routes:\n      - { path_prefix: /x, respond: { status: 200, body: x } }\n"
        )
    )));
    p.wait_up();
    let before = p.call("GET", "/domains", "").text();
    let a_url = a.url();
    let b_url = b.url();
    let cases: Vec<(&str, String, String, u16, &str)> = vec![
        (
            "POST",
            "/backends?domain=nope.test".into(),
            format!("{{\"addr\":\"{b_url}\"}}"),
            404,
            "no domain",
        ),
        (
            "POST",
            "/backends".into(),
            format!("{{\"addr\":\"{b_url}\"}}"),
            400,
            "domain",
        ),
        (
            "POST",
            "/backends?domain=bad.test&route=/nope/".into(),
            format!("{{\"addr\":\"{b_url}\"}}"),
            404,
            "no route",
        ),
        (
            "POST",
            "/backends?domain=bad.test&route=/ping".into(),
            format!("{{\"addr\":\"{b_url}\"}}"),
            409,
            "static",
        ),
        (
            "POST",
            "/backends?domain=nopool.test".into(),
            format!("{{\"addr\":\"{b_url}\"}}"),
            409,
            "no backend pool",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            "{\"addr\":\"127.0.0.1:9\"}".into(),
            400,
            "expected a url",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            "{\"addr\":\"ftp://127.0.0.1:9\"}".into(),
            400,
            "scheme",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            "{\"addr\":\"http://127.0.0.1:70000\"}".into(),
            400,
            "port",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            "{\"addr\":\"http://bad host\"}".into(),
            400,
            "host",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            "{\"addr\":\"http://no-such-host.invalid:80\"}".into(),
            400,
            "resolve",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            format!("{{\"addr\":\"{a_url}\"}}"),
            409,
            "already",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            format!(
                "{{\"addr\":\"{}\"}}",
                a_url.replace("127.0.0.1", "localhost")
            ),
            409,
            "already",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            format!("{{\"addr\":\"{b_url}\",\"weight\":0}}"),
            400,
            "weight",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            format!("{{\"addr\":\"{b_url}\",\"weight\":101}}"),
            400,
            "weight",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            format!("{{\"addr\":\"{b_url}\",\"weight\":-1}}"),
            400,
            "bad json",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            format!("{{\"addr\":\"{b_url}\",\"wieght\":2}}"),
            400,
            "unknown field",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            format!("{{\"addr\":\"{b_url}\""),
            400,
            "bad json",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            "[]".into(),
            400,
            "bad json",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            String::new(),
            400,
            "json body",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            format!(
                "{{\"addr\":\"{b_url}\",\"pad\":\"{}\"}}",
                "x".repeat(70_000)
            ),
            413,
            "larger",
        ),
        (
            "DELETE",
            format!("/backends?domain=bad.test&addr={}", enc(&b_url)),
            String::new(),
            404,
            "no backend",
        ),
        (
            "DELETE",
            "/backends?domain=bad.test&addr=http%3A%2F%2F%5B%3A%3A1".into(),
            String::new(),
            400,
            "]",
        ),
        (
            "DELETE",
            "/backends?domain=bad.test".into(),
            String::new(),
            400,
            "addr",
        ),
        (
            "PUT",
            format!("/backends/enabled?domain=bad.test&addr={}", enc(&a_url)),
            "{\"enabled\":\"no\"}".into(),
            400,
            "bad json",
        ),
        (
            "PUT",
            format!("/backends/enabled?domain=bad.test&addr={}", enc(&a_url)),
            "{}".into(),
            400,
            "enabled",
        ),
        (
            "PUT",
            format!("/backends/enabled?domain=nope.test&addr={}", enc(&a_url)),
            "{\"enabled\":false}".into(),
            404,
            "no domain",
        ),
        (
            "GET",
            "/backends?domain=bad.test&route=/ping".into(),
            String::new(),
            409,
            "static",
        ),
        (
            "PATCH",
            "/backends?domain=bad.test".into(),
            String::new(),
            405,
            "not allowed",
        ),
        (
            "GET",
            "/nothing-here".into(),
            String::new(),
            404,
            "no admin endpoint",
        ),
        (
            "DELETE",
            "/cache?path=/x".into(),
            String::new(),
            400,
            "domain",
        ),
    ];
    for (method, path, body, status, words) in &cases {
        let r = p.call(method, path, body);
        let v = json(&r);
        let message = v["error"].as_str().unwrap_or_default().to_lowercase();
        assert_eq!(
            r.status,
            *status,
            "{method} {path} {body:.80}: {}",
            r.text()
        );
        assert!(
            message.contains(words),
            "{method} {path}: {message:?} lacks {words:?}"
        );
    }
    // Nothing was applied: the same domains, pools and backends, and a still serves.
    assert_eq!(p.call("GET", "/domains", "").text(), before);
    assert_eq!(addrs(&listed(&p, "domain=bad.test")), vec![a_url.clone()]);
    assert!(find(&listed(&p, "domain=bad.test"), &a_url)["enabled"] == true);
    assert_eq!(s.get("bad.test", "/").status, 200);
    // A route with its own pool is addressed with `route`, and the domain's pool is untouched.
    let r = p.call(
        "POST",
        "/backends?domain=bad.test&route=/own/",
        &format!("{{\"addr\":\"{b_url}\",\"weight\":3}}"),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(json(&r)["backend"]["weight"], 3);
    assert_eq!(
        addrs(&listed(&p, "domain=bad.test&route=/own/")),
        vec![b_url.clone()]
    );
    assert_eq!(addrs(&listed(&p, "domain=bad.test")), vec![a_url]);
    eventually_msg(
        Duration::from_secs(5),
        "the route's new backend serving",
        || crate::support::served_by(&s.get("bad.test", "/own/x")) == "b",
    );
}

#[test]
fn added_backend_takes_traffic_only_after_a_good_health_check() {
    let a = Origin::plain("a");
    let c = Origin::start("c", Behaviour::default().unhealthy());
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}{}",
        p.yaml(true),
        domain(
            "add.test",
            &backends(&[&a]),
            "    health_check: { type: http, path: /health, interval: 250ms, timeout: 250ms, fail_threshold: 3, success_threshold: 1 }\n"
        )
    )));
    p.wait_up();
    let load = Load::start(s.addr(), "add.test", 3);
    eventually_msg(Duration::from_secs(5), "load reaching a", || a.hits() >= 20);

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
    eventually_msg(Duration::from_secs(3), "c's first health checks", || {
        c.health_fail() >= 3
    });
    assert_eq!(c.hits(), 0, "c got requests before passing a health check");
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
        domain("nocheck.test", &backends(&[&a]), "")
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

#[test]
fn removed_backend_finishes_in_flight_requests_with_zero_failures() {
    let a = Origin::plain("a");
    let b = Origin::start("b", Behaviour::default().delay(Duration::from_millis(150)));
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}{}",
        p.yaml(true),
        domain("rm.test", &backends(&[&a, &b]), "")
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
    let b_hits = b.hits();
    thread::sleep(Duration::from_millis(500));
    let results = load.finish();
    let n = assert_all_ok(&results);
    assert_eq!(b.hits(), b_hits, "b received requests after its removal");
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
        domain("drain.test", &backends(&[&a, &b]), "")
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
    let hits_at_drain = b.hits();
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        b.hits(),
        hits_at_drain,
        "a drained backend got new requests"
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

#[test]
fn purge_removes_objects_domains_and_everything() {
    let a = Origin::plain("a");
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}cache: {{ max_bytes: 8MiB, default_ttl: 1m }}\n{}  - hosts: [other.test]\n    backends: {}\n    cache: true\n",
        p.yaml(true),
        domain("purge.test", &backends(&[&a]), "    cache: true\n"),
        backends(&[&a]),
    )));
    p.wait_up();
    let x_cache = |host: &str, path: &str| {
        let r = s.get(host, path);
        assert_eq!(r.status, 200);
        r.header("x-cache").unwrap_or("-").to_string()
    };
    let fill = || {
        for (h, path) in [
            ("purge.test", "/one"),
            ("purge.test", "/two"),
            ("other.test", "/one"),
        ] {
            x_cache(h, path);
            assert_eq!(x_cache(h, path), "HIT", "{h}{path} not cached");
        }
    };
    let purged = |query: &str| {
        let r = p.call("DELETE", &format!("/cache{query}"), "");
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        json(&r)["purged"].as_u64().expect("purged count")
    };
    fill();
    let st = json(&p.call("GET", "/cache/stats", ""));
    for k in [
        "entries",
        "bytes",
        "hits",
        "misses",
        "stale_served",
        "evictions",
    ] {
        assert!(st[k].is_u64(), "{k} missing in {st}");
    }
    assert_eq!(st["entries"], 3, "{st}");
    assert!(st["hits"].as_u64() >= Some(3), "{st}");

    // One object: only it goes.
    assert_eq!(purged("?domain=purge.test&path=/one&method=GET"), 1);
    assert_eq!(x_cache("purge.test", "/one"), "MISS");
    assert_eq!(x_cache("purge.test", "/two"), "HIT");
    assert_eq!(x_cache("other.test", "/one"), "HIT");
    // One domain: its objects, not the other domain's.
    assert_eq!(purged("?domain=purge.test"), 2);
    assert_eq!(x_cache("other.test", "/one"), "HIT");
    assert_eq!(x_cache("purge.test", "/two"), "MISS");
    // Everything.
    fill();
    assert_eq!(purged(""), 3);
    assert_eq!(json(&p.call("GET", "/cache/stats", ""))["entries"], 0);
    assert_eq!(purged(""), 0);
    // Unknown domains are an error, not a silent zero.
    let r = p.call("DELETE", "/cache?domain=nope.test", "");
    assert_eq!(r.status, 404, "{}", r.text());

    // The cache's verdicts are counted in the metrics, and its size is exported.
    let m = crate::metrics::scrape(&p);
    assert!(m.value("strait_cache_requests_total", &[("result", "hit")]) >= 6.0);
    assert!(m.value("strait_cache_requests_total", &[("result", "miss")]) >= 6.0);
    assert_eq!(m.value("strait_cache_entries", &[]), 0.0);
}

/// A backend that accepts connections (the kernel does) but never answers: its first health
/// check takes the whole timeout.
fn black_hole() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

#[test]
fn ready_waits_for_the_first_health_round_and_drops_on_sigterm() {
    let (_hole, hole) = black_hole();
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "server: {{ drain_delay: 5s, grace_period: 5s }}\n{}{}",
        p.yaml(true),
        domain(
            "ready.test",
            &format!("[{{ addr: {hole} }}]"),
            "    health_check: { type: http, path: /health, interval: 10s, timeout: 2s }\n"
        )
    )));
    let started = Instant::now();
    eventually_msg(Duration::from_secs(5), "the probe listener", || {
        client::get(p.probe, "probe", "/live").is_ok()
    });
    let first = p.probe("/ready");
    assert_eq!(
        first.status,
        503,
        "ready {:?} after start, before the first health check could finish: {}",
        started.elapsed(),
        first.text()
    );
    assert!(first.text().contains("health"), "{}", first.text());
    assert_eq!(p.probe("/live").status, 200);
    eventually_msg(
        Duration::from_secs(6),
        "/ready 200 after the first round",
        || p.probe("/ready").status == 200,
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "ready before the 2s health check could have finished"
    );

    // SIGTERM: not ready any more, still live and serving during the drain delay.
    // SAFETY: kill(2) on the child we started.
    unsafe { libc::kill(s.pid() as i32, libc::SIGTERM) };
    eventually_msg(Duration::from_secs(2), "/ready 503 while draining", || {
        p.probe("/ready").status == 503
    });
    let r = p.probe("/ready");
    assert!(r.text().contains("draining"), "{}", r.text());
    assert_eq!(p.probe("/live").status, 200);
    assert_eq!(p.probe("/nope").status, 404);
}
