//! systemd's notify protocol (`Type=notify`, sd_notify(3)): newline-separated `KEY=VALUE`
//! assignments in one datagram to the unix socket named by `$NOTIFY_SOCKET`. A few lines of
//! std rather than libsystemd (a C dependency) or a crate: the protocol is one `sendto`.
//!
//! strait sends `READY=1` once it listens and the first health round is done,
//! `RELOADING=1` / `READY=1` around a config reload, `STOPPING=1` when SIGTERM starts the
//! drain, `MAINPID=` from the new process of a binary upgrade (so systemd follows it without
//! a pid file), and `STATUS=` lines with the requests served.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Set on SIGQUIT: this process is handing its sockets to a new one.
static HANDING_OVER: AtomicBool = AtomicBool::new(false);

/// How long a process that handed its sockets over stays after its last request under
/// systemd. The new process sends MAINPID= right after it receives the sockets; should the
/// old (still main) process exit first, systemd would count the service as stopped and stop
/// the new one with it.
const HANDOVER_MARGIN: Duration = Duration::from_secs(1);

pub(crate) fn set_handing_over() {
    HANDING_OVER.store(true, Ordering::Relaxed);
}

/// What the exit-when-idle path must still wait, at least, after the shutdown began.
pub(crate) fn exit_margin() -> Duration {
    if HANDING_OVER.load(Ordering::Relaxed) && std::env::var_os("NOTIFY_SOCKET").is_some() {
        HANDOVER_MARGIN
    } else {
        Duration::ZERO
    }
}

/// Sends `message` when `$NOTIFY_SOCKET` is set; false when it is unset or sending failed
/// (logged at debug: a process started by hand has no socket, and that is fine).
pub(crate) fn notify(message: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let sent = send(&path, message);
    if let Err(e) = &sent {
        log::debug!("sd_notify {message:?} to {path:?}: {e}");
    }
    sent.is_ok()
}

fn send(path: &std::ffi::OsStr, message: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    // `@name` is a socket in the abstract namespace (what systemd uses in containers).
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(message.as_bytes(), &addr)?;
    } else {
        socket.send_to(message.as_bytes(), path)?;
    }
    Ok(())
}

/// `MONOTONIC_USEC=` for `RELOADING=1`: systemd's `Type=notify-reload` requires it and plain
/// `Type=notify` accepts it.
pub(crate) fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// The `STATUS=` text: what a `systemctl status` reader wants at a glance.
pub(crate) fn status_line(state: &crate::state::State) -> String {
    let served: u64 = state
        .domain_stats
        .all()
        .iter()
        .map(|(_, s)| {
            s.traffic
                .requests
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    let snapshot = state.snapshot();
    format!(
        "serving {} domains; {served} requests served, {} in flight",
        snapshot.domains.len(),
        state.in_flight.count()
    )
}
