//! A real Redis (Debian's `redis-server`) on a loopback port in a temp dir, for `scope:
//! cluster` rate limits. Stopped by PID (SIGKILL) on drop or by [`Redis::kill`].

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::strait::{free_port, temp_dir};
use super::wait::try_eventually;

const BIN: &str = "redis-server";
/// Attempts when the picked port was taken between choosing and binding it.
const ATTEMPTS: usize = 3;

pub struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    /// Starts redis-server without persistence and waits until it answers PING.
    #[track_caller]
    pub fn start() -> Redis {
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let dir = temp_dir("redis");
            let port = free_port();
            let log = dir.join("redis.log");
            let child = Command::new(BIN)
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .arg("--dir")
                .arg(&dir)
                .arg("--logfile")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run {BIN} ({e}): install it with scripts/setup.sh --test")
                });
            let mut r = Redis {
                child: Some(child),
                port,
                dir,
            };
            let up = try_eventually(Duration::from_secs(10), || {
                r.command(&["PING"]).is_ok_and(|a| a == "+PONG") || !r.is_running()
            });
            if up && r.is_running() {
                return r;
            }
            last = std::fs::read_to_string(&log).unwrap_or_default();
            r.kill();
            if !last.contains("Address already in use") {
                break;
            }
        }
        panic!("redis-server did not start:\n{last}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn dir(&self) -> &PathBuf {
        &self.dir
    }

    fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// One command in RESP; the first line of the answer (`+PONG`, `:3`, `$5` ...).
    pub fn command(&self, parts: &[&str]) -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(1))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut req = format!("*{}\r\n", parts.len());
        for p in parts {
            req.push_str(&format!("${}\r\n{p}\r\n", p.len()));
        }
        s.write_all(req.as_bytes())?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        Ok(line.trim_end().to_string())
    }

    /// SIGKILL, by PID, and reap it: Redis is gone at once, as after a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
