//! Active health checks: one background service per process (not per worker), with one
//! prober task per checked backend. Probers follow the live snapshot: backends that appear
//! (reload, admin API) get a prober at once, removed ones lose theirs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::{info, warn};
use pingora::http::ResponseHeader;
use pingora::lb::health_check::{HealthCheck as _, HttpHealthCheck, TcpHealthCheck};
use pingora::protocols::ALPN;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::{Error, ErrorType};

use crate::balance::Backend;
use crate::config::{HealthCheck, HealthKind, Scheme};
use crate::state::State;

/// How often the coordinator looks for backends that gained or lost a prober.
const SCAN_EVERY: Duration = Duration::from_millis(100);

pub(crate) struct HealthChecker {
    state: Arc<State>,
}

impl HealthChecker {
    pub(crate) fn new(state: Arc<State>) -> Self {
        HealthChecker { state }
    }
}

struct Prober {
    policy: HealthCheck,
    stop: Arc<AtomicBool>,
    checked: Arc<AtomicBool>,
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut probers: HashMap<usize, Prober> = HashMap::new();
        let mut tick = tokio::time::interval(SCAN_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => self.scan(&mut probers),
            }
        }
        for p in probers.values() {
            p.stop.store(true, Ordering::Relaxed);
        }
    }
}

impl HealthChecker {
    fn scan(&self, probers: &mut HashMap<usize, Prober>) {
        let snapshot = self.state.snapshot();
        let mut live: HashMap<usize, ()> = HashMap::new();
        for pool in &snapshot.pools {
            let Some(policy) = &pool.health_check else {
                continue;
            };
            for backend in &pool.backends {
                let key = Arc::as_ptr(backend) as usize;
                live.insert(key, ());
                let current = probers.get(&key).map(|p| &p.policy == policy);
                if current == Some(true) {
                    continue;
                }
                if let Some(old) = probers.remove(&key) {
                    old.stop.store(true, Ordering::Relaxed);
                }
                let prober = Prober {
                    policy: policy.clone(),
                    stop: Arc::new(AtomicBool::new(false)),
                    checked: Arc::new(AtomicBool::new(false)),
                };
                tokio::spawn(probe_loop(
                    backend.clone(),
                    pool.name.clone(),
                    policy.clone(),
                    prober.stop.clone(),
                    prober.checked.clone(),
                ));
                probers.insert(key, prober);
            }
        }
        probers.retain(|key, p| {
            let keep = live.contains_key(key);
            if !keep {
                p.stop.store(true, Ordering::Relaxed);
            }
            keep
        });
        if !self.state.health_ready() && probers.values().all(|p| p.checked.load(Ordering::Relaxed))
        {
            self.state.set_health_ready();
        }
    }
}

async fn probe_loop(
    backend: Arc<Backend>,
    pool: String,
    policy: HealthCheck,
    stop: Arc<AtomicBool>,
    checked: Arc<AtomicBool>,
) {
    let check = Check::new(&backend, &policy);
    let target = pingora::lb::Backend {
        addr: pingora::protocols::l4::socket::SocketAddr::Inet(backend.addr),
        weight: 1,
        ext: http::Extensions::new(),
    };
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        let result = match tokio::time::timeout(policy.timeout, check.run(&target)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", policy.timeout)),
        };
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // The first probe decides at once: a backend that is down at start must not wait
        // for `fail_threshold` rounds of failed requests.
        let (ok_needed, fail_needed) = if first {
            (1, 1)
        } else {
            (policy.success_threshold, policy.fail_threshold)
        };
        if backend.observe_check(result.is_ok(), ok_needed, fail_needed) {
            let url = &backend.config.url;
            match &result {
                Ok(()) => info!(
                    "backend {url} (pool {pool}) is UP after {} good check(s)",
                    backend.check_successes()
                ),
                Err(e) => warn!(
                    "backend {url} (pool {pool}) is DOWN after {} failed check(s): {e}",
                    backend.check_failures()
                ),
            }
        }
        first = false;
        checked.store(true, Ordering::Relaxed);
        tokio::time::sleep(policy.interval).await;
    }
}

enum Check {
    Http(Box<HttpHealthCheck>),
    Tcp(Box<TcpHealthCheck>),
}

impl Check {
    fn new(backend: &Backend, policy: &HealthCheck) -> Check {
        let tls = backend.config.scheme == Scheme::Https;
        match &policy.kind {
            HealthKind::Tcp => {
                let mut c = TcpHealthCheck::new();
                c.peer_template.options.connection_timeout = Some(policy.timeout);
                Check::Tcp(c)
            }
            HealthKind::Http { path } => {
                let host = if backend.config.port == 80 || backend.config.port == 443 {
                    backend.config.host.clone()
                } else {
                    format!("{}:{}", backend.config.host, backend.config.port)
                };
                let mut c = HttpHealthCheck::new(&host, tls);
                c.peer_template.options.connection_timeout = Some(policy.timeout);
                c.peer_template.options.read_timeout = Some(policy.timeout);
                if backend.config.scheme == Scheme::H2c {
                    c.peer_template.options.alpn = ALPN::H2;
                }
                if let Ok(uri) = path.parse() {
                    c.req.set_uri(uri);
                }
                let _ = c.req.insert_header("User-Agent", "strait-health-check");
                c.validator = Some(Box::new(accept_2xx_3xx));
                Check::Http(Box::new(c))
            }
        }
    }

    async fn run(&self, target: &pingora::lb::Backend) -> pingora::Result<()> {
        match self {
            Check::Http(c) => c.check(target).await,
            Check::Tcp(c) => c.check(target).await,
        }
    }
}

fn accept_2xx_3xx(resp: &ResponseHeader) -> pingora::Result<()> {
    let status = resp.status.as_u16();
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Error::e_explain(
            ErrorType::HTTPStatus(status),
            format!("health check answered {status}"),
        )
    }
}
