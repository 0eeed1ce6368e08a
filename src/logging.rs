//! Console logging. The level comes from the config unless `STRAIT_LOG` or `RUST_LOG` says
//! otherwise (both take env_logger filter syntax, e.g. `strait=debug,pingora=warn`).
//!
//! One Pingora message is reworded on the way: during every binary upgrade the new process
//! logs `ERROR No incoming socket transfer, sleep 1s and try again` while the old one has not
//! yet received SIGQUIT. That wait is the normal sequence, not an error, and operators should
//! not be paged for it; it becomes an INFO line saying what is awaited. Should Pingora change
//! its wording, its own line simply shows again.

use log::{Level, LevelFilter, Log, Metadata, Record};

const TRANSFER_TARGET: &str = "pingora_core::server::transfer_fd";
const TRANSFER_WAIT: &str = "No incoming socket transfer";

/// Installs strait's console logger at `level` (what the `strait` command does). Embedders may keep their own logger instead.
pub fn init(level: LevelFilter) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level);
    let spec = std::env::var("STRAIT_LOG").or_else(|_| std::env::var("RUST_LOG"));
    if let Ok(spec) = spec {
        builder.parse_filters(&spec);
    }
    builder.format_timestamp_millis();
    let inner = builder.build();
    let max = inner.filter();
    // A second init (tests, library users with their own logger) is not an error.
    if log::set_boxed_logger(Box::new(Console { inner })).is_ok() {
        log::set_max_level(max);
    }
}

struct Console {
    inner: env_logger::Logger,
}

impl Log for Console {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if is_upgrade_wait(record) {
            let reworded = Record::builder()
                .args(format_args!(
                    "upgrade: waiting for the running instance to hand over its listening \
                     sockets (it does when it receives SIGQUIT); retrying every second"
                ))
                .level(Level::Info)
                .target(record.target())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build();
            if self.inner.enabled(reworded.metadata()) {
                self.inner.log(&reworded);
            }
            return;
        }
        self.inner.log(record);
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

fn is_upgrade_wait(record: &Record<'_>) -> bool {
    record.level() == Level::Error
        && record.target() == TRANSFER_TARGET
        && record.args().to_string().starts_with(TRANSFER_WAIT)
}
