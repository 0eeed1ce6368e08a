//! `h2c://` backends: strait speaks HTTP/2 without TLS to them (prior knowledge), keeps the
//! connection for many requests, and health-checks them over HTTP/2 too.

use std::time::Duration;

use crate::support::h2c_origin::H2cOrigin;
use crate::support::{config, eventually_msg, send_many, Strait};

fn start(origin: &H2cOrigin, extra: &str) -> Strait {
    Strait::start(&config(&format!(
        "domains:\n  - hosts: [h2.test]\n    backends:\n      - {{ addr: \"{}\" }}\n{extra}",
        origin.url()
    )))
}

#[test]
fn requests_reach_an_h2c_backend_over_one_connection() {
    let origin = H2cOrigin::start();
    let s = start(&origin, "");
    let r = s.get("h2.test", "/hello");
    assert_eq!(r.status, 200, "{r:?}\n{}", s.stderr());
    assert_eq!(r.header("x-proto"), Some("h2"));
    assert_eq!(r.text(), "h2c:/hello");

    let responses = send_many(&s, "h2.test", "/again", 20);
    assert!(responses
        .iter()
        .all(|r| r.status == 200 && r.text() == "h2c:/again"));
    assert_eq!(origin.hits("/again"), 20);
    // HTTP/2 multiplexes: one pooled connection carries the sequential requests.
    assert!(
        origin.connections() <= 2,
        "{} connections for 21 requests",
        origin.connections()
    );
}

#[test]
fn h2c_backends_are_health_checked_over_http2() {
    let origin = H2cOrigin::start();
    let s = start(
        &origin,
        "    health_check: { type: http, path: /health, interval: 200ms, timeout: 200ms }\n",
    );
    eventually_msg(
        Duration::from_secs(10),
        "two health checks over h2c",
        || origin.hits("/health") >= 2,
    );
    let r = s.get("h2.test", "/after-checks");
    assert_eq!(
        r.status, 200,
        "a checked h2c backend must stay in rotation: {r:?}"
    );
    assert_eq!(r.text(), "h2c:/after-checks");
}

/// Two requests over one HTTP/2 connection with prior knowledge: (status, body) each.
fn h2_prior_knowledge(
    addr: std::net::SocketAddr,
    host: &str,
) -> Result<Vec<(u16, String)>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let work = async {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())?;
            let (client, conn) = h2::client::handshake(tcp)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let mut out = Vec::new();
            for path in ["/a", "/b"] {
                let mut ready = client.clone().ready().await.map_err(|e| e.to_string())?;
                let req = http::Request::builder()
                    .uri(format!("http://{host}{path}"))
                    .body(())
                    .map_err(|e| e.to_string())?;
                let (response, _) = ready.send_request(req, true).map_err(|e| e.to_string())?;
                let response = response.await.map_err(|e| e.to_string())?;
                let status = response.status().as_u16();
                let mut body = response.into_body();
                let mut text = Vec::new();
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.map_err(|e| e.to_string())?;
                    let _ = body.flow_control().release_capacity(chunk.len());
                    text.extend_from_slice(&chunk);
                }
                out.push((status, String::from_utf8_lossy(&text).into_owned()));
            }
            Ok::<_, String>(out)
        };
        tokio::time::timeout(Duration::from_secs(10), work)
            .await
            .map_err(|_| "timed out".to_string())?
    })
}

/// `http2: true` on a plain listener: HTTP/2 with prior knowledge and HTTP/1.1 on the same
/// port; a listener without it stays HTTP/1 only.
#[test]
fn clients_speak_h2c_with_prior_knowledge_beside_http1() {
    let h1_only = crate::support::strait::free_port();
    let s = Strait::start(&format!(
        "listeners:
  - {{ addr: \"{{listen}}\", http2: true }}
  - {{ addr: \"127.0.0.1:{h1_only}\" }}
domains:
  - hosts: [\"*\"]
    respond: {{ status: 200, body: \"hi $path\" }}
"
    ));
    let answers = h2_prior_knowledge(s.addr(), "h2.test").expect("h2c");
    assert_eq!(
        answers,
        [(200, "hi /a".to_string()), (200, "hi /b".to_string())]
    );
    let r = crate::support::client::get(s.addr(), "h2.test", "/c").expect("HTTP/1.1");
    assert_eq!((r.status, r.text().as_str()), (200, "hi /c"));
    let r = crate::support::client::request(
        s.addr(),
        "GET",
        "/d",
        &[("Host", "h2.test"), ("Connection", "keep-alive")],
        b"",
    )
    .expect("HTTP/1.1 with keep-alive");
    assert_eq!(r.status, 200);
    let plain: std::net::SocketAddr = format!("127.0.0.1:{h1_only}").parse().unwrap();
    assert!(
        h2_prior_knowledge(plain, "h2.test").is_err(),
        "a listener without http2 does not speak h2c"
    );
    let r = crate::support::client::get(plain, "h2.test", "/e").expect("HTTP/1.1");
    assert_eq!(r.status, 200);
}

#[test]
fn http2_on_a_tls_listener_belongs_under_tls() {
    let check = Strait::check(
        "listeners:
  - { addr: 127.0.0.1:1, http2: true, tls: { certs: [{ cert: a.pem, key: a.key }] } }
domains:
  - hosts: [\"*\"]
    respond: { body: ok }
",
    );
    check.assert_error(
        2,
        33,
        "listeners[0].http2",
        &["write `http2: true` under `tls`"],
    );
}
