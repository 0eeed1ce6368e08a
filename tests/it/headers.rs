//! What the backend receives: the Host header in its three modes, X-Forwarded-*, and the
//! request line and body passed through unchanged. Uses echo origins (the body of the
//! answer is the request head the origin received).

use std::net::{IpAddr, Ipv4Addr};

use crate::support::client::{self, parse_echo, Conn, Response};
use crate::support::{config, Behaviour, Origin, Strait};

fn echo(name: &str) -> Origin {
    Origin::start(name, Behaviour::default().echo())
}

/// The head the origin received, parsed from the echo body.
struct Upstream {
    line: String,
    headers: Vec<(String, String)>,
}

impl Upstream {
    fn of(r: &Response) -> Upstream {
        assert_eq!(r.status, 200, "{}", r.text());
        let (line, headers) = parse_echo(&r.body);
        Upstream { line, headers }
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of `name`; fails when it is missing or repeated.
    #[track_caller]
    fn one(&self, name: &str) -> &str {
        let all = self.all(name);
        assert_eq!(
            all.len(),
            1,
            "expected exactly one {name} header upstream, got {all:?} in {:?}",
            self.headers
        );
        all[0]
    }
}

fn fetch(s: &Strait, headers: &[(&str, &str)], path: &str) -> Upstream {
    let r = client::request(s.addr(), "GET", path, headers, b"").expect("GET through strait");
    Upstream::of(&r)
}

#[test]
fn default_upstream_host_is_the_backend_authority() {
    let o = echo("o");
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [app.test]
    backends: [{{ addr: {} }}]
",
        o.url()
    )));
    let up = fetch(&s, &[("Host", "app.test")], "/p/q?r=s");
    assert_eq!(up.line, "GET /p/q?r=s HTTP/1.1");
    assert_eq!(up.one("host"), format!("127.0.0.1:{}", o.port()));
    assert_eq!(up.one("x-forwarded-host"), "app.test");
}

#[test]
fn preserve_host_forwards_the_client_host() {
    let o = echo("o");
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [app.test]
    backends: [{{ addr: {} }}]
    preserve_host: true
",
        o.url()
    )));
    let up = fetch(&s, &[("Host", "app.test")], "/");
    assert_eq!(up.one("host"), "app.test");
    let up = fetch(&s, &[("Host", "app.test:8080")], "/");
    assert_eq!(up.one("host"), "app.test:8080");
    assert_eq!(up.one("x-forwarded-host"), "app.test:8080");
}

#[test]
fn host_header_sets_a_fixed_host() {
    let o = echo("o");
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [app.test]
    backends: [{{ addr: {} }}]
    host_header: backend.internal
",
        o.url()
    )));
    let up = fetch(&s, &[("Host", "app.test")], "/");
    assert_eq!(up.one("host"), "backend.internal");
    assert_eq!(up.one("x-forwarded-host"), "app.test");
}

#[test]
fn route_host_header_overrides_the_domain_mode() {
    let o = echo("o");
    let auth = echo("auth");
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [app.test]
    backends: [{{ addr: {} }}]
    preserve_host: true
    routes:
      - {{ path_prefix: /auth/, backends: [{{ addr: {} }}], host_header: auth.internal }}
      - {{ path_prefix: /inherit/, backends: [{{ addr: {} }}] }}
",
        o.url(),
        auth.url(),
        auth.url()
    )));
    let up = fetch(&s, &[("Host", "app.test")], "/auth/login");
    assert_eq!(up.one("host"), "auth.internal");
    let up = fetch(&s, &[("Host", "app.test")], "/inherit/x");
    assert_eq!(
        up.one("host"),
        "app.test",
        "the route inherits preserve_host"
    );
    let up = fetch(&s, &[("Host", "app.test")], "/other");
    assert_eq!(up.one("host"), "app.test");
    assert_eq!((o.hits(), auth.hits()), (1, 2));
}

#[test]
fn forwarded_headers_append_the_client_ip() {
    let o = echo("o");
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [app.test]
    backends: [{{ addr: {} }}]
",
        o.url()
    )));
    let up = fetch(&s, &[("Host", "app.test")], "/");
    assert_eq!(up.one("x-forwarded-for"), "127.0.0.1");
    assert_eq!(up.one("x-forwarded-proto"), "http");

    let up = fetch(
        &s,
        &[("Host", "app.test"), ("X-Forwarded-For", "1.2.3.4")],
        "/",
    );
    assert_eq!(up.one("x-forwarded-for"), "1.2.3.4, 127.0.0.1");

    let up = fetch(
        &s,
        &[
            ("Host", "app.test"),
            ("X-Forwarded-For", "1.2.3.4, 5.6.7.8"),
        ],
        "/",
    );
    assert_eq!(up.one("x-forwarded-for"), "1.2.3.4, 5.6.7.8, 127.0.0.1");

    // A client-supplied X-Forwarded-Proto is not trusted on a plain-HTTP listener.
    let up = fetch(
        &s,
        &[("Host", "app.test"), ("X-Forwarded-Proto", "https")],
        "/",
    );
    assert_eq!(up.one("x-forwarded-proto"), "http");

    // The address is the connection's peer, whichever loopback address it comes from.
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7));
    let mut conn = Conn::connect_from(ip, s.addr()).expect("connect from 127.0.0.7");
    let r = conn
        .request(
            "GET",
            "/",
            &[("Host", "app.test"), ("X-Forwarded-For", "10.0.0.1")],
            b"",
        )
        .expect("GET from 127.0.0.7");
    let up = Upstream::of(&r);
    assert_eq!(up.one("x-forwarded-for"), "10.0.0.1, 127.0.0.7");
}

#[test]
fn request_line_and_body_pass_through_unchanged() {
    let o = Origin::plain("o");
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [app.test]
    backends: [{{ addr: {} }}]
",
        o.url()
    )));
    let r = client::request(
        s.addr(),
        "POST",
        "/a/b%20c?x=1&y=%2F",
        &[("Host", "app.test"), ("X-Custom", "kept")],
        b"hello body",
    )
    .expect("POST through strait");
    assert_eq!((r.status, r.text().as_str()), (200, "o"));
    assert_eq!(
        r.header("x-origin"),
        Some("o"),
        "origin headers reach the client"
    );
    let seen = o.last_request().expect("the origin saw the request");
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/a/b%20c?x=1&y=%2F");
    assert_eq!(seen.body, b"hello body");
    assert_eq!(seen.header("x-custom"), Some("kept"));

    // A chunked request body arrives complete (re-framed or not).
    let mut conn = Conn::connect(s.addr()).expect("connect");
    conn.send_raw(
        b"PUT /upload HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .expect("send");
    let r = conn.read_response("PUT").expect("response");
    assert_eq!(r.status, 200);
    let seen = o.last_request().expect("the origin saw the upload");
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.body, b"hello world");
}
