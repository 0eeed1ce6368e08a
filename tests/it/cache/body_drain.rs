//! The hit-path body drain: a request body sent with a cache hit is never parsed as the
//! next request (CVE-2025-4366).

use std::time::Duration;

use crate::support::client::Conn;
use crate::support::origin::Reply;
use crate::support::try_eventually;

use super::{by_path, cached, expect, get, start, SMALL_CACHE};

#[test]
fn a_body_sent_with_a_cache_hit_is_never_read_as_a_request() {
    // CVE-2025-4366: a hit answered without consuming the request body left that body to be
    // parsed as the next request. Here each body is itself a request for /smuggled. strait
    // (Pingora 0.9.1) either drains the body and keeps the connection, or announces
    // `Connection: close` and closes it; in no case is /smuggled ever answered or fetched.
    let o = by_path("o", |req| {
        Reply::new(200)
            .header("Cache-Control", "max-age=600")
            .body(format!("path {}", req.target))
    });
    let s = start(SMALL_CACHE, &[cached("drain.test", &o)], None);
    expect(&get(&s, "drain.test", "/cached"), "MISS");
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: drain.test\r\n\r\n";
    let framings = [
        format!("Content-Length: {}\r\n\r\n{smuggled}", smuggled.len()),
        format!(
            "Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
            smuggled.len()
        ),
    ];
    for framing in framings {
        let mut conn = Conn::connect(s.addr()).unwrap();
        let first = format!("GET /cached HTTP/1.1\r\nHost: drain.test\r\n{framing}");
        conn.send_raw(first.as_bytes()).unwrap();
        let r1 = conn.read_response("GET").unwrap();
        expect(&r1, "HIT");
        assert_eq!(r1.text(), "path /cached");
        // The client's next request on the same connection, if the server keeps it.
        let _ = conn.send_raw(b"GET /second HTTP/1.1\r\nHost: drain.test\r\n\r\n");
        match conn.read_response("GET") {
            Ok(r2) => {
                assert!(!r1.closes(), "a response after `Connection: close`");
                assert_eq!(
                    r2.text(),
                    "path /second",
                    "the body was parsed as a request"
                );
            }
            Err(e) => assert!(r1.closes(), "closed without announcing it: {e}"),
        }
        // Whatever happened, the server is fine for the next client.
        expect(&get(&s, "drain.test", "/cached"), "HIT");
    }
    assert!(!try_eventually(Duration::from_millis(300), || o
        .hits_path("/smuggled")
        > 0));
}
