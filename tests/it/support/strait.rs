//! Runs the real `strait` binary: a config in a fresh temp dir, output captured to files,
//! readiness by polling the listener, killed on drop (logs printed if the test failed).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use super::client::{self, Response};
use super::wait::{exit_within, try_eventually};

/// The `strait` binary under test: the one cargo built, or `STRAIT_TEST_BIN` when set (a
/// copy taken right after the build, when several worktrees share one target directory and
/// another build may replace `target/debug/strait` while the suite runs).
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("STRAIT_TEST_BIN")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_strait").to_string())
    })
}
/// How long a started strait may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `strait -t` may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts when the picked listener port was taken in between (a rare race).
const START_ATTEMPTS: usize = 3;

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty directory under the system temp dir, unique per process and call.
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("strait-it-{}-{tag}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// Picks a free loopback port: bind :0, read the port, release it. Never the same port twice
/// in one test run: the kernel may hand a released port out again, and a test that asks for
/// several (listener, admin, probe) would then get two equal ones.
///
/// Only for ports a strait process binds itself. Everything the tests serve themselves
/// (origins, h2c and WebSocket origins, [`super::origin::Refusing`] dead backends) binds
/// 127.0.0.1:0 and keeps the socket, so nothing can take its port. strait cannot be handed a
/// socket: it binds what its YAML config names, so the port has to be chosen before it starts
/// and is free only until then; another process (or an origin of a concurrent test whose
/// bind(:0) draws the same port) can take it in between. What then happens:
///
/// - `{listen}` in [`Strait::start`]/[`Strait::start_with`]: if strait exits before accepting
///   and its stderr says "address already in use" (or "AddrInUse"), the attempt is retried
///   with a fresh temp dir and a fresh `{listen}` port, [`START_ATTEMPTS`] attempts in all;
///   any other failure panics at once with strait's output.
/// - Every other port a test writes into the YAML itself (the admin and probe listeners of
///   `admin::Ports`) stays the same on each of those attempts, so a taken admin/probe port
///   fails all of them and the test panics with strait's "address in use" output.
/// - Processes a test spawns itself (`lifecycle`'s systemd daemons, `startup`'s demo) get no
///   retry at all: a taken port fails that test.
/// - Readiness is "a TCP connect to `{listen}` succeeds". Should something else be listening
///   on the port while strait has not yet exited from its failed bind, that connect succeeds
///   and the attempt counts as started; the test then fails on whatever answered.
///
/// Configs that are only validated (`strait -t`, see [`Strait::check`]) or that strait must
/// refuse before binding anything (`admin::auth`, `access_log`) use it too, for a realistic
/// address only: no port is bound there.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    for _ in 0..10_000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
    panic!("no loopback port left that this test run has not used");
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Waits for `child` with a deadline; kills it when the deadline passes.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let status = exit_within(child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// A running strait process.
pub struct Strait {
    child: Child,
    dir: PathBuf,
    config: PathBuf,
    addr: SocketAddr,
}

impl Strait {
    /// Starts strait with `yaml`, substituting `{listen}` with a free `127.0.0.1:PORT` and
    /// `{dir}` with the temp dir. Panics (with strait's output) if it does not come up.
    pub fn start(yaml: &str) -> Strait {
        Strait::start_env(yaml, &[])
    }

    /// Like [`Strait::start`], with extra environment variables for the process.
    pub fn start_env(yaml: &str, env: &[(&str, &str)]) -> Strait {
        Strait::start_with(yaml, env, &|config| {
            let mut cmd = Command::new(bin());
            cmd.arg("-c").arg(config);
            cmd
        })
    }

    /// Starts a program that serves `yaml` the way `program(config_path)` says: e.g. this
    /// test binary re-run as a server with hooks (see `hooks.rs`).
    pub fn start_with(
        yaml: &str,
        env: &[(&str, &str)],
        program: &dyn Fn(&Path) -> Command,
    ) -> Strait {
        assert!(
            yaml.contains("{listen}"),
            "the config needs a `{{listen}}` placeholder so the harness knows where to connect"
        );
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            match Strait::try_start(yaml, env, program) {
                Ok(s) => return s,
                Err((error, retry)) => {
                    last_error = error;
                    if !retry {
                        break;
                    }
                }
            }
        }
        panic!("strait did not start: {last_error}");
    }

    /// One start attempt. Err((why, worth retrying with another port)).
    fn try_start(
        yaml: &str,
        env: &[(&str, &str)],
        program: &dyn Fn(&Path) -> Command,
    ) -> Result<Strait, (String, bool)> {
        let dir = temp_dir("run");
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let text = yaml
            .replace("{listen}", &addr.to_string())
            .replace("{dir}", &dir.display().to_string());
        let config = dir.join("strait.yaml");
        fs::write(&config, &text).expect("write the config");
        let stdout = File::create(dir.join("stdout.log")).expect("create stdout.log");
        let stderr = File::create(dir.join("stderr.log")).expect("create stderr.log");
        let mut cmd = program(&config);
        cmd.current_dir(&dir)
            .env_remove("STRAIT_CONFIG")
            // `command` plugins' sockets go in a folder under it, removed with the temp dir
            // even when the process is killed.
            .env("XDG_RUNTIME_DIR", &dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(|e| (format!("cannot spawn {cmd:?}: {e}"), false))?;
        let mut strait = Strait {
            child,
            dir,
            config,
            addr,
        };
        // Until it accepts on `addr` or exits, whichever comes first.
        let mut exited = None;
        let accepting = try_eventually(READY_TIMEOUT, || {
            if let Ok(Some(status)) = strait.child.try_wait() {
                exited = Some(status);
                return true;
            }
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        if let Some(status) = exited {
            let err = strait.stderr();
            let in_use = err.to_ascii_lowercase().contains("address already in use")
                || err.to_ascii_lowercase().contains("addrinuse");
            let why = format!(
                "strait exited with {status} before accepting on {addr}\n--- config ---\n{text}\n--- stderr ---\n{}\n--- stdout ---\n{}",
                tail(&err, 8000),
                tail(&strait.stdout(), 4000)
            );
            let _ = strait.child.wait();
            return Err((why, in_use));
        }
        if accepting {
            return Ok(strait);
        }
        let why = format!(
            "strait did not accept on {addr} within {READY_TIMEOUT:?}\n--- stderr ---\n{}",
            tail(&strait.stderr(), 8000)
        );
        Err((why, false))
    }

    /// The listener address (`{listen}`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The temp dir holding the config and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config file path as passed with `-c`.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET path` with `Host: host` on a fresh connection; panics on a transport error.
    #[track_caller]
    pub fn get(&self, host: &str, path: &str) -> Response {
        match client::get(self.addr, host, path) {
            Ok(r) => r,
            Err(e) => panic!(
                "GET http://{host}{path} via strait failed: {e}\n--- stderr ---\n{}",
                tail(&self.stderr(), 4000)
            ),
        }
    }

    /// Captured stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.dir.join("stdout.log"))
    }

    /// Captured stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.dir.join("stderr.log"))
    }

    /// Whether stderr contains `needle` now.
    pub fn stderr_has(&self, needle: &str) -> bool {
        self.stderr().contains(needle)
    }

    /// Whether stderr contains `needle` within `timeout`.
    pub fn stderr_contains(&self, needle: &str, timeout: Duration) -> bool {
        try_eventually(timeout, || self.stderr_has(needle))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Validates `yaml` with `strait -t -c FILE` (placeholders substituted as in `start`).
    pub fn check(yaml: &str) -> Check {
        Strait::check_env(yaml, &[], &[])
    }

    /// Like [`Strait::check`], with variables set and removed in the child's environment.
    pub fn check_env(yaml: &str, set: &[(&str, &str)], unset: &[&str]) -> Check {
        let dir = temp_dir("check");
        let text = yaml
            .replace("{listen}", &format!("127.0.0.1:{}", free_port()))
            .replace("{dir}", &dir.display().to_string());
        let file = dir.join("strait.yaml");
        fs::write(&file, &text).expect("write the config");
        let check = run_check(&file, &dir, &dir, set, unset);
        let _ = fs::remove_dir_all(&dir);
        check
    }

    /// Validates an existing file as is, with `cwd` as the working directory (so relative
    /// paths in it resolve as they would for a user).
    pub fn check_file(file: &Path, cwd: &Path) -> Check {
        let dir = temp_dir("check-file");
        let check = run_check(file, cwd, &dir, &[], &[]);
        let _ = fs::remove_dir_all(&dir);
        check
    }
}

/// Runs `strait -t -c FILE`, output captured to files in `logs`.
fn run_check(file: &Path, cwd: &Path, logs: &Path, set: &[(&str, &str)], unset: &[&str]) -> Check {
    let out_path = logs.join("stdout.log");
    let err_path = logs.join("stderr.log");
    let mut cmd = Command::new(bin());
    cmd.arg("-t")
        .arg("-c")
        .arg(file)
        .current_dir(cwd)
        .env_remove("STRAIT_CONFIG")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("create stdout.log"))
        .stderr(File::create(&err_path).expect("create stderr.log"));
    for (k, v) in set {
        cmd.env(k, v);
    }
    for k in unset {
        cmd.env_remove(k);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", bin()));
    let status = wait_bounded(&mut child, CHECK_TIMEOUT);
    Check {
        code: status.and_then(|s| s.code()),
        timed_out: status.is_none(),
        stdout: read_lossy(&out_path),
        stderr: read_lossy(&err_path),
        file: file.display().to_string(),
        config: read_lossy(file),
    }
}

impl Drop for Strait {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "--- strait {} (config {}) ---\n{}\n--- stderr (tail) ---\n{}\n--- stdout (tail) ---\n{}",
                self.addr,
                self.config.display(),
                read_lossy(&self.config),
                tail(&self.stderr(), 8000),
                tail(&self.stdout(), 4000),
            );
            eprintln!("(logs kept in {})", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The outcome of `strait -t -c FILE`.
#[derive(Debug, Clone)]
pub struct Check {
    /// Exit code (None if killed by a signal or timed out).
    pub code: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    /// The config path as passed to strait (error lines start with it).
    pub file: String,
    /// The config text as written.
    pub config: String,
}

impl Check {
    /// stdout followed by stderr.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// The error lines: lines of the output that start with `FILE:LINE:COL:` (a summary
    /// line such as `FILE: 2 error(s)` is not one).
    pub fn error_lines(&self) -> Vec<String> {
        let prefix = format!("{}:", self.file);
        self.output()
            .lines()
            .filter(|l| {
                l.strip_prefix(&prefix).is_some_and(|rest| {
                    let mut parts = rest.splitn(3, ':');
                    let numeric = |p: Option<&str>| {
                        p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                    };
                    numeric(parts.next()) && numeric(parts.next()) && parts.next().is_some()
                })
            })
            .map(str::to_string)
            .collect()
    }

    /// The error line for `field` (`FILE:L:C: FIELD: message`): (line, col, message).
    pub fn find(&self, field: &str) -> Option<(usize, usize, String)> {
        let prefix = format!("{}:", self.file);
        for line in self.error_lines() {
            let rest = &line[prefix.len()..];
            let mut parts = rest.splitn(3, ':');
            let (Some(l), Some(c), Some(tail)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(l), Ok(c)) = (l.trim().parse(), c.trim().parse()) else {
                continue;
            };
            let Some(msg) = tail.trim_start().strip_prefix(field) else {
                continue;
            };
            if let Some(msg) = msg.strip_prefix(':') {
                return Some((l, c, msg.trim().to_string()));
            }
        }
        None
    }

    /// The error line at `LINE:COL`, whatever its field: the text after `FILE:LINE:COL:`.
    pub fn at(&self, line: usize, col: usize) -> Option<String> {
        let prefix = format!("{}:{line}:{col}:", self.file);
        self.error_lines()
            .into_iter()
            .find_map(|l| l.strip_prefix(&prefix).map(|m| m.trim().to_string()))
    }

    /// A readable dump for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "exit {:?} (timed out: {})\n--- config {} ---\n{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.timed_out, self.file, numbered(&self.config), self.stdout, self.stderr
        )
    }

    /// Asserts exit 1 and an error line `FILE:LINE:COL: FIELD: ...` whose message contains
    /// every word in `words` (case-insensitive). Returns the message.
    #[track_caller]
    pub fn assert_error(&self, line: usize, col: usize, field: &str, words: &[&str]) -> String {
        assert_eq!(self.code, Some(1), "expected exit 1\n{}", self.describe());
        let Some((l, c, msg)) = self.find(field) else {
            panic!(
                "no error line for `{field}` (expected {}:{line}:{col}: {field}: ...)\n{}",
                self.file,
                self.describe()
            );
        };
        assert_eq!(
            (l, c),
            (line, col),
            "wrong position for `{field}` ({msg})\n{}",
            self.describe()
        );
        let lower = msg.to_lowercase();
        for w in words {
            assert!(
                lower.contains(&w.to_lowercase()),
                "message for `{field}` lacks {w:?}: {msg:?}\n{}",
                self.describe()
            );
        }
        msg
    }
}

/// The config with 1-based line numbers, for failure messages.
fn numbered(text: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(i, l)| format!("{:3} | {l}\n", i + 1))
        .collect()
}

/// What a finished `strait` command printed, and its exit code (`None`: killed after the
/// time limit, or by a signal).
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `strait ARGS` to completion (at most 60 s, then it is killed), output captured.
pub fn run_bin(args: &[&str]) -> Ran {
    let logs = temp_dir("run-bin");
    let out_path = logs.join("stdout.log");
    let err_path = logs.join("stderr.log");
    let mut child = Command::new(bin())
        .args(args)
        .env_remove("STRAIT_CONFIG")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("create stdout.log"))
        .stderr(File::create(&err_path).expect("create stderr.log"))
        .spawn()
        .expect("start strait");
    let status = crate::support::wait::exit_within(&mut child, Duration::from_secs(60));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let ran = Ran {
        code: status.and_then(|s| s.code()),
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    };
    let _ = fs::remove_dir_all(&logs);
    ran
}
