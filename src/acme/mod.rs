//! Automatic certificates (RFC 8555): the hosts of every listener's `tls.acme`, ordered from
//! the `acme` directory, stored in `acme.storage`, renewed `acme.renew_before` expiry, and
//! swapped into the TLS listeners for new handshakes (docs/tls.md, "Automatic certificates").
//!
//! - `certs.rs`: what handshakes and requests read (certificates in use, challenge answers);
//! - `storage.rs`: the files (0600) and the lock that lets one process of several order;
//! - `client.rs`: the HTTP client the ACME library speaks through (Pingora's, over OpenSSL);
//! - `crypto.rs`: keys, CSRs, the placeholder and the TLS-ALPN-01 certificate;
//! - `order.rs`: one order for one host;
//! - `scheduler.rs`: when to order (first issuance, renewal, backoff after failures).
//!
//! Until a host has a certificate its handshakes get a static certificate that names it,
//! else a self-signed placeholder (`crate::tls`), and `GET /certificates` says "pending".

pub(crate) mod certs;
mod client;
pub(crate) mod crypto;
mod order;
pub(crate) mod scheduler;
pub(crate) mod storage;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;

pub(crate) use certs::Certs;
pub(crate) use certs::Issued;
pub(crate) use order::Method;
use storage::Storage;

use crate::config::{self, Config};

/// What the config asks of ACME now (replaced on reload).
pub(crate) struct Settings {
    pub(crate) acme: config::Acme,
    /// Every `tls.acme` host, in file order, once.
    pub(crate) hosts: Vec<String>,
    /// Whether a plain listener exists to answer HTTP-01 (else TLS-ALPN-01 comes first).
    pub(crate) http01: bool,
}

/// One host's ordering state, for the scheduler and `GET /certificates`.
#[derive(Debug, Default, Clone)]
pub(crate) struct HostState {
    /// Consecutive failed orders (the backoff grows with them).
    pub(crate) failures: u32,
    pub(crate) last_error: Option<String>,
    /// No order before this (backoff, Retry-After).
    pub(crate) next_attempt: Option<Instant>,
    pub(crate) last_order: Option<SystemTime>,
    /// Renewal starts this much before `renew_before` (spread over hosts and processes).
    pub(crate) jitter: Duration,
    /// The challenge to try next (alternates after a failure).
    pub(crate) method: Option<Method>,
    /// Another process holds the order lock.
    pub(crate) waiting: bool,
}

/// ACME for one server: the certificates the listeners read and the hosts' states.
#[derive(Default)]
pub(crate) struct Acme {
    pub(crate) certs: Arc<Certs>,
    settings: ArcSwapOption<Settings>,
    pub(crate) hosts: Mutex<BTreeMap<String, HostState>>,
    /// Woken when a reload changes the hosts.
    pub(crate) wake: tokio::sync::Notify,
}

impl Acme {
    /// Takes `config`'s hosts and account; reads each new host's stored certificate, so the
    /// first handshakes already use it. Called at start-up and on every reload.
    pub(crate) fn configure(&self, config: &Config) {
        let mut hosts: Vec<String> = Vec::new();
        for tls in config.listeners.iter().filter_map(|l| l.tls.as_ref()) {
            for h in &tls.acme {
                if !hosts.contains(h) {
                    hosts.push(h.clone());
                }
            }
        }
        if let Ok(mut states) = self.hosts.lock() {
            states.retain(|h, _| {
                let kept = hosts.contains(h);
                if !kept {
                    let _ = crate::metrics::CERTIFICATE_EXPIRY.remove_label_values(&[h]);
                }
                kept
            });
        }
        let Some(acme) = config.acme.clone() else {
            self.settings.store(None);
            return;
        };
        let storage = Storage::new(&acme.storage);
        if let Ok(mut states) = self.hosts.lock() {
            for h in &hosts {
                states.entry(h.clone()).or_insert_with(|| HostState {
                    jitter: jitter(acme.renew_before),
                    ..HostState::default()
                });
            }
        }
        for h in &hosts {
            if self.certs.issued(h).is_none() {
                if let Err(e) = self.load(&storage, h) {
                    log::warn!("acme: {h}: {e}; a new certificate will be ordered");
                }
            }
        }
        self.settings.store(Some(Arc::new(Settings {
            acme,
            hosts,
            http01: config.listeners.iter().any(|l| l.tls.is_none()),
        })));
        self.wake.notify_one();
    }

    pub(crate) fn settings(&self) -> Option<Arc<Settings>> {
        self.settings.load_full()
    }

    /// Reads `host`'s stored files when they are newer than the certificate in use. Returns
    /// whether a certificate was taken.
    pub(crate) fn load(&self, storage: &Storage, host: &str) -> Result<bool, String> {
        let current = self.certs.issued(host);
        let modified = storage.modified(host);
        if modified.is_none() || current.as_ref().map(|c| c.modified) == modified {
            return Ok(false);
        }
        let Some((chain, key, modified)) = storage.read_cert(host) else {
            return Ok(false);
        };
        self.install(host, Issued::parse(host, &chain, &key, modified)?);
        Ok(true)
    }

    /// `host`'s handshakes use `issued` from the next listener refresh on.
    pub(crate) fn install(&self, host: &str, issued: Issued) {
        crate::metrics::CERTIFICATE_EXPIRY
            .with_label_values(&[host])
            .set(issued.not_after);
        self.certs.set_issued(host, Arc::new(issued));
    }

    /// `GET /certificates`: the ACME hosts, then the static certificates of `listeners`.
    pub(crate) fn report(&self, statics: Vec<serde_json::Value>) -> serde_json::Value {
        use serde_json::json;
        let states = self.hosts.lock().map(|s| s.clone()).unwrap_or_default();
        let mut out = Vec::new();
        for (host, state) in &states {
            let issued = self.certs.issued(host);
            let status = match (&issued, state.waiting) {
                (Some(_), _) => "issued",
                (None, true) => "pending (another process is ordering)",
                (None, false) => "pending",
            };
            out.push(json!({
                "host": host,
                "source": "acme",
                "status": status,
                "issuer": issued.as_ref().map(|i| i.issuer.clone()),
                "not_after_unix": issued.as_ref().map(|i| i.not_after),
                "not_after": issued.as_ref().map(|i| http_date(i.not_after)),
                "last_error": state.last_error,
                "failures": state.failures,
                "last_order_unix": state.last_order.and_then(unix),
                "next_attempt_in_secs": state
                    .next_attempt
                    .map(|at| at.saturating_duration_since(Instant::now()).as_secs()),
            }));
        }
        out.extend(statics);
        json!({ "certificates": out })
    }
}

fn unix(t: SystemTime) -> Option<u64> {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

pub(crate) fn http_date(unix: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    httpdate::fmt_http_date(t)
}

/// A renewal head start in `[0, min(renew_before / 10, 6h))`, so hosts (and processes) that
/// got their certificates together do not all renew in the same second.
fn jitter(renew_before: Duration) -> Duration {
    use rand::Rng;
    let span = (renew_before / 10).min(Duration::from_secs(6 * 3600));
    if span.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::thread_rng().gen_range(0..span.as_millis() as u64))
}

/// `strait -t`: the storage folder must be writable (or creatable); nothing is created.
pub(crate) fn check(config: &Config) -> Result<(), config::ConfigError> {
    let Some(acme) = &config.acme else {
        return Ok(());
    };
    Storage::new(&acme.storage)
        .check_usable()
        .map_err(|e| config::ConfigError::new(&config.source, acme.storage_pos, "acme.storage", e))
}
