//! Domain and route access logs (`access_log: FILE` on a domain or route). Each distinct file
//! has one writer, shared by every domain and route that names it, with its own bounded queue
//! (drops counted in `strait_access_log_dropped_total` like the global log's) and its own
//! SIGUSR1 reopen. Writers live as long as the process: a reload that names the same file
//! reuses its writer, so nothing is lost across a reload.
//!
//! Files are opened when a snapshot is built (start, reload, and `strait -t`, which thus
//! checks the paths as nginx -t does); the writer thread starts with the first line, which is
//! always written in the serving process (after any daemon fork).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};

use pingora::services::background::BackgroundService;

use super::{AccessLogService, AccessLogger, Entry};
use crate::config::{AccessLog, AccessLogFormat};

/// One file's writer.
pub(crate) struct FileLog {
    logger: AccessLogger,
    service: Mutex<Option<AccessLogService>>,
    started: Once,
    /// Kept so the service's shutdown watch never fires: the writer serves every snapshot.
    _keep: tokio::sync::watch::Sender<bool>,
    watch: tokio::sync::watch::Receiver<bool>,
}

static FILES: Mutex<Option<HashMap<PathBuf, Arc<FileLog>>>> = Mutex::new(None);

/// The writer for `path`, opening the file the first time it is named.
pub(crate) fn open(path: &Path, format: AccessLogFormat) -> io::Result<Arc<FileLog>> {
    let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
    let files = files.get_or_insert_with(HashMap::new);
    if let Some(log) = files.get(path) {
        return Ok(log.clone());
    }
    let logger = AccessLogger::default();
    let service = logger.install(Some(&AccessLog::File(path.to_path_buf())), format)?;
    let (keep, watch) = tokio::sync::watch::channel(false);
    let log = Arc::new(FileLog {
        logger,
        service: Mutex::new(service),
        started: Once::new(),
        _keep: keep,
        watch,
    });
    files.insert(path.to_path_buf(), log.clone());
    Ok(log)
}

impl FileLog {
    /// Queues one entry; never blocks. Starts the writer (and its SIGUSR1 listener) on the
    /// runtime of the first request that logs here.
    /// `format`: the domain's or route's `access_log_format`, else the file's.
    pub(crate) fn send(&self, entry: Entry, format: Option<AccessLogFormat>) {
        self.started.call_once(|| {
            let service = self
                .service
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let (Some(service), Ok(rt)) = (service, tokio::runtime::Handle::try_current()) {
                let watch = self.watch.clone();
                rt.spawn(async move { service.start(watch).await });
            }
        });
        self.logger.send_as(entry, format);
    }

    /// Waits (bounded) until every queued line is written; for exit paths.
    pub(crate) fn flush(&self, timeout: std::time::Duration) {
        self.logger.flush(timeout);
    }
}

/// Flushes every domain and route log (exit paths).
pub(crate) fn flush_all(timeout: std::time::Duration) {
    let logs: Vec<Arc<FileLog>> = FILES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|f| f.values().cloned().collect())
        .unwrap_or_default();
    for log in logs {
        log.flush(timeout);
    }
}
