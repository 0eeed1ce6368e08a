//! Pingora sleeps the whole grace period after a graceful shutdown starts, even when nothing
//! is in flight. This service ends the process as soon as the last request has finished, and
//! leaves the grace period as the upper bound it was meant to be.

use std::time::Duration;

use async_trait::async_trait;
use log::info;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use std::sync::Arc;

use crate::state::State;

/// Requests are counted from their first phase; a connection whose request head was just
/// read is not yet counted, so zero must hold for a moment before it is believed.
const QUIET_FOR: Duration = Duration::from_millis(200);
const POLL: Duration = Duration::from_millis(10);

pub(crate) struct ExitWhenIdle(pub Arc<State>);

#[async_trait]
impl BackgroundService for ExitWhenIdle {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
        let began = std::time::Instant::now();
        let mut quiet = Duration::ZERO;
        loop {
            tokio::time::sleep(POLL).await;
            if self.0.in_flight.count() == 0 {
                quiet += POLL;
                if quiet >= QUIET_FOR && began.elapsed() >= super::notify::exit_margin() {
                    break;
                }
            } else {
                quiet = Duration::ZERO;
            }
        }
        info!("all in-flight requests finished; exiting");
        before_exit(&self.0);
        std::process::exit(0);
    }
}

/// Flushes what must not be lost at exit (stdout/stderr; writers may add theirs).
pub(crate) fn before_exit(state: &State) {
    use std::io::Write;
    // Lines of the last requests may still be queued for the access log writer.
    state.access_log.flush(Duration::from_millis(500));
    // `command` plugins: TERM, then KILL after 5 s (each process stops its own).
    state.snapshot().plugins.stop_all();
    crate::access_log::files::flush_all(Duration::from_millis(500));
    log::logger().flush();
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}
