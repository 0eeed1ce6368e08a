//! The Rust hooks API through real requests.
//!
//! Hooks are Rust closures, so the server under test has to be built in Rust: this test binary
//! re-runs itself as that server. `hook_server_entry` below is a test that does nothing in a
//! normal run; started with `STRAIT_IT_HOOK_CONFIG` set (by [`start_hooked`]), it builds
//! `strait::Strait::from_file(..)` with the hooks defined here and serves until killed. So
//! every request below goes over TCP to a separate process, as with the `strait` binary,
//! and nothing depends on `examples/` having been built.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use strait::hooks::{Reject, ResponseSource};

use crate::support::client::{self, parse_echo};
use crate::support::origin::{Behaviour, Refusing, Reply};
use crate::support::websocket::{WsClient, WsOrigin};
use crate::support::{config, eventually, Origin, Strait};

const CONFIG_VAR: &str = "STRAIT_IT_HOOK_CONFIG";
const ERRORS_VAR: &str = "STRAIT_IT_HOOK_ERRORS";

/// Not a test of its own: the hook server's `main` (see the module comment), run only by
/// [`start_hooked`] (`--ignored --exact`).
#[test]
#[ignore = "the hook server's main; started by start_hooked"]
fn hook_server_entry() {
    let config = std::env::var(CONFIG_VAR).expect("STRAIT_IT_HOOK_CONFIG names the config");
    let errors = std::env::var(ERRORS_VAR).ok();
    let server = strait::Strait::from_file(&config).unwrap_or_else(|e| panic!("{e}"));
    strait::logging::init(server.config().logging.level);
    let server = server
        .on_request(request_hook)
        .on_response(response_hook)
        .on_error(move |e| {
            let line = format!(
                "{} {} {} {} {}\n",
                e.domain(),
                e.attempt(),
                e.backend().unwrap_or("-"),
                e.kind(),
                e.retrying()
            );
            if let Some(path) = &errors {
                let mut f = fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("open the error log");
                f.write_all(line.as_bytes()).expect("write the error log");
            }
        });
    if let Err(e) = server.run() {
        eprintln!("hook server: {e}");
        std::process::exit(1);
    }
}

/// Rejects `/private*` without `X-Token: secret`; otherwise tells the backend what it saw.
fn request_hook(req: &mut strait::Request<'_>) -> Result<(), Reject> {
    let path = req.path().to_string();
    if path.starts_with("/private") && req.header("x-token") != Some("secret") {
        return Err(Reject::new(401)
            .body("no token\n")
            .header("WWW-Authenticate", "Token"));
    }
    let seen = [
        ("X-Hook-Domain", req.domain().to_string()),
        ("X-Hook-Route", req.route().unwrap_or("-").to_string()),
        ("X-Hook-Backend", req.backend().unwrap_or("-").to_string()),
        (
            "X-Hook-Client",
            req.client_ip().map_or("-".into(), |ip| ip.to_string()),
        ),
        (
            "X-Hook-Peer",
            req.client_addr().map_or("-".into(), |a| a.ip().to_string()),
        ),
        ("X-Hook-Kind", format!("{:?}", req.kind())),
        ("X-Hook-Method", req.method().to_string()),
        ("X-Hook-Path", path.clone()),
    ];
    for (name, value) in seen {
        req.set_header(name, &value);
    }
    req.remove_header("x-drop-me");
    if path.starts_with("/host/") {
        req.set_upstream_host("rewritten.internal");
    }
    if path.starts_with("/rehost/") {
        req.set_header("Host", "hooks.test");
    }
    Ok(())
}

/// Labels every response with what the hook saw; changes status and caching by path.
fn response_hook(resp: &mut strait::Response<'_>) {
    let source = match resp.source() {
        ResponseSource::Backend => "backend",
        ResponseSource::Cache => "cache",
        ResponseSource::Strait => "strait",
        _ => "other",
    };
    let status = resp.status().to_string();
    resp.set_header("X-Hook-Source", source);
    resp.set_header("X-Hook-Status-Seen", &status);
    resp.remove_header("X-Secret-Internal");
    // `append` twice: a hit must not carry the values of the miss that stored it.
    resp.append_header("X-Hook-Count", "1");
    let path = resp.path().to_string();
    if path.starts_with("/teapot") {
        resp.set_status(418);
    }
    if path.starts_with("/cache-me") || path.starts_with("/private-cached") {
        resp.cache_for(Duration::from_secs(60));
    }
    if path.starts_with("/no-cache") {
        resp.dont_cache();
    }
}

pub(crate) fn start_hooked(yaml: &str) -> Strait {
    let program = |config: &Path| {
        let mut cmd = Command::new(std::env::current_exe().expect("the test binary"));
        cmd.args([
            "--ignored",
            "--exact",
            "hooks::hook_server_entry",
            "--nocapture",
        ])
        .env(CONFIG_VAR, config)
        .env(ERRORS_VAR, config.with_file_name("errors.log"));
        cmd
    };
    Strait::start_with(yaml, &[], &program)
}

fn error_log(s: &Strait) -> Vec<String> {
    fs::read_to_string(s.dir().join("errors.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// An origin that echoes the request head it got, with `Cache-Control` by path and an
/// internal header the response hook removes.
fn echo_origin() -> Origin {
    Origin::start(
        "echo",
        Behaviour::default().respond_with(|seen| {
            let (target, head) = (&seen.target, &seen.headers);
            let cache_control = if target.starts_with("/no-cache") {
                "max-age=60"
            } else {
                "no-store"
            };
            let mut body = format!("{} {}\r\n", seen.method, target);
            for (k, v) in head {
                body.push_str(&format!("{k}: {v}\r\n"));
            }
            body.push_str("\r\n");
            Reply::new(200)
                .header("Cache-Control", cache_control)
                .header("X-Secret-Internal", "leak")
                .body(body)
        }),
    )
}

fn hooks_config(origin: &Origin) -> String {
    config(&format!(
        r#"cache: {{ max_bytes: 4MiB }}
domains:
  - hosts: [hooks.test]
    backends: [{{ addr: {} }}]
    cache: true
    routes:
      - {{ path_prefix: /static, respond: {{ status: 200, body: "static\n" }} }}
      - {{ path_prefix: /private-static, respond: {{ status: 200, body: "secret\n" }} }}
      - {{ path_prefix: /moved, redirect: {{ status: 301, location: "/new$path" }} }}
  - hosts: [plain.test]
    backends: [{{ addr: {} }}]
"#,
        origin.url(),
        origin.url()
    ))
}

fn get(s: &Strait, host: &str, path: &str, headers: &[(&str, &str)]) -> client::Response {
    let mut all = vec![("Host", host)];
    all.extend_from_slice(headers);
    client::request(s.addr(), "GET", path, &all, b"")
        .unwrap_or_else(|e| panic!("GET {path}: {e}\n--- stderr ---\n{}", s.stderr()))
}

fn echoed(r: &client::Response) -> Vec<(String, String)> {
    parse_echo(&r.body).1
}

fn value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    client::find_header(headers, name)
}

#[test]
fn request_hooks_see_the_request_and_change_what_the_backend_gets() {
    let origin = echo_origin();
    let s = start_hooked(&hooks_config(&origin));
    let r = get(
        &s,
        "hooks.test",
        "/a/b?x=1",
        &[("X-Drop-Me", "1"), ("X-Keep", "2")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = echoed(&r);
    assert_eq!(value(&seen, "x-hook-domain"), Some("hooks.test"));
    assert_eq!(value(&seen, "x-hook-route"), Some("-"));
    assert_eq!(value(&seen, "x-hook-backend"), Some(origin.url().as_str()));
    assert_eq!(value(&seen, "x-hook-client"), Some("127.0.0.1"));
    assert_eq!(value(&seen, "x-hook-peer"), Some("127.0.0.1"));
    assert_eq!(value(&seen, "x-hook-kind"), Some("Proxy"));
    assert_eq!(value(&seen, "x-hook-method"), Some("GET"));
    assert_eq!(value(&seen, "x-hook-path"), Some("/a/b"));
    assert_eq!(value(&seen, "x-drop-me"), None, "removed by the hook");
    assert_eq!(value(&seen, "x-keep"), Some("2"));
    // The upstream Host is strait's choice (the backend's address) unless a hook sets it.
    assert_eq!(
        value(&seen, "host"),
        Some(origin.addr().to_string().as_str())
    );
    let r = get(&s, "hooks.test", "/host/x", &[]);
    assert_eq!(value(&echoed(&r), "host"), Some("rewritten.internal"));
}

#[test]
fn request_hooks_reject_before_any_backend() {
    let origin = echo_origin();
    let s = start_hooked(&hooks_config(&origin));
    let r = get(&s, "hooks.test", "/private/x", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.text(), "no token\n");
    assert_eq!(r.header("www-authenticate"), Some("Token"));
    // A rejection is a response too: the response hooks see it.
    assert_eq!(r.header("x-hook-source"), Some("strait"));
    assert_eq!(r.header("x-hook-status-seen"), Some("401"));
    assert_eq!(origin.hits(), 0);
    let r = get(&s, "hooks.test", "/private/x", &[("X-Token", "secret")]);
    assert_eq!(r.status, 200);
    assert_eq!(origin.hits(), 1);
    // Static routes are guarded the same way.
    assert_eq!(get(&s, "hooks.test", "/private-static", &[]).status, 401);
    let r = get(
        &s,
        "hooks.test",
        "/private-static",
        &[("X-Token", "secret")],
    );
    assert_eq!((r.status, r.text().as_str()), (200, "secret\n"));
}

#[test]
fn response_hooks_change_status_and_headers() {
    let origin = echo_origin();
    let s = start_hooked(&hooks_config(&origin));
    let r = get(&s, "hooks.test", "/plain", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-hook-source"), Some("backend"));
    assert_eq!(r.header("x-hook-status-seen"), Some("200"));
    assert_eq!(r.header("x-secret-internal"), None);
    assert_eq!(r.header_all("x-hook-count"), ["1"]);
    let r = get(&s, "hooks.test", "/teapot", &[]);
    assert_eq!(r.status, 418);
    assert_eq!(r.header("x-hook-status-seen"), Some("200"));
    // Static answers: respond and redirect routes.
    let r = get(&s, "hooks.test", "/static", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "static\n"));
    assert_eq!(r.header("x-hook-source"), Some("strait"));
    let r = get(&s, "hooks.test", "/moved/x", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/new/moved/x"));
    assert_eq!(r.header("x-hook-source"), Some("strait"));
    assert_eq!(origin.hits(), 2);
}

#[test]
fn hooks_run_on_cache_hits_and_decide_caching() {
    let origin = echo_origin();
    let s = start_hooked(&hooks_config(&origin));
    // `no-store` from the origin, `cache_for` from the hook: stored.
    let first = get(&s, "hooks.test", "/cache-me", &[]);
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(first.header("x-hook-source"), Some("backend"));
    let hit = get(&s, "hooks.test", "/cache-me", &[]);
    assert_eq!(hit.header("x-cache"), Some("HIT"), "{:?}", hit.headers);
    assert_eq!(origin.hits_path("/cache-me"), 1);
    // The hook ran on the hit, and its edits on the miss were not stored.
    assert_eq!(hit.header("x-hook-source"), Some("cache"));
    assert_eq!(hit.header_all("x-hook-count"), ["1"]);
    assert_eq!(hit.header("x-secret-internal"), None);
    assert_eq!(hit.body, first.body);

    // `max-age=60` from the origin, `dont_cache` from the hook: never stored.
    // (After the first refusal the cache remembers the URL as uncacheable: BYPASS.)
    let first = get(&s, "hooks.test", "/no-cache", &[]);
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let second = get(&s, "hooks.test", "/no-cache", &[]);
    assert_ne!(second.header("x-cache"), Some("HIT"));
    assert_eq!(origin.hits_path("/no-cache"), 2);

    // An auth hook still guards a cached response.
    let stored = get(
        &s,
        "hooks.test",
        "/private-cached",
        &[("X-Token", "secret")],
    );
    assert_eq!(stored.status, 200);
    let hit = get(
        &s,
        "hooks.test",
        "/private-cached",
        &[("X-Token", "secret")],
    );
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    let r = get(&s, "hooks.test", "/private-cached", &[]);
    assert_eq!(r.status, 401, "a cache hit must not skip the request hook");
    assert_eq!(origin.hits_path("/private-cached"), 1);
}

#[test]
fn hooks_run_on_websocket_upgrades() {
    let ws = WsOrigin::start("ws");
    let yaml = config(&format!(
        "domains:\n  - hosts: [ws.test]\n    backends: [{{ addr: {} }}]\n",
        ws.url()
    ));
    let s = start_hooked(&yaml);
    let refused = WsClient::connect(s.addr(), "ws.test", "/private-ws", &[]).unwrap();
    assert_eq!(refused.response.status, 401);
    assert_eq!(
        ws.upgrades(),
        0,
        "a rejected upgrade never reaches the backend"
    );

    let mut c =
        WsClient::connect(s.addr(), "ws.test", "/private-ws", &[("X-Token", "secret")]).unwrap();
    assert_eq!(c.response.status, 101, "{:?}", c.response);
    assert_eq!(c.response.header("x-hook-source"), Some("backend"));
    assert_eq!(c.response.header("x-hook-status-seen"), Some("101"));
    assert_eq!(c.echo("through the tunnel").unwrap(), "through the tunnel");
    let handshake = &ws.handshakes()[0];
    assert_eq!(value(handshake, "x-hook-kind"), Some("Upgrade"));
    assert_eq!(value(handshake, "x-hook-domain"), Some("ws.test"));
}

#[test]
fn error_hooks_report_each_failed_attempt_once() {
    let live = Origin::plain("live");
    // Bound but never listening: connects are refused, and no other socket can take the ports.
    let (refusing1, refusing2) = (Refusing::new(), Refusing::new());
    let (dead1, dead2) = (refusing1.port(), refusing2.port());
    let yaml = config(&format!(
        r#"domains:
  - hosts: [flaky.test]
    max_retries: 1
    backends: [{{ addr: "http://127.0.0.1:{dead1}" }}, {{ addr: {} }}]
  - hosts: [dead.test]
    max_retries: 1
    backends: [{{ addr: "http://127.0.0.1:{dead1}" }}, {{ addr: "http://127.0.0.1:{dead2}" }}]
  - hosts: [empty.test]
    backends: []
"#,
        live.url()
    ));
    let s = start_hooked(&yaml);
    let dead_url = format!("http://127.0.0.1:{dead1}");

    for _ in 0..2 {
        assert_eq!(get(&s, "flaky.test", "/", &[]).status, 200);
    }
    let lines = error_log(&s);
    assert!(
        !lines.is_empty(),
        "the dead backend is tried first at least once"
    );
    for line in &lines {
        assert_eq!(
            line,
            &format!("flaky.test 1 {dead_url} connect-refused true")
        );
    }

    assert_eq!(get(&s, "dead.test", "/", &[]).status, 502);
    eventually(Duration::from_secs(5), || {
        error_log(&s).len() == lines.len() + 2
    });
    let dead: Vec<String> = error_log(&s)[lines.len()..].to_vec();
    assert!(
        dead[0].starts_with("dead.test 1 http://127.0.0.1:"),
        "{dead:?}"
    );
    assert!(dead[0].ends_with(" connect-refused true"), "{dead:?}");
    assert!(
        dead[1].starts_with("dead.test 2 http://127.0.0.1:"),
        "{dead:?}"
    );
    assert!(dead[1].ends_with(" connect-refused false"), "{dead:?}");

    let before = error_log(&s).len();
    assert_eq!(get(&s, "empty.test", "/", &[]).status, 503);
    eventually(Duration::from_secs(5), || error_log(&s).len() == before + 1);
    assert_eq!(
        error_log(&s)[before],
        "empty.test 1 - no-healthy-backend false"
    );
}

/// The cache rules come from the domain that routed the request (and applied its limits),
/// even when an `on_request` hook rewrites the Host to a domain that caches.
#[test]
fn cache_rules_follow_the_routed_domain_not_a_rewritten_host() {
    let origin = echo_origin();
    let s = start_hooked(&hooks_config(&origin));
    for _ in 0..2 {
        let r = get(&s, "plain.test", "/rehost/no-cache-x", &[]);
        assert_eq!(
            r.status,
            200,
            "{:?} {}",
            r.headers,
            String::from_utf8_lossy(&r.body)
        );
        // The hook did rewrite the Host...
        assert_eq!(value(&echoed(&r), "x-forwarded-host"), Some("hooks.test"));
        // ...but plain.test does not cache, so the cache never took part.
        assert_eq!(r.header("x-cache"), None, "{:?}", r.headers);
    }
    assert_eq!(origin.hits_path("/rehost/no-cache-x"), 2);
}
