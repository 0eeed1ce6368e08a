//! Host routing (exact, `*.suffix` wildcards, `*` default, unknown host) and path routing
//! (longest `path_prefix`, fixed `respond` routes).

use crate::support::client;
use crate::support::{backends, config, Origin, Strait};

#[test]
fn exact_hosts_pick_their_domain() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [a.test]
    backends: {}
  - hosts: [b.test, b2.test]
    backends: {}
",
        backends(&[&a]),
        backends(&[&b])
    )));
    assert_eq!(s.get("a.test", "/").text(), "a");
    assert_eq!(s.get("b.test", "/x").text(), "b");
    assert_eq!(s.get("b2.test", "/").text(), "b");
    assert_eq!((a.hits(), b.hits()), (1, 2));
}

#[test]
fn host_port_and_letter_case_are_ignored() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [a.test]
    backends: {}
  - hosts: [b.test]
    backends: {}
",
        backends(&[&a]),
        backends(&[&b])
    )));
    let r = s.get("a.test:8080", "/");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "a"),
        "Host with a port"
    );
    let r = s.get("B.Test", "/");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "b"),
        "Host in mixed case"
    );
    let r = s.get("b.test:1", "/");
    assert_eq!((r.status, r.text().as_str()), (200, "b"));
}

#[test]
fn most_specific_wildcard_wins_and_exact_beats_wildcards() {
    let wide = Origin::plain("wide");
    let narrow = Origin::plain("narrow");
    let exact = Origin::plain("exact");
    let fallback = Origin::plain("fallback");
    // Listed least specific first, so "first match wins" would pick the wrong domain.
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [\"*\"]
    backends: {}
  - hosts: [\"*.example.com\"]
    backends: {}
  - hosts: [\"*.a.example.com\"]
    backends: {}
  - hosts: [exact.a.example.com]
    backends: {}
",
        backends(&[&fallback]),
        backends(&[&wide]),
        backends(&[&narrow]),
        backends(&[&exact])
    )));
    let cases = [
        ("x.a.example.com", "narrow"),
        ("deep.x.a.example.com", "narrow"),
        ("y.example.com", "wide"),
        ("a.example.com", "wide"),
        ("exact.a.example.com", "exact"),
        ("x.a.example.com:9999", "narrow"),
        ("example.org", "fallback"),
    ];
    for (host, want) in cases {
        let r = s.get(host, "/");
        assert_eq!(r.status, 200, "Host {host}");
        assert_eq!(r.text(), want, "Host {host}");
    }
}

#[test]
fn default_domain_catches_every_other_host() {
    let known = Origin::plain("known");
    let fallback = Origin::plain("fallback");
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [\"*\"]
    backends: {}
  - hosts: [known.test]
    backends: {}
",
        backends(&[&fallback]),
        backends(&[&known])
    )));
    assert_eq!(s.get("known.test", "/").text(), "known");
    assert_eq!(s.get("whatever.test", "/").text(), "fallback");
    assert_eq!(s.get("127.0.0.1", "/").text(), "fallback");
    assert_eq!((known.hits(), fallback.hits()), (1, 2));
}

#[test]
fn unknown_host_without_default_is_404() {
    let a = Origin::plain("a");
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [a.test, \"*.a.test\"]
    backends: {}
",
        backends(&[&a])
    )));
    for host in ["nope.test", "a.test.evil", "xa.test"] {
        let r = s.get(host, "/");
        assert_eq!(r.status, 404, "Host {host}: {}", r.text());
        assert_eq!(
            r.header("x-strait-error"),
            Some("unknown-host"),
            "Host {host}"
        );
        let ctype = r.header("content-type").unwrap_or_default();
        assert!(ctype.starts_with("text/plain"), "content-type {ctype:?}");
        assert!(
            !r.body.is_empty() && r.body.len() < 200,
            "short text body: {:?}",
            r.text()
        );
    }
    assert_eq!(a.hits(), 0, "no backend is touched for an unknown host");
    assert_eq!(s.get("a.test", "/").status, 200);
}

#[test]
fn longest_path_prefix_wins() {
    let root = Origin::plain("root");
    let api = Origin::plain("api");
    let v2 = Origin::plain("v2");
    // Shorter prefix first in the file: the router must sort by length, not file order.
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [app.test]
    backends: {}
    routes:
      - path_prefix: /api/
        backends: {}
      - path_prefix: /api/v2/
        backends: {}
",
        backends(&[&root]),
        backends(&[&api]),
        backends(&[&v2])
    )));
    let cases = [
        ("/", "root"),
        ("/api/users", "api"),
        ("/api/", "api"),
        ("/api/v2/users", "v2"),
        ("/api/v2/", "v2"),
        // A prefix written with its trailing slash also takes the bare path (segment-aware).
        ("/api/v2", "v2"),
        ("/api", "api"),
        ("/apix", "root"),
        ("/api/v2/x?next=/api/", "v2"),
        ("/other?x=/api/v2/", "root"),
    ];
    for (path, want) in cases {
        let r = s.get("app.test", path);
        assert_eq!(r.status, 200, "GET {path}");
        assert_eq!(r.text(), want, "GET {path}");
    }
    let seen = v2.requests();
    assert!(
        seen.iter().any(|r| r.target == "/api/v2/x?next=/api/"),
        "the path and query reach the backend unchanged: {:?}",
        seen.iter().map(|r| &r.target).collect::<Vec<_>>()
    );
}

#[test]
fn respond_routes_answer_without_a_backend() {
    let origin = Origin::plain("origin");
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [app.test]
    backends: {}
    routes:
      - path_prefix: /ping
        respond: {{ status: 200, body: \"pong\\n\" }}
      - path_prefix: /teapot
        respond:
          status: 418
          body: short and stout
          headers: {{ X-Kind: teapot, Content-Type: text/plain }}
",
        backends(&[&origin])
    )));
    let r = s.get("app.test", "/ping");
    assert_eq!((r.status, r.text().as_str()), (200, "pong\n"));
    let r = s.get("app.test", "/ping/deeper?x=1");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "pong\n"),
        "prefix match"
    );
    let r = s.get("app.test", "/teapot");
    assert_eq!(r.status, 418);
    assert_eq!(r.text(), "short and stout");
    assert_eq!(r.header("x-kind"), Some("teapot"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(origin.hits(), 0, "respond routes never touch the backend");
    let r = s.get("app.test", "/other");
    assert_eq!((r.status, r.text().as_str()), (200, "origin"));
    assert_eq!(origin.hits(), 1);
}

#[test]
fn domain_with_only_respond_routes_needs_no_backend() {
    let s = Strait::start(&config(
        "domains:
  - hosts: [\"*\"]
    routes:
      - path_prefix: /
        respond: { status: 200, body: welcome }
      - path_prefix: /gone
        respond: { status: 410, body: gone }
",
    ));
    let r = s.get("anything.test", "/");
    assert_eq!((r.status, r.text().as_str()), (200, "welcome"));
    let r = s.get("anything.test", "/some/page");
    assert_eq!((r.status, r.text().as_str()), (200, "welcome"));
    let r = s.get("anything.test", "/gone/x");
    assert_eq!((r.status, r.text().as_str()), (410, "gone"));
}

#[test]
fn malformed_requests_get_400_and_strait_keeps_serving() {
    let origin = Origin::plain("origin");
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [\"*\"]
    backends: {}
",
        backends(&[&origin])
    )));
    let bad: [&[u8]; 3] = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.test\r\nBad Header Line\r\n\r\n",
    ];
    for raw in bad {
        let reply = client::raw(s.addr(), raw).expect("raw exchange");
        let text = String::from_utf8_lossy(&reply);
        assert!(
            text.starts_with("HTTP/1.1 400 "),
            "request {:?} got {text:?}",
            String::from_utf8_lossy(raw)
        );
    }
    assert_eq!(
        origin.hits(),
        0,
        "a malformed request never reaches a backend"
    );
    let r = s.get("a.test", "/");
    assert_eq!((r.status, r.text().as_str()), (200, "origin"));
}

/// `drop: true` closes the connection without a byte, never asks a backend, and is logged.
#[test]
fn drop_closes_without_a_response() {
    let a = Origin::plain("a");
    let s = Strait::start(&format!(
        "logging:\n  access_log: \"{{dir}}/access.log\"\n{}",
        crate::support::Domain::new("d.test")
            .origins(&[&a])
            .route("{ path_prefix: /wp-admin, drop: true }")
            .config()
    ));
    let mut c = client::Conn::connect(s.addr()).unwrap();
    c.send_raw(b"GET /wp-admin/x HTTP/1.1\r\nHost: d.test\r\n\r\n")
        .unwrap();
    let r = c.read_response("GET");
    assert!(r.is_err(), "a dropped request got an answer: {r:?}");
    assert_eq!(a.hits(), 0);
    assert_eq!(
        s.get("d.test", "/ok").status,
        200,
        "other paths still proxied"
    );
    crate::support::eventually_msg(
        std::time::Duration::from_secs(5),
        "the dropped request in the access log",
        || {
            std::fs::read_to_string(s.dir().join("access.log")).is_ok_and(|t| {
                t.lines()
                    .any(|l| l.contains("\"/wp-admin/x\"") && l.contains("\"dropped\""))
            })
        },
    );
}

/// Listener scope: one host, two domains on two named listeners. The plain listener
/// redirects with `$scheme`, `$host`, `$port` and `$uri`; the other serves. No loop.
#[test]
fn domains_scoped_to_listeners_redirect_without_a_loop() {
    let a = Origin::plain("a");
    let alt = crate::support::strait::free_port();
    let s = Strait::start(&format!(
        "listeners:
  - {{ name: web, addr: \"{{listen}}\" }}
  - {{ name: site, addr: \"127.0.0.1:{alt}\" }}
domains:
  - hosts: [a.test]
    listeners: [web]
    redirect: {{ status: 308, location: \"$scheme://$host:{alt}$uri\" }}
  - hosts: [a.test]
    listeners: [site]
    backends: {}
",
        backends(&[&a])
    ));
    let r = s.get("a.test", "/x?y=1");
    assert_eq!(r.status, 308, "{}", r.text());
    assert_eq!(
        r.header("location").unwrap(),
        format!("http://a.test:{alt}/x?y=1")
    );
    let site: std::net::SocketAddr = format!("127.0.0.1:{alt}").parse().unwrap();
    let r = client::get(site, "a.test", "/x?y=1").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "a"));
    assert_eq!(a.hits(), 1);
}
