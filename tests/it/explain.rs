//! `POST /explain` and `strait explain`: for each routing and balancing rule, the explanation
//! names what a real request sent right after it then does: the domain and route that answer,
//! and the backend that actually serves it. Explaining changes nothing: asking twice before
//! each request must not advance a cursor or spend a rate budget.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::{json, Value};

use crate::admin::{json, Ports};
use crate::support::client;
use crate::support::strait::{run_bin, temp_dir};
use crate::support::{config, domains, served_by, weighted_backends, Domain, Origin, Strait};

fn ask(p: &Ports, host: &str, path: &str, client_ip: IpAddr) -> Value {
    let body =
        json!({ "method": "GET", "host": host, "path": path, "client_ip": client_ip.to_string() });
    let r = p.call("POST", "/explain", &body.to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    json(&r)
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Which origin answers a real request from `ip`.
fn real(s: &Strait, ip: IpAddr, host: &str, path: &str) -> String {
    let r = client::get_from(ip, s.addr(), host, path)
        .unwrap_or_else(|e| panic!("GET {host}{path} from {ip}: {e}\n{}", s.stderr()));
    served_by(&r)
}

#[test]
fn the_explained_backend_is_the_one_that_answers() {
    let o: Vec<Origin> = ["a", "b", "c"].iter().map(|n| Origin::plain(n)).collect();
    let by_url: BTreeMap<String, String> =
        o.iter().map(|x| (x.url(), x.name().to_string())).collect();
    let all: Vec<&Origin> = o.iter().collect();
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}{}",
        p.yaml(true),
        domains(&[
            Domain::new("rr.test").strategy("round_robin").origins(&all),
            Domain::new("wrr.test")
                .strategy("weighted_round_robin")
                .backends(weighted_backends(&[(&o[0], 3), (&o[1], 1), (&o[2], 1)])),
            Domain::new("lc.test")
                .strategy("least_connections")
                .origins(&all),
            Domain::new("hash.test").strategy("ip_hash").origins(&all),
        ])
    )));
    p.wait_up();
    for host in ["rr.test", "wrr.test", "lc.test", "hash.test"] {
        let mut served = Vec::new();
        for i in 0..10u8 {
            let ip = loopback(1 + i * 7);
            let first = ask(&p, host, "/", ip);
            let again = ask(&p, host, "/", ip);
            let pick = first["backend"]["pick"].as_str().unwrap_or("").to_string();
            assert_eq!(
                again["backend"]["pick"], first["backend"]["pick"],
                "{host}: asking moved the balancer"
            );
            let want = by_url
                .get(&pick)
                .unwrap_or_else(|| panic!("{host}: no pick in {first}"));
            let got = real(&s, ip, host, "/");
            assert_eq!(
                &got, want,
                "{host} request {i}: explained {pick}, served by {got}\n{first}"
            );
            served.push(got);
        }
        // The checks above mean something only if the picks moved between backends.
        let distinct: std::collections::BTreeSet<_> = served.iter().collect();
        assert!(distinct.len() >= 2, "{host}: always {served:?}");
    }
    // ip_hash says where the key lands.
    let v = ask(&p, "hash.test", "/", loopback(9));
    let ring = &v["backend"]["ip_hash"];
    assert_eq!(ring["key"], "127.0.0.9", "{v}");
    assert_eq!(ring["points"], 3 * 512, "{v}");
    assert_eq!(ring["owner"], v["backend"]["pick"], "{v}");
    assert_eq!(v["backend"]["candidates"].as_array().map(Vec::len), Some(3));

    // A drained backend is shown unusable and never explained as the pick, nor served.
    let r = p.call(
        "PUT",
        &format!("/backends/enabled?domain=rr.test&addr={}", o[1].addr()),
        "{\"enabled\": false}",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for _ in 0..4 {
        let v = ask(&p, "rr.test", "/", loopback(1));
        let b = &v["backend"]["candidates"][1];
        assert_eq!(
            (b["enabled"].clone(), b["usable"].clone()),
            (json!(false), json!(false)),
            "{v}"
        );
        let pick = v["backend"]["pick"].as_str().unwrap_or("");
        assert_ne!(pick, o[1].url(), "{v}");
        assert_eq!(
            Some(&real(&s, loopback(1), "rr.test", "/")),
            by_url.get(pick)
        );
    }
}

#[test]
fn routing_limits_and_answers_are_explained() {
    let api = Origin::plain("api");
    let wild = Origin::plain("wild");
    let eu = Origin::plain("eu");
    let auth = Origin::plain("auth");
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}{}",
        p.yaml(true),
        domains(&[
            Domain::new("api.x.test, \"*.x.test\"")
                .origins(&[&api])
                .field("rate_limit", "{ requests: 3, per: 60s }")
                .route(&format!("{{ path_prefix: /auth/, backends: [{{ addr: {} }}] }}", auth.url()))
                .route("{ path_prefix: /auth/static/, respond: { status: 200, body: static } }")
                .route("{ path_prefix: /old/, redirect: { status: 301, location: \"https://$host/new$path\" } }"),
            Domain::new("\"*.eu.x.test\"").origins(&[&eu]),
            Domain::new("\"*\"").origins(&[&wild]),
        ])
    )));
    p.wait_up();
    let ip = loopback(1);
    // Host patterns: exact over wildcards, the longer wildcard over the shorter, `*` last.
    let cases = [
        ("api.x.test", "api.x.test", "api.x.test"),
        ("a.eu.x.test", "*.eu.x.test", "*.eu.x.test"),
        ("b.x.test", "api.x.test", "*.x.test"),
        ("elsewhere.test", "*", "*"),
    ];
    for (host, domain, pattern) in cases {
        let v = ask(&p, host, "/z", ip);
        assert_eq!(v["domain"]["matched"], domain, "{host}: {v}");
        assert_eq!(v["domain"]["pattern"], pattern, "{host}: {v}");
    }
    let v = ask(&p, "a.eu.x.test", "/", ip);
    let beaten: Vec<&str> = v["domain"]["beaten"]
        .as_array()
        .map(|l| l.iter().filter_map(|b| b["pattern"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(beaten, ["*.x.test", "*"], "{v}");
    assert_eq!(real(&s, ip, "a.eu.x.test", "/"), "eu");
    assert_eq!(real(&s, ip, "b.x.test", "/"), "api");
    assert_eq!(real(&s, ip, "elsewhere.test", "/"), "wild");

    // Routes: the longest prefix wins, and the explanation names the one it beat.
    let v = ask(&p, "api.x.test", "/auth/static/x", ip);
    assert_eq!(v["route"]["matched"], "/auth/static/", "{v}");
    assert!(
        v["route"]["beaten"]
            .as_array()
            .is_some_and(|l| l.iter().any(|b| b["path_prefix"] == "/auth/"
                && b["why"].as_str().is_some_and(|w| w.contains("longer")))),
        "{v}"
    );
    assert_eq!(v["action"]["kind"], "respond", "{v}");
    let r = s.get("api.x.test", "/auth/static/x");
    assert_eq!((r.status, r.text()), (200, "static".to_string()));
    let v = ask(&p, "api.x.test", "/auth/login", ip);
    assert_eq!(v["route"]["matched"], "/auth/", "{v}");
    assert_eq!(v["backend"]["pick"], auth.url(), "{v}");
    let v = ask(&p, "api.x.test", "/old/page?q=1", ip);
    assert_eq!(
        v["action"]["location"], "https://api.x.test/new/old/page",
        "{v}"
    );
    let r = s.get("api.x.test", "/old/page?q=1");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://api.x.test/new/old/page")
    );

    // The rate budget is read, not spent: three real requests spend it, explaining does not.
    let ip = loopback(42);
    for _ in 0..3 {
        assert_eq!(
            ask(&p, "api.x.test", "/", ip)["limits"]["rate_limit"]["remaining"],
            3
        );
    }
    let routes_spent = ask(&p, "api.x.test", "/", ip);
    assert_eq!(
        routes_spent["limits"]["rate_limit"]["key"], "client_ip 127.0.0.42",
        "{routes_spent}"
    );
    for left in [2, 1, 0] {
        assert_eq!(real(&s, ip, "api.x.test", "/"), "api");
        let v = ask(&p, "api.x.test", "/", ip);
        assert_eq!(v["limits"]["rate_limit"]["remaining"], left, "{v}");
    }
    let v = ask(&p, "api.x.test", "/", ip);
    assert_eq!(v["outcome"], "429 rate-limited", "{v}");
    let r = client::get_from(ip, s.addr(), "api.x.test", "/").expect("request");
    assert_eq!(r.status, 429);

    // Bad questions are the caller's mistake.
    for body in [
        "{}",
        "not json",
        "{\"host\": \"a\", \"client_ip\": \"nope\"}",
        "{\"host\": \"a\", \"oops\": 1}",
    ] {
        let r = p.call("POST", "/explain", body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
    }
    assert_eq!(p.call("GET", "/explain", "").status, 405);
}

#[test]
fn the_cache_decision_and_entry_are_explained() {
    let o = Origin::start(
        "o",
        crate::support::Behaviour::default().respond_with(|_| {
            crate::support::origin::Reply::new(200)
                .header("Cache-Control", "max-age=60")
                .body("x")
        }),
    );
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}cache: {{ rules: [{{ path_prefix: /nocache/, cache: false }}] }}\n{}",
        p.yaml(true),
        domains(&[Domain::new("c.test").origins(&[&o]).cache()])
    )));
    p.wait_up();
    let ip = loopback(1);
    let v = ask(&p, "c.test", "/page", ip);
    assert_eq!(
        (v["cache"]["cacheable"].clone(), v["cache"]["entry"].clone()),
        (json!(true), json!("absent")),
        "{v}"
    );
    let r = s.get("c.test", "/page");
    assert_eq!(r.header("x-cache"), Some("MISS"));
    let v = ask(&p, "c.test", "/page", ip);
    assert_eq!(v["cache"]["entry"], "fresh", "{v}");
    let r = s.get("c.test", "/page");
    assert_eq!(r.header("x-cache"), Some("HIT"));
    let v = ask(&p, "c.test", "/nocache/x", ip);
    assert_eq!(
        (
            v["cache"]["cacheable"].clone(),
            v["cache"]["reason"].clone()
        ),
        (json!(false), json!("rule-off")),
        "{v}"
    );
    let r = s.get("c.test", "/nocache/x");
    assert_eq!(r.header("x-cache"), Some("BYPASS"));

    // /stats (the dashboard's source) counts the outcomes and why the non-hits missed.
    let mut v = Value::Null;
    crate::support::eventually_msg(
        std::time::Duration::from_secs(5),
        "3 requests counted",
        || {
            v = json(&p.call("GET", "/stats", ""));
            v["domains"][0]["requests"] == 3
        },
    );
    let d = &v["domains"][0];
    assert_eq!(
        d["cache"],
        json!({ "hit": 1, "miss": 1, "stale": 0, "bypass": 1 }),
        "{v}"
    );
    let reasons = d["cache_miss_reasons"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let counted: u64 = reasons.iter().filter_map(|r| r["count"].as_u64()).sum();
    assert_eq!(counted, 2, "{v}");
    assert!(reasons.iter().any(|r| r["reason"] == "rule-off"), "{v}");
}

/// With `Vary`, the explanation shows the one variant the request's headers select (the
/// secondary key the cache computes), and a real request with those headers is then a HIT
/// with that variant's body; a request whose variant is not stored is absent and a MISS.
#[test]
fn the_cache_entry_is_the_variant_the_request_selects() {
    let o = Origin::start(
        "o",
        crate::support::Behaviour::default().respond_with(|req| {
            let lang = req.header("accept-language").unwrap_or("none").to_string();
            crate::support::origin::Reply::new(200)
                .header("Cache-Control", "max-age=60")
                .header("Vary", "Accept-Language")
                .body(format!("lang={lang}"))
        }),
    );
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}cache: {{}}\n{}",
        p.yaml(true),
        domains(&[Domain::new("v.test").origins(&[&o]).cache()])
    )));
    p.wait_up();
    let explain = |lang: Option<&str>| {
        let headers: BTreeMap<&str, &str> =
            lang.map(|l| ("Accept-Language", l)).into_iter().collect();
        let body = json!({ "host": "v.test", "path": "/page", "headers": headers });
        let r = p.call("POST", "/explain", &body.to_string());
        assert_eq!(r.status, 200, "{}", r.text());
        json(&r)["cache"].clone()
    };
    let real = |lang: Option<&str>| {
        let mut h = vec![("Host", "v.test"), ("X-Cache-Debug", "1")];
        h.extend(lang.map(|l| ("Accept-Language", l)));
        client::request(s.addr(), "GET", "/page", &h, b"")
            .unwrap_or_else(|e| panic!("GET /page: {e}\n{}", s.stderr()))
    };
    // fr and de are stored; nothing for a request without the header.
    assert_eq!(real(Some("fr")).header("x-cache"), Some("MISS"));
    assert_eq!(real(Some("de")).header("x-cache"), Some("MISS"));
    // A response is stored as its body finishes, which may be just after the client has it.
    let mut fr = Value::Null;
    crate::support::eventually_msg(
        std::time::Duration::from_secs(5),
        "2 variants stored",
        || {
            fr = explain(Some("fr"));
            fr["variants_stored"] == 2
        },
    );
    assert_eq!(
        (fr["entry"].clone(), fr["variants_stored"].clone()),
        (json!("fresh"), json!(2)),
        "{fr}"
    );
    let entries = fr["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 1, "only the selected variant: {fr}");
    assert_eq!(entries[0]["vary"], json!(["accept-language"]), "{fr}");
    assert_eq!(entries[0]["vary_variant"], true, "{fr}");
    let r = real(Some("fr"));
    assert_eq!(
        (r.header("x-cache"), r.text()),
        (Some("HIT"), "lang=fr".to_string())
    );

    let de = explain(Some("de"));
    assert_eq!(de["entry"], "fresh", "{de}");
    assert_eq!(de["entries"].as_array().map(Vec::len), Some(1), "{de}");
    let r = real(Some("de"));
    assert_eq!(
        (r.header("x-cache"), r.text()),
        (Some("HIT"), "lang=de".to_string())
    );

    // Headers are compared as the cache compares them: list whitespace does not matter.
    let none = explain(None);
    assert_eq!(
        (none["entry"].clone(), none["variants_stored"].clone()),
        (json!("absent"), json!(2)),
        "{none}"
    );
    assert_eq!(real(None).header("x-cache"), Some("MISS"));
    let spaced = explain(Some("fr ,  en"));
    assert_eq!(spaced["entry"], "absent", "{spaced}");
    assert_eq!(real(Some("fr,en")).header("x-cache"), Some("MISS"));
    let spaced = explain(Some("fr ,  en"));
    assert_eq!(spaced["entry"], "fresh", "{spaced}");
    let r = real(Some("fr , en"));
    assert_eq!(
        (r.header("x-cache"), r.text()),
        (Some("HIT"), "lang=fr,en".to_string())
    );
}

#[test]
fn strait_explain_answers_offline_from_a_file() {
    let dir = temp_dir("explain-cli");
    let file = dir.join("strait.yaml");
    std::fs::write(
        &file,
        "listeners: [{ addr: 127.0.0.1:1 }]
domains:
  - hosts: [a.test]
    load_balancer: ip_hash
    backends: [http://127.0.0.1:9001, http://127.0.0.1:9002, http://127.0.0.1:9003]
    routes:
      - { path_prefix: /s/, respond: { status: 204 } }
",
    )
    .expect("write config");
    let path = file.to_string_lossy().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec!["explain", "-c", path.as_str(), "--host", "A.test:8080"];
        args.extend_from_slice(extra);
        let ran = run_bin(&args);
        assert_eq!(ran.code, Some(0), "{ran:?}");
        serde_json::from_str::<Value>(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {ran:?}"))
    };
    let v = run(&["--path", "/x", "--client-ip", "10.0.0.1"]);
    assert_eq!(v["domain"]["matched"], "a.test", "{v}");
    assert_eq!(v["backend"]["strategy"], "ip_hash", "{v}");
    let pick = v["backend"]["pick"].clone();
    assert!(
        pick.as_str()
            .is_some_and(|p| p.starts_with("http://127.0.0.1:900")),
        "{v}"
    );
    // The same address, the same backend, every time.
    assert_eq!(
        run(&["--path", "/y", "--client-ip", "10.0.0.1"])["backend"]["pick"],
        pick
    );
    // The listener: known, plain HTTP; or unknown.
    let v = run(&["--listener", "127.0.0.1:1"]);
    assert_eq!(v["listener"]["tls"], false, "{v}");
    assert_eq!(v["request"]["scheme"], "http", "{v}");
    let v = run(&["--listener", "127.0.0.1:2"]);
    assert_eq!(v["listener"]["found"], false, "{v}");
    let v = run(&["--path", "/s/1", "--header", "X-Test: 1"]);
    assert_eq!(v["route"]["matched"], "/s/", "{v}");
    assert_eq!(v["outcome"], "204 from the static `respond`", "{v}");
    // Config errors are reported as by -t.
    std::fs::write(&file, "listeners: []\n").expect("write bad config");
    let ran = run_bin(&["explain", "-c", path.as_str(), "--host", "a.test"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.stderr.contains("error(s)"), "{ran:?}");
}
