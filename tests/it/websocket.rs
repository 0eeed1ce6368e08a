//! WebSocket through strait against a real echo origin: the handshake passes through, frames
//! flow both ways, and an idle tunnel outlives the HTTP `read_timeout` (Pingora's default
//! read timeouts would cut it) but not `websocket_idle_timeout`.

use std::thread;
use std::time::Duration;

use crate::support::config;
use crate::support::websocket::{accept_key, WsClient, WsOrigin, BINARY};
use crate::support::Strait;

fn start(ws: &WsOrigin, extra: &str) -> Strait {
    Strait::start(&config(&format!(
        "domains:\n  - hosts: [ws.test]\n    backends: [{{ addr: {} }}]\n{extra}",
        ws.url()
    )))
}

#[test]
fn websocket_frames_echo_through_the_proxy() {
    let ws = WsOrigin::start("ws");
    let s = start(&ws, "    max_body_bytes: 16\n");
    let mut c = WsClient::connect(s.addr(), "ws.test", "/chat", &[]).unwrap();
    assert_eq!(c.response.status, 101, "{:?}\n{}", c.response, s.stderr());
    assert_eq!(
        c.response.header("sec-websocket-accept"),
        Some(accept_key("dGhlIHNhbXBsZSBub25jZQ==").as_str())
    );
    assert_eq!(c.response.header("x-origin"), Some("ws"));
    for i in 0..5 {
        let text = format!("message {i}");
        assert_eq!(c.echo(&text).unwrap(), text);
    }
    // Tunnelled bytes are not a request body: max_body_bytes does not apply.
    let big: Vec<u8> = (0..70_000).map(|i| i as u8).collect();
    c.send(BINARY, &big).unwrap();
    let frame = c.recv().unwrap();
    assert_eq!((frame.opcode, frame.payload.len()), (BINARY, big.len()));
    assert_eq!(frame.payload, big);
    // The backend saw a WebSocket handshake with strait's forwarding headers.
    let handshake = &ws.handshakes()[0];
    let get = |n: &str| crate::support::client::find_header(handshake, n).map(str::to_string);
    assert_eq!(get("upgrade").as_deref(), Some("websocket"));
    assert_eq!(get("x-forwarded-for").as_deref(), Some("127.0.0.1"));
}

#[test]
fn idle_tunnels_outlive_the_read_timeout() {
    let ws = WsOrigin::start("ws");
    let s = start(&ws, "    read_timeout: 1s\n");
    let mut c = WsClient::connect(s.addr(), "ws.test", "/", &[]).unwrap();
    assert_eq!(c.response.status, 101);
    assert_eq!(c.echo("before").unwrap(), "before");
    thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        c.echo("after 2.5s of silence").unwrap(),
        "after 2.5s of silence"
    );
}

#[test]
fn websocket_idle_timeout_closes_silent_tunnels() {
    let ws = WsOrigin::start("ws");
    let s = start(&ws, "    websocket_idle_timeout: 1s\n");
    let mut c = WsClient::connect(s.addr(), "ws.test", "/", &[]).unwrap();
    assert_eq!(c.response.status, 101);
    assert_eq!(c.echo("hello").unwrap(), "hello");
    thread::sleep(Duration::from_millis(2500));
    c.set_read_timeout(Duration::from_secs(3)).unwrap();
    let after = c.send_text("too late").and_then(|_| c.recv());
    assert!(after.is_err(), "the tunnel should be closed, got {after:?}");
}

/// cloudflare/pingora#946 (fix open upstream, in Pingora's proxy loop where strait cannot
/// reach): an origin that answers 101 at once sometimes gets the tunnel torn down right
/// after the handshake. Run with `--ignored` to see whether a Pingora upgrade fixed it; the
/// other tests here use an origin that answers a moment later.
#[test]
#[ignore = "cloudflare/pingora#946: fails now and then until Pingora fixes it"]
fn upgrade_race_with_an_instant_101() {
    let ws = WsOrigin::start_with_delay("ws", Duration::ZERO);
    let s = start(&ws, "");
    for i in 0..50 {
        let mut c = WsClient::connect(s.addr(), "ws.test", "/", &[]).unwrap();
        assert_eq!(c.response.status, 101);
        assert_eq!(c.echo("hi").unwrap(), "hi", "tunnel {i} was torn down");
    }
}
