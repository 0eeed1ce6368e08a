//! When strait is ready, and who is told: the `-d` parent (see `crate::daemon`), systemd
//! (`READY=1`, see [`super::notify`]) and the log ("ready").
//!
//! Pingora binds the listeners inside each service's runtime and offers no hook afterwards,
//! so "listening" is observed from outside: the kernel's socket table (`/proc/net/tcp`,
//! `/proc/net/tcp6`) has a socket in LISTEN state on each address. Start-up has already
//! checked the ports were free, so that socket is this process's. A TCP connect would say the
//! same but is a real connection to the proxy: measured, it made Pingora's WebSocket upgrade
//! race (a tunnel closed right after its 101) several times likelier for the first clients.
//! Under `-u` the sockets come from the old process and are listening already, so the check
//! passes as soon as the hand-over is done (this service starts after the bootstrap that
//! receives them).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
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
            while !listening(*addr) {
                if started.elapsed() > LISTEN_TIMEOUT {
                    let why = format!("{addr} is not listening after {LISTEN_TIMEOUT:?}");
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

/// Whether a socket is in LISTEN state on `addr` (its port, on its IP or a wildcard).
fn listening(addr: SocketAddr) -> bool {
    let table = if addr.is_ipv4() {
        "/proc/net/tcp"
    } else {
        "/proc/net/tcp6"
    };
    let Ok(text) = std::fs::read_to_string(table) else {
        // No procfs: say yes rather than hold start-up forever.
        return true;
    };
    text.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let (Some(local), Some(state)) = (fields.nth(1), fields.nth(1)) else {
            return false;
        };
        state == LISTEN && local_matches(local, addr)
    })
}

/// TCP_LISTEN in the kernel's `st` column.
const LISTEN: &str = "0A";

/// `local` is `HEXIP:HEXPORT` as the kernel prints it (the IP in host byte order per 32-bit
/// word). The port decides; the IP must be the address's or a wildcard.
fn local_matches(local: &str, addr: SocketAddr) -> bool {
    let Some((ip_hex, port_hex)) = local.split_once(':') else {
        return false;
    };
    if u16::from_str_radix(port_hex, 16).ok() != Some(addr.port()) {
        return false;
    }
    let words: Vec<u32> = (0..ip_hex.len() / 8)
        .filter_map(|i| ip_hex.get(i * 8..i * 8 + 8))
        .filter_map(|w| u32::from_str_radix(w, 16).ok())
        .collect();
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(&bytes);
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return false,
    };
    ip == addr.ip() || ip.is_unspecified() || addr.ip().is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_addresses_match() {
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        // 127.0.0.1 is 0100007F in the table on little-endian hosts.
        let local = format!("{:08X}:1F90", u32::from_ne_bytes([127, 0, 0, 1]));
        assert!(local_matches(&local, a));
        assert!(local_matches("00000000:1F90", a));
        assert!(!local_matches(&local, "127.0.0.1:8081".parse().unwrap()));
        assert!(local_matches(
            "00000000000000000000000000000000:1F90",
            "[::1]:8080".parse().unwrap()
        ));
    }

    #[test]
    fn a_bound_listener_is_seen() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert!(listening(addr));
        drop(l);
        assert!(!listening(addr));
    }
}
