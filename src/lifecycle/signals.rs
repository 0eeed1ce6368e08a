//! strait's answer to SIGTERM/SIGINT/SIGQUIT. Pingora stops accepting the instant SIGTERM
//! arrives, which drops traffic from a load balancer that has not yet noticed; strait first
//! turns /ready to 503 and keeps serving for `drain_delay`, then lets Pingora shut down.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::{error, info};
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

use crate::state::State;

pub(crate) struct StraitSignals {
    pub state: Arc<State>,
    pub drain_delay: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for StraitSignals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut quit), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            error!("cannot install signal handlers; stopping");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = quit.recv() => {
                info!("SIGQUIT: handing listening sockets to the new instance, then draining");
                self.state.set_draining();
                super::notify::set_handing_over();
                ShutdownSignal::GracefulUpgrade
            }
            _ = int.recv() => {
                super::notify::notify("STOPPING=1");
                ShutdownSignal::FastShutdown
            }
            _ = term.recv() => {
                // Not on SIGQUIT: there the new process takes over as systemd's main process.
                super::notify::notify("STOPPING=1\nSTATUS=draining");
                self.state.set_draining();
                info!("SIGTERM: /ready now answers 503; still accepting for {:?}", self.drain_delay);
                tokio::select! {
                    _ = tokio::time::sleep(self.drain_delay) => {
                        info!("drain delay over: no longer accepting; finishing in-flight requests");
                        ShutdownSignal::GracefulTerminate
                    }
                    _ = int.recv() => ShutdownSignal::FastShutdown,
                }
            }
        }
    }
}
