//! TLS listeners: certificates from `tls.certs` and `tls.cert_dir`, the first one the default,
//! the others chosen by SNI from the names each certificate carries (SAN DNS names, else CN);
//! `min_version`; client certificates (`client_auth`); and the material of `upstream_tls`.
//!
//! Everything a listener's handshakes use lives in one [`ListenerCerts`] behind an `ArcSwap`
//! ([`TlsListener`]), which the acceptor's callbacks read on each handshake: a reload builds
//! a new one from the files and swaps it in, so new handshakes see rotated certificates
//! without a restart (connections already up keep theirs).
//!
//! How the acceptor reads it (Pingora 0.9.1, OpenSSL): the ClientHello callback sets the
//! connection's minimum version and verify mode (the version is chosen before SNI is seen), the
//! servername callback switches the connection to the certificate's `SslContext` (always: no
//! SNI gets the default context). A switched context brings its certificate, its ALPN callback
//! and its trust store for client certificates, so each context carries those. Pingora's
//! `TlsAccept::handshake_complete_callback` then records the verified client certificate
//! ([`ClientCert`]) and the server name asked for in the connection's `SslDigest` ([`Handshake`]),
//! where requests and connection plugins read them.
//!
//! ACME hosts (`tls.acme`, `crate::acme`): each is served its issued certificate, else a
//! static one naming it, else a self-signed placeholder ([`AcmeHosts`]); the scheduler calls
//! [`TlsListener::refresh_acme`] when a certificate arrives. A ClientHello offering ALPN
//! `acme-tls/1` is marked by the ClientHello callback, and the servername callback answers it
//! with the host's TLS-ALPN-01 challenge certificate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use openssl::asn1::Asn1Time;
use pingora::listeners::TlsAccept;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::tls::{SslStream, TlsRef};
use pingora::tls::hash::MessageDigest;
use pingora::tls::nid::Nid;
use pingora::tls::pkey::{PKey, Private};
use pingora::tls::ssl::{
    self, AlpnError, ClientHelloResponse, NameType, SniError, SslAcceptor, SslContext, SslMethod,
    SslVerifyMode, SslVersion,
};
use pingora::tls::x509::{X509NameRef, X509};
use pingora::utils::tls::CertKey;

use crate::config::{
    CertPair, ClientAuthMode, ConfigError, Listener, Pos, Tls, TlsVersion, UpstreamTls,
};

/// ALPN protocols offered when `http2: true`, in preference order (wire format).
const H2_H1: &[u8] = b"\x02h2\x08http/1.1";
/// One session-id context for every context of a listener: resuming a session with client
/// verification on needs one, and a context switch keeps it only when they agree.
const SESSION_ID_CONTEXT: &[u8] = b"strait";

/// What a listener's handshakes use right now; replaced whole by a reload (and by
/// [`TlsListener::refresh_acme`] when an ACME certificate arrives).
#[derive(Clone)]
pub(crate) struct ListenerCerts {
    default: SslContext,
    by_name: HashMap<String, SslContext>,
    min_version: SslVersion,
    verify: SslVerifyMode,
    /// How many certificate/key pairs were loaded.
    pub(crate) pairs: usize,
    /// Names whose handshakes are refused (`drop: true`); `None` when no domain drops.
    drop: Option<Arc<DropNames>>,
    /// The static certificates, for `GET /certificates`.
    statics: Arc<Vec<StaticCert>>,
    /// The `tls.acme` hosts (`crate::acme`); `None` without any.
    acme: Option<Arc<AcmeHosts>>,
}

/// One static certificate as `GET /certificates` shows it.
struct StaticCert {
    names: Vec<String>,
    issuer: String,
    not_after: i64,
    file: PathBuf,
}

/// A listener's ACME hosts: the context each is served with now (its issued certificate,
/// else a static one that names it, else the placeholder), and what rebuilds them.
struct AcmeHosts {
    store: Arc<crate::acme::Certs>,
    hosts: Vec<String>,
    contexts: HashMap<String, SslContext>,
    placeholder: SslContext,
    http2: bool,
    client_ca: Option<Vec<X509>>,
}

impl AcmeHosts {
    fn new(
        store: Arc<crate::acme::Certs>,
        hosts: Vec<String>,
        http2: bool,
        client_ca: Option<Vec<X509>>,
        by_name: &HashMap<String, SslContext>,
    ) -> Result<AcmeHosts, String> {
        let (cert, key) = crate::acme::crypto::placeholder(&hosts)?;
        let placeholder = context(&[cert], &key, http2, client_ca.as_deref())
            .map_err(|e| format!("placeholder certificate: {e}"))?;
        let mut acme = AcmeHosts {
            store,
            hosts,
            contexts: HashMap::new(),
            placeholder,
            http2,
            client_ca,
        };
        acme.contexts = acme.build(by_name);
        Ok(acme)
    }

    fn build(&self, by_name: &HashMap<String, SslContext>) -> HashMap<String, SslContext> {
        let mut out = HashMap::new();
        for host in &self.hosts {
            let issued = self.store.issued(host).and_then(|i| {
                match context(&i.chain, &i.key, self.http2, self.client_ca.as_deref()) {
                    Ok(ctx) => Some(ctx),
                    Err(e) => {
                        let e = e
                            .replace("{cert}", "the certificate")
                            .replace("{key}", "its key");
                        log::warn!("acme: {host}: cannot use its certificate: {e}");
                        None
                    }
                }
            });
            let ctx = issued
                .or_else(|| lookup(by_name, host).cloned())
                .unwrap_or_else(|| self.placeholder.clone());
            out.insert(host.clone(), ctx);
        }
        out
    }
}

/// Whether a ClientHello offered ALPN `acme-tls/1` (RFC 8737), kept with the connection
/// from the ClientHello callback (which sees ALPN) to the servername callback (which picks
/// the certificate).
fn acme_alpn_index() -> Option<openssl::ex_data::Index<ssl::Ssl, bool>> {
    static INDEX: std::sync::OnceLock<Option<openssl::ex_data::Index<ssl::Ssl, bool>>> =
        std::sync::OnceLock::new();
    *INDEX.get_or_init(|| ssl::Ssl::new_ex_index().ok())
}

const ACME_TLS_1: &[u8] = b"acme-tls/1";
/// The ALPN extension's number (RFC 7301).
const TLSEXT_ALPN: std::ffi::c_uint = 16;

/// The protocol list of the ClientHello's ALPN extension (wire format), inside the ClientHello
/// callback only.
fn client_hello_alpn(ssl: &ssl::SslRef) -> Option<&[u8]> {
    use foreign_types::ForeignTypeRef;
    let mut data: *const std::ffi::c_uchar = std::ptr::null();
    let mut len: usize = 0;
    // SAFETY: called from the ClientHello callback, where OpenSSL keeps the ClientHello (and
    // so `data`) alive for the duration of the borrow of `ssl`.
    let found = unsafe {
        openssl_sys::SSL_client_hello_get0_ext(ssl.as_ptr(), TLSEXT_ALPN, &mut data, &mut len)
    };
    if found != 1 || data.is_null() || len < 2 {
        return None;
    }
    // SAFETY: OpenSSL says `len` bytes are readable at `data`.
    let ext = unsafe { std::slice::from_raw_parts(data, len) };
    // A two-byte length, then the list.
    let listed = usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    ext.get(2..2 + listed)
}

fn offers_acme_tls(alpn: &[u8]) -> bool {
    let mut rest = alpn;
    while let Some((&len, tail)) = rest.split_first() {
        let len = len as usize;
        if tail.len() < len {
            return false;
        }
        if &tail[..len] == ACME_TLS_1 {
            return true;
        }
        rest = &tail[len..];
    }
    false
}

/// The context a TLS-ALPN-01 challenge is answered with: the challenge certificate, and
/// ALPN `acme-tls/1` selected.
pub(crate) fn acme_challenge_context(
    cert: &X509,
    key: &PKey<Private>,
) -> Result<SslContext, String> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())
        .map_err(|e| format!("cannot create a TLS context: {e}"))?;
    builder
        .set_certificate(cert)
        .and_then(|()| builder.set_private_key(key))
        .and_then(|()| builder.set_session_id_context(SESSION_ID_CONTEXT))
        .map_err(|e| format!("cannot use the challenge certificate: {e}"))?;
    builder.set_alpn_select_callback(|_, client| {
        ssl::select_next_proto(b"\x0aacme-tls/1", client).ok_or(AlpnError::ALERT_FATAL)
    });
    Ok(builder.build().into_context())
}

/// Which server names route, on one listener, to a domain that drops every request (its own
/// `drop: true` and no route that answers otherwise): their handshakes are refused, with an
/// `unrecognized_name` alert, before any certificate is sent.
struct DropNames {
    /// The domains' hosts on this listener (no routes).
    router: crate::router::Router,
    /// Per domain: whether it drops everything.
    drops: Vec<bool>,
}

impl DropNames {
    fn of(config: &crate::config::Config, listener: usize) -> Option<DropNames> {
        use crate::config::Action;
        let drops: Vec<bool> = config
            .domains
            .iter()
            .map(|d| {
                matches!(d.handling.action, Action::Drop)
                    && d.routes
                        .iter()
                        .all(|r| matches!(r.handling.action, Action::Drop))
            })
            .collect();
        if !drops.contains(&true) {
            return None;
        }
        let router = crate::router::Router::new(config.domains.iter().map(|d| {
            let on = d.listeners.as_ref().is_none_or(|ls| ls.contains(&listener));
            (if on { &d.hosts[..] } else { &[][..] }, Vec::new())
        }));
        Some(DropNames { router, drops })
    }

    fn drops(&self, name: &str) -> bool {
        let headers = http::HeaderMap::new();
        self.router
            .route(&crate::router::Request::simple(name, "/", &headers))
            .is_some_and(|hit| self.drops.get(hit.domain) == Some(&true))
    }
}

/// One TLS listener's swappable certificates, shared by its acceptor and the reload.
pub(crate) struct TlsListener {
    /// The listener's address: a reload finds the listener again by it.
    pub(crate) addr: std::net::SocketAddr,
    current: ArcSwap<ListenerCerts>,
}

impl TlsListener {
    pub(crate) fn new(addr: std::net::SocketAddr, certs: ListenerCerts) -> Self {
        TlsListener {
            addr,
            current: ArcSwap::from_pointee(certs),
        }
    }

    /// New handshakes use `certs` from now on.
    pub(crate) fn swap(&self, certs: ListenerCerts) {
        self.current.store(Arc::new(certs));
    }

    /// New handshakes use the ACME hosts' current certificates.
    pub(crate) fn refresh_acme(&self) {
        // rcu: a reload swapping in new certificates meanwhile is built upon, not undone.
        self.current.rcu(|current| {
            let Some(acme) = &current.acme else {
                return current.clone();
            };
            let contexts = acme.build(&current.by_name);
            let mut next = (**current).clone();
            if current.pairs == 0 {
                if let Some(ctx) = acme.hosts.first().and_then(|h| contexts.get(h)) {
                    next.default = ctx.clone();
                }
            }
            next.acme = Some(Arc::new(AcmeHosts {
                store: acme.store.clone(),
                hosts: acme.hosts.clone(),
                contexts,
                placeholder: acme.placeholder.clone(),
                http2: acme.http2,
                client_ca: acme.client_ca.clone(),
            }));
            Arc::new(next)
        });
    }

    /// The static certificates, as `GET /certificates` lists them.
    pub(crate) fn static_report(&self) -> Vec<serde_json::Value> {
        let current = self.current.load();
        current
            .statics
            .iter()
            .map(|c| {
                serde_json::json!({
                    "host": c.names.first(),
                    "names": c.names,
                    "source": "static",
                    "status": "static",
                    "issuer": c.issuer,
                    "not_after_unix": c.not_after,
                    "not_after": crate::acme::http_date(c.not_after),
                    "file": c.file.display().to_string(),
                    "listener": self.addr.to_string(),
                })
            })
            .collect()
    }
}

/// The verified certificate a client presented, kept with its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientCert {
    /// The subject DN, RFC 2253 style (`CN=client,O=Example`), as nginx's `$ssl_client_s_dn`.
    pub(crate) subject: String,
    /// SHA-256 of the DER certificate: lower-case hex without colons.
    pub(crate) fingerprint: String,
}

impl ClientCert {
    pub(crate) fn of(cert: &X509) -> Option<ClientCert> {
        let digest = cert.digest(MessageDigest::sha256()).ok()?;
        Some(ClientCert {
            subject: dn_text(cert.subject_name()),
            fingerprint: hex(&digest),
        })
    }

    /// The certificate a session's client presented and strait verified, if any.
    pub(crate) fn of_session(session: &pingora::proxy::Session) -> Option<&ClientCert> {
        session
            .digest()?
            .ssl_digest
            .as_ref()?
            .extension
            .get::<Handshake>()?
            .client
            .as_ref()
    }
}

/// What a TLS handshake leaves with its connection (in its `SslDigest`): the server name the
/// client asked for (for connection plugins) and the verified client certificate.
#[derive(Debug, Clone, Default)]
pub(crate) struct Handshake {
    pub(crate) sni: Option<String>,
    pub(crate) client: Option<ClientCert>,
}

impl Handshake {
    /// The server name a TLS connection asked for, if any.
    pub(crate) fn sni_of(stream: &pingora::protocols::Stream) -> Option<String> {
        stream
            .get_ssl_digest()?
            .extension
            .get::<Handshake>()?
            .sni
            .clone()
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// RFC 2253: the most specific name first, `,` between, special characters escaped.
fn dn_text(name: &X509NameRef) -> String {
    let parts: Vec<String> = name
        .entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?").to_string();
            let value = e
                .data()
                .to_string()
                .unwrap_or_else(|_| String::from_utf8_lossy(e.data().as_slice()).into_owned());
            let mut escaped = String::with_capacity(value.len());
            for (i, c) in value.chars().enumerate() {
                let edge = (i == 0 && (c == ' ' || c == '#'))
                    || (i + 1 == value.chars().count() && c == ' ');
                if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
                    escaped.push('\\');
                }
                escaped.push(c);
            }
            format!("{key}={escaped}")
        })
        .collect();
    parts.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// Pingora's hook after each handshake: the client's verified certificate goes into the
/// connection's `SslDigest`.
struct RecordClientCert;

#[async_trait]
impl TlsAccept for RecordClientCert {
    async fn handshake_complete_callback(
        &self,
        ssl: &TlsRef,
    ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        let sni = ssl.servername(NameType::HOST_NAME).map(str::to_string);
        // The handshake only completes with a certificate that verified (or none).
        let client = ssl
            .peer_certificate()
            .filter(|_| ssl.verify_result() == pingora::tls::x509::X509VerifyResult::OK)
            .and_then(|cert| ClientCert::of(&cert));
        Some(Arc::new(Handshake { sni, client }) as Arc<dyn std::any::Any + Send + Sync>)
    }
}

/// The acceptor of a TLS listener: every handshake reads `listener`'s current certificates.
/// strait runs the handshake itself ([`handshake`], after `crate::l4::pass` has read the
/// ClientHello), with what Pingora's `TlsSettings::with_callbacks` would have set up.
pub(crate) fn acceptor(listener: Arc<TlsListener>) -> Result<SslAcceptor, String> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())
        .map_err(|e| format!("cannot create a TLS acceptor: {e}"))?;
    // OpenSSL reads ahead into its own record buffer, which every connection has anyway, so a
    // whole record (header and body) comes in one system call without an L4 read buffer in
    // front of it: TLS listeners have none (crate::server), 16 KiB less per connection. Set
    // here, on the context each connection's SSL is made from; the per-certificate contexts
    // the SNI callback switches to do not change it.
    builder.set_read_ahead(true);
    builder
        .set_session_id_context(SESSION_ID_CONTEXT)
        .map_err(|e| format!("cannot create a TLS acceptor: {e}"))?;
    let hello = listener.clone();
    builder.set_client_hello_callback(move |ssl, _alert| {
        let certs = hello.current.load();
        ssl.set_min_proto_version(Some(certs.min_version))?;
        ssl.set_verify(certs.verify);
        if certs.acme.is_some() && client_hello_alpn(ssl).is_some_and(offers_acme_tls) {
            if let Some(index) = acme_alpn_index() {
                ssl.set_ex_data(index, true);
            }
        }
        Ok(ClientHelloResponse::SUCCESS)
    });
    builder.set_servername_callback(move |ssl, alert| {
        let certs = listener.current.load();
        if let (Some(drop), Some(name)) = (&certs.drop, ssl.servername(NameType::HOST_NAME)) {
            if drop.drops(name) {
                crate::metrics::SNI_DROPPED.inc();
                *alert = ssl::SslAlert::UNRECOGNIZED_NAME;
                return Err(SniError::ALERT_FATAL);
            }
        }
        if let (Some(acme), Some(name)) = (&certs.acme, ssl.servername(NameType::HOST_NAME)) {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let challenge = acme_alpn_index().and_then(|i| ssl.ex_data(i).copied()) == Some(true);
            let ctx = if challenge {
                // A TLS-ALPN-01 check: only the challenge certificate answers it.
                acme.store.alpn01(&name)
            } else {
                acme.contexts.get(&name).cloned()
            };
            if let Some(ctx) = ctx {
                return ssl.set_ssl_context(&ctx).map_err(|_| SniError::ALERT_FATAL);
            }
        }
        let ctx = ssl
            .servername(NameType::HOST_NAME)
            .and_then(|name| lookup(&certs.by_name, name))
            // Unknown names get the default certificate, as with no SNI at all.
            .unwrap_or(&certs.default);
        ssl.set_ssl_context(ctx).map_err(|_| SniError::ALERT_FATAL)
    });
    Ok(builder.build())
}

/// The server side of a TLS handshake on a TCP connection, as Pingora's listener does it
/// (its `handshake_with_callback`), with [`RecordClientCert`] after it.
pub(crate) async fn handshake(
    acceptor: &SslAcceptor,
    tcp: L4Stream,
) -> pingora::Result<SslStream<L4Stream>> {
    pingora::protocols::tls::server::handshake_with_callback(acceptor, tcp, &RecordClientCert).await
}

/// Reads and checks every certificate, key and CA a listener's `tls` names; errors point at
/// the pair (or `cert_dir`, or `client_auth.ca`) in the file. Also returns warnings (expired
/// certificates) for the caller to log.
pub(crate) fn load(
    config: &crate::config::Config,
    index: usize,
    listener: &Listener,
    tls: &Tls,
    acme: Option<&Arc<crate::acme::Certs>>,
) -> Result<(ListenerCerts, Vec<String>), ConfigError> {
    let source = config.source.as_str();
    let at =
        |pos: Pos, path: String, message: String| ConfigError::new(source, pos, &path, message);
    let base = format!("listeners[{index}].tls");
    let mut pairs: Vec<(String, CertPair)> = tls
        .certs
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("{base}.certs[{i}]"), p.clone()))
        .collect();
    if let Some(dir) = &tls.cert_dir {
        let found = scan_dir(dir, tls.cert_dir_pos)
            .map_err(|e| at(tls.cert_dir_pos, format!("{base}.cert_dir"), e))?;
        pairs.extend(found.into_iter().map(|p| (format!("{base}.cert_dir"), p)));
    }
    if pairs.is_empty() && tls.acme.is_empty() {
        let pos = if tls.pos == Pos::default() {
            listener.pos
        } else {
            tls.pos
        };
        return Err(at(pos, base, "no certificate found".into()));
    }
    let client_ca = match &tls.client_auth {
        Some(auth) => {
            Some(read_ca(&auth.ca).map_err(|e| at(auth.pos, format!("{base}.client_auth.ca"), e))?)
        }
        None => None,
    };
    let mut warnings = Vec::new();
    let mut loaded = Vec::with_capacity(pairs.len());
    let mut statics = Vec::with_capacity(pairs.len());
    for (path, pair) in &pairs {
        let (context, names, expired, info) = load_pair(pair, tls.http2, client_ca.as_deref())
            .map_err(|e| at(pair.pos, path.clone(), e))?;
        statics.push(info);
        if expired {
            warnings.push(format!(
                "{source}:{}:{}: {path}: certificate {} has expired; clients will refuse it",
                pair.pos.line,
                pair.pos.col,
                pair.cert.display()
            ));
        }
        loaded.push((context, names));
    }
    let first = loaded.first().map(|(c, _)| c.clone());
    let count = loaded.len();
    let mut by_name = HashMap::new();
    // Exact names and `*.suffix` wildcards; the first certificate to claim a name keeps it.
    for (context, names) in loaded {
        for name in names {
            by_name.entry(name).or_insert_with(|| context.clone());
        }
    }
    let acme = if tls.acme.is_empty() {
        None
    } else {
        let store = acme.cloned().unwrap_or_default();
        let hosts = AcmeHosts::new(
            store,
            tls.acme.clone(),
            tls.http2,
            client_ca.clone(),
            &by_name,
        )
        .map_err(|e| at(tls.pos, format!("{base}.acme"), e))?;
        Some(Arc::new(hosts))
    };
    // Without static certificates, the first ACME host's answers handshakes without SNI.
    let default = match (first, &acme) {
        (Some(ctx), _) => ctx,
        (None, Some(a)) => a
            .hosts
            .first()
            .and_then(|h| a.contexts.get(h))
            .unwrap_or(&a.placeholder)
            .clone(),
        (None, None) => return Err(at(tls.pos, base, "no certificate found".into())),
    };
    let verify = match tls.client_auth.as_ref().map(|a| a.mode) {
        None => SslVerifyMode::NONE,
        Some(ClientAuthMode::Optional) => SslVerifyMode::PEER,
        Some(ClientAuthMode::Require) => SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
    };
    let min_version = match tls.min_version {
        TlsVersion::V1_2 => SslVersion::TLS1_2,
        TlsVersion::V1_3 => SslVersion::TLS1_3,
    };
    Ok((
        ListenerCerts {
            default,
            by_name,
            min_version,
            verify,
            pairs: count,
            drop: DropNames::of(config, index).map(Arc::new),
            statics: Arc::new(statics),
            acme,
        },
        warnings,
    ))
}

/// `NAME.crt` + `NAME.key`, or `NAME.pem` + `NAME.key`, in name order.
fn scan_dir(dir: &Path, pos: Pos) -> Result<Vec<CertPair>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let mut pairs = Vec::new();
    for cert in &files {
        let ext = cert.extension().and_then(|e| e.to_str());
        if !matches!(ext, Some("crt") | Some("pem")) {
            continue;
        }
        let key = cert.with_extension("key");
        if key.is_file() {
            pairs.push(CertPair {
                cert: cert.clone(),
                key,
                pos,
            });
        }
    }
    if pairs.is_empty() {
        return Err(format!(
            "no NAME.crt/NAME.pem + NAME.key pair in {}",
            dir.display()
        ));
    }
    Ok(pairs)
}

/// Every certificate of a PEM file (a CA bundle).
fn read_ca(path: &Path) -> Result<Vec<X509>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = X509::stack_from_pem(&pem)
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

/// A PEM certificate chain (leaf first) and its private key, checked to belong together.
fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<X509>, PKey<Private>), String> {
    let pem = std::fs::read(cert).map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
    let chain = X509::stack_from_pem(&pem)
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| format!("{} is not a PEM certificate", cert.display()))?;
    let key_pem = std::fs::read(key).map_err(|e| format!("cannot read {}: {e}", key.display()))?;
    let pkey = PKey::private_key_from_pem(&key_pem)
        .map_err(|_| format!("{} is not a PEM private key", key.display()))?;
    let matches = chain[0]
        .public_key()
        .map(|public| public.public_eq(&pkey))
        .unwrap_or(false);
    if !matches {
        return Err(format!(
            "key {} does not match certificate {}",
            key.display(),
            cert.display()
        ));
    }
    Ok((chain, pkey))
}

/// One pair's context, the names it answers for, whether it has expired, and what
/// `GET /certificates` shows of it.
fn load_pair(
    pair: &CertPair,
    http2: bool,
    client_ca: Option<&[X509]>,
) -> Result<(SslContext, Vec<String>, bool, StaticCert), String> {
    let (chain, key) = read_pair(&pair.cert, &pair.key)?;
    let context = context(&chain, &key, http2, client_ca).map_err(|e| {
        e.replace("{cert}", &pair.cert.display().to_string())
            .replace("{key}", &pair.key.display().to_string())
    })?;
    let expired = Asn1Time::days_from_now(0)
        .map(|now| chain[0].not_after() < now)
        .unwrap_or(false);
    let names = names(&chain[0]);
    let info = StaticCert {
        names: names.clone(),
        issuer: dn_text(chain[0].issuer_name()),
        not_after: crate::acme::certs::unix_time(chain[0].not_after()),
        file: pair.cert.clone(),
    };
    Ok((context, names, expired, info))
}

/// A handshake context serving `chain` with `key`: ALPN h2 when `http2`, client certificates
/// verified against `client_ca`. Errors name the files as `{cert}` and `{key}`.
fn context(
    chain: &[X509],
    key: &PKey<Private>,
    http2: bool,
    client_ca: Option<&[X509]>,
) -> Result<SslContext, String> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())
        .map_err(|e| format!("cannot create a TLS context: {e}"))?;
    builder
        .set_certificate(&chain[0])
        .and_then(|()| {
            chain[1..]
                .iter()
                .try_for_each(|c| builder.add_extra_chain_cert(c.clone()))
        })
        .map_err(|e| format!("cannot use certificate {{cert}}: {e}"))?;
    builder
        .set_private_key(key)
        .map_err(|e| format!("cannot use key {{key}}: {e}"))?;
    builder
        .check_private_key()
        .map_err(|_| "key {key} does not match certificate {cert}".to_string())?;
    builder
        .set_session_id_context(SESSION_ID_CONTEXT)
        .map_err(|e| format!("cannot create a TLS context: {e}"))?;
    if http2 {
        // A context switched in by SNI answers ALPN itself, so each one needs the callback.
        builder.set_alpn_select_callback(|_, client| {
            ssl::select_next_proto(H2_H1, client).ok_or(AlpnError::NOACK)
        });
    }
    if let Some(cas) = client_ca {
        // Client certificates are verified against the switched-to context's store.
        for ca in cas {
            builder
                .cert_store_mut()
                .add_cert(ca.clone())
                .map_err(|e| format!("cannot use a client CA: {e}"))?;
            // Named in the CertificateRequest, so clients know which certificate to send.
            builder
                .add_client_ca(ca)
                .map_err(|e| format!("cannot use a client CA: {e}"))?;
        }
    }
    Ok(builder.build().into_context())
}

/// The certificate's DNS subject alternative names, lower-cased.
pub(crate) fn dns_names(cert: &X509) -> Vec<String> {
    cert.subject_alt_names()
        .map(|sans| {
            sans.iter()
                .filter_map(|n| n.dnsname().map(str::to_ascii_lowercase))
                .collect()
        })
        .unwrap_or_default()
}

/// The names a certificate serves: its DNS names, else its common name.
fn names(cert: &X509) -> Vec<String> {
    let sans = dns_names(cert);
    if !sans.is_empty() {
        return sans;
    }
    cert.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .map(|e| String::from_utf8_lossy(e.data().as_slice()).to_ascii_lowercase())
        .collect()
}

fn lookup<'a>(map: &'a HashMap<String, SslContext>, server_name: &str) -> Option<&'a SslContext> {
    let name = server_name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(ctx) = map.get(&name) {
        return Some(ctx);
    }
    // `*.example.com` covers exactly one label more, as certificate wildcards do.
    let (_, parent) = name.split_once('.')?;
    map.get(&format!("*.{parent}"))
}

/// The files of `upstream_tls`, loaded for the peers of its backends.
#[derive(Clone)]
pub(crate) struct UpstreamMaterial {
    pub(crate) ca: Option<Arc<Box<[X509]>>>,
    pub(crate) client: Option<Arc<CertKey>>,
    /// Pingora's connection pool tells peers apart by address, SNI, verify flags and client
    /// certificate, not by CA: peers with a CA of their own get a group of their own.
    pub(crate) group: u64,
}

/// Loads the CA and client certificate `t` names; errors point at the `upstream_tls` map.
pub(crate) fn load_upstream(
    t: &UpstreamTls,
    source: &str,
) -> Result<UpstreamMaterial, ConfigError> {
    let err = |key: &str, message: String| {
        ConfigError::new(source, t.pos, &format!("{}.{key}", t.path), message)
    };
    let ca = match &t.ca {
        Some(path) => Some(Arc::new(
            read_ca(path).map_err(|e| err("ca", e))?.into_boxed_slice(),
        )),
        None => None,
    };
    let client = match (&t.client_cert, &t.client_key) {
        (Some(cert), Some(key)) => {
            let (chain, pkey) = read_pair(cert, key).map_err(|e| err("client_cert", e))?;
            Some(Arc::new(CertKey::new(chain, pkey)))
        }
        _ => None,
    };
    let group = match &ca {
        None => 0,
        Some(cas) => {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for c in cas.iter() {
                c.to_der().unwrap_or_default().hash(&mut h);
            }
            h.finish()
        }
    };
    Ok(UpstreamMaterial { ca, client, group })
}

/// Every certificate, key and CA file `config` names (listeners' `tls`, `upstream_tls`), and
/// the `cert_dir` folders: what file watching watches beside the config file.
pub(crate) fn files(config: &crate::config::Config) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for tls in config.listeners.iter().filter_map(|l| l.tls.as_ref()) {
        for pair in &tls.certs {
            files.push(pair.cert.clone());
            files.push(pair.key.clone());
        }
        files.extend(tls.client_auth.as_ref().map(|a| a.ca.clone()));
        dirs.extend(tls.cert_dir.clone());
    }
    for handling in config.domains.iter().flat_map(|d| d.handlings()) {
        if let crate::config::Action::Proxy { options, .. } = &handling.action {
            if let Some(t) = &options.upstream_tls {
                files.extend(
                    t.ca.iter()
                        .chain(&t.client_cert)
                        .chain(&t.client_key)
                        .cloned(),
                );
            }
        }
    }
    files.sort();
    files.dedup();
    dirs.sort();
    dirs.dedup();
    (files, dirs)
}
