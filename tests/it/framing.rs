//! Request framing (docs/security.md): raw bytes in, status, `X-Strait-Error` and close state
//! out, and what the origin received. A request strait refuses never reaches the origin.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::support::client::{self, Conn};
use crate::support::origin::{Behaviour, Reply};
use crate::support::{config, eventually_msg, Origin, Strait};

/// An origin that answers with the target it received, and the framing it saw.
fn echo_target() -> Origin {
    Origin::start(
        "echo",
        Behaviour::default().respond_with(|seen| {
            Reply::new(200).body(format!(
                "{} {} cl={} body={}",
                seen.method,
                seen.target,
                seen.header_all("content-length").join("|"),
                String::from_utf8_lossy(&seen.body)
            ))
        }),
    )
}

fn start(origin: &Origin, extra: &str) -> Strait {
    Strait::start(&config(&format!(
        "logging:\n  access_log: \"{{dir}}/access.log\"\ndomains:
  - hosts: [a.test]
    backends: [{{ addr: {} }}]
{extra}",
        origin.url()
    )))
}

/// Sends `bytes` on a fresh connection and reads one response (the connection stays open
/// for writing: a half-close would tell Pingora the client went away mid-request).
fn ask(s: &Strait, bytes: &[u8]) -> client::Response {
    let mut c = Conn::connect(s.addr()).unwrap();
    c.send_raw(bytes).unwrap();
    c.read_response("GET").expect("a response")
}

/// Sends `bytes`, half-closes, and reads everything until strait closes the connection: for
/// requests strait refuses before anything is proxied.
fn exchange(s: &Strait, bytes: &[u8]) -> String {
    let out = client::raw(s.addr(), bytes).expect("raw exchange");
    String::from_utf8_lossy(&out).into_owned()
}

fn log_has(dir: &Path, status: u16, code: &str) -> bool {
    std::fs::read_to_string(dir.join("access.log")).is_ok_and(|text| {
        text.lines().any(|l| {
            l.contains(&format!("\"status\":{status}")) && l.contains(&format!("\"{code}\""))
        })
    })
}

#[test]
fn malformed_heads_are_refused_with_a_code_and_never_reach_the_origin() {
    let origin = echo_target();
    let s = start(&origin, "");
    let h = "Host: a.test\r\n";
    let cases: Vec<(String, u16, &str)> = vec![
        // Transfer-Encoding (RFC 9112 §6.1).
        (format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400, "bad-transfer-encoding"),
        (format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"), 400, "bad-transfer-encoding"),
        (format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 400, "bad-transfer-encoding"),
        (format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 501, "unsupported-transfer-encoding"),
        (format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: identity\r\n\r\n"), 501, "unsupported-transfer-encoding"),
        (format!("POST / HTTP/1.0\r\n{h}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400, "bad-transfer-encoding"),
        // Content-Length (RFC 9110 §8.6, RFC 9112 §6.3).
        (format!("POST / HTTP/1.1\r\n{h}Content-Length: 3, 4\r\n\r\nabcd"), 400, "bad-content-length"),
        (format!("POST / HTTP/1.1\r\n{h}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"), 400, "bad-content-length"),
        (format!("POST / HTTP/1.1\r\n{h}Content-Length: +3\r\n\r\nabc"), 400, "bad-content-length"),
        (format!("POST / HTTP/1.1\r\n{h}Content-Length: -1\r\n\r\n"), 400, "bad-content-length"),
        (format!("POST / HTTP/1.1\r\n{h}Content-Length: 99999999999999999999\r\n\r\n"), 400, "bad-content-length"),
        // Host (RFC 9112 §3.2).
        ("GET / HTTP/1.1\r\nX: 1\r\n\r\n".to_string(), 400, "missing-host"),
        (format!("GET / HTTP/1.1\r\n{h}{h}\r\n"), 400, "duplicate-host"),
        ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n".to_string(), 400, "bad-host"),
        ("GET / HTTP/1.1\r\nHost: a.test:99999\r\n\r\n".to_string(), 400, "bad-host"),
        ("GET http://b.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n".to_string(), 400, "host-mismatch"),
        // Request targets (RFC 9112 §3.2).
        (format!("GET ! HTTP/1.1\r\n{h}\r\n"), 400, "bad-request-target"),
        (format!("GET foo HTTP/1.1\r\n{h}\r\n"), 400, "bad-request-target"),
        (format!("GET * HTTP/1.1\r\n{h}\r\n"), 400, "bad-request-target"),
        (format!("GET /a\x01b HTTP/1.1\r\n{h}\r\n"), 400, "bad-request-line"),
        (format!("GET /a b HTTP/1.1\r\n{h}\r\n"), 400, "bad-request-line"),
        ("CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n".to_string(), 405, "method-not-allowed"),
        // Field values (RFC 9110 §5.5).
        (format!("GET / HTTP/1.1\r\n{h}X: a\x00b\r\n\r\n"), 400, "bad-header"),
        (format!("GET / HTTP/1.1\r\n{h}X: a\rb\r\n\r\n"), 400, "bad-header"),
    ];
    for (request, status, code) in &cases {
        let text = exchange(&s, request.as_bytes());
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request:?}\n-> {text}"
        );
        assert!(
            head.lines().any(|l| l == format!("X-Strait-Error: {code}")),
            "{request:?}\n-> {text}"
        );
        assert!(
            head.lines().any(|l| l == "Connection: close"),
            "{request:?}\n-> {text}"
        );
        // `exchange` returned, so strait closed the connection after the answer.
    }
    // Bytes above 0x7E in the target are refused too, not percent-encoded and forwarded.
    let text = exchange(&s, b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a.test\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert_eq!(origin.hits(), 0, "a refused request reached the origin");
    eventually_msg(
        Duration::from_secs(5),
        "the refusals in the access log",
        || {
            log_has(s.dir(), 400, "missing-host")
                && log_has(s.dir(), 501, "unsupported-transfer-encoding")
        },
    );
}

#[test]
fn identical_content_lengths_reach_the_origin_as_one() {
    let origin = echo_target();
    let s = start(&origin, "");
    let r = ask(
        &s,
        b"POST /u HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "POST /u cl=5 body=hello");
}

#[test]
fn chunked_with_content_length_is_framed_by_chunked_and_closes() {
    let origin = echo_target();
    let s = start(&origin, "");
    let mut c = Conn::connect(s.addr()).unwrap();
    c.send_raw(
        b"POST /te HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .unwrap();
    let r = c.read_response("POST").unwrap();
    assert_eq!(r.status, 200);
    // The origin got the chunked body, and no Content-Length.
    assert_eq!(r.text(), "POST /te cl= body=hello");
    assert!(r.closes(), "{:?}", r.headers);
    assert!(
        c.is_closed(),
        "the connection must close after the response"
    );
}

#[test]
fn keep_alive_follows_the_request() {
    let origin = echo_target();
    let s = start(&origin, "");
    // HTTP/1.0 without keep-alive: closed after the response.
    let mut c = Conn::connect(s.addr()).unwrap();
    c.send_raw(b"GET /10 HTTP/1.0\r\nHost: a.test\r\n\r\n")
        .unwrap();
    let r = c.read_response("GET").unwrap();
    assert_eq!(r.status, 200);
    assert!(c.is_closed(), "HTTP/1.0 without keep-alive must close");
    // HTTP/1.0 that asks for keep-alive: kept, and a second request is answered.
    let mut c = Conn::connect(s.addr()).unwrap();
    for _ in 0..2 {
        c.send_raw(b"GET /10k HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let r = c.read_response("GET").unwrap();
        assert_eq!(r.status, 200);
        assert!(!r.closes(), "{:?}", r.headers);
    }
    // HTTP/1.1 with Connection: close.
    let mut c = Conn::connect(s.addr()).unwrap();
    c.send_raw(b"GET /11 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = c.read_response("GET").unwrap();
    assert!(r.closes(), "{:?}", r.headers);
    assert!(c.is_closed());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let origin = echo_target();
    let s = start(&origin, "");
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut batch = Vec::new();
    for i in 1..=3 {
        batch.extend_from_slice(format!("GET /p{i} HTTP/1.1\r\nHost: a.test\r\n\r\n").as_bytes());
    }
    // A body-carrying request in the middle of the batch is framed by its Content-Length.
    batch.extend_from_slice(b"POST /p4 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\n\r\nok");
    batch.extend_from_slice(b"GET /p5 HTTP/1.1\r\nHost: a.test\r\n\r\n");
    stream.write_all(&batch).unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut bodies = Vec::new();
    for _ in 0..5 {
        let (r, _) = client::read_response(&mut reader, "GET").expect("a pipelined response");
        assert_eq!(r.status, 200);
        assert!(!r.closes(), "{:?}", r.headers);
        bodies.push(r.text());
    }
    assert_eq!(
        bodies,
        [
            "GET /p1 cl= body=",
            "GET /p2 cl= body=",
            "GET /p3 cl= body=",
            "POST /p4 cl=2 body=ok",
            "GET /p5 cl= body="
        ]
    );
    // The connection is still good for another request.
    stream
        .write_all(b"GET /p6 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (r, _) = client::read_response(&mut reader, "GET").unwrap();
    assert_eq!(r.text(), "GET /p6 cl= body=");
}

#[test]
fn absolute_form_targets_route_and_forward_by_their_path() {
    let origin = echo_target();
    let s = start(
        &origin,
        "    routes:\n      - { path_prefix: /admin, respond: { status: 403, body: \"no\\n\" } }\n",
    );
    let r = ask(
        &s,
        b"GET http://a.test/x?y=1 HTTP/1.1\r\nHost: a.test\r\n\r\n",
    );
    assert_eq!(r.text(), "GET /x?y=1 cl= body=");
    // Routing saw /admin, not `/`: the route answers, and the origin is not asked.
    let hits = origin.hits();
    let r = ask(
        &s,
        b"GET http://a.test/admin HTTP/1.1\r\nHost: a.test\r\n\r\n",
    );
    assert_eq!(r.status, 403);
    assert_eq!(origin.hits(), hits);
}

#[test]
fn expect_continue_over_the_body_limit_gets_413_without_100() {
    let origin = echo_target();
    let s = start(&origin, "    max_body_bytes: 10\n");
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"POST /big HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).unwrap();
    assert_eq!(
        &first, b"HTTP/1.1 413",
        "no 100 Continue before the refusal"
    );
    assert_eq!(origin.hits(), 0);
}

#[test]
fn a_chunked_body_over_the_limit_gets_413_and_a_close_not_a_reset() {
    let origin = echo_target();
    let s = start(&origin, "    max_body_bytes: 10\n");
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut req =
        b"POST /big HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        req.extend_from_slice(b"a\r\n0123456789\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&req).unwrap();
    let mut out = Vec::new();
    stream
        .read_to_end(&mut out)
        .expect("the 413 and a clean close, not a reset");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(text.contains("X-Strait-Error: body-too-large"), "{text}");
}
