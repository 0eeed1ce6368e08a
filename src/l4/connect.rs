//! A backend for a relayed connection: the pool's strategy picks, `max_connections` holds
//! (a full backend is skipped, and when all are full the connection waits up to
//! `connect_timeout` for a slot), and a failed connect is retried on another backend up to
//! `max_retries` times. Each failure counts for passive health, as a failed HTTP attempt does.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use crate::balance::{Lease, Pool};
use crate::config::{Strategy, L4};
use crate::limits::concurrency::{self, Pick};

/// A connected backend and the slot the connection holds on it.
pub(crate) struct Upstream {
    pub stream: TcpStream,
    pub lease: Lease,
    /// Connect attempts made, this one included.
    pub attempts: u32,
}

/// Why no backend took the connection; the access log's `close`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoUpstream {
    /// No usable (healthy, enabled, not ejected) backend.
    NoBackend,
    /// Every usable backend stayed at its `max_connections` for `connect_timeout`.
    Busy,
    /// Every attempt failed to connect.
    ConnectFailed,
}

impl NoUpstream {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NoUpstream::NoBackend => "no_backend",
            NoUpstream::Busy => "busy",
            NoUpstream::ConnectFailed => "connect_failed",
        }
    }
}

/// Connects to a backend of `pool` for a client at `client`.
pub(crate) async fn connect(
    pool: &Arc<Pool>,
    opts: &L4,
    client: Option<IpAddr>,
) -> Result<Upstream, (NoUpstream, u32)> {
    // The hashing strategies keep a client on one backend by its address.
    let key = match pool.strategy {
        Strategy::IpHash | Strategy::ConsistentHash => client.map(crate::balance::hash_ip),
        _ => None,
    };
    let mut tried: Vec<usize> = Vec::new();
    for attempt in 1..=opts.max_retries + 1 {
        let (index, lease) =
            match concurrency::select(pool, key, &tried, None, opts.connect_timeout).await {
                Pick::Got(index, lease) => (index, lease),
                Pick::Busy => return Err((NoUpstream::Busy, attempt - 1)),
                Pick::NoBackend if attempt == 1 => return Err((NoUpstream::NoBackend, 0)),
                Pick::NoBackend => return Err((NoUpstream::ConnectFailed, attempt - 1)),
            };
        let backend = lease.backend().clone();
        match tokio::time::timeout(opts.connect_timeout, TcpStream::connect(backend.addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                pool.outcome(index, true);
                return Ok(Upstream {
                    stream,
                    lease,
                    attempts: attempt,
                });
            }
            Ok(Err(e)) => log::debug!(
                "pool {}: connect to {} failed: {e}",
                pool.name,
                backend.config.url
            ),
            Err(_) => log::debug!(
                "pool {}: connect to {} timed out",
                pool.name,
                backend.config.url
            ),
        }
        backend.record_failure();
        pool.outcome(index, false);
        super::metrics::CONNECT_FAILURES
            .with_label_values(&[&pool.name, &backend.config.url])
            .inc();
        tried.push(index);
    }
    Err((NoUpstream::ConnectFailed, opts.max_retries + 1))
}
