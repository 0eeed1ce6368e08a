//! In-place reload (SIGHUP, POST /reload): validate the whole file, then swap one snapshot.
//! On any error the running config stays and every error is reported. Unchanged backends keep
//! their state (see `Snapshot::build`). TLS listeners' certificates, keys, CAs, `min_version`
//! and `client_auth` are read again and swapped in for new handshakes (`crate::tls`); adding
//! or removing listeners, and other server settings, need a binary upgrade.

use std::sync::Arc;

use async_trait::async_trait;
use log::{error, info, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{self, ConfigError};
use crate::snapshot::Snapshot;
use crate::state::State;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReloadReport {
    pub domains: usize,
    pub backends: usize,
    /// Backends whose state (health, counters) carried over.
    pub kept: usize,
    /// Changes that were not applied because they need `strait -u`.
    pub not_applied: Vec<String>,
}

/// Reloads the config file the process was started with, notes the outcome for `GET /info`,
/// and tells systemd (`RELOADING=1`, then `READY=1` whatever the outcome: a rejected reload
/// leaves the old config serving).
pub(crate) async fn reload(state: &State) -> Result<ReloadReport, Vec<ConfigError>> {
    let result = reload_file(state).await;
    let summary = match &result {
        Ok(r) => format!(
            "{} domains, {} backends ({} kept their state)",
            r.domains, r.backends, r.kept
        ),
        Err(errors) => format!("{} error(s); the running config stayed", errors.len()),
    };
    let outcome = crate::state::LastReload {
        at: std::time::SystemTime::now(),
        ok: result.is_ok(),
        summary,
    };
    *state.last_reload.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    result
}

async fn reload_file(state: &State) -> Result<ReloadReport, Vec<ConfigError>> {
    let _serialised = state.control.lock().await;
    super::notify::notify(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}",
        super::notify::monotonic_usec()
    ));
    let result = reload_locked(state).await;
    let outcome = match &result {
        Ok(_) => "config reloaded".to_string(),
        Err(e) => format!("reload rejected with {} error(s)", e.len()),
    };
    super::notify::notify(&format!(
        "READY=1\nSTATUS={outcome}; {}",
        super::notify::status_line(state)
    ));
    result
}

/// Reads and validates the file this instance was started from, off the async threads
/// (parsing is blocking file I/O). Shared by a reload and its dry run, so both read the same way.
async fn load_config_file(state: &State) -> Result<config::Config, Vec<ConfigError>> {
    let Some(path) = state.config_path() else {
        return Err(vec![plain_error(
            "-",
            "this instance was not started from a config file",
        )]);
    };
    let text_path = path.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || config::load_file(&text_path)).await;
    match loaded {
        Ok(result) => result,
        Err(e) => Err(vec![plain_error(
            &path.display().to_string(),
            &format!("reload task failed: {e}"),
        )]),
    }
}

async fn reload_locked(state: &State) -> Result<ReloadReport, Vec<ConfigError>> {
    let config = load_config_file(state).await?;
    for w in config::warnings(&config) {
        log::warn!("reload: {w}");
    }
    let certificates = load_certificates(state, &config).await?;
    let current = state.snapshot();
    // The same list the reload plan shows (src/plan.rs), so the plan is what a reload does.
    let not_applied = crate::plan::needs_upgrade(&current.config, &config)
        .into_iter()
        .map(|change| format!("{change}: apply with a binary upgrade (strait -u)"))
        .collect();
    let next = Snapshot::build(config, Some(&current)).await?;
    let old_backends: Vec<*const crate::balance::Backend> = current
        .pools
        .iter()
        .flat_map(|p| p.backends.iter().map(Arc::as_ptr))
        .collect();
    let report = ReloadReport {
        domains: next.domains.len(),
        backends: next.pools.iter().map(|p| p.backends.len()).sum(),
        kept: next
            .pools
            .iter()
            .flat_map(|p| p.backends.iter())
            .filter(|b| old_backends.contains(&Arc::as_ptr(b)))
            .count(),
        not_applied,
    };
    let pairs: usize = certificates.iter().map(|(_, c)| c.pairs).sum();
    let listeners = certificates.len();
    for (listener, certs) in certificates {
        listener.swap(certs);
    }
    if listeners > 0 {
        info!("certificates reloaded: {pairs} pair(s) on {listeners} TLS listener(s)");
    }
    state.swap(next);
    if let Some(acme) = state.acme() {
        // New `tls.acme` hosts are ordered now (the scheduler is woken).
        acme.configure(&state.snapshot().config);
        for listener in state.tls_listeners() {
            listener.refresh_acme();
        }
    }
    state.snapshot().start_plugins();
    Ok(report)
}

/// Reads every certificate, key and CA of the running TLS listeners as `config` now names
/// them (a listener is found again by its address), off the async threads. All or nothing:
/// one bad file and nothing is swapped.
async fn load_certificates(
    state: &State,
    config: &config::Config,
) -> Result<Vec<(Arc<crate::tls::TlsListener>, crate::tls::ListenerCerts)>, Vec<ConfigError>> {
    let listeners: Vec<_> = state.tls_listeners().to_vec();
    if listeners.is_empty() {
        return Ok(Vec::new());
    }
    let config = config.clone();
    let acme = state.acme().map(|a| a.certs.clone());
    let loaded = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for listener in listeners {
            let found = config
                .listeners
                .iter()
                .enumerate()
                .find(|(_, l)| l.addr == listener.addr);
            // A listener gone, or without tls now, is a change for a binary upgrade (the plan
            // says so); its certificates stay as they are.
            let Some((i, l, tls)) = found.and_then(|(i, l)| l.tls.as_ref().map(|t| (i, l, t)))
            else {
                continue;
            };
            match crate::tls::load(&config, i, l, tls, acme.as_ref()) {
                Ok((certs, warnings)) => {
                    for w in warnings {
                        warn!("reload: {w}");
                    }
                    out.push((listener, certs));
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    })
    .await;
    match loaded {
        Ok(result) => result,
        Err(e) => Err(vec![plain_error(
            &config_source(state),
            &format!("certificate loading failed: {e}"),
        )]),
    }
}

fn config_source(state: &State) -> String {
    state
        .config_path()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// What `reload` would change, without changing anything: the file is loaded and validated
/// (backend names resolved) as a reload does, then compared with the running config.
pub(crate) async fn reload_plan(state: &State) -> Result<serde_json::Value, Vec<ConfigError>> {
    let config = load_config_file(state).await?;
    // Resolve without building a snapshot: a build would touch state the running one shares
    // (kept backends' limits, the cache budget).
    crate::snapshot::resolve_all(&config).await?;
    load_certificates(state, &config).await?;
    let current = state.snapshot();
    Ok(crate::plan::plan(&current.config, &config))
}

fn plain_error(file: &str, message: &str) -> ConfigError {
    ConfigError {
        file: file.to_string(),
        line: 0,
        col: 0,
        path: String::new(),
        message: message.to_string(),
    }
}

/// Logs the outcome of a reload in the words an operator needs.
pub(crate) fn log_outcome(result: &Result<ReloadReport, Vec<ConfigError>>) {
    match result {
        Ok(r) => {
            info!(
                "config reloaded: {} domains, {} backends ({} kept their state)",
                r.domains, r.backends, r.kept
            );
            for n in &r.not_applied {
                warn!("reload: {n}");
            }
        }
        Err(errors) => {
            for e in errors {
                error!("reload rejected: {e}");
            }
            error!(
                "reload rejected with {} error(s); the running config stays",
                errors.len()
            );
        }
    }
}

/// Reloads on SIGHUP.
pub(crate) struct ReloadService {
    pub state: Arc<State>,
}

#[async_trait]
impl BackgroundService for ReloadService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            error!("cannot listen for SIGHUP; reload only through the admin API");
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = hup.recv() => {
                    info!("SIGHUP: reloading {}", self.state.config_path().map(|p| p.display().to_string()).unwrap_or_default());
                    let result = reload(&self.state).await;
                    log_outcome(&result);
                }
            }
        }
    }
}
