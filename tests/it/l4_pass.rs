//! SNI pass-through (`pass`): TLS connections whose server name routes to a `pass` domain are
//! relayed untouched to a TLS backend of its pool (the client sees the backend's certificate);
//! other names on the same port are terminated by strait. Real TLS clients, real TLS origins,
//! a ClientHello dripped byte by byte, refused hellos, and the PROXY v2 header.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode, SslVersion};
use serde_json::Value;

use crate::admin::{json, Ports};
use crate::support::pki::{self, Client, TlsOrigin};
use crate::support::strait::temp_dir;
use crate::support::{eventually_msg, Strait};

/// A TLS listener (strait's own certificate for site.test) with admin, probe and an access
/// log, a `pass` domain legacy.test relaying to `backend`, and site.test answered by strait.
fn pass_config(dir: &std::path::Path, ports: &Ports, backend: SocketAddr, extra: &str) -> String {
    format!(
        concat!(
            "listeners:\n  - addr: \"{{listen}}\"\n    tls:\n",
            "      certs: [{{ cert: {d}/site.crt, key: {d}/site.key }}]\n",
            "{admin}logging:\n  access_log: {d}/access.log\n",
            "server:\n  request_header_timeout: 1s\n",
            "domains:\n  - hosts: [legacy.test]\n",
            "    pass: {{ backends: [\"{backend}\"]{extra} }}\n",
            "  - hosts: [site.test]\n    respond: {{ body: terminated }}\n",
        ),
        d = dir.display(),
        admin = ports.yaml(true),
        backend = backend,
        extra = extra,
    )
}

fn site_cert(dir: &std::path::Path) {
    pki::issue("site.test", None, &["site.test"], None, false).write(dir, "site");
}

/// The access log's lines, parsed.
fn log_lines(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("access.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn issuer_cn(cert: &openssl::x509::X509Ref) -> String {
    let cn = cert
        .issuer_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .expect("an issuer CN");
    String::from_utf8_lossy(cn.data().as_slice()).into_owned()
}

fn metrics(ports: &Ports) -> String {
    ports.probe("/metrics").text()
}

#[test]
fn pass_relays_by_sni_and_terminates_other_names_on_the_same_port() {
    let dir = temp_dir("pass");
    site_cert(&dir);
    let backend_ca = pki::ca("backend-ca");
    let legacy = pki::issue(
        "legacy.test",
        None,
        &["legacy.test"],
        Some(&backend_ca),
        false,
    );
    let origin = TlsOrigin::start(&legacy, None);
    let ports = Ports::new();
    let s = Strait::start(&pass_config(&dir, &ports, origin.addr, ""));
    ports.wait_up();

    // Passed through: the certificate chain is the backend's, and so is the answer.
    let client = Client {
        sni: Some("legacy.test"),
        ..Client::default()
    };
    let mut tls = pki::connect(s.addr(), &client).expect("handshake through strait");
    let peer = tls.ssl().peer_certificate().expect("a certificate");
    assert_eq!(pki::cn_of(&peer), "legacy.test");
    assert_eq!(
        issuer_cn(&peer),
        "backend-ca",
        "the chain comes from the backend"
    );
    let (status, _, body) = pki::send_get(&mut tls, "legacy.test", "/").expect("answer");
    assert_eq!((status, body.as_slice()), (200, &b"tls-origin"[..]));
    assert_eq!(origin.snis(), ["legacy.test"]);
    // The backend has closed; the relay ends once the client has too.
    drop(tls);

    // Terminated on the same port: strait's certificate, strait's answer.
    let site = Client {
        sni: Some("site.test"),
        ..Client::default()
    };
    let mut tls = pki::connect(s.addr(), &site).expect("handshake with strait");
    let peer = tls.ssl().peer_certificate().expect("a certificate");
    assert_eq!(pki::cn_of(&peer), "site.test");
    let (status, _, body) = pki::send_get(&mut tls, "site.test", "/").expect("answer");
    assert_eq!((status, body.as_slice()), (200, &b"terminated"[..]));
    assert_eq!(origin.snis(), ["legacy.test"], "site.test never reached it");

    // The pool is an ordinary pool of the admin API.
    let backends = json(&ports.call("GET", "/backends?domain=legacy.test", ""));
    assert_eq!(backends[0]["addr"], origin.addr.to_string(), "{backends}");
    assert_eq!(backends[0]["requests"], 1, "{backends}");

    // One access-log line for the relayed connection, and its metrics.
    eventually_msg(
        Duration::from_secs(10),
        "the pass line in the access log",
        || log_lines(&dir).iter().any(|l| l["kind"] == "pass"),
    );
    let lines = log_lines(&dir);
    let line = lines.iter().find(|l| l["kind"] == "pass").unwrap();
    assert_eq!(line["server_name"], "legacy.test", "{line}");
    assert_eq!(line["backend"], origin.addr.to_string(), "{line}");
    assert_eq!(line["client"], "127.0.0.1", "{line}");
    assert!(line["bytes_in"].as_u64().unwrap() > 100, "{line}");
    assert!(line["bytes_out"].as_u64().unwrap() > 100, "{line}");
    assert!(
        matches!(
            line["close"].as_str(),
            Some("client_closed" | "backend_closed")
        ),
        "{line}"
    );
    let m = metrics(&ports);
    let relayed = format!(
        "strait_l4_connections_total{{backend=\"{}\",close=\"{}\",pool=\"legacy.test\"}} 1",
        origin.addr,
        line["close"].as_str().unwrap()
    );
    assert!(m.contains(&relayed), "no {relayed} in\n{m}");
    assert!(m.contains("strait_l4_bytes_total{direction=\"out\",pool=\"legacy.test\"}"));
}

/// A stream that writes one byte per call, each on its own segment, and waits a little
/// between: a client dripping its ClientHello.
#[derive(Debug)]
struct Drip(TcpStream);

impl Read for Drip {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Drip {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(&first) = buf.first() else {
            return Ok(0);
        };
        self.0.write_all(&[first])?;
        std::thread::sleep(Duration::from_micros(300));
        Ok(1)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

fn dripped_connect(addr: SocketAddr, sni: &str) -> SslStream<Drip> {
    let mut builder = SslConnector::builder(SslMethod::tls()).expect("connector");
    builder.set_verify(SslVerifyMode::NONE);
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut cfg = builder.build().configure().expect("configure");
    cfg.set_verify_hostname(false);
    cfg.connect(sni, Drip(tcp)).expect("a dripped handshake")
}

#[test]
fn a_client_hello_dripped_byte_by_byte_is_routed_and_terminated() {
    let dir = temp_dir("pass-drip");
    site_cert(&dir);
    let legacy = pki::issue("legacy.test", None, &["legacy.test"], None, false);
    let origin = TlsOrigin::start(&legacy, None);
    let ports = Ports::new();
    let s = Strait::start(&pass_config(&dir, &ports, origin.addr, ""));

    let mut passed = dripped_connect(s.addr(), "legacy.test");
    let peer = passed.ssl().peer_certificate().expect("a certificate");
    assert_eq!(pki::cn_of(&peer), "legacy.test");
    passed
        .write_all(b"GET / HTTP/1.1\r\nHost: legacy.test\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    let _ = passed.read_to_string(&mut answer);
    assert!(answer.ends_with("tls-origin"), "{answer:?}");

    let mut terminated = dripped_connect(s.addr(), "site.test");
    let peer = terminated.ssl().peer_certificate().expect("a certificate");
    assert_eq!(pki::cn_of(&peer), "site.test");
    terminated
        .write_all(b"GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    let _ = terminated.read_to_string(&mut answer);
    assert!(answer.ends_with("terminated"), "{answer:?}");
}

/// Reads until the peer closes; `Ok` with what came (a reset counts as closed).
fn read_until_closed(tcp: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e) => return Err(format!("not closed: {e} (after {got:?})")),
        }
    }
}

#[test]
fn a_slow_or_malformed_client_hello_is_closed_and_counted() {
    let dir = temp_dir("pass-bad");
    site_cert(&dir);
    let legacy = pki::issue("legacy.test", None, &["legacy.test"], None, false);
    let origin = TlsOrigin::start(&legacy, None);
    let ports = Ports::new();
    let s = Strait::start(&pass_config(&dir, &ports, origin.addr, ""));
    ports.wait_up();

    // Plain HTTP on the TLS port: closed without a word.
    let mut plain = TcpStream::connect(s.addr()).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n")
        .unwrap();
    assert_eq!(read_until_closed(&mut plain).expect("closed"), b"");

    // The first bytes of a ClientHello, then nothing: closed after request_header_timeout (1s).
    let mut slow = TcpStream::connect(s.addr()).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    slow.write_all(&[22, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3])
        .unwrap();
    assert_eq!(read_until_closed(&mut slow).expect("closed"), b"");

    // A good ClientHello whose handshake then fails (no cipher strait offers) is counted.
    let mut builder = SslConnector::builder(SslMethod::tls()).expect("connector");
    builder.set_verify(SslVerifyMode::NONE);
    builder
        .set_max_proto_version(Some(SslVersion::TLS1_2))
        .unwrap();
    builder
        .set_cipher_list("AES128-SHA")
        .expect("a cipher strait does not offer");
    let tcp = TcpStream::connect(s.addr()).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let refused = builder.build().connect("site.test", tcp);
    assert!(refused.is_err(), "no shared cipher, yet a handshake");
    eventually_msg(
        Duration::from_secs(10),
        "the failed handshake counted",
        || metrics(&ports).contains("strait_tls_handshake_failures_total{reason=\"error\"} 1"),
    );

    let m = metrics(&ports);
    assert!(
        m.contains("strait_tls_hello_refused_total{reason=\"not_tls\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("strait_tls_hello_refused_total{reason=\"timeout\"} 1"),
        "{m}"
    );
    assert!(origin.snis().is_empty(), "nothing was passed through");
    // The listener still serves.
    let site = Client {
        sni: Some("site.test"),
        ..Client::default()
    };
    let (status, _, _) = pki::get(s.addr(), &site, "site.test", "/").expect("a good client");
    assert_eq!(status, 200);
}

#[test]
fn pass_sends_a_proxy_v2_header_first_when_asked() {
    // A backend that records what arrives before the ClientHello and then closes.
    let backend = TcpListener::bind("127.0.0.1:0").expect("bind");
    let backend_addr = backend.local_addr().unwrap();
    let seen: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        let Ok((mut tcp, _)) = backend.accept() else {
            return;
        };
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
        let mut head = [0u8; 16];
        if tcp.read_exact(&mut head).is_err() {
            return;
        }
        let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
        let mut rest = vec![0u8; len + 1];
        if tcp.read_exact(&mut rest).is_err() {
            return;
        }
        let mut all = head.to_vec();
        all.extend_from_slice(&rest);
        *record.lock().unwrap() = Some(all);
    });
    let dir = temp_dir("pass-proxy");
    site_cert(&dir);
    let ports = Ports::new();
    let s = Strait::start(&pass_config(
        &dir,
        &ports,
        backend_addr,
        ", proxy_protocol: v2",
    ));

    let tcp = TcpStream::connect(s.addr()).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let client_addr = tcp.local_addr().unwrap();
    let mut builder = SslConnector::builder(SslMethod::tls()).expect("connector");
    builder.set_verify(SslVerifyMode::NONE);
    // The backend closes after reading: this handshake fails, which is not the point.
    let _ = builder.build().connect("legacy.test", tcp);

    let got = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the backend got a header");
    assert_eq!(&got[..12], b"\r\n\r\n\0\r\nQUIT\n", "the v2 signature");
    assert_eq!(got[12], 0x21, "version 2, PROXY");
    assert_eq!(got[13], 0x11, "TCP over IPv4");
    assert_eq!(&got[16..20], &[127, 0, 0, 1], "the client's address");
    assert_eq!(&got[20..24], &[127, 0, 0, 1], "the address it connected to");
    assert_eq!(
        u16::from_be_bytes([got[24], got[25]]),
        client_addr.port(),
        "the client's port"
    );
    assert_eq!(u16::from_be_bytes([got[26], got[27]]), s.addr().port());
    assert_eq!(got[28], 22, "then the ClientHello, untouched");
}
