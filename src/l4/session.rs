//! One relayed connection from start to end, for `tcp` listeners and `pass` domains alike:
//! a backend (`connect.rs`), the PROXY header if asked for, the bytes already read from the
//! client (a passed-through ClientHello), the relay, then its metrics and access-log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pingora::server::ShutdownWatch;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::connect::{self, NoUpstream};
use super::metrics::{ACTIVE, BYTES, CONNECTIONS, NO_BACKEND};
use super::relay::{self, Close, Relayed};
use crate::balance::Pool;
use crate::config::L4;
use crate::state::State;

/// Where a relayed connection came from and where it may go.
pub(crate) struct Conn {
    /// `tcp` or `pass`: the access log's `kind`.
    pub kind: &'static str,
    /// The listener's name, or its address when it has none.
    pub listener: String,
    pub pool: Arc<Pool>,
    pub opts: L4,
    pub client: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    /// `pass`: the server name the ClientHello asked for.
    pub server_name: Option<String>,
}

/// How it went, for the log line.
enum Outcome {
    Relayed {
        backend: String,
        attempts: u32,
        relayed: Relayed,
    },
    NoUpstream(NoUpstream, u32),
}

/// Relays `client` (which has already sent `first`) to a backend of `conn.pool` until either
/// side is done; counts and logs the connection.
pub(crate) async fn serve<C>(
    state: &State,
    conn: Conn,
    client: C,
    first: &[u8],
    shutdown: &ShutdownWatch,
) where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    // A graceful shutdown waits for relays as for requests, up to the grace period.
    let _in_flight = state.in_flight.start();
    let pool_name = conn.pool.name.clone();
    ACTIVE.with_label_values(&[&pool_name]).inc();
    let outcome = relay_to_backend(state, &conn, client, first, shutdown).await;
    ACTIVE.with_label_values(&[&pool_name]).dec();
    let (backend, close) = match &outcome {
        Outcome::Relayed {
            backend, relayed, ..
        } => {
            BYTES
                .with_label_values(&[&pool_name, "in"])
                .inc_by(relayed.bytes_in);
            BYTES
                .with_label_values(&[&pool_name, "out"])
                .inc_by(relayed.bytes_out);
            (backend.as_str(), relayed.close.as_str())
        }
        Outcome::NoUpstream(why, _) => (NO_BACKEND, why.as_str()),
    };
    CONNECTIONS
        .with_label_values(&[&pool_name, backend, close])
        .inc();
    if state.access_log.enabled() {
        state
            .access_log
            .send_other(SystemTime::now(), line(&conn, &outcome, started.elapsed()));
    }
}

async fn relay_to_backend<C>(
    state: &State,
    conn: &Conn,
    client: C,
    first: &[u8],
    shutdown: &ShutdownWatch,
) -> Outcome
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut upstream =
        match connect::connect(&conn.pool, &conn.opts, conn.client.map(|a| a.ip())).await {
            Ok(upstream) => upstream,
            Err((why, attempts)) => return Outcome::NoUpstream(why, attempts),
        };
    let backend = upstream.lease.backend().config.url.clone();
    let attempts = upstream.attempts;
    let mut opening = Vec::new();
    if conn.opts.proxy_protocol {
        if let (Some(client), Some(local)) = (conn.client, conn.local) {
            match super::proxy_header::v2(client, local) {
                Ok(header) => opening = header,
                Err(e) => log::warn!("pool {}: no PROXY header: {e}", conn.pool.name),
            }
        }
    }
    opening.extend_from_slice(first);
    if !opening.is_empty() {
        if let Err(e) = upstream.stream.write_all(&opening).await {
            log::debug!("pool {}: {backend}: {e}", conn.pool.name);
            return Outcome::Relayed {
                backend,
                attempts,
                relayed: Relayed {
                    bytes_in: 0,
                    bytes_out: 0,
                    close: Close::BackendError,
                },
            };
        }
    }
    let grace = state.snapshot().config.server.grace_period;
    let mut relayed = relay::relay(
        client,
        &mut upstream.stream,
        conn.opts.idle_timeout,
        stop_after_grace(shutdown.clone(), grace),
    )
    .await;
    relayed.bytes_in += first.len() as u64;
    Outcome::Relayed {
        backend,
        attempts,
        relayed,
    }
}

/// Resolves a little before the grace period of a graceful shutdown ends, so the relay
/// still ends (and is logged) on its own rather than with the runtime.
async fn stop_after_grace(mut shutdown: ShutdownWatch, grace: Duration) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
    tokio::time::sleep(grace.saturating_sub(Duration::from_secs(1))).await;
}

/// The access-log line's members after `time` (see `AccessLogger::send_other`).
fn line(conn: &Conn, outcome: &Outcome, took: Duration) -> Vec<u8> {
    let (backend, attempts, bytes_in, bytes_out, close) = match outcome {
        Outcome::Relayed {
            backend,
            attempts,
            relayed,
        } => (
            Some(backend.as_str()),
            *attempts,
            relayed.bytes_in,
            relayed.bytes_out,
            relayed.close.as_str(),
        ),
        Outcome::NoUpstream(why, attempts) => (None, *attempts, 0, 0, why.as_str()),
    };
    let value = json!({
        "kind": conn.kind,
        "listener": conn.listener,
        "client": conn.client.map(|a| a.ip().to_string()),
        "client_port": conn.client.map(|a| a.port()),
        "server_name": conn.server_name,
        "pool": conn.pool.name,
        "backend": backend,
        "attempts": attempts,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "duration_ms": took.as_secs_f64() * 1000.0,
        "close": close,
    });
    let text = value.to_string();
    // `{"kind":...}` without its opening brace: the writer puts `{"time":"...",` first.
    text.into_bytes().split_off(1)
}
