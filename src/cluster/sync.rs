//! Keeping this node in step with etcd: a full read of the cluster prefix and every discovery
//! prefix at one revision, then one watch stream from the next revision, each batch of events
//! applied through the snapshot path. Any error (etcd down, the watch cancelled or
//! compacted away) ends the session: the node keeps its snapshot, waits with backoff, and the
//! next session reads everything again, so no event is missed.

use std::sync::Arc;

use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use pingora::server::ShutdownWatch;
use serde_json::Value;

use super::client::{self, Backoff, CALL_TIMEOUT};
use super::view::{Effect, View};
use super::{lock, Cluster, Status};
use crate::snapshot::Snapshot;
use crate::state::State;

pub(super) async fn run(cluster: Arc<Cluster>, state: Arc<State>, mut shutdown: ShutdownWatch) {
    let mut backoff = Backoff::new();
    loop {
        let outcome = tokio::select! {
            r = session(&cluster, &state, &mut backoff) => r,
            _ = cluster.restart.notified() => Err("the discovery prefixes changed".to_string()),
            _ = shutdown.changed() => return,
        };
        *lock(&cluster.client) = None;
        if let Err(e) = outcome {
            cluster.status.lost(&e);
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next()) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn get(
    client: &mut Client,
    prefix: &str,
    revision: i64,
) -> Result<etcd_client::GetResponse, String> {
    let mut options = GetOptions::new().with_prefix();
    if revision > 0 {
        options = options.with_revision(revision);
    }
    tokio::time::timeout(CALL_TIMEOUT, client.get(prefix, Some(options)))
        .await
        .map_err(|_| format!("reading {prefix} timed out"))?
        .map_err(|e| format!("reading {prefix}: {e}"))
}

/// One connection's life: Err says why it ended.
async fn session(cluster: &Cluster, state: &State, backoff: &mut Backoff) -> Result<(), String> {
    let mut client = client::connect(&cluster.settings).await?;
    let prefixes = super::discovery_prefixes(&cluster.base());
    let prefix = cluster.prefix().to_string();

    // The full read: everything at the first answer's revision.
    let first = get(&mut client, &prefix, 0).await?;
    let revision = first.header().map_or(0, |h| h.revision());
    let seen_before = *cluster.applied.borrow();
    let mut view = View::default();
    let mut purges = Vec::new();
    for kv in first.kvs() {
        let Ok(key) = kv.key_str() else { continue };
        if view.set(&prefix, &prefixes, key, Some(kv.value())) == Effect::Purge
            && seen_before > 0
            && kv.mod_revision() > seen_before
        {
            // A purge made while this node was away: still owed to its cache.
            purges.push(kv.value().to_vec());
        }
    }
    for p in &prefixes {
        for kv in get(&mut client, p, revision).await?.kvs() {
            if let Ok(key) = kv.key_str() {
                view.set(&prefix, &prefixes, key, Some(kv.value()));
            }
        }
    }
    *lock(&cluster.view) = view;
    update_nodes(cluster);
    apply(cluster, state, true).await;
    for p in purges {
        purge(cluster, state, &p);
    }
    cluster.status.connected(revision);
    cluster.applied.send_modify(|r| *r = (*r).max(revision));
    *lock(&cluster.client) = Some(client.clone());
    backoff.reset();
    log::info!(
        "etcd: read {prefix} and {} discovery prefix(es) at revision {revision}; watching",
        prefixes.len()
    );

    let options = || {
        WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1)
    };
    let mut stream =
        tokio::time::timeout(CALL_TIMEOUT, client.watch(prefix.as_str(), Some(options())))
            .await
            .map_err(|_| "starting the watch timed out".to_string())?
            .map_err(|e| format!("starting the watch: {e}"))?;
    for p in &prefixes {
        stream
            .watch(p.as_str(), Some(options()))
            .await
            .map_err(|e| format!("watching {p}: {e}"))?;
    }
    loop {
        let Some(message) = stream.message().await.map_err(|e| format!("watch: {e}"))? else {
            return Err("etcd closed the watch".into());
        };
        if message.canceled() {
            return Err(if message.compact_revision() > 0 {
                format!(
                    "the watch fell behind etcd's compaction (revision {})",
                    message.compact_revision()
                )
            } else {
                format!("etcd cancelled the watch: {}", message.cancel_reason())
            });
        }
        let mut pools = false;
        let mut enabled = false;
        let mut nodes = false;
        let mut purges = Vec::new();
        {
            let mut view = lock(&cluster.view);
            for event in message.events() {
                let Some(kv) = event.kv() else { continue };
                let Ok(key) = kv.key_str() else { continue };
                let value = match event.event_type() {
                    EventType::Put => Some(kv.value()),
                    EventType::Delete => None,
                };
                let effect = view.set(&prefix, &prefixes, key, value);
                Status::event(match effect {
                    Effect::Pools => "pools",
                    Effect::Enabled => "enabled",
                    Effect::Nodes => "nodes",
                    Effect::Purge => "purge",
                    Effect::None => "other",
                });
                match effect {
                    Effect::Pools => pools = true,
                    Effect::Enabled => enabled = true,
                    Effect::Nodes => nodes = true,
                    Effect::Purge => purges.push(kv.value().to_vec()),
                    Effect::None => {}
                }
            }
        }
        if nodes {
            update_nodes(cluster);
        }
        if pools {
            apply(cluster, state, false).await;
        } else if enabled {
            lock(&cluster.view).apply_enabled(&state.snapshot());
        }
        for p in purges {
            purge(cluster, state, &p);
        }
        if let Some(h) = message.header() {
            cluster.status.revision(h.revision());
            let r = h.revision();
            cluster.applied.send_modify(|a| *a = (*a).max(r));
        }
    }
}

fn update_nodes(cluster: &Cluster) {
    let n = lock(&cluster.view).nodes.len().max(1);
    super::REGISTERED.store(n, std::sync::atomic::Ordering::Relaxed);
    super::status::LIVE_NODES.set(n as i64);
}

/// Builds and swaps in the snapshot for the file's config with etcd's view over it. A state
/// that cannot be built (a name that does not resolve) leaves the running snapshot.
async fn apply(cluster: &Cluster, state: &State, full: bool) {
    let _serialised = state.control.lock().await;
    let mut config = (*cluster.base()).clone();
    let view = lock(&cluster.view).clone();
    view.apply_to(&mut config);
    let current = state.snapshot();
    let lists = |c: &crate::config::Config| -> Vec<Vec<(String, u32, Option<u32>)>> {
        c.pools
            .iter()
            .map(|p| {
                p.backends
                    .iter()
                    .map(|b| (b.url.clone(), b.weight, b.max_connections))
                    .collect()
            })
            .collect()
    };
    let unchanged = lists(&current.config) == lists(&config);
    if unchanged && !full {
        view.apply_enabled(&current);
        return;
    }
    match Snapshot::build(config, Some(&current)).await {
        Ok(next) => {
            state.swap(next);
            view.apply_enabled(&state.snapshot());
        }
        Err(errors) => {
            let text = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            log::error!(
                "etcd: the cluster's state cannot be applied, the running state stays: {text}"
            );
            cluster.status.apply_failed(&text);
        }
    }
}

/// Runs a purge another node made (its own it ran when it answered).
fn purge(cluster: &Cluster, state: &State, value: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(value) else {
        return;
    };
    if v.get("from").and_then(Value::as_str) == Some(cluster.node.as_str()) {
        return;
    }
    let text = |k: &str| v.get(k).and_then(Value::as_str);
    use crate::admin::cache_api::Purge;
    let what = match (text("domain"), text("path")) {
        (None, _) => Purge::All,
        (Some(d), None) => Purge::Domain(d),
        (Some(d), Some(p)) => Purge::Object {
            domain: d,
            path: p,
            method: text("method").unwrap_or("GET"),
        },
    };
    match crate::admin::cache_api::purge(&state.snapshot(), what) {
        Ok(n) => log::info!(
            "cache purge from node {}: {n} object(s) removed",
            text("from").unwrap_or("?")
        ),
        Err(e) => log::warn!("cache purge from etcd not applied: {}", e.message),
    }
}
