//! Console logging and the error log. The console filter is the first set of `LOG_LEVEL`,
//! `STRAIT_LOG`, `RUST_LOG`, the `--log-level` flag and `logging.level` (see [`levels`]); each
//! takes env_logger's filter syntax, e.g. `info,pingora=warn`.
//!
//! Pingora's own INFO lines are start-up and shutdown chatter about its internal services
//! ("Bootstrap starting", "BG Bootstrap Service ..."); they are logged at DEBUG unless the
//! filter names a `pingora` module, so the console at INFO shows strait's lines: one per
//! listener, one with the domain count, one "ready".
//!
//! One Pingora message is reworded on the way: during every binary upgrade the new process
//! logs `ERROR No incoming socket transfer, sleep 1s and try again` while the old one has not
//! yet received SIGQUIT. That wait is the normal sequence, not an error, and operators should
//! not be paged for it; it becomes an INFO line saying what is awaited. Should Pingora change
//! its wording, its own line simply shows again.

pub mod error_log;
pub mod levels;

use std::path::PathBuf;

use log::{Level, LevelFilter, Log, Metadata, Record};

pub(crate) use error_log::ErrorLogService;

const TRANSFER_TARGET: &str = "pingora_core::server::transfer_fd";
const TRANSFER_WAIT: &str = "No incoming socket transfer";

/// What the `strait` command sets logging up from.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `logging.level`.
    pub level: LevelFilter,
    /// `--log-level`.
    pub flag: Option<String>,
    /// `logging.error_log`.
    pub error_log: Option<PathBuf>,
    /// `logging.error_log_level`.
    pub error_log_level: LevelFilter,
    /// Running under `-d`: stderr is the error log (or /dev/null), see [`error_log`].
    pub daemon: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: LevelFilter::Info,
            flag: None,
            error_log: None,
            error_log_level: LevelFilter::Warn,
            daemon: false,
        }
    }
}

/// Installs strait's console logger at `level`, environment variables first (what the demo
/// does). Embedders may keep their own logger instead. A bad filter in the environment is
/// reported on stderr and the level is used.
pub fn init(level: LevelFilter) {
    let settings = LogSettings {
        level,
        ..LogSettings::default()
    };
    if let Err(e) = init_with(&settings) {
        eprintln!("strait: {e}; logging at {level}");
        let _ = install(Console::new(
            levels::parse(level.as_str()).unwrap_or_else(|_| env_filter::Builder::new().build()),
            true,
            LevelFilter::Off,
            None,
            false,
        ));
    }
}

/// Installs strait's logger from `settings`. Errors: a filter that does not parse (naming the
/// variable or flag it came from), or an error log that cannot be opened.
pub fn init_with(settings: &LogSettings) -> Result<levels::Chosen, String> {
    let chosen = levels::choose(
        |v| std::env::var(v).ok(),
        settings.flag.as_deref(),
        settings.level,
    );
    let filter = levels::parse(&chosen.spec).map_err(|e| format!("{}: {e}", chosen.source))?;
    let demote = !levels::mentions_pingora(&chosen.spec);
    let mut file = None;
    let mut error_level = LevelFilter::Off;
    if let Some(path) = &settings.error_log {
        error_level = settings.error_log_level;
        if settings.daemon {
            error_log::install_stderr(path);
        } else {
            error_log::install_file(path)
                .map_err(|e| format!("cannot open the error log {}: {e}", path.display()))?;
            file = Some(formatter(env_logger::Target::Pipe(Box::new(
                error_log::Writer,
            ))));
        }
    }
    // Already installed (a second init, or an embedder's own logger): theirs stays.
    let _ = install(Console::new(
        filter,
        demote,
        error_level,
        file,
        settings.daemon,
    ));
    Ok(chosen)
}

fn install(console: Console) -> Result<(), log::SetLoggerError> {
    let max = console.filter.filter().max(console.error_level);
    // A second init (tests, library users with their own logger) is not an error.
    log::set_boxed_logger(Box::new(console)).map(|()| log::set_max_level(max))
}

/// env_logger as a formatter only: every filter decision is [`Console`]'s.
fn formatter(target: env_logger::Target) -> env_logger::Logger {
    env_logger::Builder::new()
        .filter_level(LevelFilter::Trace)
        .format_timestamp_millis()
        .target(target)
        .build()
}

struct Console {
    filter: env_filter::Filter,
    /// Pingora's INFO lines become DEBUG.
    demote: bool,
    /// Lines at or above this also go to the error log.
    error_level: LevelFilter,
    console: env_logger::Logger,
    /// The error log's own logger (foreground only).
    file: Option<env_logger::Logger>,
    /// stderr is the error log: one write per line, whichever filter let it through.
    daemon: bool,
}

impl Console {
    fn new(
        filter: env_filter::Filter,
        demote: bool,
        error_level: LevelFilter,
        file: Option<env_logger::Logger>,
        daemon: bool,
    ) -> Console {
        Console {
            filter,
            demote,
            error_level,
            console: formatter(env_logger::Target::Stderr),
            file,
            daemon,
        }
    }

    fn emit(&self, record: &Record<'_>) {
        let to_console = self.filter.matches(record);
        let to_error = record.level() <= self.error_level;
        if self.daemon {
            if to_console || to_error {
                self.console.log(record);
            }
            return;
        }
        if to_console {
            self.console.log(record);
        }
        if let (true, Some(file)) = (to_error, &self.file) {
            file.log(record);
        }
    }
}

impl Log for Console {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata) || metadata.level() <= self.error_level
    }

    fn log(&self, record: &Record<'_>) {
        if is_upgrade_wait(record) {
            self.emit(
                &Record::builder()
                    .args(format_args!(
                        "upgrade: waiting for the running instance to hand over its listening \
                         sockets (it does when it receives SIGQUIT); retrying every second"
                    ))
                    .level(Level::Info)
                    .target("strait::upgrade")
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            );
            return;
        }
        if self.demote && record.level() == Level::Info && record.target().starts_with("pingora") {
            self.emit(
                &Record::builder()
                    .args(*record.args())
                    .level(Level::Debug)
                    .target(record.target())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            );
            return;
        }
        self.emit(record);
    }

    fn flush(&self) {
        self.console.flush();
        if let Some(file) = &self.file {
            file.flush();
        }
    }
}

fn is_upgrade_wait(record: &Record<'_>) -> bool {
    record.level() == Level::Error
        && record.target() == TRANSFER_TARGET
        && record.args().to_string().starts_with(TRANSFER_WAIT)
}
