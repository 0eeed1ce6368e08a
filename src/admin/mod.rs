//! The admin API (design §4) and the probe listener (design §5), each its own Pingora service
//! on its own listener with one worker thread: neither shares a runtime with the proxy, so a
//! saturated proxy still answers `/metrics` and admin calls.
//!
//! The loader already refuses a non-loopback `admin.addr` without a token; [`add_services`]
//! checks it again so a config built in code cannot open an unauthenticated admin port.

mod api;
pub(crate) use api::config_hash;
pub(crate) mod cache_api;
pub(crate) mod changes;
mod dashboard;
mod probe;
pub(crate) mod web;

use std::net::TcpListener;
use std::sync::Arc;

use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use pingora::services::ServiceHandle;

pub(crate) use api::AdminApp;
pub(crate) use probe::ProbeApp;

use crate::config::{ConfigError, Pos};
use crate::server::StartError;
use crate::state::State;

fn config_error(source: &str, pos: Pos, path: &str, message: String) -> StartError {
    StartError::Config(vec![ConfigError {
        file: source.to_string(),
        line: pos.line,
        col: pos.col,
        path: path.to_string(),
        message,
    }])
}

/// Binding once up front turns "port taken" into a clear start-up error instead of Pingora's
/// retry-then-panic (see `server::check_listeners`).
fn check_bind(addr: std::net::SocketAddr) -> Result<(), StartError> {
    TcpListener::bind(addr)
        .map(drop)
        .map_err(|reason| StartError::Listen { addr, reason })
}

/// Adds the admin and probe services (when configured) and the access log writer (when
/// configured) to `server`. `upgrade`: the listening sockets come from the old process, so
/// they are not test-bound here. The listeners start after `bootstrap` (which takes sockets
/// over from an old instance).
pub(crate) fn add_services(
    server: &mut Server,
    state: &Arc<State>,
    upgrade: bool,
    bootstrap: &ServiceHandle,
) -> Result<(), StartError> {
    let snapshot = state.snapshot();
    let config = &snapshot.config;
    crate::metrics::init();

    if let Some(admin) = &config.admin {
        let token = admin.token.clone().filter(|t| !t.is_empty());
        if token.is_none() && !admin.addr.ip().is_loopback() {
            return Err(config_error(
                &config.source,
                admin.pos,
                "admin.token",
                "required when admin.addr is not a loopback address".into(),
            ));
        }
        if !upgrade {
            check_bind(admin.addr)?;
        }
        let mut service = Service::new(
            "strait admin".to_string(),
            AdminApp {
                state: state.clone(),
                token,
            },
        );
        service.add_tcp(&admin.addr.to_string());
        service.threads = Some(1);
        server.add_service(service).add_dependency(bootstrap);
    }

    if let Some(probe) = &config.probe {
        if !upgrade {
            check_bind(probe.addr)?;
        }
        let mut service = Service::new(
            "strait probe".to_string(),
            ProbeApp {
                state: state.clone(),
            },
        );
        service.add_tcp(&probe.addr.to_string());
        service.threads = Some(1);
        server.add_service(service).add_dependency(bootstrap);
    }

    match state.access_log.install(
        config.logging.access_log.as_ref(),
        config.logging.access_log_format,
    ) {
        Ok(Some(writer)) => {
            server.add_service(background_service("strait access log", writer));
        }
        Ok(None) => {}
        Err(e) => {
            let path = match &config.logging.access_log {
                Some(crate::config::AccessLog::File(p)) => p.display().to_string(),
                _ => "-".to_string(),
            };
            return Err(config_error(
                &config.source,
                Pos::default(),
                "logging.access_log",
                format!("cannot open {path}: {e}"),
            ));
        }
    }
    Ok(())
}
