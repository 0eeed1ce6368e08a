//! When strait is ready, and who is told: the `-d` parent (see `crate::daemon`), systemd
//! (`READY=1`, see [`super::notify`]) and the log ("ready").
//!
//! Pingora binds the listeners inside each service's runtime and offers no hook afterwards,
//! so "listening" is observed from outside: a TCP connect to each address succeeds. Start-up
//! has already checked the ports were free, so what answers is this process. Under `-u` the
//! sockets come from the old process, which keeps accepting on them, so the check passes as
//! soon as the hand-over is done (this service starts after the bootstrap that receives them).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::notify;
use crate::state::State;

/// How long listeners may take to accept before start-up counts as failed.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(10);
/// How often `STATUS=` is refreshed for `systemctl status`.
const STATUS_EVERY: Duration = Duration::from_secs(5);

pub(crate) struct Readiness {
    pub state: Arc<State>,
    /// Every TCP address this process listens on (proxy, admin, probe).
    pub addrs: Vec<SocketAddr>,
    /// Started with `-u`: the listening sockets come from the old process.
    pub upgrade: bool,
    /// INFO lines for once every address accepts: one per listener, then the domain count.
    pub announce: Vec<String>,
}

#[async_trait]
impl BackgroundService for Readiness {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if self.upgrade {
            // First thing after the hand-over: systemd must follow this process before the
            // old one, now draining, exits.
            notify::notify(&format!("MAINPID={}", std::process::id()));
        }
        let started = Instant::now();
        for addr in &self.addrs {
            let target = reachable(*addr);
            loop {
                let ok = tokio::task::spawn_blocking(move || {
                    TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok()
                })
                .await
                .unwrap_or(false);
                if ok {
                    break;
                }
                if started.elapsed() > LISTEN_TIMEOUT {
                    let why = format!("{addr} is not accepting after {LISTEN_TIMEOUT:?}");
                    log::error!("{why}");
                    crate::daemon::report_failure(&why);
                    return;
                }
                tokio::time::sleep(POLL).await;
            }
        }
        for line in &self.announce {
            log::info!("{line}");
        }
        crate::daemon::report_ready();
        while !self.state.health_ready() {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        log::info!(
            "ready (listening {} ms after start-up; first health round done)",
            started.elapsed().as_millis()
        );
        notify::notify(&format!(
            "READY=1\nSTATUS={}",
            notify::status_line(&self.state)
        ));
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(STATUS_EVERY) => {
                    notify::notify(&format!("STATUS={}", notify::status_line(&self.state)));
                }
            }
        }
    }
}

/// Under `-u -d` the parent must return before the old process is told to hand its sockets
/// over (systemd's ExecReload runs `kill -QUIT` after it), so it is released as soon as the
/// daemon runs.
pub(crate) struct DaemonStarted;

#[async_trait]
impl BackgroundService for DaemonStarted {
    async fn start(&self, _shutdown: ShutdownWatch) {
        crate::daemon::report_ready();
    }
}

/// A wildcard address is reached through loopback of its family.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}
