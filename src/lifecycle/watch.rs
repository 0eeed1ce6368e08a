//! `server.watch: true` / `--watch`: reload when the config file changes, through the same
//! all-or-nothing path as SIGHUP.
//!
//! inotify (through libc, already a dependency; no watcher crate) watches the file's
//! directory, not the file: editors save by writing a temporary file and renaming it over the
//! old one, and Kubernetes swaps a `..data` symlink, and a watch on the old inode would see
//! neither. Any event in the directory counts; events are debounced, and the file's content
//! decides: a reload happens only when it differs from what was last applied, and a broken
//! file's errors are logged once per distinct content, not once per save.
//!
//! Files named by `include` are watched too (each pattern's folder, and the files it matches
//! now, names and content, in the digest, so adding one to `conf.d/` reloads).
//!
//! The certificate, key and CA files the config names (listeners' `tls`, `upstream_tls`) and
//! the `cert_dir` folders are watched the same way: their folders are watched, and their
//! content counts with the config file's, so a rotated certificate reloads (`crate::tls`).

use std::collections::hash_map::DefaultHasher;
use std::ffi::CString;
use std::hash::{Hash, Hasher};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use log::{debug, error, info};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::reload::{log_outcome, reload};
use crate::state::State;

/// Quiet time after the last event before the file is read: a save is several events.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// How often the watcher thread looks at its stop flag.
const STOP_POLL_MS: i32 = 500;

pub(crate) struct WatchService {
    pub state: Arc<State>,
}

/// The config file's content and that of every TLS file and `cert_dir` the running config
/// names, as one digest; `None` while the config file cannot be read (mid-rename).
fn content(state: &State, path: &Path) -> Option<u64> {
    let config = std::fs::read(path).ok()?;
    let mut h = DefaultHasher::new();
    config.hash(&mut h);
    let snapshot = state.snapshot();
    for pattern in &snapshot.config.include {
        for file in crate::config::included_files(pattern) {
            file.hash(&mut h);
            std::fs::read(&file).ok().hash(&mut h);
        }
    }
    let (files, dirs) = crate::tls::files(&snapshot.config);
    for file in files {
        file.hash(&mut h);
        std::fs::read(&file).ok().hash(&mut h);
    }
    for dir in dirs {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        entries.sort();
        for entry in entries {
            entry.hash(&mut h);
            std::fs::read(&entry).ok().hash(&mut h);
        }
    }
    Some(h.finish())
}

/// The folders to watch: the config file's, each include pattern's, each TLS file's, and each
/// `cert_dir`.
fn folders(state: &State, path: &Path) -> Vec<PathBuf> {
    let parent = |p: &Path| match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let snapshot = state.snapshot();
    let (files, dirs) = crate::tls::files(&snapshot.config);
    let mut out: Vec<PathBuf> = std::iter::once(parent(path))
        .chain(snapshot.config.include.iter().map(|p| parent(p)))
        .chain(files.iter().map(|f| parent(f)))
        .chain(dirs)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[async_trait]
impl BackgroundService for WatchService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(path) = self.state.config_path().map(Path::to_path_buf) else {
            return;
        };
        let (tx, mut rx) = unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let watched = Arc::new(Mutex::new(folders(&self.state, &path)));
        let thread_watched = watched.clone();
        let spawned = std::thread::Builder::new()
            .name("strait-watch".into())
            .spawn(move || watch_loop(&thread_watched, &tx, &thread_stop));
        if let Err(e) = spawned {
            error!("cannot start the config watcher: {e}");
            return;
        }
        info!("watching {} for changes", path.display());
        let mut applied = content(&self.state, &path);
        let mut rejected: Option<u64> = None;
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                event = rx.recv() => if event.is_none() { break },
            }
            // Let the save finish: wait until the directory has been quiet for DEBOUNCE.
            loop {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => break,
                    Err(_) => break,
                }
            }
            let now = content(&self.state, &path);
            if now.is_none() || now == applied {
                // Mid-rename, or untouched content (a `touch`, another file in the folder).
                continue;
            }
            if now == rejected {
                // One line instead of the whole list again.
                info!(
                    "{} saved again with the errors already reported; the running config stays",
                    path.display()
                );
                continue;
            }
            info!("{} changed: reloading", path.display());
            let result = reload(&self.state).await;
            match &result {
                Ok(_) => {
                    // The new config may name other files: watch them, and count them in.
                    applied = content(&self.state, &path);
                    rejected = None;
                    *watched.lock().unwrap_or_else(|e| e.into_inner()) =
                        folders(&self.state, &path);
                }
                Err(_) => rejected = now,
            }
            log_outcome(&result);
        }
        stop.store(true, Ordering::Relaxed);
    }
}

/// Blocks on inotify for the folders in `watched` (looked at again between polls, so folders
/// added by a reload are watched too) and sends one message per batch of events, until `stop`
/// is set or the receiver is gone.
fn watch_loop(watched: &Mutex<Vec<PathBuf>>, tx: &UnboundedSender<()>, stop: &AtomicBool) {
    // SAFETY: plain syscall; the fd is closed at the end of this function.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    if fd < 0 {
        error!(
            "cannot watch the config file: inotify: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    let mask = libc::IN_CLOSE_WRITE
        | libc::IN_MOVED_TO
        | libc::IN_MOVED_FROM
        | libc::IN_CREATE
        | libc::IN_DELETE
        | libc::IN_MODIFY
        | libc::IN_ATTRIB;
    let mut added: Vec<PathBuf> = Vec::new();
    let add_new = |added: &mut Vec<PathBuf>| {
        let wanted = watched.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for dir in wanted {
            if added.contains(&dir) {
                continue;
            }
            let Ok(dir_c) = CString::new(dir.as_os_str().as_bytes()) else {
                error!("cannot watch {}: the path has a NUL byte", dir.display());
                added.push(dir);
                continue;
            };
            // SAFETY: a valid inotify fd and a NUL-terminated path.
            if unsafe { libc::inotify_add_watch(fd, dir_c.as_ptr(), mask) } < 0 {
                error!(
                    "cannot watch {}: {}",
                    dir.display(),
                    std::io::Error::last_os_error()
                );
            }
            added.push(dir);
        }
    };
    add_new(&mut added);
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, STOP_POLL_MS) };
        add_new(&mut added);
        if ready <= 0 {
            continue;
        }
        // Drain everything pending; what happened does not matter, only that something did.
        let mut any = false;
        loop {
            // SAFETY: reading into a local buffer of its length from our nonblocking fd.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            any = true;
        }
        if any && tx.send(()).is_err() {
            break;
        }
    }
    debug!("config watcher stopped");
    // SAFETY: closing the fd opened above, once.
    unsafe { libc::close(fd) };
}
