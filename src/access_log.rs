//! The access log: one JSON object per line (or, with `access_log_format: combined`, Apache's
//! combined format, see `combined.rs`), written off the request path.
//!
//! Requests hand their [`Entry`] to a bounded queue and move on; a dedicated thread formats and
//! writes. When the queue is full the entry is dropped and counted
//! (`strait_access_log_dropped_total`) rather than making a request wait on the disk. The
//! writer flushes whenever the queue runs empty, then rests for [`BATCH_PAUSE`] before it
//! looks again, so a line is on disk within a few milliseconds of the response. Without the
//! rest the writer would sleep on an empty queue and every request would wake it: three
//! context switches per request, a quarter of strait's CPU per request under load. SIGUSR1
//! reopens the file (logrotate's `postrotate`); `-` writes to stdout.
//!
//! Line fields: `time` (RFC 3339, UTC, milliseconds, when the request ended), `request_id`,
//! `trace_id` (the W3C trace id as 32 hex digits, see docs/tracing.md), `client` (IP), `method`, `host`, `path`, `query` (or null), `status` (0: no response was
//! sent), `bytes_in` / `bytes_out` (request / response body bytes), `duration_ms`, `domain` and
//! `route` (configured names, null when nothing matched), `upstream` (the backend URL of the
//! last attempt, or null), `upstream_duration_ms` (from choosing that backend to its response
//! head, or null), `attempts`, `cache` (`hit`, `miss`, `stale`, `bypass` or null),
//! `user_agent`, `error` (or null).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use http::{HeaderValue, Method, Uri};
use log::{error, info, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::{AccessLog, AccessLogFormat};

mod combined;
pub(crate) mod files;
mod line;
pub(crate) use combined::write_combined;
pub(crate) use line::write_line;

/// Entries waiting for the writer; beyond this they are dropped.
pub(crate) const QUEUE: usize = 64 * 1024;
/// The writer's rest after each drained batch. At 100 000 requests/s this lets 500 lines
/// gather, far below [`QUEUE`].
pub(crate) const BATCH_PAUSE: Duration = Duration::from_millis(5);

/// One request, as the `logging` phase hands it over. Fields hold what the request already
/// had (reference-counted header values, the address, durations); turning them into text is
/// the writer thread's work.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// When the request ended; written first, as `time`.
    pub at: SystemTime,
    pub request_id: String,
    /// The W3C trace id (`crate::trace`), hex in the JSON line; not in the combined format.
    pub trace_id: Option<[u8; 16]>,
    pub client: Option<IpAddr>,
    pub method: Method,
    pub host: String,
    /// Path and query as received.
    pub uri: Uri,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration: Duration,
    pub domain: Option<String>,
    pub route: Option<String>,
    pub upstream: Option<String>,
    pub upstream_duration: Option<Duration>,
    pub attempts: u32,
    pub cache: Option<&'static str>,
    pub user_agent: Option<HeaderValue>,
    /// For the combined format's `"%{Referer}i"` and `"%r"` (the JSON line has neither).
    pub referer: Option<HeaderValue>,
    pub version: http::Version,
    pub error: Option<&'static str>,
    /// The client's verified certificate (`client_auth`); the JSON line's `tls_client`.
    pub tls_client: Option<crate::tls::ClientCert>,
}

enum Msg {
    /// An entry, in this format rather than the writer's when given (a domain's or route's
    /// `access_log_format`).
    Entry(Box<Entry>, Option<AccessLogFormat>),
    /// A line that is not a request's (`crate::l4`'s connections): its time and the rest of
    /// its JSON object. Written as JSON whatever the log's format.
    Other(SystemTime, Vec<u8>),
    /// Wakes the writer to look at the reopen flag.
    Reopen,
}

struct Logger {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    reopen: AtomicBool,
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
}

impl Logger {
    /// Asks the writer to reopen the file before its next line (what SIGUSR1 does).
    fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Release);
        // When the queue is full the writer is busy and sees the flag after this batch.
        let _ = self.tx.try_send(Msg::Reopen);
    }
}

/// One server's access log (kept in its `State`): empty until [`AccessLogger::install`]
/// finds one configured.
#[derive(Default)]
pub(crate) struct AccessLogger {
    current: ArcSwapOption<Logger>,
}

impl AccessLogger {
    /// Whether an access log is configured (so the caller can skip building entries).
    pub(crate) fn enabled(&self) -> bool {
        self.current.load().is_some()
    }

    /// Queues one entry; never blocks. Returns false when it was dropped.
    pub(crate) fn send(&self, entry: Entry) -> bool {
        self.send_as(entry, None)
    }

    /// [`AccessLogger::send`], written in `format` when given.
    pub(crate) fn send_as(&self, entry: Entry, format: Option<AccessLogFormat>) -> bool {
        self.queue(|| Msg::Entry(Box::new(entry), format))
    }

    /// Queues a line that is not a request's: `fields` is a JSON object's members without
    /// braces' opening (`"kind":"tcp",...}`); `time` goes first. Never blocks.
    pub(crate) fn send_other(&self, at: SystemTime, fields: Vec<u8>) -> bool {
        self.queue(|| Msg::Other(at, fields))
    }

    /// Queues the message `make` builds (only when a log is configured) and counts it as
    /// queued or dropped. Never blocks.
    fn queue(&self, make: impl FnOnce() -> Msg) -> bool {
        let guard = self.current.load();
        let Some(logger) = guard.as_ref() else {
            return false;
        };
        match logger.tx.try_send(make()) {
            Ok(()) => {
                logger.shared.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                logger.shared.dropped.fetch_add(1, Ordering::Relaxed);
                crate::metrics::ACCESS_LOG_DROPPED.inc();
                false
            }
        }
    }

    /// Waits (up to `timeout`) until every queued line is written and flushed; for exit paths.
    pub(crate) fn flush(&self, timeout: Duration) {
        let Some(logger) = self.current.load_full() else {
            return;
        };
        let deadline = Instant::now() + timeout;
        while logger.shared.written.load(Ordering::Acquire)
            < logger.shared.queued.load(Ordering::Acquire)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Lines dropped so far because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.current
            .load()
            .as_ref()
            .map_or(0, |l| l.shared.dropped.load(Ordering::Relaxed))
    }

    /// Opens the log (so a bad path fails at start with a clear message), installs the queue
    /// and returns the background service that runs the writer and listens for SIGUSR1.
    /// `None` when no access log is configured.
    pub(crate) fn install(
        &self,
        config: Option<&AccessLog>,
        format: AccessLogFormat,
    ) -> io::Result<Option<AccessLogService>> {
        let Some(config) = config else {
            self.current.store(None);
            return Ok(None);
        };
        let sink = match config {
            AccessLog::Stdout => Sink::Stdout(io::stdout()),
            AccessLog::File(path) => Sink::File {
                path: path.clone(),
                out: open(path)?,
            },
        };
        crate::metrics::init();
        let (tx, rx) = sync_channel(QUEUE);
        let shared = Arc::new(Shared::default());
        let logger = Arc::new(Logger {
            tx,
            shared: shared.clone(),
        });
        self.current.store(Some(logger.clone()));
        Ok(Some(AccessLogService {
            pending: Mutex::new(Some(Pending { rx, sink, format })),
            shared,
            logger,
        }))
    }
}

enum Sink {
    Stdout(io::Stdout),
    File { path: PathBuf, out: BufWriter<File> },
}

fn open(path: &Path) -> io::Result<BufWriter<File>> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    Ok(BufWriter::with_capacity(64 * 1024, file))
}

impl Sink {
    fn out(&mut self) -> &mut dyn Write {
        match self {
            Sink::Stdout(s) => s,
            Sink::File { out, .. } => out,
        }
    }

    fn reopen(&mut self) {
        if let Sink::File { path, out } = self {
            let _ = out.flush();
            match open(path) {
                Ok(fresh) => {
                    *out = fresh;
                    info!("access log reopened: {}", path.display());
                }
                Err(e) => error!(
                    "cannot reopen the access log {}: {e}; still writing to the old file",
                    path.display()
                ),
            }
        }
    }
}

/// The writer's half, moved into its thread when the service starts (after any daemon fork:
/// threads started before a fork do not survive it).
struct Pending {
    rx: Receiver<Msg>,
    sink: Sink,
    format: AccessLogFormat,
}

pub(crate) struct AccessLogService {
    pending: Mutex<Option<Pending>>,
    shared: Arc<Shared>,
    logger: Arc<Logger>,
}

#[async_trait]
impl BackgroundService for AccessLogService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(Pending { rx, sink, format }) = pending {
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name("strait-access-log".into())
                .spawn(move || write_loop(rx, sink, format, &shared));
            if let Err(e) = spawned {
                error!("cannot start the access log writer: {e}");
            }
        }
        let mut usr1 =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()) {
                Ok(s) => Some(s),
                Err(e) => {
                    warn!("cannot listen for SIGUSR1 (access log reopen): {e}");
                    None
                }
            };
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(()) = async { match usr1.as_mut() { Some(s) => s.recv().await, None => None } } => {
                    info!("SIGUSR1: reopening the access log");
                    self.logger.reopen();
                }
            }
        }
    }
}

fn write_loop(rx: Receiver<Msg>, mut sink: Sink, format: AccessLogFormat, shared: &Shared) {
    let mut buf = Vec::with_capacity(1024);
    let mut clock = line::Clock::default();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        let mut batch = 0u64;
        while let Some(msg) = next.take() {
            if shared.reopen.swap(false, Ordering::AcqRel) {
                sink.reopen();
            }
            let written = match msg {
                Msg::Entry(entry, own) => {
                    buf.clear();
                    match own.unwrap_or(format) {
                        AccessLogFormat::Json => write_line(&mut buf, &entry, &mut clock),
                        AccessLogFormat::Combined => write_combined(&mut buf, &entry),
                    }
                    true
                }
                Msg::Other(at, fields) => {
                    buf.clear();
                    line::write_other(&mut buf, at, &fields, &mut clock);
                    true
                }
                Msg::Reopen => false,
            };
            if written {
                if let Err(e) = sink.out().write_all(&buf) {
                    warn_rarely(&e);
                }
                batch += 1;
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = sink.out().flush() {
            warn_rarely(&e);
        }
        if shared.reopen.swap(false, Ordering::AcqRel) {
            sink.reopen();
        }
        shared.written.fetch_add(batch, Ordering::Release);
        std::thread::sleep(BATCH_PAUSE);
    }
}

/// A full disk would otherwise log one warning per request.
fn warn_rarely(e: &io::Error) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
        *last = Some(Instant::now());
        warn!("cannot write the access log: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> Entry {
        Entry {
            at: std::time::UNIX_EPOCH,
            request_id: "r".into(),
            trace_id: None,
            client: None,
            method: Method::GET,
            host: "h".into(),
            uri: path.parse().unwrap(),
            status: 200,
            bytes_in: 0,
            bytes_out: 0,
            duration: Duration::ZERO,
            domain: None,
            route: None,
            upstream: None,
            upstream_duration: None,
            attempts: 0,
            cache: None,
            user_agent: None,
            referer: None,
            version: http::Version::HTTP_11,
            error: None,
            tls_client: None,
        }
    }

    /// With the writer not started, the queue
    /// fills: further entries are dropped and counted at once instead of blocking; once the
    /// writer runs, everything queued reaches the file.
    #[test]
    fn full_queue_drops_instead_of_blocking_then_drains() {
        let dir = std::env::temp_dir().join(format!("strait-access-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let _ = std::fs::remove_file(&path);
        let log = AccessLogger::default();
        assert!(!log.enabled());
        let service = log
            .install(Some(&AccessLog::File(path.clone())), AccessLogFormat::Json)
            .unwrap()
            .expect("a service");
        assert!(log.enabled());
        for i in 0..QUEUE {
            assert!(log.send(entry(&format!("/{i}"))), "entry {i} dropped early");
        }
        let t = Instant::now();
        for _ in 0..3 {
            assert!(!log.send(entry("/over")));
        }
        assert!(t.elapsed() < Duration::from_millis(100));
        assert_eq!(log.dropped(), 3);
        let Pending { rx, sink, format } = service.pending.lock().unwrap().take().unwrap();
        let shared = service.shared.clone();
        std::thread::spawn(move || write_loop(rx, sink, format, &shared));
        log.flush(Duration::from_secs(10));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), QUEUE);
        assert!(text
            .lines()
            .last()
            .unwrap()
            .contains(&format!("\"/{}\"", QUEUE - 1)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
