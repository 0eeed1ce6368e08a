//! Several strait nodes as one, through etcd (docs/cluster.md): the admin API's runtime
//! changes written to etcd and applied by every node watching it (`sync.rs`), backends
//! discovered under etcd prefixes (`view.rs`), and the node registry (`registry.rs`).
//!
//! Every change reaches the data plane the way a reload does: the config file's config
//! (`base`) with etcd's view applied over it is built into the next snapshot, under
//! `State::control`, so backends that stay keep their state and nothing is half-applied.
//! On etcd loss the node keeps the last snapshot it built, reconnects with backoff and reads
//! everything again at one revision before it watches from the next.

mod client;
mod layout;
mod registry;
mod status;
mod sync;
mod view;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Client, PutOptions};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::{json, Value};

use crate::config::{Config, Etcd};
use crate::state::State;
pub(crate) use status::Status;
use view::{Change, Settings, View};

/// How long an admin API answer waits for its own change to come back through the watch.
const APPLIED_WAIT: Duration = Duration::from_secs(3);
/// How long a purge key lives: long enough for every watcher to see it.
const PURGE_TTL_SECS: i64 = 30;

pub(crate) struct Cluster {
    settings: Etcd,
    /// This node's name in the registry.
    node: String,
    /// The config as the file says it (before etcd's changes); replaced by a reload.
    base: Mutex<Arc<Config>>,
    view: Mutex<View>,
    pub(crate) status: Status,
    /// The highest etcd revision this node's snapshot reflects.
    applied: tokio::sync::watch::Sender<i64>,
    /// The connected client, for the admin API's writes (None while etcd is out of reach).
    client: Mutex<Option<Client>>,
    /// Wakes the sync task to start over (a reload changed the discovery prefixes).
    restart: tokio::sync::Notify,
    purges: AtomicU64,
}

/// Nodes registered under a live lease, as this process's cluster last counted them; 0 while
/// no cluster runs here (one cluster per process). A static rather than a field: a cluster
/// rate limit's fallback ([`registered_nodes`]) lives in the snapshot and has no handle on the
/// cluster.
static REGISTERED: AtomicUsize = AtomicUsize::new(0);

/// The live node count from the etcd registry, when this process has one.
pub(crate) fn registered_nodes() -> Option<u64> {
    match REGISTERED.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n as u64),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `HOSTNAME-PORT`: unique per node when each host runs one strait per first listener port.
fn default_node_name(config: &Config) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer it is given.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "strait".to_string()
    };
    match config.listeners.first() {
        Some(l) => format!("{host}-{}", l.addr.port()),
        None => host,
    }
}

/// Sets up the cluster for `state` when its config has `cluster.etcd`, and returns the
/// background service that keeps this node in step with etcd.
pub(crate) fn install(state: &Arc<State>) -> Option<ClusterService> {
    let config = state.snapshot().config.clone();
    let settings = config.cluster.etcd.clone()?;
    Status::touch_metrics();
    status::LIVE_NODES.set(1);
    let node = settings
        .node_name
        .clone()
        .unwrap_or_else(|| default_node_name(&config));
    let cluster = Arc::new(Cluster {
        settings,
        node,
        base: Mutex::new(config),
        view: Mutex::new(View::default()),
        status: Status::default(),
        applied: tokio::sync::watch::Sender::new(0),
        client: Mutex::new(None),
        restart: tokio::sync::Notify::new(),
        purges: AtomicU64::new(0),
    });
    state.set_cluster(cluster.clone());
    Some(ClusterService {
        cluster,
        state: state.clone(),
    })
}

pub(crate) struct ClusterService {
    cluster: Arc<Cluster>,
    state: Arc<State>,
}

#[async_trait]
impl BackgroundService for ClusterService {
    async fn start(&self, shutdown: ShutdownWatch) {
        let registry = tokio::spawn(registry::run(
            self.cluster.clone(),
            self.state.clone(),
            shutdown.clone(),
        ));
        sync::run(self.cluster.clone(), self.state.clone(), shutdown).await;
        let _ = registry.await;
    }
}

impl Cluster {
    /// The etcd key prefix of this cluster.
    fn prefix(&self) -> &str {
        &self.settings.prefix
    }

    /// Nodes registered in etcd under a live lease, this one included (1 while etcd has
    /// never been read). What a cluster-wide limit divides by when its shared counter is away.
    pub(crate) fn live_nodes(&self) -> usize {
        REGISTERED.load(Ordering::Relaxed).max(1)
    }

    /// A reload read `config` from the file: it becomes the base, and the config to build is
    /// it with etcd's changes applied. The sync task restarts when the set of discovery
    /// prefixes changed (it watches them).
    pub(crate) fn rebase(&self, mut config: Config) -> Config {
        let old = std::mem::replace(&mut *lock(&self.base), Arc::new(config.clone()));
        if discovery_prefixes(&old) != discovery_prefixes(&config) {
            self.restart.notify_one();
        }
        lock(&self.view).apply_to(&mut config);
        config
    }

    fn base(&self) -> Arc<Config> {
        lock(&self.base).clone()
    }

    fn client(&self) -> Result<Client, String> {
        lock(&self.client).clone().ok_or_else(|| {
            "etcd is unreachable; nothing was changed (the node serves the last state it read)"
                .to_string()
        })
    }

    /// Writes `key = value` and waits (bounded) until this node's watch has applied it, so
    /// the admin API answers with the change in place. Ok(false): written, not yet seen here.
    async fn write(&self, key: String, value: String, lease: Option<i64>) -> Result<bool, String> {
        let mut client = self.client()?;
        let options = lease.map(|id| PutOptions::new().with_lease(id));
        let put = tokio::time::timeout(client::CALL_TIMEOUT, client.put(key, value, options))
            .await
            .map_err(|_| {
                "etcd did not answer in time; the change may or may not be stored".to_string()
            })?
            .map_err(|e| format!("etcd refused the write: {e}"))?;
        let revision = put.header().map_or(0, |h| h.revision());
        Ok(self.wait_applied(revision).await)
    }

    async fn wait_applied(&self, revision: i64) -> bool {
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(APPLIED_WAIT, applied.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// `POST /backends`: the backend joins `pool` on every node.
    pub(crate) async fn add_backend(
        &self,
        pool: &str,
        url: &str,
        weight: u32,
        max_connections: Option<u32>,
    ) -> Result<bool, String> {
        let change = Change::Added(Settings {
            weight,
            max_connections,
        });
        let value = serde_json::to_string(&change).map_err(|e| e.to_string())?;
        self.write(layout::backend(self.prefix(), pool, url), value, None)
            .await
    }

    /// `DELETE /backends`: the backend leaves `pool` on every node (a file's backend too,
    /// until a change adds it again).
    pub(crate) async fn remove_backend(&self, pool: &str, url: &str) -> Result<bool, String> {
        let value =
            serde_json::to_string(&Change::Removed { removed: true }).map_err(|e| e.to_string())?;
        self.write(layout::backend(self.prefix(), pool, url), value, None)
            .await
    }

    /// `PUT /backends/enabled`: drain or undrain on every node.
    pub(crate) async fn set_enabled(
        &self,
        pool: &str,
        url: &str,
        enabled: bool,
    ) -> Result<bool, String> {
        let value = json!({ "enabled": enabled }).to_string();
        self.write(layout::enabled(self.prefix(), pool, url), value, None)
            .await
    }

    /// `DELETE /cache`: the caller purged its own cache; every other node does the same
    /// when it sees this key. The key lives under a short lease: a purge is an event.
    pub(crate) async fn broadcast_purge(
        &self,
        domain: Option<&str>,
        path: Option<&str>,
        method: Option<&str>,
    ) -> Result<(), String> {
        let mut client = self.client()?;
        let lease = tokio::time::timeout(
            client::CALL_TIMEOUT,
            client.lease_grant(PURGE_TTL_SECS, None),
        )
        .await
        .map_err(|_| "etcd did not answer in time".to_string())?
        .map_err(|e| e.to_string())?
        .id();
        let n = self.purges.fetch_add(1, Ordering::Relaxed);
        let value = json!({
            "from": self.node,
            "domain": domain,
            "path": path,
            "method": method,
        })
        .to_string();
        self.write(
            layout::purge(self.prefix(), &self.node, n),
            value,
            Some(lease),
        )
        .await
        .map(|_| ())
    }

    /// `GET /cluster`.
    pub(crate) fn json(&self) -> Value {
        let view = lock(&self.view);
        let own = registry::hash(&self.base());
        let nodes: Vec<Value> = view
            .nodes
            .iter()
            .map(|(name, v)| {
                let mut v = v.clone();
                if let Some(o) = v.as_object_mut() {
                    o.insert("name".into(), name.as_str().into());
                    o.insert("self".into(), (*name == self.node).into());
                }
                v
            })
            .collect();
        let hashes: std::collections::BTreeSet<&str> = view
            .nodes
            .values()
            .filter_map(|v| v.get("config_hash").and_then(Value::as_str))
            .collect();
        json!({
            "node": self.node,
            "config_hash": own,
            "etcd": {
                "endpoints": self.settings.endpoints,
                "prefix": self.settings.prefix,
                "status": self.status.json(),
            },
            "live_nodes": self.live_nodes(),
            "nodes": nodes,
            "config_hashes_agree": hashes.len() <= 1,
            "state": {
                "backend_changes": view.changes.len(),
                "drains": view.enabled.values().filter(|on| !**on).count(),
                "discovered": view
                    .discovered
                    .iter()
                    .map(|(p, list)| (p.clone(), Value::from(list.keys().cloned().collect::<Vec<_>>())))
                    .collect::<serde_json::Map<_, _>>(),
            },
        })
    }
}

/// `GET /cluster` on a node without `cluster.etcd`: itself alone.
pub(crate) fn json(state: &State) -> Value {
    match state.cluster() {
        Some(c) => c.json(),
        None => json!({
            "node": null,
            "etcd": null,
            "live_nodes": 1,
            "nodes": [],
            "config_hash": registry::hash(&state.snapshot().config),
            "config_hashes_agree": true,
        }),
    }
}

/// The etcd discovery prefixes of `config`'s domains, sorted and unique.
fn discovery_prefixes(config: &Config) -> Vec<String> {
    let mut out: Vec<String> = config
        .domains
        .iter()
        .filter_map(|d| d.discovery.as_ref()?.etcd.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}
