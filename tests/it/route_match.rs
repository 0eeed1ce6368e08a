//! Routing depth (docs/routing.md): host patterns by specificity, path globs and captures,
//! route order, request matchers and 405, rewrites, templates, route listener scope, and the
//! config errors and `-t` warnings they come with.

use crate::support::client;
use crate::support::{backends, config, eventually_msg, Behaviour, Origin, Strait};

#[test]
fn host_patterns_most_literal_characters_win() {
    let wide = Origin::plain("wide");
    let cdn = Origin::plain("cdn");
    let deep = Origin::plain("deep");
    // Least specific first, so file order would pick wrongly.
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [\"*.example.com\"]
    backends: {}
  - hosts: [\"api.**.example.com\"]
    backends: {}
  - hosts: [\"cdn-*.example.com\"]
    backends: {}
",
        backends(&[&wide]),
        backends(&[&deep]),
        backends(&[&cdn])
    )));
    for (host, want) in [
        ("www.example.com", "wide"),
        ("cdn-7.example.com", "cdn"),
        ("CDN-eu.Example.com:8080", "cdn"),
        ("cdn-7.eu.example.com", "wide"),
        ("api.eu.example.com", "deep"),
        ("api.a.b.example.com", "deep"),
        ("api.example.com", "wide"),
    ] {
        let r = s.get(host, "/");
        assert_eq!((r.status, r.text()), (200, want.to_string()), "{host}");
    }
}

#[test]
fn equally_specific_overlapping_hosts_are_a_config_error() {
    let check = Strait::check(
        "listeners:
  - addr: 127.0.0.1:1
domains:
  - hosts: [\"cdn-*.example.com\"]
    respond: { status: 200 }
  - hosts: [\"*-cdn.example.com\"]
    respond: { status: 200 }
",
    );
    check.assert_error(
        6,
        13,
        "domains[1].hosts[0]",
        &["equally specific", "cdn-*.example.com", "line 4"],
    );
}

#[test]
fn routes_are_tried_exact_then_longest_literal_start_then_globs() {
    let o = Origin::start("o", Behaviour::default().echo());
    // Written least specific first: file order would get every one of these wrong.
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [a.test]
    backends: {b}
    routes:
      - {{ path_prefix: /, respond: {{ status: 200, body: root }} }}
      - {{ path: \"/api/*/items\", respond: {{ status: 200, body: \"glob $1\" }} }}
      - {{ path_prefix: /api/, respond: {{ status: 200, body: api }} }}
      - {{ path: \"/api/v1/*\", respond: {{ status: 200, body: \"v1 $1\" }} }}
      - {{ path: /api/v1/ping, respond: {{ status: 200, body: exact }} }}
      - {{ path: \"/files/**\", respond: {{ status: 200, body: \"files $1\" }} }}
",
        b = backends(&[&o])
    )));
    for (path, want) in [
        ("/api/v1/ping", "exact"),
        ("/api/v1/users", "v1 users"),
        ("/api/v1/users/7", "api"),
        ("/api/v2/items", "api"),
        ("/api", "api"),
        ("/apix", "root"),
        ("/files/a/b.txt", "files a/b.txt"),
        ("/other", "root"),
    ] {
        let r = s.get("a.test", path);
        assert_eq!((r.status, r.text()), (200, want.to_string()), "{path}");
    }
}

#[test]
fn methods_headers_and_query_match_and_405_names_the_allowed_methods() {
    let stable = Origin::plain("stable");
    let canary = Origin::plain("canary");
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [a.test]
    routes:
      - {{ path_prefix: /api/, methods: [GET], headers: {{ X-Canary: \"1\" }}, backends: {ca} }}
      - {{ path_prefix: /api/, methods: [get, HEAD], backends: {st} }}
      - {{ path_prefix: /api/, methods: [POST], query: {{ debug: \"1\" }}, backends: {ca} }}
      - {{ path_prefix: /probe, headers: {{ X-Probe: {{ present: true }} }}, respond: {{ status: 204 }} }}
",
        st = backends(&[&stable]),
        ca = backends(&[&canary]),
    )));
    let addr = s.addr();
    let r = client::request(addr, "GET", "/api/x", &[("Host", "a.test")], b"").unwrap();
    assert_eq!(r.text(), "stable");
    let r = client::request(
        addr,
        "GET",
        "/api/x",
        &[("Host", "a.test"), ("X-Canary", "1")],
        b"",
    )
    .unwrap();
    assert_eq!(
        r.text(),
        "canary",
        "equally ranked routes are tried in file order"
    );
    let r = client::request(addr, "POST", "/api/x?debug=1", &[("Host", "a.test")], b"").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "canary"));
    let r = client::request(addr, "DELETE", "/api/x", &[("Host", "a.test")], b"").unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(r.header("x-strait-error"), Some("method-not-allowed"));
    let r = client::request(addr, "POST", "/api/x", &[("Host", "a.test")], b"").unwrap();
    assert_eq!(
        r.status, 405,
        "POST without ?debug=1 fails on the query, GET routes on the method"
    );
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = client::request(
        addr,
        "GET",
        "/probe",
        &[("Host", "a.test"), ("X-Probe", "")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 204);
    let r = client::request(addr, "GET", "/probe", &[("Host", "a.test")], b"").unwrap();
    assert_eq!(
        (r.status, r.header("x-strait-error")),
        (404, Some("no-route"))
    );
    assert_eq!(stable.hits() + canary.hits(), 3);
}

#[test]
fn rewrites_and_strip_prefix_change_the_upstream_path_and_keep_the_query() {
    let o = Origin::start("o", Behaviour::default().echo());
    let s = Strait::start(&config(&format!(
        "logging: {{ access_log: access.log }}
domains:
  - hosts: [a.test]
    backends: {b}
    routes:
      - {{ path: \"/old/**\", rewrite: \"/new/$1\" }}
      - {{ path_prefix: /api/, strip_prefix: true }}
      - {{ path: \"/u/*/avatar\", rewrite: /avatars/$1.png, headers: {{ request: {{ set: {{ X-User: $1, X-Via: \"$scheme://$host$path\" }} }} }} }}
",
        b = backends(&[&o])
    )));
    let target = |path: &str| {
        let r = s.get("a.test", path);
        assert_eq!(r.status, 200, "{path}");
        client::parse_echo(&r.body)
    };
    assert_eq!(
        target("/old/a/b.html?x=1").0,
        "GET /new/a/b.html?x=1 HTTP/1.1"
    );
    assert_eq!(target("/api/users?page=2").0, "GET /users?page=2 HTTP/1.1");
    assert_eq!(target("/api").0, "GET / HTTP/1.1");
    let (line, headers) = target("/u/ann/avatar");
    assert_eq!(line, "GET /avatars/ann.png HTTP/1.1");
    let find = |n: &str| client::find_header(&headers, n).map(str::to_string);
    assert_eq!(find("x-user").as_deref(), Some("ann"));
    // Variables read the request as rewritten (nginx's $uri); the captures are the client's.
    assert_eq!(
        find("x-via").as_deref(),
        Some("http://a.test/avatars/ann.png")
    );
    // The access log keeps what the client asked for.
    eventually_msg(
        std::time::Duration::from_secs(5),
        "the original path in the access log",
        || {
            std::fs::read_to_string(s.dir().join("access.log"))
                .is_ok_and(|t| t.contains("\"/old/a/b.html\""))
        },
    );
}

#[test]
fn respond_bodies_and_headers_are_templates() {
    let s = Strait::start(&config(
        "domains:
  - hosts: [\"*.a.test\"]
    routes:
      - { path: \"/hello/*\", respond: { status: 200, body: \"hi $1 from $remote_addr on $host$query\\n\", headers: { X-Path: $path, X-Id: $request_id } } }
",
    ));
    let r = client::request(
        s.addr(),
        "GET",
        "/hello/ann?x=1",
        &[("Host", "www.a.test"), ("X-Request-Id", "req-42")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hi ann from 127.0.0.1 on www.a.test?x=1\n");
    assert_eq!(r.header("x-path"), Some("/hello/ann"));
    assert!(r.header("x-id").is_some_and(|v| !v.is_empty()));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
}

#[test]
fn routes_scoped_to_a_listener_only_answer_there() {
    let o = Origin::plain("site");
    let admin_port = crate::support::strait::free_port();
    let s = Strait::start(&format!(
        "listeners:
  - {{ name: public, addr: \"{{listen}}\" }}
  - {{ name: internal, addr: \"127.0.0.1:{admin_port}\" }}
domains:
  - hosts: [a.test]
    backends: {}
    routes:
      - {{ path_prefix: /admin/, listeners: [internal], respond: {{ status: 200, body: admin }} }}
      - {{ path_prefix: /admin/, listeners: [public], respond: {{ status: 403, body: no }} }}
",
        backends(&[&o])
    ));
    let r = s.get("a.test", "/admin/x");
    assert_eq!((r.status, r.text().as_str()), (403, "no"));
    let internal: std::net::SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let r = client::get(internal, "a.test", "/admin/x").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "admin"));
    assert_eq!(s.get("a.test", "/x").text(), "site");
}

#[test]
fn bad_routing_keys_are_config_errors_with_positions() {
    let check = Strait::check(
        "listeners:
  - { name: web, addr: 127.0.0.1:1 }
domains:
  - hosts: [a.test]
    respond: { status: 200 }
    routes:
      - { path: \"/a/**x\", respond: { status: 200 } }
      - { path: \"/b/*\", rewrite: \"/c/$2\", backends: [http://127.0.0.1:9] }
      - { path: \"/c/*\", strip_prefix: true, backends: [http://127.0.0.1:9] }
      - { path: /d, path_prefix: /d, respond: { status: 200 } }
      - { path_prefix: /e, listeners: [nope], respond: { status: 200 } }
      - { path_prefix: /f, methods: [], respond: { status: 200 } }
      - { path_prefix: /g, respond: { status: 200, body: \"$nope\" } }
      - { path_prefix: /h, rewrite: new, backends: [http://127.0.0.1:9] }
",
    );
    let cases: [(usize, usize, &str, &[&str]); 8] = [
        (7, 17, "routes[0].path", &["`**` must be a whole segment"]),
        (
            8,
            34,
            "routes[1].rewrite",
            &["$2", "1 wildcard, so only $1"],
        ),
        (9, 39, "routes[2].strip_prefix", &["needs a path_prefix"]),
        (10, 17, "routes[3].path", &["cannot both be set"]),
        (
            11,
            40,
            "routes[4].listeners[0]",
            &["unknown listener", "web"],
        ),
        (12, 37, "routes[5].methods", &["empty methods list"]),
        (
            13,
            58,
            "routes[6].respond.body",
            &["unknown variable $nope"],
        ),
        (14, 37, "routes[7].rewrite", &["must start with /"]),
    ];
    for (line, col, field, words) in cases {
        check.assert_error(line, col, &format!("domains[0].{field}"), words);
    }
}

#[test]
fn dash_t_warns_about_a_route_that_can_never_match() {
    let check = Strait::check(
        "listeners:
  - addr: 127.0.0.1:1
domains:
  - hosts: [a.test]
    routes:
      - { path_prefix: /api/v1/, respond: { status: 200 } }
      - { path: \"/api/v1/*\", respond: { status: 201 } }
      - { path: \"/api/v1/*/x\", methods: [GET], respond: { status: 201 } }
      - { path_prefix: /api/, methods: [POST], respond: { status: 202 } }
      - { path_prefix: /api/v1/, methods: [POST], respond: { status: 202 } }
      - { path: \"/api/v2/*\", respond: { status: 201 } }
",
    );
    let out = check.output();
    for want in [
        ":7:9: warning: domains[0].routes[1]: route \"/api/v1/*\" can never match",
        ":8:9: warning: domains[0].routes[2]: route \"/api/v1/*/x GET\" can never match",
        ":10:9: warning: domains[0].routes[4]: route \"/api/v1/ POST\" can never match",
    ] {
        assert!(out.contains(want), "{want}\n{out}");
    }
    assert_eq!(
        out.matches("warning:").count(),
        3,
        "a more specific glob is tried first: {out}"
    );
    assert!(out.contains(": ok ("), "warnings do not fail -t: {out}");
}
