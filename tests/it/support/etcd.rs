//! A real etcd (Debian's etcd-server) for the cluster tests: one member on loopback ports in
//! a temp dir, ready when its /health says so, killed by PID (and started again on the same
//! ports and data, to test a node's reconnect). Keys are written with etcdctl, the real client.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::client;
use super::strait::{free_port, temp_dir};
use super::wait::{output_within, try_eventually};

/// How long etcd may take to say it is healthy.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts when a picked port was taken in between.
const START_ATTEMPTS: usize = 3;

pub struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
    client: u16,
    peer: u16,
}

impl Etcd {
    /// Starts a one-member etcd; panics with its output when it does not come up.
    pub fn start() -> Etcd {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let mut etcd = Etcd {
                child: None,
                dir: temp_dir("etcd"),
                client: free_port(),
                peer: free_port(),
            };
            match etcd.spawn() {
                Ok(()) => return etcd,
                Err(e) => last = e,
            }
        }
        panic!("etcd did not start: {last}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let client = format!("http://127.0.0.1:{}", self.client);
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let log = File::create(self.dir.join("etcd.log")).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new("etcd")
            .arg("--name=test")
            .arg(format!("--data-dir={}", self.dir.join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=test={peer}"))
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run etcd (apt-get install etcd-server): {e}"))?;
        let addr = self.addr();
        let mut exited = false;
        let healthy = try_eventually(READY_TIMEOUT, || {
            if let Ok(Some(_)) = child.try_wait() {
                exited = true;
                return true;
            }
            client::get(addr, "127.0.0.1", "/health")
                .is_ok_and(|r| r.status == 200 && r.text().contains("true"))
        });
        if exited || !healthy {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "etcd on {addr} {}:\n{}",
                if exited {
                    "exited"
                } else {
                    "did not become healthy"
                },
                self.log()
            ));
        }
        self.child = Some(child);
        Ok(())
    }

    /// The client URL, as `cluster.etcd.endpoints` takes it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
    }

    /// SIGKILL by PID: the nodes lose their connections and watches at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and data (after [`Etcd::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn() {
            panic!("etcd did not start again: {e}");
        }
    }

    fn ctl(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.url()))
            .args(args);
        let (code, out, err) = output_within(&mut cmd, Duration::from_secs(10));
        assert_eq!(
            code,
            Some(0),
            "etcdctl {args:?} failed (apt-get install etcd-client): {err}"
        );
        out
    }

    pub fn put(&self, key: &str, value: &str) {
        self.ctl(&["put", key, value]);
    }

    pub fn delete(&self, key: &str) {
        self.ctl(&["del", key]);
    }

    /// Turns authentication on with user `root` and `password` (later etcdctl calls of this
    /// helper would need it, so call this last).
    pub fn enable_auth(&self, password: &str) {
        self.ctl(&[
            "user",
            "add",
            "root",
            &format!("--new-user-password={password}"),
        ]);
        self.ctl(&["auth", "enable"]);
    }

    /// Every key under `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.ctl(&["get", "--prefix", "--keys-only", prefix])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
