//! Clients that hang up mid-request: routine, not an error. strait keeps serving, the access
//! log records the request (status 0, the error's name), and nothing is logged at WARN or
//! ERROR (Pingora's default is an ERROR line per aborted request).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::origin::Reply;

use crate::support::{backends, config, eventually, eventually_msg, Behaviour, Origin, Strait};

fn start(origin: &Origin) -> Strait {
    Strait::start(&config(&format!(
        "logging:\n  level: info\n  access_log: \"{{dir}}/access.log\"\ndomains:\n  - hosts: [abort.test]\n    backends: {}\n",
        backends(&[origin])
    )))
}

fn log_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits for the access log line of `path` and returns it.
fn logged(s: &Strait, path: &str) -> Value {
    let log = s.dir().join("access.log");
    let mut found = None;
    eventually_msg(Duration::from_secs(10), "the access log line", || {
        found = log_lines(&log).into_iter().find(|l| l["path"] == path);
        found.is_some()
    });
    found.unwrap_or_default()
}

fn assert_quiet(s: &Strait) {
    let stderr = s.stderr();
    let loud: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains("Fail to proxy"))
        .collect();
    assert!(
        loud.is_empty(),
        "client aborts were logged loudly:\n{}",
        loud.join("\n")
    );
}

fn assert_still_serves(s: &Strait) {
    let r = s.get("abort.test", "/after");
    assert_eq!(r.status, 200, "strait stopped serving after an abort");
}

#[test]
fn hanging_up_before_the_response_is_not_an_error() {
    let origin = Origin::start("o", Behaviour::default().delay(Duration::from_millis(600)));
    let s = start(&origin);
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.write_all(b"GET /slow HTTP/1.1\r\nHost: abort.test\r\n\r\n")
        .unwrap();
    // Hang up once the backend is working on it: the abort happens mid-request.
    eventually(Duration::from_secs(5), || origin.in_flight() == 1);
    c.shutdown(Shutdown::Both).unwrap();
    drop(c);

    let line = logged(&s, "/slow");
    assert_eq!(line["status"], 0, "{line}");
    assert!(
        matches!(
            line["error"].as_str(),
            Some("ConnectionClosed" | "ReadError")
        ),
        "{line}"
    );
    assert_still_serves(&s);
    assert_quiet(&s);
}

#[test]
fn hanging_up_mid_body_is_not_an_error() {
    let origin = Origin::start(
        "o",
        Behaviour::default().respond_with(|_| Reply::new(200).body(vec![b'x'; 16 << 20])),
    );
    let s = start(&origin);
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.write_all(b"GET /big HTTP/1.1\r\nHost: abort.test\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 64];
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = c.read(&mut first).unwrap();
    assert!(
        first[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&first[..n])
    );
    // Closing with unread data resets the connection while strait is still writing 16 MiB.
    drop(c);

    let line = logged(&s, "/big");
    assert_eq!(line["status"], 200, "{line}");
    assert!(
        line["bytes_out"].as_u64().unwrap_or(u64::MAX) < 16 << 20,
        "the whole body cannot have been sent: {line}"
    );
    assert!(
        // The reset shows on strait's next write or read, whichever comes first.
        matches!(
            line["error"].as_str(),
            Some("WriteError" | "ReadError" | "ConnectionClosed")
        ),
        "{line}"
    );
    assert_still_serves(&s);
    assert_quiet(&s);
}
