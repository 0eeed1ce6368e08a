//! The JSON access log: one parseable line per request matching what was sent, `X-Request-Id`
//! passed upstream and logged, `-` for stdout, and reopening after logrotate's rename.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::client::{self, parse_echo};
use crate::support::{
    backends, config, domains, eventually_msg, Behaviour, Domain, Origin, Strait,
};

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect()
}

fn text_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line ({e}): {l:?}")))
        .collect()
}

/// `log.test` on `origin`, with a static `/ping` route.
fn log_test(origin: &Origin) -> String {
    domains(&[Domain::new("log.test")
        .origins(&[origin])
        .route("{ path_prefix: /ping, respond: { status: 200, body: pong } }")])
}

/// Whether the process has a SIGUSR1 handler installed (so the signal will not kill it).
fn catches_usr1(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (libc::SIGUSR1 - 1)) != 0)
}

#[test]
fn lines_parse_and_match_the_requests() {
    let origin = Origin::start("o", Behaviour::default().echo());
    let s = Strait::start(&config(&format!(
        "logging:\n  access_log: \"{{dir}}/access.log\"\n{}",
        log_test(&origin)
    )));
    let log = s.dir().join("access.log");
    struct Sent {
        method: &'static str,
        host: &'static str,
        target: &'static str,
        id: Option<&'static str>,
        status: u16,
        body: &'static [u8],
    }
    let sent = [
        Sent {
            method: "GET",
            host: "log.test",
            target: "/a?x=1&y=%20",
            id: None,
            status: 200,
            body: b"",
        },
        Sent {
            method: "POST",
            host: "log.test",
            target: "/upload",
            id: Some("client-id-42"),
            status: 200,
            body: b"0123456789",
        },
        Sent {
            method: "GET",
            host: "log.test",
            target: "/ping",
            id: None,
            status: 200,
            body: b"",
        },
        Sent {
            method: "GET",
            host: "nowhere.test",
            target: "/zz",
            id: Some("bad id with spaces"),
            status: 404,
            body: b"",
        },
        Sent {
            method: "HEAD",
            host: "log.test",
            target: "/h",
            id: None,
            status: 200,
            body: b"",
        },
    ];
    let mut responses = Vec::new();
    for r in &sent {
        let mut headers = vec![("Host", r.host), ("User-Agent", "strait-test/1")];
        if let Some(id) = r.id {
            headers.push(("X-Request-Id", id));
        }
        let resp = client::request(s.addr(), r.method, r.target, &headers, r.body)
            .unwrap_or_else(|e| panic!("{} {}: {e}", r.method, r.target));
        assert_eq!(resp.status, r.status, "{} {}", r.method, r.target);
        responses.push(resp);
    }
    eventually_msg(Duration::from_secs(5), "one line per request", || {
        lines(&log).len() >= sent.len()
    });
    let got = lines(&log);
    assert_eq!(got.len(), sent.len(), "{got:#?}");
    let mut ids = HashSet::new();
    // Lines are written as requests finish, which need not be the order they were sent in.
    for (r, resp) in sent.iter().zip(&responses) {
        let path_only = r.target.split('?').next().unwrap_or("");
        let line = got
            .iter()
            .find(|l| l["method"] == r.method && l["path"] == path_only)
            .unwrap_or_else(|| panic!("no line for {} {}: {got:#?}", r.method, r.target));
        let (path, query) = match r.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (r.target, None),
        };
        assert_eq!(line["method"], r.method, "{line}");
        assert_eq!(line["host"], r.host, "{line}");
        assert_eq!(line["path"], path, "{line}");
        assert_eq!(
            line["query"],
            query.map_or(Value::Null, |q| q.into()),
            "{line}"
        );
        assert_eq!(line["status"], r.status, "{line}");
        assert_eq!(line["client"], "127.0.0.1", "{line}");
        assert_eq!(line["user_agent"], "strait-test/1", "{line}");
        assert_eq!(line["bytes_in"], r.body.len() as u64, "{line}");
        assert_eq!(line["bytes_out"], resp.body.len() as u64, "{line}");
        let t = line["time"].as_str().expect("time");
        assert!(
            t.len() == 24 && t.ends_with('Z') && &t[10..11] == "T",
            "{t}"
        );
        let d = line["duration_ms"].as_f64().expect("duration_ms");
        assert!((0.0..10_000.0).contains(&d), "{line}");
        let id = line["request_id"].as_str().expect("request_id").to_string();
        match r.id {
            Some(given) if !given.contains(' ') => assert_eq!(id, given),
            _ => assert!(!id.is_empty() && !id.contains(' '), "{id}"),
        }
        assert!(ids.insert(id.clone()), "request id {id} repeated");
        let proxied = r.host == "log.test" && path != "/ping";
        if proxied {
            assert_eq!(line["upstream"], origin.url(), "{line}");
            assert!(
                line["upstream_duration_ms"]
                    .as_f64()
                    .is_some_and(|u| u <= d),
                "{line}"
            );
            assert_eq!(line["attempts"], 1);
            assert_eq!(line["domain"], "log.test");
            assert_eq!(line["route"], Value::Null);
            // The backend saw the id the log shows.
            let seen = origin
                .requests()
                .into_iter()
                .find(|s| s.target == r.target)
                .expect("origin saw the request");
            assert_eq!(seen.header("x-request-id"), Some(id.as_str()));
            if r.method == "GET" {
                let (_, echoed) = parse_echo(&resp.body);
                assert!(echoed
                    .iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case("x-request-id") && *v == id));
            }
        } else {
            assert_eq!(line["upstream"], Value::Null, "{line}");
            assert_eq!(line["upstream_duration_ms"], Value::Null, "{line}");
        }
        if path == "/ping" {
            assert_eq!(line["route"], "/ping");
        }
        if r.host == "nowhere.test" {
            assert_eq!(line["domain"], Value::Null);
        }
        assert_eq!(line["cache"], Value::Null);
    }
}

#[test]
fn dash_writes_to_stdout() {
    let origin = Origin::plain("o");
    let s = Strait::start(&config(&format!(
        "logging:\n  access_log: \"-\"\n{}",
        log_test(&origin)
    )));
    for i in 0..3 {
        assert_eq!(s.get("log.test", &format!("/s{i}")).status, 200);
    }
    eventually_msg(Duration::from_secs(5), "three lines on stdout", || {
        text_lines(&s.stdout()).len() >= 3
    });
    let got = text_lines(&s.stdout());
    let mut paths: Vec<&str> = got.iter().filter_map(|l| l["path"].as_str()).collect();
    paths.sort();
    assert_eq!(paths, vec!["/s0", "/s1", "/s2"]);
}

#[test]
fn sigusr1_reopens_the_file_after_a_rename() {
    let origin = Origin::plain("o");
    let s = Strait::start(&config(&format!(
        "logging:\n  access_log: \"{{dir}}/access.log\"\n{}",
        log_test(&origin)
    )));
    let log = s.dir().join("access.log");
    let rotated = s.dir().join("access.log.1");
    for i in 0..4 {
        assert_eq!(s.get("log.test", &format!("/before{i}")).status, 200);
    }
    eventually_msg(Duration::from_secs(5), "4 lines", || lines(&log).len() == 4);
    eventually_msg(Duration::from_secs(5), "the SIGUSR1 handler", || {
        catches_usr1(s.pid())
    });

    std::fs::rename(&log, &rotated).expect("rename the log");
    // Until the signal, lines still go to the renamed file (same open file).
    assert_eq!(s.get("log.test", "/between").status, 200);
    eventually_msg(
        Duration::from_secs(5),
        "a 5th line in the rotated file",
        || lines(&rotated).len() == 5,
    );
    assert!(!log.exists());
    // SAFETY: kill(2) on the child we started.
    unsafe { libc::kill(s.pid() as i32, libc::SIGUSR1) };
    eventually_msg(Duration::from_secs(5), "the log reopened", || log.exists());
    for i in 0..3 {
        assert_eq!(s.get("log.test", &format!("/after{i}")).status, 200);
    }
    eventually_msg(Duration::from_secs(5), "3 lines in the new file", || {
        lines(&log).len() == 3
    });
    // Sorted: lines are written as requests finish, not necessarily in the order sent.
    let mut old: Vec<String> = lines(&rotated)
        .iter()
        .map(|l| l["path"].as_str().unwrap_or("").to_string())
        .collect();
    let mut new: Vec<String> = lines(&log)
        .iter()
        .map(|l| l["path"].as_str().unwrap_or("").to_string())
        .collect();
    old.sort();
    new.sort();
    assert_eq!(
        old,
        ["/before0", "/before1", "/before2", "/before3", "/between"]
    );
    assert_eq!(new, ["/after0", "/after1", "/after2"]);
    assert!(s.stderr_has("reopen"), "{}", s.stderr());
}

#[test]
fn unwritable_log_path_is_a_start_error() {
    let origin = Origin::plain("o");
    let yaml = config(&format!(
        "logging:\n  access_log: /nonexistent-dir/strait/access.log\n{}",
        log_test(&origin)
    ));
    let dir = crate::support::strait::temp_dir("bad-log");
    let file = dir.join("strait.yaml");
    let port = crate::support::strait::free_port();
    std::fs::write(
        &file,
        yaml.replace("{listen}", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    let out = std::process::Command::new(crate::support::strait::bin())
        .arg("-c")
        .arg(&file)
        .output()
        .expect("run strait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("logging.access_log") && err.contains("/nonexistent-dir"),
        "{err}"
    );
}

#[test]
fn cache_results_are_logged() {
    let origin = Origin::plain("o");
    let s = Strait::start(&config(&format!(
        "logging:\n  access_log: \"{{dir}}/access.log\"\ncache: {{ max_bytes: 8MiB, default_ttl: 1m }}\ndomains:\n  - hosts: [c.test]\n    backends: {}\n    cache: true\n",
        backends(&[&origin])
    )));
    let log = s.dir().join("access.log");
    for _ in 0..2 {
        assert_eq!(s.get("c.test", "/page").status, 200);
    }
    let post = client::request(s.addr(), "POST", "/page", &[("Host", "c.test")], b"x").unwrap();
    assert_eq!(post.status, 200);
    eventually_msg(Duration::from_secs(5), "3 lines", || lines(&log).len() == 3);
    let all = lines(&log);
    let mut got: Vec<&str> = all.iter().filter_map(|l| l["cache"].as_str()).collect();
    got.sort();
    assert_eq!(got, ["bypass", "hit", "miss"], "{all:#?}");
    let hit = all.iter().find(|l| l["cache"] == "hit").expect("a hit");
    assert_eq!(hit["upstream"], Value::Null, "a hit has no upstream: {hit}");
    assert_eq!(hit["attempts"], 0);
    assert_eq!(origin.hits(), 2);
}

#[test]
fn console_level_comes_from_config_unless_the_environment_says_otherwise() {
    let origin = Origin::plain("o");
    let yaml = config(&format!("logging:\n  level: warn\n{}", log_test(&origin)));
    let quiet = Strait::start_env(&yaml, &[("STRAIT_LOG", ""), ("RUST_LOG", "")]);
    assert_eq!(quiet.get("log.test", "/").status, 200);
    let loud = Strait::start_env(&yaml, &[("STRAIT_LOG", "info")]);
    assert_eq!(loud.get("log.test", "/").status, 200);
    assert!(
        loud.stderr_contains("strait listening", Duration::from_secs(5)),
        "{}",
        loud.stderr()
    );
    assert!(!quiet.stderr_has("strait listening"), "{}", quiet.stderr());
    let rust_log = Strait::start_env(&yaml, &[("RUST_LOG", "strait=info")]);
    assert!(rust_log.stderr_contains("strait listening", Duration::from_secs(5)));
}

/// `access_log_format: combined`: Apache's combined lines, readable by tools that expect them.
#[test]
fn combined_format_lines() {
    let origin = Origin::plain("o");
    let s = Strait::start(&config(&format!(
        "logging:\n  access_log: \"{{dir}}/access.log\"\n  access_log_format: combined\n{}",
        log_test(&origin)
    )));
    let log = s.dir().join("access.log");
    let resp = client::request(
        s.addr(),
        "GET",
        "/ping?x=1",
        &[
            ("Host", "log.test"),
            ("Referer", "http://ref.test/"),
            ("User-Agent", "tester \"q\""),
        ],
        b"",
    )
    .expect("GET /ping");
    assert_eq!(resp.status, 200);
    eventually_msg(Duration::from_secs(10), "the combined line", || {
        std::fs::read_to_string(&log).is_ok_and(|t| !t.is_empty())
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let line = text.lines().next().unwrap_or_default();
    // 127.0.0.1 - - [02/Dec/2026:00:59:57 +0000] "GET /ping?x=1 HTTP/1.1" 200 4 "http://ref.test/" "tester \"q\""
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.contains(" +0000] \"GET /ping?x=1 HTTP/1.1\" 200 4 "),
        "{line}"
    );
    assert!(
        line.ends_with(" \"http://ref.test/\" \"tester \\\"q\\\"\""),
        "{line}"
    );
}

/// `access_log_format` per domain or route: a route's combined log beside the global JSON one,
/// and one file named in two formats is a config error.
#[test]
fn route_logs_take_their_own_format() {
    let origin = Origin::plain("o");
    let s = Strait::start(&config(&format!(
        "logging:\n  access_log: \"{{dir}}/access.log\"\n\
         domains:\n  - hosts: [log.test]\n    backends: {}\n    routes:\n      - {{ path_prefix: /legacy/, access_log: \"{{dir}}/legacy.log\", access_log_format: combined }}\n",
        crate::support::backends(&[&origin])
    )));
    for path in ["/legacy/a", "/json"] {
        assert_eq!(s.get("log.test", path).status, 200, "{path}");
    }
    let legacy = s.dir().join("legacy.log");
    let global = s.dir().join("access.log");
    eventually_msg(Duration::from_secs(10), "both logs written", || {
        std::fs::read_to_string(&legacy).is_ok_and(|t| !t.is_empty()) && lines(&global).len() >= 2
    });
    let text = std::fs::read_to_string(&legacy).unwrap_or_default();
    assert!(
        text.starts_with("127.0.0.1 - - [") && text.contains("\"GET /legacy/a HTTP/1.1\" 200"),
        "{text}"
    );
    // The global log stays JSON for both requests (in either order: a request is logged
    // after its response went out, so the next one can overtake it).
    let mut paths: Vec<String> = lines(&global)
        .iter()
        .filter_map(|l| l["path"].as_str().map(str::to_string))
        .collect();
    paths.sort();
    assert_eq!(paths, ["/json", "/legacy/a"]);

    // Checked when the snapshot is built, after the file decoded.
    let check = Strait::check(
        "listeners: [{ addr: 127.0.0.1:1 }]
domains:
  - hosts: [a.test]
    respond: { status: 200 }
    access_log: /tmp/strait-shared-format.log
    routes:
      - { path_prefix: /x/, respond: { status: 200 }, access_log_format: combined }
",
    );
    check.assert_error(
        3,
        5,
        "domains[0].access_log",
        &["written as combined by domains[0].routes[0].access_log"],
    );
    let check = Strait::check(
        "listeners: [{ addr: 127.0.0.1:1 }]
domains:
  - hosts: [b.test]
    respond: { status: 200 }
    access_log_format: combined
",
    );
    check.assert_error(5, 24, "domains[0].access_log_format", &["there is none"]);
}

/// Domain and route access logs: each file gets its own requests, `access_log_global: false`
/// keeps them out of the global log, and a SIGUSR1 rotation under load loses no line.
#[test]
fn domain_and_route_logs_with_rotation_under_load() {
    let origin = Origin::plain("o");
    let s = Strait::start(&config(&format!(
        "logging:\n  access_log: \"{{dir}}/access.log\"\n\
         domains:\n  - hosts: [shop.test]\n    backends: {b}\n    access_log: \"{{dir}}/shop.log\"\n\
         \x20   routes:\n      - {{ path_prefix: /api/, access_log: \"{{dir}}/api.log\", access_log_global: false }}\n\
         \x20 - hosts: [other.test]\n    backends: {b}\n",
        b = backends(&[&origin])
    )));
    let dir = s.dir().to_path_buf();
    let count = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    for _ in 0..3 {
        assert_eq!(s.get("shop.test", "/page").status, 200);
        assert_eq!(s.get("other.test", "/").status, 200);
    }
    assert_eq!(s.get("shop.test", "/api/x").status, 200);
    eventually_msg(Duration::from_secs(10), "every line written", || {
        count("access.log") == 6 && count("shop.log") == 3 && count("api.log") == 1
    });
    let global = lines(&dir.join("access.log"));
    assert!(
        global.iter().all(|l| l["path"] != "/api/x"),
        "access_log_global: false keeps /api/ out of the global log"
    );
    assert!(lines(&dir.join("shop.log"))
        .iter()
        .all(|l| l["path"] == "/page"));

    // Rotation under load: a client keeps sending to /api/ while the file is renamed and
    // SIGUSR1 sent; every request ends up in one of the two files.
    assert!(catches_usr1(s.pid()), "strait listens for SIGUSR1");
    let addr = s.addr();
    const N: usize = 300;
    let load = std::thread::spawn(move || {
        (0..N)
            .filter(|i| {
                client::get(addr, "shop.test", &format!("/api/{i}")).is_ok_and(|r| r.status == 200)
            })
            .count()
    });
    eventually_msg(Duration::from_secs(20), "load under way", || {
        count("api.log") > 50
    });
    std::fs::rename(dir.join("api.log"), dir.join("api.log.1")).expect("rotate");
    // SAFETY: kill(2) on the strait process this test started.
    unsafe { libc::kill(s.pid() as i32, libc::SIGUSR1) };
    let ok = load.join().expect("load thread");
    assert_eq!(ok, N, "every request succeeded");
    eventually_msg(
        Duration::from_secs(20),
        "no line lost across the rotation",
        || count("api.log") + count("api.log.1") == N + 1,
    );
    assert!(
        count("api.log") > 0,
        "the reopened file gets the later lines"
    );
}

/// A domain log that cannot be opened is a config error at the domain (`strait -t` too).
#[test]
fn unopenable_domain_log_is_a_config_error() {
    let check = Strait::check(&config(
        "domains:\n  - hosts: [a.test]\n    access_log: /nonexistent-dir/a.log\n    routes: [{ path_prefix: /, respond: { body: ok } }]\n",
    ));
    let msg = check.assert_error(
        4,
        5,
        "domains[0].access_log",
        &["cannot open", "/nonexistent-dir/a.log"],
    );
    assert!(!msg.is_empty());
}
