//! What the TLS listeners read of ACME: each host's certificate in use, and the answers to
//! challenges in flight (HTTP-01 tokens for the plain listeners, TLS-ALPN-01 certificates
//! for the TLS listeners). Written by the scheduler, read by handshakes and requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::pkey::{PKey, Private};
use openssl::ssl::SslContext;
use openssl::x509::X509;

/// A host's certificate, as read from `acme.storage`.
pub(crate) struct Issued {
    /// Leaf first.
    pub(crate) chain: Vec<X509>,
    pub(crate) key: PKey<Private>,
    /// Unix time.
    pub(crate) not_after: i64,
    /// The issuer's common name (else its whole name).
    pub(crate) issuer: String,
    /// The certificate file's modification time when read: a newer file is read again.
    pub(crate) modified: SystemTime,
}

impl Issued {
    /// A PEM chain and key, checked to belong together and to name `host`.
    pub(crate) fn parse(
        host: &str,
        chain: &[u8],
        key: &[u8],
        modified: SystemTime,
    ) -> Result<Issued, String> {
        let chain = X509::stack_from_pem(chain)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| format!("the stored certificate of {host} is not PEM"))?;
        let key = PKey::private_key_from_pem(key)
            .map_err(|_| format!("the stored key of {host} is not a PEM private key"))?;
        if !chain[0]
            .public_key()
            .is_ok_and(|public| public.public_eq(&key))
        {
            return Err(format!(
                "the stored key of {host} does not match its certificate"
            ));
        }
        if !crate::tls::dns_names(&chain[0]).iter().any(|n| n == host) {
            return Err(format!("the stored certificate of {host} does not name it"));
        }
        let not_after = unix_time(chain[0].not_after());
        let issuer = chain[0]
            .issuer_name()
            .entries_by_nid(openssl::nid::Nid::COMMONNAME)
            .next()
            .and_then(|e| e.data().to_string().ok())
            .unwrap_or_else(|| format!("{:?}", chain[0].issuer_name()));
        Ok(Issued {
            chain,
            key,
            not_after,
            issuer,
            modified,
        })
    }
}

/// Seconds since the Unix epoch of an ASN.1 time (0 if it cannot be compared).
pub(crate) fn unix_time(t: &Asn1TimeRef) -> i64 {
    Asn1Time::from_unix(0)
        .and_then(|epoch| epoch.diff(t))
        .map(|d| i64::from(d.days) * 86_400 + i64::from(d.secs))
        .unwrap_or(0)
}

#[derive(Default)]
pub(crate) struct Certs {
    issued: Mutex<HashMap<String, Arc<Issued>>>,
    /// HTTP-01: token -> key authorization.
    http01: Mutex<HashMap<String, String>>,
    /// TLS-ALPN-01: host -> the context with its challenge certificate.
    alpn01: Mutex<HashMap<String, SslContext>>,
}

impl Certs {
    pub(crate) fn issued(&self, host: &str) -> Option<Arc<Issued>> {
        self.issued.lock().ok()?.get(host).cloned()
    }

    pub(crate) fn set_issued(&self, host: &str, issued: Arc<Issued>) {
        if let Ok(mut map) = self.issued.lock() {
            map.insert(host.to_string(), issued);
        }
    }

    /// The key authorization for an HTTP-01 `token`, while its challenge is in flight.
    pub(crate) fn http01(&self, token: &str) -> Option<String> {
        self.http01.lock().ok()?.get(token).cloned()
    }

    pub(crate) fn set_http01(&self, token: &str, key_authorization: Option<String>) {
        if let Ok(mut map) = self.http01.lock() {
            match key_authorization {
                Some(k) => map.insert(token.to_string(), k),
                None => map.remove(token),
            };
        }
    }

    /// The TLS-ALPN-01 context for `host`, while its challenge is in flight.
    pub(crate) fn alpn01(&self, host: &str) -> Option<SslContext> {
        self.alpn01.lock().ok()?.get(host).cloned()
    }

    pub(crate) fn set_alpn01(&self, host: &str, context: Option<SslContext>) {
        if let Ok(mut map) = self.alpn01.lock() {
            match context {
                Some(c) => map.insert(host.to_string(), c),
                None => map.remove(host),
            };
        }
    }
}
