//! TLS listeners: certificates from `tls.certs` and `tls.cert_dir`, the first one the default,
//! the others chosen by SNI from the names each certificate carries (SAN DNS names, else CN).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pingora::listeners::tls::TlsSettings;
use pingora::tls::nid::Nid;
use pingora::tls::ssl::{
    self, AlpnError, NameType, SniError, SslAcceptor, SslContext, SslFiletype, SslMethod,
};
use pingora::tls::x509::X509;

use crate::config::{CertPair, ConfigError, Listener, Tls};

/// ALPN protocols offered when `http2: true`, in preference order (wire format).
const H2_H1: &[u8] = b"\x02h2\x08http/1.1";

/// One loaded certificate: its context for SNI switching and the names it answers for.
struct Loaded {
    context: SslContext,
    names: Vec<String>,
}

/// Builds the listener's TLS settings, or says exactly which file is wrong.
pub(crate) fn settings(
    listener: &Listener,
    tls: &Tls,
    source: &str,
) -> Result<TlsSettings, ConfigError> {
    let error = |path: String, message: String| ConfigError {
        file: source.to_string(),
        line: listener.pos.line,
        col: listener.pos.col,
        path,
        message,
    };
    let mut pairs: Vec<(String, CertPair)> = tls
        .certs
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("listeners.tls.certs[{i}]"), p.clone()))
        .collect();
    if let Some(dir) = &tls.cert_dir {
        let found = scan_dir(dir).map_err(|e| error("listeners.tls.cert_dir".into(), e))?;
        pairs.extend(
            found
                .into_iter()
                .map(|p| ("listeners.tls.cert_dir".to_string(), p)),
        );
    }
    let Some((_, default)) = pairs.first() else {
        return Err(error("listeners.tls".into(), "no certificate found".into()));
    };

    let mut loaded = Vec::with_capacity(pairs.len());
    for (path, pair) in &pairs {
        loaded.push(load(pair, tls.http2).map_err(|e| error(path.clone(), e))?);
    }
    let mut settings = TlsSettings::intermediate(&path_str(&default.cert), &path_str(&default.key))
        .map_err(|e| {
            error(
                "listeners.tls".into(),
                format!("cannot use the default certificate: {e}"),
            )
        })?;
    if tls.http2 {
        settings.enable_h2();
    }
    let by_name = Arc::new(index(loaded));
    settings.set_servername_callback(move |ssl, _alert| {
        let Some(name) = ssl.servername(NameType::HOST_NAME) else {
            return Ok(());
        };
        match lookup(&by_name, name) {
            Some(ctx) => ssl.set_ssl_context(ctx).map_err(|_| SniError::ALERT_FATAL),
            // Unknown names get the default certificate, as with no SNI at all.
            None => Ok(()),
        }
    });
    Ok(settings)
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// `NAME.crt` + `NAME.key`, or `NAME.pem` + `NAME.key`, in name order.
fn scan_dir(dir: &Path) -> Result<Vec<CertPair>, String> {
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

fn load(pair: &CertPair, http2: bool) -> Result<Loaded, String> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())
        .map_err(|e| format!("cannot create a TLS context: {e}"))?;
    builder
        .set_certificate_chain_file(&pair.cert)
        .map_err(|e| format!("cannot load certificate {}: {e}", pair.cert.display()))?;
    builder
        .set_private_key_file(&pair.key, SslFiletype::PEM)
        .map_err(|e| format!("cannot load key {}: {e}", pair.key.display()))?;
    builder.check_private_key().map_err(|_| {
        format!(
            "key {} does not match certificate {}",
            pair.key.display(),
            pair.cert.display()
        )
    })?;
    if http2 {
        // A context switched in by SNI answers ALPN itself, so each one needs the callback.
        builder.set_alpn_select_callback(|_, client| {
            ssl::select_next_proto(H2_H1, client).ok_or(AlpnError::NOACK)
        });
    }
    let pem = std::fs::read(&pair.cert)
        .map_err(|e| format!("cannot read {}: {e}", pair.cert.display()))?;
    let cert = X509::from_pem(&pem)
        .map_err(|e| format!("{} is not a PEM certificate: {e}", pair.cert.display()))?;
    let names = names(&cert);
    Ok(Loaded {
        context: builder.build().into_context(),
        names,
    })
}

fn names(cert: &X509) -> Vec<String> {
    let sans: Vec<String> = cert
        .subject_alt_names()
        .map(|sans| {
            sans.iter()
                .filter_map(|n| n.dnsname().map(str::to_ascii_lowercase))
                .collect()
        })
        .unwrap_or_default();
    if !sans.is_empty() {
        return sans;
    }
    cert.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .map(|e| String::from_utf8_lossy(e.data().as_slice()).to_ascii_lowercase())
        .collect()
}

/// Exact names and `*.suffix` wildcards; the first certificate to claim a name keeps it.
fn index(loaded: Vec<Loaded>) -> HashMap<String, SslContext> {
    let mut map = HashMap::new();
    for cert in loaded {
        for name in cert.names {
            map.entry(name).or_insert_with(|| cert.context.clone());
        }
    }
    map
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
