//! The node registry: each node writes `PREFIX nodes/NAME` (its name, version, config hash,
//! listeners) under a lease it keeps alive, so the key vanishes when the node does. Every
//! node watches `nodes/` (in `sync.rs`), which gives `GET /cluster` and the live node count.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::PutOptions;
use pingora::server::ShutdownWatch;
use serde_json::json;

use super::client::{Backoff, CALL_TIMEOUT};
use super::{layout, Cluster};
use crate::config::Config;
use crate::state::State;

/// The lease's time to live: a node that stops renewing is gone from the registry this long
/// after (at once when its shutdown gets to revoke it; a fast stop, SIGINT, does not).
const TTL_SECS: i64 = 6;
/// Renewals per TTL: three, so one lost renewal does not drop the node.
const RENEW_EVERY: Duration = Duration::from_secs(2);

/// A short digest of `config`'s parsed form: nodes showing the same hash run the same config.
pub(super) fn hash(config: &Config) -> String {
    crate::admin::config_hash(config)
}

fn registration(cluster: &Cluster, state: &State) -> String {
    let base = cluster.base();
    let listeners: Vec<String> = base.listeners.iter().map(|l| l.addr.to_string()).collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "config_hash": hash(&base),
        "listeners": listeners,
        "admin": base.admin.as_ref().map(|a| a.addr.to_string()),
        "started_unix": std::time::SystemTime::now()
            .checked_sub(state.started.elapsed())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs()),
    })
    .to_string()
}

pub(super) async fn run(cluster: Arc<Cluster>, state: Arc<State>, mut shutdown: ShutdownWatch) {
    let mut backoff = Backoff::new();
    loop {
        let mut lease = None;
        let outcome = tokio::select! {
            r = register(&cluster, &state, &mut lease, &mut backoff) => r,
            _ = shutdown.changed() => Ok(()),
        };
        if *shutdown.borrow() {
            // Leave the registry now rather than when the lease runs out.
            if let (Some(id), Ok(mut client)) = (lease, cluster.client()) {
                let _ = tokio::time::timeout(CALL_TIMEOUT, client.lease_revoke(id)).await;
            }
            return;
        }
        if let Err(e) = outcome {
            log::debug!("node registry: {e}; registering again");
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next()) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Registers and renews until something fails.
async fn register(
    cluster: &Cluster,
    state: &State,
    lease: &mut Option<i64>,
    backoff: &mut Backoff,
) -> Result<(), String> {
    // The sync task connects; registering waits for it.
    let mut client = loop {
        if let Ok(c) = cluster.client() {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let timeout = |what: &'static str| move |_| format!("{what} timed out");
    let id = tokio::time::timeout(CALL_TIMEOUT, client.lease_grant(TTL_SECS, None))
        .await
        .map_err(timeout("granting a lease"))?
        .map_err(|e| e.to_string())?
        .id();
    *lease = Some(id);
    let key = layout::node(cluster.prefix(), &cluster.node);
    let mut written = registration(cluster, state);
    tokio::time::timeout(
        CALL_TIMEOUT,
        client.put(
            key.clone(),
            written.clone(),
            Some(PutOptions::new().with_lease(id)),
        ),
    )
    .await
    .map_err(timeout("registering"))?
    .map_err(|e| e.to_string())?;
    let (mut keeper, mut answers) = tokio::time::timeout(CALL_TIMEOUT, client.lease_keep_alive(id))
        .await
        .map_err(timeout("keeping the lease alive"))?
        .map_err(|e| e.to_string())?;
    backoff.reset();
    log::info!("node registry: registered as {:?}", cluster.node);
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        keeper.keep_alive().await.map_err(|e| e.to_string())?;
        let answer = tokio::time::timeout(CALL_TIMEOUT, answers.message())
            .await
            .map_err(timeout("renewing the lease"))?
            .map_err(|e| e.to_string())?
            .ok_or("the lease stream ended")?;
        if answer.ttl() <= 0 {
            return Err("the lease expired".into());
        }
        // A reload may have changed the config hash.
        let now = registration(cluster, state);
        if strip_started(&now) != strip_started(&written) {
            tokio::time::timeout(
                CALL_TIMEOUT,
                client.put(
                    key.clone(),
                    now.clone(),
                    Some(PutOptions::new().with_lease(id)),
                ),
            )
            .await
            .map_err(timeout("updating the registration"))?
            .map_err(|e| e.to_string())?;
            written = now;
        }
    }
}

/// The registration without its start time (which rounding may move by a second).
fn strip_started(text: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("started_unix");
    }
    v.to_string()
}
