//! `command` plugins: strait starts the program with `STRAIT_PLUGIN_SOCKET` (a Unix socket
//! path in a runtime folder of this process, so an old and a new process during a binary
//! upgrade never share one), restarts it with exponential backoff when it exits, logs its
//! stderr lines with the plugin's name, and stops it (TERM, then KILL after 5 s) on shutdown
//! and when a reload removes or changes it.
//!
//! One thread per running plugin: it spawns the child, waits for it (or for a stop), and
//! sleeps the backoff. Nothing starts on its own: the server starts supervision after it
//! has daemonized (threads do not survive a fork), `strait -t` and `explain` never do.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The first restart waits this long; each further one twice as long, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A child that ran this long is deemed healthy: its next restart waits the first backoff.
const STABLE: Duration = Duration::from_secs(10);
/// Between TERM and KILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

/// Socket names get a number unique in this process, so a changed plugin's new instance and
/// its old one (still stopping) never race for one path.
static NEXT_SOCKET: AtomicU64 = AtomicU64::new(1);

/// What the supervising thread and the rest share.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// The running child's pid (0: none).
    pid: AtomicU32,
    /// Times the program was started (1 after the first start).
    starts: AtomicU64,
    /// Wakes the thread for a stop.
    wake: (Mutex<()>, Condvar),
}

impl Shared {
    /// Sleeps `d` unless a stop comes first; returns whether to stop.
    fn sleep(&self, d: Duration) -> bool {
        let (lock, cvar) = &self.wake;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = Instant::now() + d;
        let mut guard = guard;
        while !self.stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = cvar
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// How a `command` plugin runs.
pub(crate) struct Spec {
    pub name: String,
    pub argv: Vec<String>,
    /// Where relative program paths are found: the config file's folder.
    pub dir: Option<PathBuf>,
    /// Extra environment (the admin API's URL and token).
    pub env: Vec<(String, String)>,
}

pub(crate) struct Supervisor {
    spec: Spec,
    socket: PathBuf,
    shared: Arc<Shared>,
    started: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Supervisor {
    pub(crate) fn new(spec: Spec) -> Supervisor {
        let n = NEXT_SOCKET.fetch_add(1, Ordering::Relaxed);
        let socket = runtime_dir().join(format!("{}-{n}.sock", spec.name));
        Supervisor {
            spec,
            socket,
            shared: Arc::default(),
            started: AtomicBool::new(false),
            thread: Mutex::new(None),
        }
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// The running child's pid.
    pub(crate) fn pid(&self) -> Option<u32> {
        Some(self.shared.pid.load(Ordering::SeqCst)).filter(|&p| p != 0)
    }

    /// Times the program was started; a new start means a new process (its hello may differ).
    pub(crate) fn starts(&self) -> u64 {
        self.shared.starts.load(Ordering::SeqCst)
    }

    /// Starts supervising, once.
    pub(crate) fn ensure_started(&self) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let spec = Spec {
            name: self.spec.name.clone(),
            argv: self.spec.argv.clone(),
            dir: self.spec.dir.clone(),
            env: self.spec.env.clone(),
        };
        let socket = self.socket.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("plugin {}", spec.name))
            .spawn(move || supervise(&spec, &socket, &shared));
        match spawned {
            Ok(handle) => {
                *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
            }
            Err(e) => log::error!(
                "plugin {}: cannot start its supervisor: {e}",
                self.spec.name
            ),
        }
    }

    /// Asks the thread to stop the program (TERM, KILL after [`STOP_GRACE`]); returns at once.
    pub(crate) fn request_stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let (lock, cvar) = &self.shared.wake;
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        cvar.notify_all();
    }

    /// Waits for the supervising thread to end (after [`Supervisor::request_stop`]).
    pub(crate) fn join(&self) {
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Supervisor {
    /// A plugin dropped by a reload (removed or changed): its program is stopped in the
    /// background (the thread owns the child; nothing here blocks).
    fn drop(&mut self) {
        self.request_stop();
    }
}

/// Removes this process's socket folder if nothing is left in it (at exit).
pub(crate) fn remove_runtime_dir() {
    let _ = std::fs::remove_dir(runtime_dir());
}

/// `$XDG_RUNTIME_DIR/strait-PID`, else `TMPDIR/strait-PID`: this process's sockets.
fn runtime_dir() -> PathBuf {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    base.join(format!("strait-{}", std::process::id()))
}

fn supervise(spec: &Spec, socket: &Path, shared: &Shared) {
    let mut backoff = FIRST_BACKOFF;
    if let Some(dir) = socket.parent() {
        if let Err(e) = create_private_dir(dir) {
            log::error!("plugin {}: cannot create {}: {e}", spec.name, dir.display());
        }
    }
    while !shared.stop.load(Ordering::SeqCst) {
        let _ = std::fs::remove_file(socket);
        let started = Instant::now();
        match spawn(spec, socket) {
            Ok(mut child) => {
                shared.pid.store(child.id(), Ordering::SeqCst);
                shared.starts.fetch_add(1, Ordering::SeqCst);
                log::info!(
                    "plugin {}: started (pid {}, socket {})",
                    spec.name,
                    child.id(),
                    socket.display()
                );
                if let Some(stderr) = child.stderr.take() {
                    forward_lines(&spec.name, stderr);
                }
                if let Some(stdout) = child.stdout.take() {
                    forward_lines(&spec.name, stdout);
                }
                let status = loop {
                    match child.try_wait() {
                        Ok(Some(status)) => break Some(status),
                        Ok(None) => {}
                        Err(_) => break None,
                    }
                    if shared.sleep(Duration::from_millis(50)) {
                        terminate(&spec.name, &mut child);
                        shared.pid.store(0, Ordering::SeqCst);
                        let _ = std::fs::remove_file(socket);
                        return;
                    }
                };
                shared.pid.store(0, Ordering::SeqCst);
                if started.elapsed() >= STABLE {
                    backoff = FIRST_BACKOFF;
                }
                let how = status.map_or("ended".to_string(), |s| format!("exited ({s})"));
                log::warn!("plugin {}: {how}; restarting in {backoff:?}", spec.name);
            }
            Err(e) => log::warn!(
                "plugin {}: cannot run {:?}: {e}; trying again in {backoff:?}",
                spec.name,
                spec.argv[0]
            ),
        }
        if shared.sleep(backoff) {
            break;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    let _ = std::fs::remove_file(socket);
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

fn spawn(spec: &Spec, socket: &Path) -> std::io::Result<Child> {
    let mut cmd = Command::new(&spec.argv[0]);
    cmd.args(&spec.argv[1..])
        .env("STRAIT_PLUGIN_SOCKET", socket)
        .env("STRAIT_PLUGIN_NAME", &spec.name)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = &spec.dir {
        cmd.current_dir(dir);
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl(2) only, which is async-signal-safe, between fork and exec. The child
        // gets SIGTERM if this supervising thread ends without stopping it (strait killed).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    cmd.spawn()
}

/// Each line the program writes goes to strait's log, prefixed with the plugin's name.
fn forward_lines(name: &str, from: impl std::io::Read + Send + 'static) {
    let name = name.to_string();
    let _ = std::thread::Builder::new()
        .name(format!("plugin {name} output"))
        .spawn(move || {
            for line in BufReader::new(from).lines() {
                match line {
                    Ok(line) => log::info!("plugin {name}: {line}"),
                    Err(_) => break,
                }
            }
        });
}

/// TERM, then KILL if still running after [`STOP_GRACE`].
fn terminate(name: &str, child: &mut Child) {
    // SAFETY: kill(2) on our own child, which has not been reaped (so the pid is still ours).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            log::info!("plugin {name}: stopped");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    log::warn!("plugin {name}: still running {STOP_GRACE:?} after TERM; killing it");
    let _ = child.kill();
    let _ = child.wait();
}
