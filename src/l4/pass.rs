//! The accept step of TLS listeners: SNI pass-through (`pass`) beside TLS termination on one
//! port.
//!
//! Pingora 0.9.1 runs a listener's TLS handshake before its app sees the connection, and the
//! only hook before it (`PreTlsProcess`) can read bytes but not take the connection away. So
//! strait binds its TLS listeners as plain TCP and does the first step itself: it reads the
//! ClientHello (at most [`MAX_BUFFER`] bytes, within `server.request_header_timeout`), and
//! routes its server name as a request's Host would be routed. A name whose domain has `pass`
//! is relayed to that domain's pool, ClientHello included, untouched. Any other connection gets
//! the bytes read put back (Pingora's `Stream::rewind`) and the handshake Pingora would have
//! done, with the same acceptor and callbacks (`crate::tls`), then goes on to the HTTP app.

use std::net::SocketAddr;
use std::sync::Arc;

use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, Stream};
use pingora::server::ShutdownWatch;
use pingora::tls::ssl::SslAcceptor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::client_hello::{self, Hello, MAX_BUFFER};
use super::metrics::{HANDSHAKE_FAILED, HELLO_REFUSED};
use super::session::{self, Conn};
use crate::balance::Pool;
use crate::config::L4;
use crate::state::State;

/// Takes a new connection on TLS listener `listener` (an index of the config's listeners):
/// `Some` with the TLS stream to serve as HTTP, `None` when it was passed through (and is
/// done) or closed.
pub(crate) async fn accept(
    state: &State,
    listener: usize,
    acceptor: &SslAcceptor,
    stream: Stream,
    shutdown: &ShutdownWatch,
) -> Option<Stream> {
    // A listener bound with `add_tcp` hands over Pingora's own TCP stream.
    let mut tcp: Box<L4Stream> = match stream.into_any().downcast::<L4Stream>() {
        Ok(tcp) => tcp,
        Err(_) => {
            log::error!("a TLS listener's connection is not a TCP stream; closing it");
            return None;
        }
    };
    let timeout = state.snapshot().config.server.request_header_timeout;
    let (hello, name) = match read_hello(&mut tcp, Instant::now() + timeout).await {
        Ok(read) => read,
        Err(refused) => {
            if let Some(reason) = refused {
                HELLO_REFUSED.with_label_values(&[reason]).inc();
                log::debug!("closing a TLS connection before its handshake: {reason}");
            }
            let _ = tcp.shutdown().await;
            return None;
        }
    };
    if let Some((opts, pool, listener_name)) =
        name.as_deref().and_then(|n| pass_to(state, listener, n))
    {
        let digest = tcp.get_socket_digest();
        let addr = |a: Option<&pingora::protocols::l4::socket::SocketAddr>| -> Option<SocketAddr> {
            a.and_then(|a| a.as_inet()).copied()
        };
        let conn = Conn {
            kind: "pass",
            listener: listener_name,
            pool,
            opts,
            client: digest.as_ref().and_then(|d| addr(d.peer_addr())),
            local: digest.as_ref().and_then(|d| addr(d.local_addr())),
            server_name: name,
        };
        session::serve(state, conn, tcp, &hello, shutdown).await;
        return None;
    }
    tcp.rewind(&hello);
    match tokio::time::timeout(timeout, crate::tls::handshake(acceptor, *tcp)).await {
        Ok(Ok(tls)) => Some(Box::new(tls)),
        // Counted rather than logged at error level as Pingora does: a client that gives up
        // or lacks a certificate is not strait's error.
        Ok(Err(e)) => {
            HANDSHAKE_FAILED.with_label_values(&["error"]).inc();
            log::debug!("TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            HANDSHAKE_FAILED.with_label_values(&["timeout"]).inc();
            log::debug!("TLS handshake took longer than request_header_timeout");
            None
        }
    }
}

/// The ClientHello's bytes and server name. `Err(Some(reason))`: refused (counted);
/// `Err(None)`: the client closed or failed before the hello was complete.
async fn read_hello(
    tcp: &mut L4Stream,
    deadline: Instant,
) -> Result<(Vec<u8>, Option<String>), Option<&'static str>> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = vec![0u8; 4096];
    loop {
        let room = (MAX_BUFFER - buf.len()).clamp(1, chunk.len());
        match tokio::time::timeout_at(deadline, tcp.read(&mut chunk[..room])).await {
            Err(_) => return Err(Some("timeout")),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(None),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        match client_hello::parse(&buf) {
            Hello::More => {}
            Hello::Done(name) => return Ok((buf, name)),
            Hello::Bad(reason) => return Err(Some(reason)),
        }
    }
}

/// The `pass` of the domain `server_name` routes to on `listener`, its pool and the
/// listener's name, if that domain passes through.
fn pass_to(state: &State, listener: usize, server_name: &str) -> Option<(L4, Arc<Pool>, String)> {
    let snapshot = state.snapshot();
    let headers = http::HeaderMap::new();
    let request = crate::router::Request::simple(server_name, "/", &headers);
    let hit = snapshot.router_on(Some(listener)).route(&request)?;
    let pass = snapshot.config.domains.get(hit.domain)?.pass.clone()?;
    let pool = snapshot.pools.get(pass.pool)?.clone();
    let l = snapshot.config.listeners.get(listener)?;
    let name = l.name.clone().unwrap_or_else(|| l.addr.to_string());
    Some((pass, pool, name))
}
