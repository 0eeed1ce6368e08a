//! TEMPORARY stub with the agreed API; replaced by the real strategies.
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::{BackendConfig, HealthCheck, Strategy};

pub struct Backend {
    pub config: BackendConfig,
    pub addr: SocketAddr,
    healthy: AtomicBool,
    enabled: AtomicBool,
    active: AtomicUsize,
    requests: AtomicU64,
    failures: AtomicU64,
    pub consecutive_ok: AtomicU32,
    pub consecutive_fail: AtomicU32,
}

impl Backend {
    pub fn new(config: BackendConfig, addr: SocketAddr, healthy: bool) -> Self {
        Backend {
            config,
            addr,
            healthy: AtomicBool::new(healthy),
            enabled: AtomicBool::new(true),
            active: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            consecutive_ok: AtomicU32::new(0),
            consecutive_fail: AtomicU32::new(0),
        }
    }
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
    pub fn set_healthy(&self, h: bool) -> bool {
        self.healthy.swap(h, Ordering::Relaxed) != h
    }
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }
    pub fn set_enabled(&self, e: bool) {
        self.enabled.store(e, Ordering::Relaxed)
    }
    pub fn is_usable(&self) -> bool {
        self.is_healthy() && self.is_enabled()
    }
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
    pub fn weight(&self) -> u32 {
        self.config.weight
    }
    pub fn lease(self: &Arc<Self>) -> Lease {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        Lease(self.clone())
    }
}

pub struct Lease(Arc<Backend>);
impl Lease {
    pub fn backend(&self) -> &Arc<Backend> {
        &self.0
    }
}
impl Drop for Lease {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct Pool {
    pub name: String,
    pub backends: Vec<Arc<Backend>>,
    pub health_check: Option<HealthCheck>,
    pub strategy: Strategy,
    cursor: AtomicUsize,
}

impl Pool {
    pub fn new(
        name: String,
        strategy: Strategy,
        backends: Vec<Arc<Backend>>,
        health_check: Option<HealthCheck>,
    ) -> Self {
        Pool { name, backends, health_check, strategy, cursor: AtomicUsize::new(0) }
    }
    pub fn select(&self, _client: Option<IpAddr>, tried: &[usize]) -> Option<(usize, Lease)> {
        let n = self.backends.len();
        for _ in 0..n {
            let i = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
            if self.backends[i].is_usable() && !tried.contains(&i) {
                return Some((i, self.backends[i].lease()));
            }
        }
        None
    }
    pub fn has_usable(&self) -> bool {
        self.backends.iter().any(|b| b.is_usable())
    }
}
