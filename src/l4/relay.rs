//! Bytes both ways between a client and a backend until both sides are done, one side fails,
//! or nothing moves for `idle_timeout`.
//!
//! When one side closes its sending half, the other side's sending half is shut down too and
//! the other direction goes on (a half-closed TCP connection, as a database client's final
//! request may need). The counters live outside the copying futures, so what moved is known
//! however the relay ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes per read in each direction.
const CHUNK: usize = 16 << 10;

/// Why a relayed connection ended: the access log's `close` and the metrics' `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// The client closed first (and the backend then finished).
    Client,
    /// The backend closed first.
    Backend,
    ClientError,
    BackendError,
    Idle,
    /// strait is shutting down and its grace period ran out.
    Shutdown,
}

impl Close {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Close::Client => "client_closed",
            Close::Backend => "backend_closed",
            Close::ClientError => "client_error",
            Close::BackendError => "backend_error",
            Close::Idle => "idle_timeout",
            Close::Shutdown => "shutdown",
        }
    }
}

/// What a relay moved, and why it ended.
#[derive(Debug)]
pub(crate) struct Relayed {
    /// Client to backend.
    pub bytes_in: u64,
    /// Backend to client.
    pub bytes_out: u64,
    pub close: Close,
}

/// Which side of one direction failed.
enum Failed {
    Read,
    Write,
}

/// Copies `from` to `to` until `from` ends (then shuts `to`'s sending half), counting bytes
/// and stamping `last` (milliseconds since `start`) on each chunk.
async fn copy<R, W>(
    from: &mut R,
    to: &mut W,
    count: &AtomicU64,
    last: &AtomicU64,
    start: tokio::time::Instant,
) -> Result<(), Failed>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).await.map_err(|_| Failed::Read)?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        to.write_all(&buf[..n]).await.map_err(|_| Failed::Write)?;
        to.flush().await.map_err(|_| Failed::Write)?;
        count.fetch_add(n as u64, Ordering::Relaxed);
        last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// Relays until done. `stop` resolves when strait's grace period for open connections ends.
pub(crate) async fn relay<C, B>(
    client: C,
    backend: B,
    idle: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> Relayed
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut backend_read, mut backend_write) = tokio::io::split(backend);
    let (bytes_in, bytes_out, last) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let start = tokio::time::Instant::now();
    let up = copy(
        &mut client_read,
        &mut backend_write,
        &bytes_in,
        &last,
        start,
    );
    let down = copy(
        &mut backend_read,
        &mut client_write,
        &bytes_out,
        &last,
        start,
    );
    tokio::pin!(up, down, stop);
    let (mut up_done, mut down_done) = (false, false);
    let mut first: Option<Close> = None;
    let close = loop {
        let quiet_until = start + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
        tokio::select! {
            r = &mut up, if !up_done => match r {
                Ok(()) => {
                    up_done = true;
                    first.get_or_insert(Close::Client);
                }
                Err(Failed::Read) => break Close::ClientError,
                Err(Failed::Write) => break Close::BackendError,
            },
            r = &mut down, if !down_done => match r {
                Ok(()) => {
                    down_done = true;
                    first.get_or_insert(Close::Backend);
                }
                Err(Failed::Read) => break Close::BackendError,
                Err(Failed::Write) => break Close::ClientError,
            },
            _ = tokio::time::sleep_until(quiet_until) => {
                // Bytes may have moved while this slept: only a full quiet period counts.
                let since = Duration::from_millis(last.load(Ordering::Relaxed));
                if start.elapsed() >= since + idle {
                    break Close::Idle;
                }
            }
            _ = &mut stop => break Close::Shutdown,
        }
        if up_done && down_done {
            break first.unwrap_or(Close::Client);
        }
    };
    Relayed {
        bytes_in: bytes_in.load(Ordering::Relaxed),
        bytes_out: bytes_out.load(Ordering::Relaxed),
        close,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_ways_then_half_close() {
        let (client, mut client_peer) = tokio::io::duplex(64);
        let (backend, mut backend_peer) = tokio::io::duplex(64);
        let relay = tokio::spawn(relay(
            client,
            backend,
            Duration::from_secs(5),
            std::future::pending(),
        ));
        client_peer.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        backend_peer.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        // The client is done sending; the backend still answers, then closes.
        client_peer.shutdown().await.unwrap();
        let mut rest = Vec::new();
        backend_peer.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        backend_peer.write_all(b"pong!").await.unwrap();
        drop(backend_peer);
        let mut answer = Vec::new();
        client_peer.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"pong!");
        let done = relay.await.unwrap();
        assert_eq!((done.bytes_in, done.bytes_out), (4, 5));
        assert_eq!(done.close, Close::Client);
    }

    #[tokio::test]
    async fn idle_connections_close() {
        let (client, _client_peer) = tokio::io::duplex(64);
        let (backend, _backend_peer) = tokio::io::duplex(64);
        let idle = Duration::from_millis(100);
        let relayed = relay(client, backend, idle, std::future::pending());
        let done = tokio::time::timeout(Duration::from_secs(10), relayed)
            .await
            .expect("the relay ends on its own");
        assert_eq!(done.close, Close::Idle);
    }
}
