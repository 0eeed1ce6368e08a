//! Plugins (docs/plugins.md) through real processes on loopback: the plugins are test
//! origins answering the strait protocol or forward_auth, a listener that never answers,
//! and the Python example of `examples/plugins/`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::admin::Ports;
use crate::metrics::scrape;
use crate::support::client;
use crate::support::origin::{Behaviour, Reply, Seen};
use crate::support::strait::free_port;
use crate::support::{config, eventually_msg, Origin, Strait};

/// A JSON answer.
fn json_reply(v: Value) -> Reply {
    Reply::new(200)
        .header("Content-Type", "application/json")
        .body(v.to_string())
}

fn body_json(seen: &Seen) -> Value {
    serde_json::from_slice(&seen.body).unwrap_or(Value::Null)
}

/// `GET path` with `Host: host` and extra headers, on a fresh connection.
#[track_caller]
fn get(s: &Strait, host: &str, path: &str, headers: &[(&str, &str)]) -> client::Response {
    let mut all = vec![("Host", host)];
    all.extend_from_slice(headers);
    client::request(s.addr(), "GET", path, &all, b"")
        .unwrap_or_else(|e| panic!("GET {host}{path}: {e}\n{}", s.stderr()))
}

/// A forward_auth service: `Authorization: Bearer good` is alice, anything else a 401.
fn auth_service() -> Origin {
    Origin::start(
        "auth",
        Behaviour::default().respond_with(|seen| {
            if seen.header("authorization") == Some("Bearer good") {
                Reply::new(200)
                    .header("X-User", "alice")
                    .header("X-Other", "not copied")
            } else {
                Reply::new(401)
                    .header("WWW-Authenticate", "Bearer realm=\"test\"")
                    .body("login first\n")
            }
        }),
    )
}

/// Accepts connections and never answers (a plugin that hangs).
struct Hanging {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Hanging {
    fn start() -> Hanging {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    held.push(c);
                }
            }
        });
        Hanging {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn forward_auth_allows_copies_headers_and_returns_refusals_as_sent() {
    let origin = Origin::start("app", Behaviour::default());
    let auth = auth_service();
    let s = Strait::start(&config(&format!(
        "plugins:
  sso: {{ url: {}/verify, protocol: forward_auth, copy_headers: [X-User], timeout: 2s }}
domains:
  - hosts: [app.test]
    backends: [{}]
    plugins: [sso]
",
        auth.url(),
        origin.url()
    )));

    let ok = get(
        &s,
        "app.test",
        "/page?x=1",
        &[("Authorization", "Bearer good"), ("X-User", "mallory")],
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.header("x-origin"), Some("app"));
    let upstream = origin.last_request().expect("the backend was asked");
    assert_eq!(
        upstream.header_all("x-user"),
        ["alice"],
        "copied, the client's dropped"
    );
    assert_eq!(
        upstream.header("x-other"),
        None,
        "only copy_headers are copied"
    );
    let asked = auth.last_request().expect("the auth service was asked");
    assert_eq!(asked.method, "GET");
    assert_eq!(asked.target, "/verify");
    assert_eq!(asked.header("authorization"), Some("Bearer good"));
    assert_eq!(asked.header("x-forwarded-method"), Some("GET"));
    assert_eq!(asked.header("x-forwarded-uri"), Some("/page?x=1"));
    assert_eq!(asked.header("x-forwarded-host"), Some("app.test"));
    assert_eq!(asked.header("x-forwarded-proto"), Some("http"));
    assert_eq!(asked.header("x-forwarded-for"), Some("127.0.0.1"));

    let hits = origin.hits();
    let denied = get(&s, "app.test", "/page", &[("Authorization", "Bearer bad")]);
    assert_eq!(denied.status, 401);
    assert_eq!(
        denied.header("www-authenticate"),
        Some("Bearer realm=\"test\"")
    );
    assert_eq!(denied.text(), "login first\n");
    assert_eq!(origin.hits(), hits, "the backend is never asked");
    // The auth service's connection was kept alive and reused.
    assert_eq!(
        auth.connections(),
        1,
        "one pooled connection for both calls"
    );
}

/// A strait-protocol plugin: request and response phases, header edits, and `respond` for
/// `/blocked`.
fn edit_plugin() -> Origin {
    Origin::start(
        "edit",
        Behaviour::default().respond_with(|seen| match seen.target.as_str() {
            "/v1/hello" => json_reply(json!({ "phases": ["request", "response"] })),
            "/v1/request" => {
                let req = body_json(seen);
                if req["path"].as_str().unwrap_or("").starts_with("/blocked") {
                    return json_reply(json!({
                        "action": "respond", "status": 403,
                        "headers": { "X-Why": "blocked" }, "body": "no\n",
                    }));
                }
                json_reply(json!({
                    "action": "continue",
                    "set_headers": {
                        "X-Plugin": "yes",
                        "X-Saw": format!("{} {} {} {}", req["method"].as_str().unwrap_or("?"),
                            req["domain"].as_str().unwrap_or("?"),
                            req["query"].as_str().unwrap_or("-"),
                            req["client_ip"].as_str().unwrap_or("?")),
                    },
                    "remove_headers": ["x-secret"],
                    "response_headers": { "X-From-Request": "r" },
                }))
            }
            "/v1/response" => {
                let resp = body_json(seen);
                json_reply(json!({
                    "set_headers": { "X-Response-Saw": resp["status"].to_string() },
                    "remove_headers": ["x-internal"],
                }))
            }
            _ => Reply::new(404),
        }),
    )
}

#[test]
fn strait_protocol_edits_requests_and_responses_and_can_respond() {
    let origin = Origin::start(
        "app",
        Behaviour::default().respond_with(|_| Reply::new(200).header("X-Internal", "secret")),
    );
    let plugin = edit_plugin();
    let s = Strait::start(&config(&format!(
        "plugins:
  edit: {{ url: {} }}
domains:
  - hosts: [app.test]
    backends: [{}]
    plugins: [edit]
",
        plugin.url(),
        origin.url()
    )));

    let r = get(&s, "app.test", "/a?b=c", &[("X-Secret", "s")]);
    assert_eq!(r.status, 200, "{}", s.stderr());
    let seen = origin.last_request().expect("proxied");
    assert_eq!(seen.header("x-plugin"), Some("yes"));
    assert_eq!(seen.header("x-saw"), Some("GET app.test b=c 127.0.0.1"));
    assert_eq!(seen.header("x-secret"), None);
    assert_eq!(r.header("x-from-request"), Some("r"));
    assert_eq!(r.header("x-response-saw"), Some("200"));
    assert_eq!(
        r.header("x-internal"),
        None,
        "removed by the response phase"
    );
    let asked: Vec<Seen> = plugin.requests();
    let request_call = asked
        .iter()
        .find(|s| s.target == "/v1/request")
        .expect("a request call");
    let sent = body_json(request_call);
    assert_eq!(sent["version"], 1);
    assert_eq!(sent["path"], "/a");
    assert_eq!(sent["headers"]["x-secret"], "s");
    assert_eq!(sent["route"], Value::Null);
    assert!(
        sent["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{sent}"
    );

    let hits = origin.hits();
    let blocked = get(&s, "app.test", "/blocked", &[]);
    assert_eq!(blocked.status, 403);
    assert_eq!(blocked.header("x-why"), Some("blocked"));
    assert_eq!(blocked.text(), "no\n");
    assert_eq!(origin.hits(), hits, "respond short-circuits");
    assert_eq!(
        plugin
            .requests()
            .iter()
            .filter(|s| s.target == "/v1/hello")
            .count(),
        1,
        "hello is asked once"
    );
}

#[test]
fn a_plugin_that_hangs_times_out_into_on_error() {
    let origin = Origin::start("app", Behaviour::default());
    let hang = Hanging::start();
    let s = Strait::start(&config(&format!(
        "plugins:
  strict: {{ url: {hang}, protocol: forward_auth, timeout: 200ms, on_error: deny }}
  lenient: {{ url: {hang}, protocol: forward_auth, timeout: 200ms, on_error: allow }}
  quiet: {{ url: {hang}, timeout: 200ms }}
domains:
  - hosts: [deny.test]
    backends: [{o}]
    plugins: [strict]
  - hosts: [allow.test]
    backends: [{o}]
    plugins: [lenient]
  - hosts: [hello.test]
    backends: [{o}]
    plugins: [quiet]
",
        hang = hang.url(),
        o = origin.url()
    )));
    let started = Instant::now();
    let denied = get(&s, "deny.test", "/", &[]);
    assert_eq!(denied.status, 503);
    assert_eq!(denied.header("x-strait-error"), Some("plugin-unavailable"));
    let allowed = get(&s, "allow.test", "/", &[]);
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("x-origin"), Some("app"));
    // A strait-protocol plugin whose hello hangs: on_error (deny by default) meanwhile.
    let no_hello = get(&s, "hello.test", "/", &[]);
    assert_eq!(no_hello.status, 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "three timeouts of 200ms took {:?}",
        started.elapsed()
    );
    assert!(
        s.stderr_contains("plugin strict: request: timed out", Duration::from_secs(5)),
        "{}",
        s.stderr()
    );
}

#[test]
fn bad_answers_apply_on_error_and_are_counted_and_shown() {
    let origin = Origin::start("app", Behaviour::default());
    let bad = Origin::start(
        "bad",
        Behaviour::default().respond_with(|seen| match seen.target.as_str() {
            "/v1/hello" => json_reply(json!({ "phases": ["request"] })),
            _ => Reply::new(200).body("this is { not json"),
        }),
    );
    let odd = Origin::start(
        "odd",
        Behaviour::default().respond_with(|seen| match seen.target.as_str() {
            "/v1/hello" => json_reply(json!({})),
            _ => json_reply(json!({ "action": "perhaps" })),
        }),
    );
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}plugins:
  bad: {{ url: {} }}
  odd: {{ url: {}, on_error: allow }}
domains:
  - hosts: [bad.test]
    backends: [{o}]
    plugins: [bad]
  - hosts: [odd.test]
    backends: [{o}]
    plugins: [odd]
",
        p.yaml(true),
        bad.url(),
        odd.url(),
        o = origin.url()
    )));
    for _ in 0..3 {
        let r = get(&s, "bad.test", "/", &[]);
        assert_eq!(r.status, 503);
        assert_eq!(r.header("x-strait-error"), Some("plugin-unavailable"));
        assert_eq!(get(&s, "odd.test", "/", &[]).status, 200);
    }
    assert!(
        s.stderr_contains("malformed JSON", Duration::from_secs(5)),
        "{}",
        s.stderr()
    );
    assert!(s.stderr_has("this is { not json"), "the body is logged");
    // At most once a second per plugin: three failures within one second log once.
    assert!(
        s.stderr().matches("plugin bad:").count() <= 2,
        "{}",
        s.stderr()
    );
    let m = scrape(&p);
    let calls = |plugin: &str, phase: &str, outcome: &str| {
        m.value(
            "strait_plugin_calls_total",
            &[("plugin", plugin), ("phase", phase), ("outcome", outcome)],
        )
    };
    assert_eq!(calls("bad", "request", "error"), 3.0);
    assert_eq!(calls("odd", "request", "error"), 3.0);
    assert_eq!(calls("bad", "hello", "ok"), 1.0);
    assert_eq!(
        m.value(
            "strait_plugin_call_seconds_count",
            &[("plugin", "bad"), ("phase", "request")]
        ),
        3.0
    );
    let stats: Value = serde_json::from_slice(&p.call("GET", "/stats", "").body).expect("JSON");
    let bad_stats = stats["plugins"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "bad"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(bad_stats["errors"], 3, "{stats}");
    assert!(
        bad_stats["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("malformed JSON")),
        "{bad_stats}"
    );
    assert_eq!(
        p.probe("/ready").status,
        200,
        "a failing plugin is no reason to be unready"
    );
}

#[test]
fn the_decision_cache_avoids_asking_again_within_ttl() {
    let origin = Origin::start("app", Behaviour::default());
    let auth = auth_service();
    let s = Strait::start(&config(&format!(
        "plugins:
  sso: {{ url: {}, protocol: forward_auth, copy_headers: [X-User], cache: {{ key: header:Authorization, ttl: 60s }} }}
domains:
  - hosts: [app.test]
    backends: [{}]
    plugins: [sso]
",
        auth.url(),
        origin.url()
    )));
    for _ in 0..3 {
        let r = get(&s, "app.test", "/", &[("Authorization", "Bearer good")]);
        assert_eq!(r.status, 200);
        assert_eq!(
            origin
                .last_request()
                .and_then(|r| r.header("x-user").map(String::from)),
            Some("alice".to_string()),
            "a remembered decision still copies its headers"
        );
    }
    assert_eq!(auth.hits(), 1, "asked once for one Authorization value");
    // Refusals are not remembered; requests without the key always ask.
    for _ in 0..2 {
        assert_eq!(
            get(&s, "app.test", "/", &[("Authorization", "Bearer bad")]).status,
            401
        );
        assert_eq!(get(&s, "app.test", "/", &[]).status, 401);
    }
    assert_eq!(auth.hits(), 5);
}

#[test]
fn a_reload_adds_a_plugin_to_a_route() {
    let origin = Origin::start("app", Behaviour::default());
    let auth = auth_service();
    let before = format!(
        "plugins:
  sso: {{ url: {}, protocol: forward_auth }}
domains:
  - hosts: [app.test]
    backends: [{}]
    routes:
      - {{ path_prefix: /private/ }}
",
        auth.url(),
        origin.url()
    );
    let s = Strait::start(&config(&before));
    assert_eq!(get(&s, "app.test", "/private/x", &[]).status, 200);
    assert_eq!(auth.hits(), 0);
    let text = std::fs::read_to_string(s.config_path()).expect("read config");
    let after = text.replace(
        "{ path_prefix: /private/ }",
        "{ path_prefix: /private/, plugins: [sso] }",
    );
    assert_ne!(text, after);
    std::fs::write(s.config_path(), after).expect("write config");
    // SAFETY: kill(2) with a pid this test spawned.
    unsafe { libc::kill(s.pid() as i32, libc::SIGHUP) };
    assert!(
        s.stderr_contains("config reloaded", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    assert_eq!(get(&s, "app.test", "/private/x", &[]).status, 401);
    assert_eq!(get(&s, "app.test", "/public", &[]).status, 200);
    assert_eq!(auth.hits(), 1);
}

/// A reload that changes a plugin's settings (its URL) asks the new service from then on;
/// one that removes it from the file and the domain stops asking anything.
#[test]
fn a_reload_changes_and_then_removes_a_plugin() {
    let origin = Origin::start("app", Behaviour::default());
    let first = auth_service();
    let second = auth_service();
    let s = Strait::start(&config(&format!(
        "plugins:
  sso: {{ url: {}, protocol: forward_auth }}
domains:
  - hosts: [app.test]
    backends: [{}]
    plugins: [sso]
",
        first.url(),
        origin.url()
    )));
    let reload = |from: &str, to: &str, n: usize| {
        let text = std::fs::read_to_string(s.config_path()).expect("read config");
        let changed = text.replace(from, to);
        assert_ne!(text, changed);
        std::fs::write(s.config_path(), changed).expect("write config");
        // SAFETY: kill(2) with a pid this test spawned.
        unsafe { libc::kill(s.pid() as i32, libc::SIGHUP) };
        eventually_msg(Duration::from_secs(10), "the reload", || {
            s.stderr().matches("config reloaded").count() >= n
        });
    };
    assert_eq!(get(&s, "app.test", "/", &[]).status, 401);
    assert_eq!((first.hits(), second.hits()), (1, 0));
    reload(&first.url(), &second.url(), 1);
    assert_eq!(get(&s, "app.test", "/", &[]).status, 401);
    assert_eq!(
        (first.hits(), second.hits()),
        (1, 1),
        "the changed plugin is asked"
    );
    let text = std::fs::read_to_string(s.config_path()).expect("read config");
    let plugins_block = format!(
        "plugins:\n  sso: {{ url: {}, protocol: forward_auth }}\n",
        second.url()
    );
    assert!(text.contains(&plugins_block), "{text}");
    std::fs::write(
        s.config_path(),
        text.replace(&plugins_block, "")
            .replace("    plugins: [sso]\n", ""),
    )
    .expect("write config");
    // SAFETY: kill(2) with a pid this test spawned.
    unsafe { libc::kill(s.pid() as i32, libc::SIGHUP) };
    eventually_msg(Duration::from_secs(10), "the second reload", || {
        s.stderr().matches("config reloaded").count() >= 2
    });
    assert_eq!(get(&s, "app.test", "/", &[]).status, 200);
    assert_eq!(
        (first.hits(), second.hits()),
        (1, 1),
        "no plugin is asked any more"
    );
}

/// `examples/plugins/auth.py` run as it would be in production.
struct PythonPlugin {
    child: Child,
    port: u16,
}

impl Drop for PythonPlugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_plugin() -> PythonPlugin {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/plugins/auth.py");
    let port = free_port();
    let child = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .env("AUTH_TOKENS", "good=alice")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs");
    let plugin = PythonPlugin { child, port };
    eventually_msg(
        Duration::from_secs(10),
        "the Python plugin listening",
        || TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    plugin
}

#[test]
fn the_python_example_plugin_guards_a_domain() {
    let origin = Origin::start("app", Behaviour::default());
    let py = python_plugin();
    let s = Strait::start(&config(&format!(
        "plugins:
  auth: {{ url: http://127.0.0.1:{}, timeout: 2s }}
domains:
  - hosts: [app.test]
    backends: [{}]
    plugins: [auth]
",
        py.port,
        origin.url()
    )));
    let denied = get(&s, "app.test", "/", &[]);
    assert_eq!(denied.status, 401, "{}", s.stderr());
    assert!(denied.header("www-authenticate").is_some());
    let ok = get(&s, "app.test", "/", &[("Authorization", "Bearer good")]);
    assert_eq!(ok.status, 200, "{}", s.stderr());
    let seen = origin.last_request().expect("proxied");
    assert_eq!(seen.header("x-user"), Some("alice"));
    assert_eq!(
        seen.header("authorization"),
        None,
        "the credential stays with strait"
    );
}

/// The added latency per call, from strait's own histogram over a few hundred sequential
/// requests through a trivial plugin (printed for the record; bounded loosely).
#[test]
fn plugin_call_latency_is_measured() {
    let origin = Origin::start("app", Behaviour::default());
    let plugin = Origin::start(
        "trivial",
        Behaviour::default().respond_with(|seen| match seen.target.as_str() {
            "/v1/hello" => json_reply(json!({ "phases": ["request"] })),
            _ => json_reply(json!({ "action": "continue" })),
        }),
    );
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}plugins:
  trivial: {{ url: {} }}
domains:
  - hosts: [app.test]
    backends: [{}]
    plugins: [trivial]
",
        p.yaml(true),
        plugin.url(),
        origin.url()
    )));
    let n = 300;
    let responses = crate::support::send_many(&s, "app.test", "/", n);
    assert!(responses.iter().all(|r| r.status == 200));
    let m = scrape(&p);
    let labels = [("plugin", "trivial"), ("phase", "request")];
    assert_eq!(
        m.value("strait_plugin_call_seconds_count", &labels),
        n as f64
    );
    let buckets = [
        "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    ];
    let half = n as f64 / 2.0;
    let p50 = buckets.iter().find(|le| {
        m.value(
            "strait_plugin_call_seconds_bucket",
            &[labels[0], labels[1], ("le", le)],
        ) >= half
    });
    let p99 = buckets.iter().find(|le| {
        m.value(
            "strait_plugin_call_seconds_bucket",
            &[labels[0], labels[1], ("le", le)],
        ) >= n as f64 * 0.99
    });
    eprintln!("plugin call latency over {n} calls: p50 <= {p50:?} s, p99 <= {p99:?} s");
    assert!(
        p50.is_some(),
        "half the calls should take under 25ms on loopback"
    );
    assert_eq!(
        plugin.connections(),
        1,
        "one kept-alive connection for every call"
    );
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// The `plugins` entry named `name` in `GET /stats`.
/// The plugin's entry in `GET /stats`; `Null` while the admin listener does not answer yet
/// (`Strait::start` waits for the proxy listener only).
fn plugin_stats(p: &Ports, name: &str) -> Value {
    let auth = format!("Bearer {}", crate::admin::TOKEN);
    let Ok(r) = client::request(
        p.admin,
        "GET",
        "/stats",
        &[("Host", "admin"), ("Authorization", auth.as_str())],
        b"",
    ) else {
        return Value::Null;
    };
    let stats: Value = serde_json::from_slice(&r.body).expect("JSON");
    stats["plugins"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name))
        .cloned()
        .unwrap_or(Value::Null)
}

fn pid_of(p: &Ports, name: &str) -> Option<u32> {
    plugin_stats(p, name)["pid"].as_u64().map(|n| n as u32)
}

#[test]
fn a_command_plugin_is_started_restarted_and_stopped_with_strait() {
    let origin = Origin::start("app", Behaviour::default());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/plugins/auth.py");
    let p = Ports::new();
    let mut s = Strait::start_env(
        &config(&format!(
            "{}plugins:
  auth: {{ command: [python3, {script}], timeout: 2s }}
domains:
  - hosts: [app.test]
    backends: [{}]
    plugins: [auth]
",
            p.yaml(true),
            origin.url()
        )),
        &[("AUTH_TOKENS", "good=alice")],
    );
    // Until the program listens, on_error (deny) answers.
    eventually_msg(Duration::from_secs(15), "the plugin answering", || {
        get(&s, "app.test", "/", &[]).status == 401
    });
    let ok = get(&s, "app.test", "/", &[("Authorization", "Bearer good")]);
    assert_eq!(ok.status, 200, "{}", s.stderr());
    assert_eq!(
        origin
            .last_request()
            .and_then(|r| r.header("x-user").map(String::from)),
        Some("alice".to_string())
    );
    assert!(
        s.stderr_contains(
            "plugin auth: auth plugin listening on",
            Duration::from_secs(5)
        ),
        "its stderr goes to strait's log with its name:\n{}",
        s.stderr()
    );
    let first = pid_of(&p, "auth").expect("a pid in /stats");
    assert_eq!(plugin_stats(&p, "auth")["starts"], 1);

    // Killed: restarted, and asked for its hello again.
    // SAFETY: kill(2) on the plugin process strait started for this test.
    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    eventually_msg(Duration::from_secs(15), "a restarted plugin", || {
        pid_of(&p, "auth").is_some_and(|pid| pid != first)
            && get(&s, "app.test", "/", &[("Authorization", "Bearer good")]).status == 200
    });
    let second = pid_of(&p, "auth").expect("running");
    assert!(plugin_stats(&p, "auth")["starts"].as_u64() >= Some(2));

    // Shutdown stops it.
    // SAFETY: kill(2) with a pid this test spawned.
    unsafe { libc::kill(s.pid() as i32, libc::SIGTERM) };
    eventually_msg(Duration::from_secs(20), "strait exiting", || {
        !s.is_running()
    });
    eventually_msg(Duration::from_secs(10), "the plugin stopped", || {
        !alive(second)
    });
}

#[test]
fn a_crashing_command_plugin_backs_off_and_strait_stays_ready() {
    let origin = Origin::start("app", Behaviour::default());
    let p = Ports::new();
    let started = Instant::now();
    let s = Strait::start(&config(&format!(
        "{}plugins:
  crash: {{ command: [sh, -c, \"echo boom >&2; exit 3\"], on_error: allow, timeout: 500ms }}
domains:
  - hosts: [app.test]
    backends: [{}]
    plugins: [crash]
",
        p.yaml(true),
        origin.url()
    )));
    eventually_msg(Duration::from_secs(15), "four starts", || {
        plugin_stats(&p, "crash")["starts"].as_u64() >= Some(4)
    });
    // Backoff 100ms, 200ms, 400ms between the four starts: no busy loop.
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "four starts within {:?}",
        started.elapsed()
    );
    assert!(s.stderr_has("plugin crash: boom"), "{}", s.stderr());
    assert!(s.stderr_has("restarting in"), "{}", s.stderr());
    assert_eq!(p.probe("/ready").status, 200);
    let r = get(&s, "app.test", "/", &[]);
    assert_eq!(r.status, 200, "on_error: allow");
    assert!(
        plugin_stats(&p, "crash")["last_error"]["message"].is_string(),
        "{}",
        plugin_stats(&p, "crash")
    );
}

#[test]
fn autostart_runs_without_a_route_and_a_reload_removing_it_stops_it() {
    let p = Ports::new();
    let origin = Origin::start("app", Behaviour::default());
    let s = Strait::start(&config(&format!(
        "{}plugins:
  bg: {{ command: [sh, -c, \"echo started $STRAIT_PLUGIN_NAME >&2; exec sleep 300\"], autostart: true }}
domains:
  - hosts: [app.test]
    backends: [{}]
",
        p.yaml(true),
        origin.url()
    )));
    assert!(
        s.stderr_contains("plugin bg: started bg", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    let pid = pid_of(&p, "bg").expect("running");
    assert!(alive(pid));
    let text = std::fs::read_to_string(s.config_path()).expect("read config");
    let start = text.find("plugins:").expect("plugins");
    let end = text.find("domains:").expect("domains");
    let without = format!("{}{}", &text[..start], &text[end..]);
    std::fs::write(s.config_path(), without).expect("write config");
    // SAFETY: kill(2) with a pid this test spawned.
    unsafe { libc::kill(s.pid() as i32, libc::SIGHUP) };
    assert!(
        s.stderr_contains("config reloaded", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    eventually_msg(
        Duration::from_secs(10),
        "the removed plugin stopped",
        || !alive(pid),
    );
    assert_eq!(get(&s, "app.test", "/", &[]).status, 200);
}

/// A connection plugin: allows everything but the `blocked` listener and the SNI `bad.test`.
fn gate_plugin() -> Origin {
    Origin::start(
        "gate",
        Behaviour::default().respond_with(|seen| match seen.target.as_str() {
            "/v1/hello" => json_reply(json!({ "phases": ["connection"] })),
            "/v1/connection" => {
                let asked = body_json(seen);
                let deny = asked["listener"] == "blocked" || asked["sni"] == "bad.test";
                json_reply(json!({ "action": if deny { "deny" } else { "allow" } }))
            }
            _ => Reply::new(404),
        }),
    )
}

/// Connection gating: a listener's plugins decide about each new connection before a request
/// is read, by listener and by TLS server name; a failing plugin applies its `on_error`.
#[test]
fn listener_plugins_gate_connections() {
    let dir = crate::support::strait::temp_dir("gate-tls");
    crate::support::pki::issue("good.test", None, &["good.test", "bad.test"], None, false)
        .write(&dir, "site");
    let gate = gate_plugin();
    let dead = free_port();
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], ports[i]));
    let s = Strait::start(&format!(
        "plugins:
  gate: {{ url: {gate} }}
  down: {{ url: http://127.0.0.1:{dead}, timeout: 200ms }}
  down_allow: {{ url: http://127.0.0.1:{dead}, timeout: 200ms, on_error: allow }}
listeners:
  - {{ name: open, addr: \"{{listen}}\", plugins: [gate] }}
  - {{ name: blocked, addr: \"{b}\", plugins: [gate] }}
  - {{ name: failing, addr: \"{f}\", plugins: [down] }}
  - {{ name: lenient, addr: \"{l}\", plugins: [down_allow] }}
  - name: secure
    addr: \"{t}\"
    plugins: [gate]
    tls: {{ certs: [{{ cert: {d}/site.crt, key: {d}/site.key }}] }}
domains:
  - hosts: [\"*\"]
    respond: {{ body: ok }}
",
        gate = gate.url(),
        b = addr(0),
        f = addr(1),
        l = addr(2),
        t = addr(3),
        d = dir.display(),
    ));
    let r = get(&s, "a.test", "/", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    let blocked = client::get(addr(0), "a.test", "/");
    assert!(
        blocked.is_err(),
        "a denied connection got an answer: {blocked:?}"
    );
    let r = client::get(addr(1), "a.test", "/").expect("a 403");
    assert_eq!(
        (r.status, r.header("x-strait-error")),
        (403, Some("plugin-unavailable"))
    );
    let r = client::get(addr(2), "a.test", "/").expect("on_error: allow");
    assert_eq!(r.status, 200);
    let tls = |sni: &'static str| crate::support::pki::Client {
        sni: Some(sni),
        ..Default::default()
    };
    let (status, _, _) =
        crate::support::pki::get(addr(3), &tls("good.test"), "good.test", "/").expect("allowed");
    assert_eq!(status, 200);
    let denied = crate::support::pki::get(addr(3), &tls("bad.test"), "bad.test", "/");
    assert!(denied.is_err(), "the denied SNI got {denied:?}");
    let asked: Vec<Value> = gate
        .requests()
        .iter()
        .filter(|r| r.target == "/v1/connection")
        .map(body_json)
        .collect();
    assert!(
        asked.iter().any(|a| a["listener"] == "secure"
            && a["sni"] == "bad.test"
            && a["client_ip"] == "127.0.0.1"),
        "{asked:?}"
    );
}

#[test]
fn a_listener_naming_an_unknown_plugin_is_a_config_error() {
    let check = Strait::check(
        "plugins:
  gate: { url: http://127.0.0.1:9 }
listeners:
  - { addr: 127.0.0.1:1, plugins: [gate, nope, gate] }
domains:
  - hosts: [\"*\"]
    respond: { body: ok }
",
    );
    check.assert_error(
        4,
        42,
        "listeners[0].plugins[1]",
        &["unknown plugin \"nope\"", "gate"],
    );
    check.assert_error(4, 48, "listeners[0].plugins[2]", &["listed twice"]);
}

/// On a listener with `client_auth`, `/v1/request` carries the verified client certificate's
/// subject and SHA-256 fingerprint; without a certificate, `tls_client` is null.
#[test]
fn the_request_phase_sees_the_tls_client_identity() {
    use crate::support::pki;
    let dir = crate::support::strait::temp_dir("plugin-mtls");
    pki::issue("site.test", None, &["site.test"], None, false).write(&dir, "site");
    let ca = pki::ca("clients");
    std::fs::write(dir.join("clients.pem"), ca.cert.to_pem().unwrap()).unwrap();
    let alice = pki::issue("alice", Some("Example"), &[], Some(&ca), false);
    let plugin = Origin::start(
        "who",
        Behaviour::default().respond_with(|seen| match seen.target.as_str() {
            "/v1/hello" => json_reply(json!({ "phases": ["request"] })),
            _ => json_reply(json!({ "action": "continue" })),
        }),
    );
    let s = Strait::start(&format!(
        "plugins:
  who: {{ url: {} }}
listeners:
  - addr: \"{{listen}}\"
    tls:
      certs: [{{ cert: {d}/site.crt, key: {d}/site.key }}]
      client_auth: {{ ca: {d}/clients.pem, mode: optional }}
domains:
  - hosts: [\"*\"]
    plugins: [who]
    respond: {{ body: ok }}
",
        plugin.url(),
        d = dir.display()
    ));
    let with = pki::Client {
        sni: Some("site.test"),
        cert: Some(&alice),
        ..Default::default()
    };
    let without = pki::Client {
        sni: Some("site.test"),
        ..Default::default()
    };
    for c in [&with, &without] {
        let (status, _, _) = pki::get(s.addr(), c, "site.test", "/").expect("TLS");
        assert_eq!(status, 200);
    }
    let asked: Vec<Value> = plugin
        .requests()
        .iter()
        .filter(|r| r.target == "/v1/request")
        .map(body_json)
        .collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[0]["tls_client"]["subject"], "CN=alice,O=Example");
    assert_eq!(asked[0]["tls_client"]["fingerprint"], alice.fingerprint());
    assert_eq!(asked[1]["tls_client"], Value::Null);
}

/// A `command` plugin that takes a moment to start: the first request waits for it (within
/// the plugin's `timeout`) instead of failing with `on_error`.
#[test]
fn the_first_request_waits_for_a_starting_command_plugin() {
    let origin = Origin::start("app", Behaviour::default().echo());
    let dir = crate::support::strait::temp_dir("slow-plugin");
    let script = dir.join("slow.py");
    std::fs::write(&script, crate::support::plugin_script::allow_all(0.5)).expect("write");
    let s = Strait::start(&config(&format!(
        "plugins:
  slow: {{ command: [python3, \"{}\"], timeout: 3s }}
domains:
  - hosts: [\"*\"]
    backends: [{}]
    plugins: [slow]
",
        script.display(),
        origin.url()
    )));
    let r = get(&s, "app.test", "/", &[]);
    assert_eq!(r.status, 200, "{}", s.stderr());
    let seen = origin.last_request().expect("proxied");
    assert!(seen.header("x-plugin").is_some(), "the plugin answered");
    let _ = std::fs::remove_dir_all(&dir);
}
