//! Connecting to etcd: `cluster.etcd`'s endpoints, user and TLS as `etcd-client` takes them,
//! and the backoff between attempts.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions, OpenSslClientConfig};

use crate::config::Etcd;

/// Every call but the watch stream gives up after this long (the watch lives as long as
/// the connection; HTTP/2 keep-alive pings find a dead peer).
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) async fn connect(settings: &Etcd) -> Result<Client, String> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
        .with_keep_alive_while_idle(true);
    if let Some((user, password)) = &settings.user {
        options = options.with_user(user.clone(), password.clone());
    }
    if let Some(tls) = &settings.tls {
        let mut otls = OpenSslClientConfig::default();
        if let Some(ca) = &tls.ca {
            let pem = read(ca).await?;
            otls = otls.ca_cert_pem(&pem);
        }
        if let Some((cert, key)) = &tls.identity {
            let (cert, key) = (read(cert).await?, read(key).await?);
            otls = otls.client_cert_pem_and_key(&cert, &key);
        }
        options = options.with_openssl_tls(otls);
    }
    let endpoints = settings.endpoints.clone();
    tokio::time::timeout(CALL_TIMEOUT, Client::connect(endpoints, Some(options)))
        .await
        .map_err(|_| "connecting timed out".to_string())?
        .map_err(|e| e.to_string())
}

/// Reads a PEM file off the async threads.
async fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::read(&owned))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Doubling waits between reconnect attempts, from `FIRST` to `MAX`, with jitter so nodes
/// that lost etcd together do not come back in lockstep.
pub(super) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(3);

    pub(super) fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    pub(super) fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    pub(super) fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        let jitter = rand::random::<f64>() * 0.2 + 0.9;
        wait.mul_f64(jitter)
    }
}
