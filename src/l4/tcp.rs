//! The service of `tcp` listeners: every accepted connection is relayed to the listener's
//! pool (`session.rs`); nothing is parsed.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

use super::session::{self, Conn};
use crate::state::State;

pub(crate) struct TcpRelay {
    state: Arc<State>,
}

impl TcpRelay {
    pub(crate) fn new(state: Arc<State>) -> Self {
        TcpRelay { state }
    }
}

#[async_trait]
impl ServerApp for TcpRelay {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let digest = stream.get_socket_digest();
        let local = digest
            .as_ref()
            .and_then(|d| d.local_addr().and_then(|a| a.as_inet()).copied());
        let client = digest
            .as_ref()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied());
        // The snapshot of this moment: a reload or an admin change applies to new connections.
        let snapshot = self.state.snapshot();
        let index = local.and_then(|l| snapshot.listener_of(l))?;
        let listener = snapshot.config.listeners.get(index)?;
        let tcp = listener.tcp.clone()?;
        let pool = snapshot.pools.get(tcp.pool)?.clone();
        let conn = Conn {
            kind: "tcp",
            listener: listener
                .name
                .clone()
                .unwrap_or_else(|| listener.addr.to_string()),
            pool,
            opts: tcp,
            client,
            local,
            server_name: None,
        };
        drop(snapshot);
        session::serve(&self.state, conn, stream, &[], shutdown).await;
        None
    }
}
