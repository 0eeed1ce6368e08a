//! systemd's notify protocol without systemd: a unix datagram socket bound in a temp dir
//! stands in for `$NOTIFY_SOCKET`, and each message strait sends is checked: READY=1 once
//! listening, RELOADING=1/READY=1 around SIGHUP and POST-less reloads, STOPPING=1 on SIGTERM,
//! and MAINPID= from the new process of a binary upgrade.

use std::fs::{self, File};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::strait::bin;
use crate::support::wait::exit_within;
use crate::support::{config, eventually_msg, Strait};

/// The listening end of `$NOTIFY_SOCKET`.
struct NotifySocket {
    socket: UnixDatagram,
    path: std::path::PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        NotifySocket { socket, path }
    }

    /// The next datagram within `timeout`, or None.
    fn next(&self, timeout: Duration) -> Option<String> {
        self.socket
            .set_read_timeout(Some(timeout))
            .expect("set a read timeout");
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Reads datagrams until one satisfies `want`; panics with what came otherwise.
    #[track_caller]
    fn expect(&self, what: &str, timeout: Duration, want: impl Fn(&str) -> bool) -> String {
        self.expect_after(what, timeout, want).0
    }

    /// Like [`NotifySocket::expect`], also returning the messages that came before it.
    #[track_caller]
    fn expect_after(
        &self,
        what: &str,
        timeout: Duration,
        want: impl Fn(&str) -> bool,
    ) -> (String, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next(left) {
                Some(m) if want(&m) => return (m, seen),
                Some(m) => seen.push(m),
                None => break,
            }
        }
        panic!("no {what} within {timeout:?}; got {seen:?}");
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid this test started.
    unsafe { libc::kill(pid as i32, sig) };
}

fn notify_config() -> String {
    config(
        "server:\n  upgrade_sock: \"{dir}/upgrade.sock\"\n  pid_file: \"{dir}/strait.pid\"\n  drain_delay: 0s\n\
         domains:\n  - hosts: [\"*\"]\n    routes: [{ path_prefix: /, respond: { body: ok } }]\n",
    )
}

fn has_line(message: &str, line: &str) -> bool {
    message.lines().any(|l| l == line)
}

#[test]
fn ready_reloading_status_and_stopping() {
    let dir = crate::support::strait::temp_dir("notify");
    let sock = NotifySocket::bind(&dir);
    let path = sock.path.display().to_string();
    let mut s = Strait::start_env(&notify_config(), &[("NOTIFY_SOCKET", &path)]);
    let ready = sock.expect("READY=1", Duration::from_secs(10), |m| {
        has_line(m, "READY=1")
    });
    assert!(ready.contains("STATUS=serving 1 domains"), "{ready:?}");
    assert_eq!(s.get("any.test", "/").status, 200);

    signal(s.pid(), libc::SIGHUP);
    let reloading = sock.expect("RELOADING=1", Duration::from_secs(10), |m| {
        has_line(m, "RELOADING=1")
    });
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    let after = sock.expect("READY=1 after the reload", Duration::from_secs(10), |m| {
        has_line(m, "READY=1")
    });
    assert!(after.contains("STATUS=config reloaded"), "{after:?}");
    // The count itself may not include the request above yet: its metrics are recorded
    // after the response went out, racing the SIGHUP.
    assert!(after.contains("requests served"), "{after:?}");

    signal(s.pid(), libc::SIGTERM);
    sock.expect("STOPPING=1", Duration::from_secs(10), |m| {
        has_line(m, "STOPPING=1")
    });
    eventually_msg(Duration::from_secs(10), "strait exits", || !s.is_running());
    let _ = fs::remove_dir_all(&dir);
}

struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The new process of a binary upgrade tells systemd it is the main process now (MAINPID=
/// its pid), then READY=1; the old one, handing over, does not say STOPPING=1.
#[test]
fn binary_upgrade_hands_mainpid_over() {
    let sock_dir = crate::support::strait::temp_dir("notify-upgrade");
    let sock = NotifySocket::bind(&sock_dir);
    let path = sock.path.display().to_string();
    let old = Strait::start_env(&notify_config(), &[("NOTIFY_SOCKET", &path)]);
    sock.expect(
        "READY=1 from the old process",
        Duration::from_secs(10),
        |m| has_line(m, "READY=1"),
    );

    let log = File::create(old.dir().join("new.log")).expect("create log");
    let mut new = Spawned(
        Command::new(bin())
            .args(["-u", "-c"])
            .arg(old.config_path())
            .current_dir(old.dir())
            .env_remove("STRAIT_CONFIG")
            .env("NOTIFY_SOCKET", &path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn strait -u"),
    );
    let new_pid = new.0.id();
    let new_log = || fs::read_to_string(old.dir().join("new.log")).unwrap_or_default();
    eventually_msg(
        Duration::from_secs(10),
        "the new instance waiting for the sockets",
        || new_log().contains("waiting for the running instance"),
    );
    signal(old.pid(), libc::SIGQUIT);
    let (mainpid, before) = sock.expect_after(
        "MAINPID= from the new process",
        Duration::from_secs(15),
        |m| m.lines().any(|l| l.starts_with("MAINPID=")),
    );
    assert_eq!(mainpid.trim(), format!("MAINPID={new_pid}"), "{mainpid:?}");
    let (_, between) = sock.expect_after(
        "READY=1 from the new process",
        Duration::from_secs(15),
        |m| has_line(m, "READY=1"),
    );
    assert!(
        before
            .iter()
            .chain(&between)
            .all(|m| !has_line(m, "STOPPING=1")),
        "the old process must not say STOPPING=1 while handing over: {before:?} {between:?}"
    );
    assert_eq!(
        crate::support::client::get(old.addr(), "any.test", "/")
            .map(|r| r.status)
            .ok(),
        Some(200),
        "the new process serves\n{}",
        new_log()
    );
    signal(new_pid, libc::SIGTERM);
    sock.expect(
        "STOPPING=1 from the new process",
        Duration::from_secs(10),
        |m| has_line(m, "STOPPING=1"),
    );
    assert!(exit_within(&mut new.0, Duration::from_secs(10)).is_some());
    let _ = fs::remove_dir_all(&sock_dir);
}
