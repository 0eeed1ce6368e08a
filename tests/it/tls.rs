//! TLS listeners: SNI picks the certificate, the first is the default, HTTP/2 is offered by
//! ALPN when enabled, and the backend learns the request came over https.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode};
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509Builder, X509NameBuilder};

use crate::support::client::parse_echo;
use crate::support::strait::temp_dir;
use crate::support::{config, Behaviour, Origin, Strait};

/// A self-signed certificate for `names` (CN = first name) written as NAME.crt/NAME.key.
fn make_cert(dir: &Path, file: &str, names: &[&str]) {
    let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_nid(Nid::COMMONNAME, names[0])
        .expect("cn");
    let name = name.build();
    let mut b = X509Builder::new().expect("builder");
    b.set_version(2).expect("version");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
        .expect("nb");
    b.set_not_after(&Asn1Time::days_from_now(2).expect("time"))
        .expect("na");
    let mut san = SubjectAlternativeName::new();
    for n in names {
        san.dns(n);
    }
    let san = san.build(&b.x509v3_context(None, None)).expect("san");
    b.append_extension(san).expect("ext");
    b.sign(&key, MessageDigest::sha256()).expect("sign");
    let cert = b.build();
    fs::write(dir.join(format!("{file}.crt")), cert.to_pem().expect("pem")).expect("write crt");
    fs::write(
        dir.join(format!("{file}.key")),
        key.private_key_to_pem_pkcs8().expect("key"),
    )
    .expect("write key");
}

/// Connects with `sni` (None: no SNI) and returns the stream.
fn connect(addr: std::net::SocketAddr, sni: Option<&str>, alpn: bool) -> SslStream<TcpStream> {
    let mut builder = SslConnector::builder(SslMethod::tls()).expect("connector");
    builder.set_verify(SslVerifyMode::NONE);
    if alpn {
        builder
            .set_alpn_protos(b"\x02h2\x08http/1.1")
            .expect("alpn");
    }
    let connector = builder.build();
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut cfg = connector.configure().expect("configure");
    cfg.set_verify_hostname(false);
    let cfg = cfg.use_server_name_indication(sni.is_some());
    cfg.connect(sni.unwrap_or("ignored"), tcp)
        .expect("TLS handshake")
}

fn peer_cn(stream: &SslStream<TcpStream>) -> String {
    let cert = stream.ssl().peer_certificate().expect("a certificate");
    let cn = cert
        .subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .expect("cn");
    String::from_utf8_lossy(cn.data().as_slice()).into_owned()
}

#[test]
fn sni_picks_the_certificate_and_backends_see_https() {
    let origin = Origin::start("echo", Behaviour::default().echo());
    let certs = temp_dir("certs");
    make_cert(&certs, "a", &["a.test"]);
    make_cert(&certs, "b", &["b.test", "*.b.test"]);
    let yaml = config(&format!(
        "    tls:
      certs: [{{ cert: {d}/a.crt, key: {d}/a.key }}, {{ cert: {d}/b.crt, key: {d}/b.key }}]
      http2: true
domains:
  - hosts: [\"*\"]
    backends: [{{ addr: {url} }}]
",
        d = certs.display(),
        url = origin.url()
    ));
    let s = Strait::start(&yaml);

    assert_eq!(peer_cn(&connect(s.addr(), Some("a.test"), false)), "a.test");
    assert_eq!(peer_cn(&connect(s.addr(), Some("b.test"), false)), "b.test");
    assert_eq!(
        peer_cn(&connect(s.addr(), Some("x.b.test"), false)),
        "b.test",
        "wildcard SAN"
    );
    assert_eq!(
        peer_cn(&connect(s.addr(), Some("other.test"), false)),
        "a.test",
        "unknown name: default"
    );
    assert_eq!(
        peer_cn(&connect(s.addr(), None, false)),
        "a.test",
        "no SNI: default"
    );

    let h2 = connect(s.addr(), Some("b.test"), true);
    assert_eq!(
        h2.ssl().selected_alpn_protocol(),
        Some(&b"h2"[..]),
        "http2: true offers h2"
    );

    let mut tls = connect(s.addr(), Some("a.test"), false);
    tls.write_all(b"GET /hello HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut reply = Vec::new();
    let _ = tls.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = &reply[text.find("\r\n\r\n").expect("head end") + 4..];
    let (_, headers) = parse_echo(body);
    let proto = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-proto"));
    assert_eq!(proto.map(|(_, v)| v.as_str()), Some("https"));
}

#[test]
fn cert_dir_pairs_load_and_a_bad_certificate_is_a_config_error() {
    let certs = temp_dir("certdir");
    make_cert(&certs, "one", &["one.test"]);
    let good = config(&format!(
        "    tls: {{ cert_dir: {} }}\ndomains:\n  - hosts: [\"*\"]\n    routes: [{{ path_prefix: /, respond: {{ body: ok }} }}]\n",
        certs.display()
    ));
    let s = Strait::start(&good);
    assert_eq!(
        peer_cn(&connect(s.addr(), Some("one.test"), false)),
        "one.test"
    );

    fs::write(certs.join("broken.crt"), "not a certificate").expect("write");
    fs::write(certs.join("broken.key"), "not a key").expect("write");
    let check = Strait::check(&good);
    assert_eq!(check.code, Some(1), "{}", check.output());
    assert!(check.output().contains("broken.crt"), "{}", check.output());
}

/// A TLS origin on loopback: answers every request with 200 "tls-origin" and closes.
fn tls_origin(dir: &Path) -> std::net::SocketAddr {
    use openssl::ssl::{SslAcceptor, SslFiletype};
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("acceptor");
    acceptor
        .set_certificate_chain_file(dir.join("origin.crt"))
        .expect("origin cert");
    acceptor
        .set_private_key_file(dir.join("origin.key"), SslFiletype::PEM)
        .expect("origin key");
    crate::support::pki::serve_tls_origin(acceptor.build())
}

#[test]
fn https_backends_are_verified_against_the_trust_store() {
    let certs = temp_dir("upstream-tls");
    make_cert(&certs, "origin", &["localhost"]);
    let origin = tls_origin(&certs);
    let yaml = config(&format!(
        "domains:\n  - hosts: [\"*\"]\n    backends: [{{ addr: \"https://localhost:{}\" }}]\n    max_retries: 0\n",
        origin.port()
    ));
    let ca = certs.join("origin.crt");

    let trusted = Strait::start_env(
        &yaml,
        &[("SSL_CERT_FILE", ca.to_str().expect("utf-8 path"))],
    );
    let resp = trusted.get("app.test", "/");
    assert_eq!((resp.status, resp.text()), (200, "tls-origin".to_string()));

    // The origin's self-signed certificate is in no system bundle: verification must fail.
    let untrusted = Strait::start(&yaml);
    let resp = untrusted.get("app.test", "/");
    assert_eq!(resp.status, 502, "an unverifiable backend must not be used");
}
