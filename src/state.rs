//! State shared by the proxy, the health checker and (later) the admin and probe services.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::snapshot::Snapshot;

pub struct State {
    snapshot: ArcSwap<Snapshot>,
    /// Set once every backend under health checking has had its first probe.
    health_ready: AtomicBool,
    /// Set on SIGTERM: /ready answers 503 so a load balancer in front stops sending.
    draining: AtomicBool,
}

impl State {
    pub fn new(snapshot: Snapshot) -> Arc<State> {
        Arc::new(State {
            snapshot: ArcSwap::from_pointee(snapshot),
            health_ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        })
    }

    /// The snapshot a new request should use; hold it for the whole request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub fn swap(&self, next: Snapshot) {
        self.snapshot.store(Arc::new(next));
    }

    pub fn set_health_ready(&self) {
        self.health_ready.store(true, Ordering::Release);
    }

    pub fn health_ready(&self) -> bool {
        self.health_ready.load(Ordering::Acquire)
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
