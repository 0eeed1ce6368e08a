//! The proxy service's connection handler: Pingora's HTTP/1 loop with the request head read
//! first under strait's limits.
//!
//! Pingora reads a request head with its keep-alive timeout per read (so a client dripping a
//! byte now and then holds the connection indefinitely), accepts heads up to about 1 MiB, and
//! closes without a word when its timer runs out. Here every HTTP/1 request head is read
//! before Pingora sees the connection: a head not complete `server.request_header_timeout`
//! after its first byte gets 408, one larger than `server.max_header_bytes` gets 431, and
//! both close the connection. The bytes read are handed to Pingora's parser unchanged (as the
//! "pipelined prefix" it already supports), so parsing, smuggling checks and everything after
//! stay Pingora's. HTTP/2 connections (ALPN `h2`) go to Pingora directly: their header limits
//! are the h2 crate's.
//!
//! Waiting for the first byte is not a header timeout: a new connection that sends nothing
//! for `request_header_timeout`, or a kept-alive one idle for `keepalive_timeout`, is closed
//! silently, as Pingora does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::framing::{self, Body, Checked};
use crate::config::Listener;
use crate::plugins::gate::Gate;
use crate::snapshot::Snapshot;
use crate::state::State;

/// Bytes asked for per read while a head arrives.
const READ_CHUNK: usize = 8 << 10;
/// What a connection waiting for its (next) request holds for it: enough for a typical head
/// in one read. Idle keep-alive connections are most connections at an edge, and each holds
/// this for as long as it waits; a longer head grows it by [`READ_CHUNK`]s.
const FIRST_READ: usize = 2 << 10;
/// How long, and how much, a refused client's further input is read and dropped.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_MAX_BYTES: usize = 1 << 20;

pub(crate) struct GuardedHttp<A> {
    inner: Arc<A>,
    state: Arc<State>,
    /// Set when the service stops: connections waiting for a next request close.
    closing: watch::Sender<bool>,
    /// `server.max_connections`: a connection is served only with a permit; the ones past it
    /// wait, unread, until a served one closes (fixed at start; a change needs an upgrade).
    permits: Arc<tokio::sync::Semaphore>,
    /// TLS listeners' acceptors, by listener address: those connections arrive as plain TCP
    /// and go through `crate::l4::pass` (SNI pass-through, else the handshake) first.
    tls: std::collections::HashMap<std::net::SocketAddr, pingora::tls::ssl::SslAcceptor>,
}

impl<A> GuardedHttp<A> {
    /// Writes a refusal, records it (metrics, access log), closes, and lingers.
    async fn refuse(
        &self,
        stream: &mut Stream,
        answer: &[u8],
        status: u16,
        code: &'static str,
        partial: &Partial,
    ) {
        let client = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        super::refusal_log::record(&self.state, status, code, partial, client);
        let _ = stream.write_all(answer).await;
        let _ = stream.flush().await;
        let _ = stream.shutdown().await;
        linger(stream).await;
    }

    /// On a plain listener with `http2: true`: whether the client opened with the HTTP/2
    /// preface (then Pingora serves it as h2c). The peek reads the preface's 24 bytes and puts
    /// them back, so an HTTP/1 request reads on unchanged; it waits at most
    /// `request_header_timeout` for them, and a client that sends fewer and waits (only a bare
    /// `GET / HTTP/1.0` is that short) is closed then (`None`), as Pingora's own h2c does.
    async fn prior_knowledge_h2(
        snapshot: &Snapshot,
        listener: Option<&Listener>,
        stream: &mut Stream,
    ) -> Option<bool> {
        const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let h2c = stream.get_ssl_digest().is_none() && listener.is_some_and(|l| l.h2c);
        let wait = snapshot.config.server.request_header_timeout;
        if !h2c {
            return Some(false);
        }
        let mut buf = [0u8; 24];
        match tokio::time::timeout(wait, stream.try_peek(&mut buf)).await {
            Ok(Ok(true)) => Some(&buf == PREFACE),
            Ok(Ok(false)) => Some(false),
            Ok(Err(_)) | Err(_) => None,
        }
    }

    pub(crate) fn new(
        inner: A,
        state: Arc<State>,
        tls: std::collections::HashMap<std::net::SocketAddr, pingora::tls::ssl::SslAcceptor>,
    ) -> Self {
        let max = state.snapshot().config.server.max_connections as usize;
        GuardedHttp {
            inner: Arc::new(inner),
            state,
            closing: watch::channel(false).0,
            permits: Arc::new(tokio::sync::Semaphore::new(max)),
            tls,
        }
    }
}

/// How reading one request head ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Head {
    /// The head (and whatever followed it in the same reads).
    Ready(Partial),
    /// Closed, idle, or shutting down before the first byte: close quietly.
    Quiet,
    TimedOut(Partial),
    TooLarge(Partial),
}

impl Head {
    /// For a refused head: its status, its `X-Strait-Error` code (as [`refusal`] writes
    /// them) and what had arrived.
    pub(crate) fn refused(&self) -> Option<(u16, &'static str, &Partial)> {
        match self {
            Head::TimedOut(p) => Some((408, "request-header-timeout", p)),
            Head::TooLarge(p) => Some((431, "header-too-large", p)),
            Head::Ready(_) | Head::Quiet => None,
        }
    }
}

/// What a refused head had sent, for its log line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Partial {
    pub bytes: BytesMut,
    /// When its first byte arrived.
    pub since: Instant,
}

/// Where the head in `buf` ends (just past its empty line), ignoring empty lines before the
/// request line as RFC 9112 §2.2 allows. Bytes before `from` are known not to end it, except
/// for the last three (a terminator split across reads).
pub(crate) fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = buf
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    let from = from.saturating_sub(3).max(start);
    (from..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if buf[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// Reads one request head from `stream`: up to `idle` for the first byte, then up to
/// `timeout` for the rest, at most `max` bytes. `buf` may already hold the start of it (bytes
/// a client pipelined after the previous request).
pub(crate) async fn read_head(
    stream: &mut Stream,
    mut buf: BytesMut,
    idle: Duration,
    timeout: Duration,
    max: usize,
    closing: Option<watch::Receiver<bool>>,
) -> Head {
    if buf.is_empty() {
        buf.reserve(FIRST_READ);
        // Reading first: a request that has already arrived is served even when the service
        // is closing at that moment (an unread request dropped on close is answered with a
        // reset, which a client cannot retry safely).
        let closed = async {
            match closing {
                Some(mut c) => {
                    let _ = c.changed().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let first = tokio::select! {
            biased;
            r = tokio::time::timeout(idle, stream.read_buf(&mut buf)) => r,
            _ = closed => return Head::Quiet,
        };
        match first {
            Ok(Ok(n)) if n > 0 => {}
            _ => return Head::Quiet,
        }
    }
    let since = Instant::now();
    let deadline = tokio::time::Instant::from_std(since) + timeout;
    let mut scanned = 0;
    loop {
        if let Some(end) = head_end(&buf, scanned) {
            return if end > max {
                Head::TooLarge(Partial { bytes: buf, since })
            } else {
                Head::Ready(Partial { bytes: buf, since })
            };
        }
        if buf.len() > max {
            return Head::TooLarge(Partial { bytes: buf, since });
        }
        scanned = buf.len();
        buf.reserve(READ_CHUNK);
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Err(_) => return Head::TimedOut(Partial { bytes: buf, since }),
            // The client gave up mid-head: nobody to answer.
            Ok(Ok(0)) | Ok(Err(_)) => return Head::Quiet,
            Ok(Ok(_)) => {}
        }
    }
}

/// The 408 or 431 answer for a head that could not be read whole.
pub(crate) fn refusal(head: &Head) -> Option<Vec<u8>> {
    match head {
        Head::TimedOut(_) => Some(answer(
            408,
            "request-header-timeout",
            "the request head took too long",
        )),
        Head::TooLarge(_) => Some(answer(
            431,
            "header-too-large",
            "the request head is too large",
        )),
        _ => None,
    }
}

/// A refusal written straight to the connection (no request was parsed, so no route or hook
/// applies; [`super::refusal_log`] records it): `X-Strait-Error` and a one-line body, and
/// `Connection: close`.
pub(crate) fn answer(status: u16, code: &str, why: &str) -> Vec<u8> {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let body = format!("strait: {why}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: {}\r\nConnection: close\r\nX-Strait-Error: {code}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// How much of `buf` (a checked head at `..end` and what followed it) belongs to this request:
/// the head plus a `Content-Length` body, as far as it has arrived. The rest is the start of
/// the next, pipelined request, which the guard checks in its turn (RFC 9112 §9.3.2). A
/// chunked body is handed on whole: Pingora reads it, and closes the connection after the
/// response if a next request had already arrived behind it. So is everything after an
/// `Upgrade` request: if the backend agrees, those bytes belong to the tunnel.
fn this_request(end: usize, checked: &Checked, buffered: usize) -> usize {
    if checked.upgrade {
        return buffered;
    }
    match checked.body {
        Body::None => end,
        Body::Length(n) => end
            .saturating_add(usize::try_from(n).unwrap_or(usize::MAX))
            .min(buffered),
        Body::Chunked => buffered,
    }
}

/// Reads and drops what the client still sends after a refusal, briefly: closing a socket
/// with unread input sends a reset, which can destroy the answer before the client reads it.
async fn linger(stream: &mut Stream) {
    let drain = async {
        // On the heap: a stack buffer would sit in this future, and so in every connection's
        // (see `process_new`), for a path few connections take.
        let mut buf = vec![0u8; 4096];
        let mut total = 0usize;
        while total < LINGER_MAX_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

#[async_trait]
impl<A> ServerApp for GuardedHttp<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                crate::metrics::CONNECTIONS_QUEUED.inc();
                Arc::clone(&self.permits).acquire_owned().await.ok()?
            }
        };
        crate::metrics::runtime::note_proxy_runtime();
        // The listener this connection arrived on, looked up once for TLS, the plugins and h2c.
        let snapshot = self.state.snapshot();
        let index = stream
            .get_socket_digest()
            .and_then(|d| d.local_addr().and_then(|a| a.as_inet()).copied())
            .and_then(|local| snapshot.listener_of(local));
        let listener = index.and_then(|i| snapshot.config.listeners.get(i));
        // The TLS and plugin steps are boxed: this future lives as long as the connection, and
        // holding their larger states inline (2 and 6 KiB) would cost every idle connection
        // that much, TLS or not.
        if let Some((i, acceptor)) = index.and_then(|i| Some((i, self.tls.get(&listener?.addr)?))) {
            stream = Box::pin(crate::l4::pass::accept(
                &self.state,
                i,
                acceptor,
                stream,
                shutdown,
            ))
            .await?;
        }
        // The only other protocol a TLS listener negotiates is `acme-tls/1`: a TLS-ALPN-01
        // validation (crate::acme), done once its handshake is; nothing is served on it
        // (Pingora's app would log a warning for each).
        if matches!(stream.selected_alpn_proto(), Some(ALPN::Custom(_))) {
            return None;
        }
        let h1 = matches!(stream.selected_alpn_proto(), None | Some(ALPN::H1));
        let gate = match crate::plugins::gate::asking(listener) {
            Some(l) => Box::pin(crate::plugins::gate::connection(&snapshot, l, &stream)).await,
            None => Gate::Serve,
        };
        match gate {
            Gate::Serve => {}
            Gate::Close => return None,
            Gate::Refuse => {
                if h1 {
                    let _ = stream.write_all(crate::plugins::gate::REFUSED).await;
                    let _ = stream.flush().await;
                }
                let _ = stream.shutdown().await;
                return None;
            }
        }
        let h2 = !h1 || Self::prior_knowledge_h2(&snapshot, listener, &mut stream).await?;
        drop(snapshot);
        if h2 {
            return ServerApp::process_new(&self.inner, stream, shutdown).await;
        }
        let reuse_limit = self
            .inner
            .server_options()
            .and_then(|o| o.keepalive_request_limit);
        let mut settings = None;
        let mut first = true;
        let mut carried = BytesMut::new();
        loop {
            let (idle, timeout, max) = {
                let snapshot = self.state.snapshot();
                let s = &snapshot.config.server;
                let idle = if first {
                    s.request_header_timeout
                } else {
                    s.keepalive_timeout
                };
                (idle, s.request_header_timeout, s.max_header_bytes)
            };
            let buf = std::mem::take(&mut carried);
            // A kept-alive connection waiting for its next request closes when the service
            // does; a new one gets to send its first request (within request_header_timeout):
            // the client connected before the shutdown and cannot tell a close apart from a
            // failure.
            let closing = (!first).then(|| self.closing.subscribe());
            let head = read_head(&mut stream, buf, idle, timeout, max, closing).await;
            let mut ready = match head {
                Head::Ready(ready) => ready,
                other => {
                    if let (Some(answer), Some((status, code, partial))) =
                        (refusal(&other), other.refused())
                    {
                        self.refuse(&mut stream, &answer, status, code, partial)
                            .await;
                    }
                    return None;
                }
            };
            let end = head_end(&ready.bytes, 0).unwrap_or(ready.bytes.len());
            let checked = match framing::check(&ready.bytes[..end]) {
                Ok(checked) => checked,
                Err(r) => {
                    let answer = answer(r.status, r.code, r.why);
                    self.refuse(&mut stream, &answer, r.status, r.code, &ready)
                        .await;
                    return None;
                }
            };
            let len = this_request(end, &checked, ready.bytes.len());
            carried = ready.bytes.split_off(len);
            let prefix = match checked.rewritten {
                Some(mut head) => {
                    head.extend_from_slice(&ready.bytes[end..]);
                    head
                }
                None => ready.bytes,
            };
            let mut session = ServerSession::new_http1(stream);
            match settings.take() {
                // As Pingora's own loop: a first request may be kept alive unless the server
                // is shutting down (the proxy sets the real keep-alive per request).
                None if first => {
                    session.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
                    session.set_keepalive_reuses_remaining(reuse_limit);
                }
                None => {}
                // strait never enables HTTP/1.1 pipelining, so these carry no prefix of their
                // own that the one below would replace.
                Some(s) => pingora::apps::HttpPersistentSettings::apply_to_session(s, &mut session),
            }
            session.set_pipelined_prefix(prefix);
            let reused = self.inner.process_new_http(session, shutdown).await?;
            let (next, next_settings) = reused.consume();
            stream = next;
            settings = next_settings;
            first = false;
        }
    }

    async fn cleanup(&self) {
        let _ = self.closing.send(true);
        self.inner.http_cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_ends() {
        let full = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody";
        assert_eq!(head_end(full, 0), Some(27));
        // Scanning resumes three bytes early: a terminator split across reads is found.
        assert_eq!(head_end(full, 25), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: a\n\n", 0), Some(24));
        assert_eq!(head_end(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0), Some(22));
        assert_eq!(head_end(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", 4), Some(22));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0), None);
        assert_eq!(head_end(b"\r\n\r\n", 0), None);
        assert_eq!(head_end(b"", 0), None);
    }

    #[test]
    fn refusals_are_well_formed() {
        let partial = || Partial {
            bytes: BytesMut::new(),
            since: Instant::now(),
        };
        for head in [Head::TimedOut(partial()), Head::TooLarge(partial())] {
            let bytes = refusal(&head).unwrap();
            let text = std::str::from_utf8(&bytes).unwrap();
            let (status, code, _) = head.refused().unwrap();
            assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
            assert!(
                text.contains(&format!("X-Strait-Error: {code}\r\n")),
                "{text}"
            );
            let (head_text, body) = text.split_once("\r\n\r\n").unwrap();
            let length: usize = head_text
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(length, body.len(), "{text}");
        }
    }
}
