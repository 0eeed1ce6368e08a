//! Throw-away PKI for the TLS tests: CAs, certificates they sign, PEM files, a TLS client that
//! can present a certificate, and TLS origins. Everything is made in the test with the openssl
//! crate.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::ssl::{
    NameType, SslAcceptor, SslConnector, SslMethod, SslStream, SslVerifyMode, SslVersion,
};
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509NameBuilder, X509};

/// A certificate and its key.
#[derive(Clone)]
pub struct Pair {
    pub cert: X509,
    pub key: PKey<Private>,
}

impl Pair {
    /// Writes `NAME.crt` and `NAME.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        fs::write(&cert, self.cert.to_pem().expect("pem")).expect("write crt");
        fs::write(&key, self.key.private_key_to_pem_pkcs8().expect("key")).expect("write key");
        (cert, key)
    }

    /// SHA-256 of the DER certificate, lower-case hex without colons.
    pub fn fingerprint(&self) -> String {
        self.cert
            .digest(MessageDigest::sha256())
            .expect("digest")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The certificate's CN.
    pub fn cn(&self) -> String {
        cn_of(&self.cert)
    }
}

pub fn cn_of(cert: &openssl::x509::X509Ref) -> String {
    let cn = cert
        .subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .expect("cn");
    String::from_utf8_lossy(cn.data().as_slice()).into_owned()
}

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey")
}

fn serial() -> Asn1Integer {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) + std::process::id();
    BigNum::from_u32(n)
        .and_then(|b| b.to_asn1_integer())
        .expect("serial")
}

/// A certificate for `cn` (plus `O=org` when given) with `names` as SAN DNS names, signed by
/// `issuer` (self-signed when `None`); `ca` makes it a CA.
pub fn issue(cn: &str, org: Option<&str>, names: &[&str], issuer: Option<&Pair>, ca: bool) -> Pair {
    let key = key();
    let mut name = X509NameBuilder::new().expect("name");
    if let Some(org) = org {
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, org)
            .expect("o");
    }
    name.append_entry_by_nid(Nid::COMMONNAME, cn).expect("cn");
    let name = name.build();
    let mut b = X509Builder::new().expect("builder");
    b.set_version(2).expect("version");
    b.set_serial_number(&serial()).expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(issuer.map_or(&*name, |i| i.cert.subject_name()))
        .expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
        .expect("nb");
    b.set_not_after(&Asn1Time::days_from_now(2).expect("time"))
        .expect("na");
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
            .expect("ext");
    }
    if !names.is_empty() {
        let mut san = SubjectAlternativeName::new();
        for n in names {
            san.dns(n);
        }
        let ctx = b.x509v3_context(issuer.map(|i| &*i.cert), None);
        let san = san.build(&ctx).expect("san");
        b.append_extension(san).expect("ext");
    }
    b.sign(issuer.map_or(&key, |i| &i.key), MessageDigest::sha256())
        .expect("sign");
    Pair {
        cert: b.build(),
        key,
    }
}

/// A self-signed CA.
pub fn ca(cn: &str) -> Pair {
    issue(cn, None, &[], None, true)
}

/// Writes `content` to `path` as editors and certificate tools do: a temporary file in the
/// same folder, renamed over.
pub fn replace_file(path: &Path, content: &[u8]) {
    let tmp = path.with_extension("tmp-new");
    fs::write(&tmp, content).expect("write the temporary file");
    fs::rename(&tmp, path).expect("rename over");
}

/// How a test TLS client connects.
#[derive(Default, Clone)]
pub struct Client<'a> {
    pub sni: Option<&'a str>,
    pub cert: Option<&'a Pair>,
    pub max_version: Option<SslVersion>,
}

/// A TLS connection to `addr` (certificates not verified: the tests look at them instead).
pub fn connect(addr: SocketAddr, c: &Client<'_>) -> Result<SslStream<TcpStream>, String> {
    let mut builder = SslConnector::builder(SslMethod::tls()).map_err(|e| e.to_string())?;
    builder.set_verify(SslVerifyMode::NONE);
    if let Some(v) = c.max_version {
        builder
            .set_max_proto_version(Some(v))
            .map_err(|e| e.to_string())?;
    }
    if let Some(pair) = c.cert {
        builder
            .set_certificate(&pair.cert)
            .map_err(|e| e.to_string())?;
        builder
            .set_private_key(&pair.key)
            .map_err(|e| e.to_string())?;
    }
    let connector = builder.build();
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut cfg = connector.configure().map_err(|e| e.to_string())?;
    cfg.set_verify_hostname(false);
    let cfg = cfg.use_server_name_indication(c.sni.is_some());
    cfg.connect(c.sni.unwrap_or("ignored"), tcp)
        .map_err(|e| format!("handshake: {e}"))
}

/// One `GET path` with `Host: host` on a fresh TLS connection: (status, head, body), or why not.
pub fn get(
    addr: SocketAddr,
    c: &Client<'_>,
    host: &str,
    path: &str,
) -> Result<(u16, String, Vec<u8>), String> {
    let mut tls = connect(addr, c)?;
    send_get(&mut tls, host, path)
}

/// `GET path` on `tls` (then closed): (status, head, body), or why not.
pub fn send_get(
    tls: &mut SslStream<TcpStream>,
    host: &str,
    path: &str,
) -> Result<(u16, String, Vec<u8>), String> {
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut reply = Vec::new();
    let read = tls.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply).into_owned();
    let Some(end) = text.find("\r\n\r\n") else {
        return Err(format!("no response ({read:?}): {text:?}"));
    };
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {text:?}"))?;
    Ok((status, text[..end].to_string(), reply[end + 4..].to_vec()))
}

/// Serves `acceptor` on a loopback port until the test process ends: every request gets 200
/// "tls-origin" and the connection closes.
pub fn serve_tls_origin(acceptor: SslAcceptor) -> SocketAddr {
    let acceptor = Arc::new(acceptor);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let acceptor = acceptor.clone();
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(mut tls) = acceptor.accept(tcp) else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\ntls-origin",
                );
                let _ = tls.shutdown();
            });
        }
    });
    addr
}

/// A TLS origin on loopback answering every request with 200 "tls-origin". It records the
/// SNI of each handshake; with `client_ca` it requires a client certificate that CA signed.
pub struct TlsOrigin {
    pub addr: SocketAddr,
    pub snis: Arc<Mutex<Vec<String>>>,
}

impl TlsOrigin {
    pub fn start(server: &Pair, client_ca: Option<&Pair>) -> TlsOrigin {
        let mut acceptor =
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("acceptor");
        acceptor.set_certificate(&server.cert).expect("origin cert");
        acceptor.set_private_key(&server.key).expect("origin key");
        if let Some(ca) = client_ca {
            acceptor
                .cert_store_mut()
                .add_cert(ca.cert.clone())
                .expect("client ca");
            acceptor.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        }
        let snis = Arc::new(Mutex::new(Vec::new()));
        let seen = snis.clone();
        acceptor.set_servername_callback(move |ssl, _| {
            if let Some(name) = ssl.servername(NameType::HOST_NAME) {
                seen.lock().unwrap().push(name.to_string());
            }
            Ok(())
        });
        let addr = serve_tls_origin(acceptor.build());
        TlsOrigin { addr, snis }
    }

    pub fn snis(&self) -> Vec<String> {
        self.snis.lock().unwrap().clone()
    }
}
