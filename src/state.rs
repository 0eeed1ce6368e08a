//! State shared by the proxy, the health checker and (later) the admin and probe services.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;

use crate::access_log::AccessLogger;
use crate::hooks::Hooks;
use crate::lifecycle::InFlightCounter;
use crate::metrics::DomainStatsMap;
use crate::snapshot::Snapshot;

/// Everything one server shares between its services. Two servers in one process (tests,
/// embedders) share nothing but the Prometheus registry and the cache storage, which Pingora
/// needs to be `'static`.
pub(crate) struct State {
    snapshot: ArcSwap<Snapshot>,
    /// Requests being handled (graceful exit waits for zero).
    pub in_flight: InFlightCounter,
    /// Per-domain request counts and latency for the admin API's `/stats`.
    pub domain_stats: DomainStatsMap,
    /// The access log, when one is configured.
    pub access_log: AccessLogger,
    /// The OTLP span exporter, when `tracing.otlp_endpoint` is set.
    pub trace_export: crate::trace::Exporter,
    /// Request-body bytes held by `buffer_request_body` right now (`server.max_buffered_bytes`).
    pub buffered_bytes: Arc<std::sync::atomic::AtomicU64>,
    /// Set once every backend under health checking has had its first probe.
    health_ready: AtomicBool,
    /// Set on SIGTERM: /ready answers 503 so a load balancer in front stops sending.
    draining: AtomicBool,
    /// The file to reload from; unset for configs built in code (demo, library users).
    config_path: OnceLock<PathBuf>,
    /// Embedders' hooks (see `crate::hooks`); set once, before serving.
    hooks: OnceLock<Arc<Hooks>>,
    /// Serialises control-plane changes (reload, admin API) so none is lost to a race:
    /// each reads the current snapshot, builds the next and swaps it under this lock.
    pub control: tokio::sync::Mutex<()>,
    /// When this server's state was made: the uptime `GET /info` reports.
    pub started: std::time::Instant,
    /// The last reload's outcome (when, whether it applied, one line), for `GET /info`.
    pub last_reload: std::sync::Mutex<Option<LastReload>>,
    /// Each TLS listener's certificates, which a reload swaps (see `crate::tls`).
    tls_listeners: OnceLock<Vec<Arc<crate::tls::TlsListener>>>,
    /// Automatic certificates, when the config has an `acme` section (see `crate::acme`).
    acme: OnceLock<Arc<crate::acme::Acme>>,
}

/// One reload's outcome as the dashboard shows it.
#[derive(Debug, Clone)]
pub(crate) struct LastReload {
    pub at: std::time::SystemTime,
    pub ok: bool,
    pub summary: String,
}

impl State {
    pub(crate) fn new(snapshot: Snapshot) -> Arc<State> {
        Arc::new(State {
            snapshot: ArcSwap::from_pointee(snapshot),
            in_flight: InFlightCounter::default(),
            domain_stats: DomainStatsMap::default(),
            access_log: AccessLogger::default(),
            trace_export: Default::default(),
            buffered_bytes: Default::default(),
            health_ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            config_path: OnceLock::new(),
            hooks: OnceLock::new(),
            control: tokio::sync::Mutex::new(()),
            started: std::time::Instant::now(),
            last_reload: std::sync::Mutex::new(None),
            tls_listeners: OnceLock::new(),
            acme: OnceLock::new(),
        })
    }

    /// The snapshot a new request should use; hold it for the whole request.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub(crate) fn swap(&self, next: Snapshot) {
        self.snapshot.store(Arc::new(next));
    }

    pub(crate) fn set_health_ready(&self) {
        self.health_ready.store(true, Ordering::Release);
    }

    pub(crate) fn health_ready(&self) -> bool {
        self.health_ready.load(Ordering::Acquire)
    }

    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub(crate) fn set_config_path(&self, path: PathBuf) {
        let _ = self.config_path.set(path);
    }

    pub(crate) fn config_path(&self) -> Option<&Path> {
        self.config_path.get().map(PathBuf::as_path)
    }

    /// Installs the TLS listeners' certificate stores; only the first call has an effect.
    pub(crate) fn set_tls_listeners(&self, listeners: Vec<Arc<crate::tls::TlsListener>>) {
        let _ = self.tls_listeners.set(listeners);
    }

    /// The TLS listeners' certificate stores (none before `set_tls_listeners`).
    pub(crate) fn tls_listeners(&self) -> &[Arc<crate::tls::TlsListener>] {
        self.tls_listeners.get().map_or(&[], Vec::as_slice)
    }

    /// Installs ACME; only the first call has an effect.
    pub(crate) fn set_acme(&self, acme: Arc<crate::acme::Acme>) {
        let _ = self.acme.set(acme);
    }

    /// ACME's certificates and hosts (none unless `set_acme` was called).
    pub(crate) fn acme(&self) -> Option<&Arc<crate::acme::Acme>> {
        self.acme.get()
    }

    /// Installs the hooks; only the first call has an effect.
    pub(crate) fn set_hooks(&self, hooks: Hooks) {
        let _ = self.hooks.set(Arc::new(hooks));
    }

    /// The installed hooks (none unless `set_hooks` was called).
    pub(crate) fn hooks(&self) -> &Hooks {
        static NONE: std::sync::LazyLock<Hooks> = std::sync::LazyLock::new(Hooks::default);
        self.hooks.get().map_or(&NONE, |h| h.as_ref())
    }
}
