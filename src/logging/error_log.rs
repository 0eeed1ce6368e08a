//! The error log (`logging.error_log`): a file that gets log lines at `error_log_level` and
//! above, reopened on SIGUSR1 like the access log (logrotate's `postrotate`).
//!
//! In the foreground it is a second destination beside the console. Under `-d` it is the
//! daemon's stderr (Pingora's daemonize points descriptor 2 at it), so every console line,
//! and anything else written to stderr such as a panic message, lands in it; a reopen then
//! `dup2`s the fresh file over descriptor 2.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

/// Where the error log goes in this process.
enum Mode {
    /// A file of its own, written by the logger.
    File { path: PathBuf, file: File },
    /// Descriptor 2 is the file (daemon mode).
    Stderr { path: PathBuf },
}

static CURRENT: Mutex<Option<Mode>> = Mutex::new(None);

/// Opens `path` for appending, creating it; what start-up and reopen both do.
pub fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Installs the file as a separate destination (foreground).
pub(super) fn install_file(path: &Path) -> io::Result<()> {
    let file = open(path)?;
    *lock() = Some(Mode::File {
        path: path.to_path_buf(),
        file,
    });
    Ok(())
}

/// Records that stderr is the error log (daemon mode), for reopens.
pub(super) fn install_stderr(path: &Path) {
    *lock() = Some(Mode::Stderr {
        path: path.to_path_buf(),
    });
}

fn lock() -> std::sync::MutexGuard<'static, Option<Mode>> {
    CURRENT.lock().unwrap_or_else(|e| e.into_inner())
}

/// The writer the file logger formats into.
pub(super) struct Writer;

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match lock().as_mut() {
            Some(Mode::File { file, .. }) => file.write(buf),
            // Lines for stderr go through the console logger; nothing to do here.
            _ => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match lock().as_mut() {
            Some(Mode::File { file, .. }) => file.flush(),
            _ => Ok(()),
        }
    }
}

/// Opens the configured path again (after logrotate moved the old file away). On failure the
/// old file stays in use and the reason is returned.
pub fn reopen() -> Result<Option<PathBuf>, String> {
    let mut current = lock();
    match current.as_mut() {
        None => Ok(None),
        Some(Mode::File { path, file }) => {
            let fresh = open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            *file = fresh;
            Ok(Some(path.clone()))
        }
        Some(Mode::Stderr { path }) => {
            let fresh = open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let _ = io::stderr().flush();
            // SAFETY: dup2 on two descriptors this process owns; `fresh` stays open until the
            // call returns, and descriptor 2 then refers to the same file.
            let rc = unsafe { libc::dup2(fresh.as_raw_fd(), libc::STDERR_FILENO) };
            if rc < 0 {
                return Err(format!(
                    "{}: dup2: {}",
                    path.display(),
                    io::Error::last_os_error()
                ));
            }
            Ok(Some(path.clone()))
        }
    }
}

/// Reopens the error log on SIGUSR1.
pub(crate) struct ErrorLogService;

#[async_trait]
impl BackgroundService for ErrorLogService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut usr1 = match signal(SignalKind::user_defined1()) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("cannot listen for SIGUSR1 (error log reopen): {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = usr1.recv() => match reopen() {
                    Ok(Some(path)) => log::info!("error log reopened: {}", path.display()),
                    Ok(None) => {}
                    Err(e) => log::error!("cannot reopen the error log {e}; still writing to the old file"),
                },
            }
        }
    }
}
