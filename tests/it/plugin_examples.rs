//! The example plugins of `examples/` (docs/plugins.md, "Examples"), each run the way the
//! docs say: as a `command` plugin strait starts and supervises.
//!
//! - `examples/plugins/response_headers.py`: security headers on every response;
//! - `examples/plugins/sync_backends.py`: an `autostart` plugin keeping a pool in step with a
//!   file through the admin API;
//! - `examples/plugin_auth.rs`: a request-phase bearer check in Rust (standard library only),
//!   compiled here with rustc.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::admin::Ports;
use crate::support::client;
use crate::support::strait::temp_dir;
use crate::support::wait::output_within;
use crate::support::{config, send_many, served_by, Behaviour, Origin, Strait};
use crate::support::{eventually_msg, origin::Reply};

/// `GET path` with `Host: host` and extra headers, on a fresh connection.
#[track_caller]
fn get(s: &Strait, host: &str, path: &str, headers: &[(&str, &str)]) -> client::Response {
    let mut all = vec![("Host", host)];
    all.extend_from_slice(headers);
    client::request(s.addr(), "GET", path, &all, b"")
        .unwrap_or_else(|e| panic!("GET {host}{path}: {e}\n{}", s.stderr()))
}

fn example(name: &str) -> String {
    format!("{}/examples/plugins/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_response_headers_example_secures_every_response() {
    let origin = Origin::start(
        "app",
        Behaviour::default().respond_with(|_| {
            Reply::new(200)
                .header("X-Powered-By", "PHP/8.3")
                .header("Server", "Apache/2.4")
                .body("app")
        }),
    );
    let script = example("response_headers.py");
    let s = Strait::start(&config(&format!(
        "plugins:
  secure: {{ command: [python3, {script}], on_error: allow }}
domains:
  - hosts: [app.test]
    backends: [{}]
    plugins: [secure]
    routes:
      - {{ path_prefix: /ping, respond: {{ status: 200, body: pong }} }}
",
        origin.url()
    )));
    // Until the program listens and has answered its hello, responses go out unedited
    // (on_error: allow); then every one carries the headers.
    eventually_msg(
        Duration::from_secs(15),
        "the plugin editing responses",
        || {
            get(&s, "app.test", "/", &[])
                .header("strict-transport-security")
                .is_some()
        },
    );
    let r = get(&s, "app.test", "/", &[]);
    assert_eq!(r.status, 200, "{}", s.stderr());
    assert_eq!(r.text(), "app");
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        r.header("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    assert_eq!(r.header("x-powered-by"), None, "removed");
    assert_eq!(r.header("server"), None, "removed");
    assert_eq!(r.header("x-origin"), Some("app"), "other headers stay");

    // strait's own answers get them too.
    let pong = get(&s, "app.test", "/ping", &[]);
    assert_eq!(pong.text(), "pong");
    assert_eq!(pong.header("x-content-type-options"), Some("nosniff"));
    assert!(
        s.stderr_has("plugin secure: response_headers plugin listening on"),
        "{}",
        s.stderr()
    );
}

/// The backends of `app.test`'s pool, as the admin API lists them.
fn pool(p: &Ports) -> Vec<String> {
    let r = p.call("GET", "/backends?domain=app.test", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let list: Value = serde_json::from_slice(&r.body).expect("JSON");
    let mut out: Vec<String> = list
        .as_array()
        .expect("an array")
        .iter()
        .map(|b| b["addr"].as_str().unwrap_or("").to_string())
        .collect();
    out.sort();
    out
}

/// Replaces the file at once (write, then rename), as the example's docs ask.
fn write_list(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write the backend list");
    std::fs::rename(&tmp, path).expect("rename the backend list into place");
}

#[test]
fn the_sync_backends_example_keeps_a_pool_in_step_with_a_file() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let p = Ports::new();
    let script = example("sync_backends.py");
    // The config starts with B only; the file (relative: from the config's folder) lists A.
    let s = Strait::start(&config(&format!(
        "{}plugins:
  sync: {{ command: [python3, {script}, --domain, app.test, --file, backends.txt], autostart: true }}
domains:
  - hosts: [app.test]
    backends: [{}]
",
        p.yaml(true),
        b.url()
    )));
    p.wait_up();
    let file = s
        .config_path()
        .parent()
        .expect("the config's folder")
        .join("backends.txt");
    write_list(&file, &format!("# the app's backends\n{}\n", a.url()));
    eventually_msg(Duration::from_secs(10), "the pool holding A only", || {
        pool(&p) == vec![a.url()]
    });
    let names = crate::support::names(&send_many(&s, "app.test", "/", 10));
    assert!(names.iter().all(|n| n == "a"), "{names:?}");

    // The list changes: within the bound, every response comes from B.
    write_list(&file, &format!("{}\n", b.url()));
    eventually_msg(Duration::from_secs(10), "responses from B only", || {
        send_many(&s, "app.test", "/", 6)
            .iter()
            .all(|r| served_by(r) == "b")
    });
    assert_eq!(pool(&p), vec![b.url()], "{}", s.stderr());
    let names = crate::support::names(&send_many(&s, "app.test", "/", 10));
    assert!(names.iter().all(|n| n == "b"), "{names:?}");
    assert!(
        s.stderr_has("plugin sync: synced from backends.txt"),
        "its changes are logged:\n{}",
        s.stderr()
    );
}

/// `examples/plugin_auth.rs` compiled by rustc alone (it needs no crate) into a temp dir,
/// from the source as it is now. `cargo test --all-targets` builds examples only as test
/// harnesses, so there is no runnable `target/debug/examples/plugin_auth` to take.
fn plugin_auth_binary() -> PathBuf {
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/plugin_auth.rs");
    let out = temp_dir("plugin-auth").join("plugin_auth");
    // $RUSTC, else the rustc beside the cargo that built this test, else the one on PATH.
    let sibling = Path::new(env!("CARGO")).with_file_name("rustc");
    let rustc = std::env::var_os("RUSTC")
        .map(PathBuf::from)
        .or_else(|| sibling.exists().then_some(sibling))
        .unwrap_or_else(|| PathBuf::from("rustc"));
    let (code, _, stderr) = output_within(
        Command::new(&rustc)
            .args(["--edition", "2021", "-C", "debuginfo=0", "-o"])
            .arg(&out)
            .arg(source),
        Duration::from_secs(120),
    );
    assert_eq!(
        code,
        Some(0),
        "{} {source} failed:\n{stderr}",
        rustc.display()
    );
    out
}

#[test]
fn the_rust_example_plugin_checks_a_bearer_token() {
    let bin = plugin_auth_binary();
    let origin = Origin::start("app", Behaviour::default());
    let s = Strait::start_env(
        &config(&format!(
            "plugins:
  auth: {{ command: [{}], timeout: 2s }}
domains:
  - hosts: [app.test]
    backends: [{}]
    plugins: [auth]
",
            bin.display(),
            origin.url()
        )),
        // strait's environment is the plugin's.
        &[("PLUGIN_TOKEN", "good-token")],
    );
    // Until the program listens, on_error (deny) answers 503.
    eventually_msg(Duration::from_secs(15), "the plugin answering", || {
        get(&s, "app.test", "/", &[]).status == 401
    });
    let denied = get(&s, "app.test", "/", &[]);
    assert_eq!(
        denied.header("www-authenticate"),
        Some("Bearer realm=\"strait\"")
    );
    assert_eq!(denied.text(), "unauthorized\n");
    let wrong = get(&s, "app.test", "/", &[("Authorization", "Bearer nope")]);
    assert_eq!(wrong.status, 401);
    let hits = origin.hits();
    assert_eq!(hits, 0, "refused requests reach no backend");

    let ok = get(
        &s,
        "app.test",
        "/",
        &[("Authorization", "Bearer good-token")],
    );
    assert_eq!(ok.status, 200, "{}", s.stderr());
    let seen = origin.last_request().expect("proxied");
    assert_eq!(seen.header("x-authenticated"), Some("yes"));
    assert_eq!(
        seen.header("authorization"),
        None,
        "the credential stays with strait"
    );
    assert!(
        s.stderr_has("plugin auth: plugin_auth listening on"),
        "{}",
        s.stderr()
    );
}
