//! When to order: a host with no certificate at once, a certificate `renew_before` (less a
//! per-host jitter) before it expires; after a failure, not before an exponential backoff
//! (with jitter) or the server's `Retry-After`, whichever is later. Before ordering, the
//! process takes the storage's lock; a process that cannot is waiting on another one, and
//! every process reads the files again when they change, so all serve the new certificate.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::client::AcmeHttp;
use super::order::{self, Method};
use super::storage::Storage;
use super::{Acme, Issued, Settings};
use crate::state::State;

/// How often the stored files are looked at (another process may have renewed them).
const LOOK: Duration = Duration::from_secs(2);
/// The first retry after a failed order; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// One order (account, challenges, certificate) at most this long.
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) struct Scheduler(pub(crate) Arc<State>);

#[async_trait::async_trait]
impl BackgroundService for Scheduler {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(acme) = self.0.acme() else {
            return;
        };
        loop {
            if let Some(settings) = acme.settings() {
                round(&self.0, acme, &settings).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(LOOK) => {}
                _ = acme.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

/// One look at every host: pick up newer files, order what is due.
async fn round(state: &State, acme: &Acme, settings: &Settings) {
    let storage = Storage::new(&settings.acme.storage);
    for host in &settings.hosts {
        match acme.load(&storage, host) {
            Ok(true) => {
                log::info!(
                    "acme: {host}: certificate picked up from {}",
                    storage.cert_path(host).display()
                );
                refresh_listeners(state);
            }
            Ok(false) => {}
            Err(e) => log::debug!("acme: {host}: {e}"),
        }
        if !due(acme, settings, host) {
            continue;
        }
        let lock = match storage.try_lock() {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                set_waiting(acme, host, true);
                continue;
            }
            Err(e) => {
                failed(acme, host, e, None);
                continue;
            }
        };
        set_waiting(acme, host, false);
        // Another process may have finished while this one waited for the lock.
        if matches!(acme.load(&storage, host), Ok(true)) {
            refresh_listeners(state);
            if !due(acme, settings, host) {
                continue;
            }
        }
        attempt(state, acme, settings, &storage, host).await;
        drop(lock);
    }
}

/// Whether `host` needs an order now.
fn due(acme: &Acme, settings: &Settings, host: &str) -> bool {
    let Some(host_state) = acme.hosts.lock().ok().and_then(|s| s.get(host).cloned()) else {
        return false;
    };
    if host_state
        .next_attempt
        .is_some_and(|at| Instant::now() < at)
    {
        return false;
    }
    match acme.certs.issued(host) {
        None => true,
        Some(issued) => {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let ahead = (settings.acme.renew_before + host_state.jitter).as_secs() as i64;
            issued.not_after - ahead <= now
        }
    }
}

async fn attempt(state: &State, acme: &Acme, settings: &Settings, storage: &Storage, host: &str) {
    let method = acme
        .hosts
        .lock()
        .ok()
        .and_then(|s| s.get(host).and_then(|h| h.method))
        .unwrap_or(if settings.http01 {
            Method::Http01
        } else {
            Method::TlsAlpn01
        });
    let renewal = acme.certs.issued(host).is_some();
    if let Ok(mut states) = acme.hosts.lock() {
        if let Some(h) = states.get_mut(host) {
            h.last_order = Some(SystemTime::now());
        }
    }
    let ca = match &settings.acme.ca_roots {
        Some(path) => match read_roots(path) {
            Ok(ca) => Some(ca),
            Err(e) => return failed(acme, host, e, None),
        },
        None => None,
    };
    let http = AcmeHttp::new(ca, crate::server::upstream_ca_file());
    let result = tokio::time::timeout(ORDER_TIMEOUT, async {
        let account = order::account(&settings.acme, &http, storage).await?;
        order::order(&account, &acme.certs, host, method).await
    })
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "no certificate within {}s",
            ORDER_TIMEOUT.as_secs()
        ))
    });
    let obtained = match result {
        Ok(o) => o,
        Err(e) => {
            if e.contains("accountDoesNotExist") {
                // The server forgot the account (a test server restarted): make a new one.
                let _ = std::fs::remove_file(settings.acme.storage.join("account.json"));
            }
            let next = match method {
                Method::Http01 => Method::TlsAlpn01,
                Method::TlsAlpn01 if settings.http01 => Method::Http01,
                Method::TlsAlpn01 => Method::TlsAlpn01,
            };
            if let Ok(mut states) = acme.hosts.lock() {
                if let Some(h) = states.get_mut(host) {
                    h.method = Some(next);
                }
            }
            let e = format!("{} order failed: {e}", method.name());
            return failed(acme, host, e, http.take_retry_after());
        }
    };
    let key = match obtained.key.private_key_to_pem_pkcs8() {
        Ok(k) => k,
        Err(e) => return failed(acme, host, format!("cannot encode the key: {e}"), None),
    };
    if let Err(e) = storage.write_cert(host, obtained.chain.as_bytes(), &key) {
        return failed(acme, host, e, None);
    }
    let issued = match storage.read_cert(host) {
        Some((chain, key, modified)) => Issued::parse(host, &chain, &key, modified),
        None => Err(format!("{} vanished", storage.cert_path(host).display())),
    };
    let issued = match issued {
        Ok(i) => i,
        Err(e) => return failed(acme, host, e, None),
    };
    let expires = super::http_date(issued.not_after);
    // The host's state and the count first, then the certificate: whoever sees it served
    // also sees the order counted.
    if let Ok(mut states) = acme.hosts.lock() {
        if let Some(h) = states.get_mut(host) {
            h.failures = 0;
            h.last_error = None;
            h.next_attempt = None;
        }
    }
    let outcome = if renewal { "renewed" } else { "issued" };
    crate::metrics::ACME_ORDERS
        .with_label_values(&[outcome])
        .inc();
    acme.install(host, issued);
    refresh_listeners(state);
    log::info!(
        "acme: {host}: certificate {outcome} by {} (expires {expires})",
        method.name()
    );
}

/// Counts and logs a failed attempt and sets when the next one may start.
fn failed(acme: &Acme, host: &str, error: String, retry_after: Option<SystemTime>) {
    // The count last, so whoever sees it also sees the error in `GET /certificates`.
    let count = || {
        crate::metrics::ACME_ORDERS
            .with_label_values(&["failed"])
            .inc()
    };
    let Ok(mut states) = acme.hosts.lock() else {
        return count();
    };
    let Some(h) = states.get_mut(host) else {
        drop(states);
        return count();
    };
    h.failures += 1;
    let mut wait = backoff(h.failures);
    if let Some(at) = retry_after.and_then(|at| at.duration_since(SystemTime::now()).ok()) {
        wait = wait.max(at.min(Duration::from_secs(24 * 3600)));
    }
    h.next_attempt = Some(Instant::now() + wait);
    log::warn!(
        "acme: {host}: {error} (attempt {}; next in {}s; serving {})",
        h.failures,
        wait.as_secs(),
        if acme.certs.issued(host).is_some() {
            "the previous certificate"
        } else {
            "a static certificate naming it, else the placeholder"
        }
    );
    h.last_error = Some(error);
    drop(states);
    count();
}

/// `FIRST_BACKOFF * 2^(failures-1)`, at most `MAX_BACKOFF`, each within ±25%.
fn backoff(failures: u32) -> Duration {
    use rand::Rng;
    let base = FIRST_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    base.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
}

fn set_waiting(acme: &Acme, host: &str, waiting: bool) {
    if let Ok(mut states) = acme.hosts.lock() {
        if let Some(h) = states.get_mut(host) {
            if waiting && !h.waiting {
                log::info!(
                    "acme: {host}: another process holds the order lock; waiting for its files"
                );
            }
            h.waiting = waiting;
        }
    }
}

fn read_roots(path: &std::path::Path) -> Result<Vec<openssl::x509::X509>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    openssl::x509::X509::stack_from_pem(&pem)
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| format!("{} holds no PEM certificate", path.display()))
}

/// New handshakes on every TLS listener use the hosts' current certificates.
fn refresh_listeners(state: &State) {
    for listener in state.tls_listeners() {
        listener.refresh_acme();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_the_cap() {
        for (failures, base) in [(1u32, 5u64), (2, 10), (3, 20), (12, 3600), (40, 3600)] {
            let d = backoff(failures).as_secs_f64();
            let base = base as f64;
            assert!(d >= base * 0.75 && d <= base * 1.25, "{failures}: {d}");
        }
    }
}
