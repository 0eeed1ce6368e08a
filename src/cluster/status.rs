//! The connection to etcd as the rest of strait sees it: `/ready`'s body, `GET /cluster`,
//! and the `strait_cluster_*` metrics.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use once_cell::sync::Lazy;
use pingora_prometheus::prometheus::{
    register_int_counter, register_int_counter_vec, register_int_gauge, IntCounter, IntCounterVec,
    IntGauge,
};
use serde_json::{json, Value};

static CONNECTED: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!(
        "strait_cluster_etcd_connected",
        "1 while this node reads and watches etcd; 0 while it serves the last state it read."
    )
    .expect("register strait_cluster_etcd_connected")
});

static RECONNECTS: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "strait_cluster_etcd_connection_losses_total",
        "Times the connection to etcd (or its watch) was lost; each is followed by reconnects with backoff and a full read."
    )
    .expect("register strait_cluster_etcd_connection_losses_total")
});

static RESYNCS: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "strait_cluster_etcd_full_reads_total",
        "Full reads of the cluster's keys (at start and after each reconnect)."
    )
    .expect("register strait_cluster_etcd_full_reads_total")
});

static EVENTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_cluster_etcd_events_total",
        "Watch events applied, by kind: pools (backend changes, discovery), enabled (drains), nodes, purge, other.",
        &["kind"]
    )
    .expect("register strait_cluster_etcd_events_total")
});

static APPLY_ERRORS: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "strait_cluster_apply_errors_total",
        "etcd states that could not be built into a snapshot (the running one stayed)."
    )
    .expect("register strait_cluster_apply_errors_total")
});

pub(crate) static LIVE_NODES: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!(
        "strait_cluster_live_nodes",
        "Nodes registered in etcd under a live lease, as this node last saw them."
    )
    .expect("register strait_cluster_live_nodes")
});

#[derive(Default)]
pub(crate) struct Status {
    connected: AtomicBool,
    /// Set by the first full read: until then the node serves its file's config alone.
    synced: AtomicBool,
    /// Set by the first full read or the first failed attempt, whichever comes first.
    tried: AtomicBool,
    /// When the connection was last lost (None while connected or before the first try).
    lost_at: Mutex<Option<(Instant, SystemTime)>>,
    last_error: Mutex<Option<String>>,
    losses: AtomicU64,
    full_reads: AtomicU64,
    revision: AtomicI64,
    apply_errors: AtomicU64,
    last_apply_error: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Status {
    pub(super) fn touch_metrics() {
        Lazy::force(&CONNECTED);
        Lazy::force(&RECONNECTS);
        Lazy::force(&RESYNCS);
        Lazy::force(&EVENTS);
        Lazy::force(&APPLY_ERRORS);
        Lazy::force(&LIVE_NODES);
    }

    pub(super) fn connected(&self, revision: i64) {
        self.connected.store(true, Ordering::Release);
        self.synced.store(true, Ordering::Release);
        self.tried.store(true, Ordering::Release);
        self.full_reads.fetch_add(1, Ordering::Relaxed);
        self.revision.store(revision, Ordering::Relaxed);
        *lock(&self.lost_at) = None;
        CONNECTED.set(1);
        RESYNCS.inc();
    }

    /// The connection (or the first attempt) failed with `error`.
    pub(super) fn lost(&self, error: &str) {
        let was = self.connected.swap(false, Ordering::AcqRel);
        if was {
            self.losses.fetch_add(1, Ordering::Relaxed);
            RECONNECTS.inc();
            log::warn!(
                "etcd: connection lost ({error}); serving the last known state, reconnecting"
            );
        }
        let mut lost = lock(&self.lost_at);
        if lost.is_none() {
            *lost = Some((Instant::now(), SystemTime::now()));
        }
        *lock(&self.last_error) = Some(error.to_string());
        CONNECTED.set(0);
        self.tried.store(true, Ordering::Release);
    }

    pub(super) fn revision(&self, revision: i64) {
        self.revision.fetch_max(revision, Ordering::Relaxed);
    }

    pub(super) fn event(kind: &str) {
        EVENTS.with_label_values(&[kind]).inc();
    }

    pub(super) fn apply_failed(&self, error: &str) {
        self.apply_errors.fetch_add(1, Ordering::Relaxed);
        APPLY_ERRORS.inc();
        *lock(&self.last_apply_error) = Some(error.to_string());
    }

    /// Whether the first attempt to read etcd is over (read or failed): a starting node is
    /// ready only then, so it does not serve its file alone while etcd has the state.
    pub(crate) fn first_attempt_done(&self) -> bool {
        self.tried.load(Ordering::Acquire)
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// A line for `/ready`'s body when etcd is out of reach (the node stays ready: it serves
    /// the last state it read).
    pub(crate) fn ready_note(&self) -> Option<String> {
        if self.is_connected() {
            return None;
        }
        let since = lock(&self.lost_at).map_or(0.0, |(at, _)| at.elapsed().as_secs_f64());
        let what = if self.synced.load(Ordering::Acquire) {
            "serving the last state read from it"
        } else {
            "not read yet: serving the config file alone"
        };
        Some(format!(
            "etcd unreachable for {since:.1}s ({what}); reconnecting"
        ))
    }

    pub(crate) fn json(&self) -> Value {
        let lost = lock(&self.lost_at).map(|(_, at)| {
            at.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
        json!({
            "connected": self.is_connected(),
            "synced": self.synced.load(Ordering::Acquire),
            "revision": self.revision.load(Ordering::Relaxed),
            "disconnected_since_unix": lost,
            "last_error": *lock(&self.last_error),
            "connection_losses": self.losses.load(Ordering::Relaxed),
            "full_reads": self.full_reads.load(Ordering::Relaxed),
            "apply_errors": self.apply_errors.load(Ordering::Relaxed),
            "last_apply_error": *lock(&self.last_apply_error),
        })
    }
}
