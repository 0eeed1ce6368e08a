//! The OTLP/HTTP exporter: requests hand their finished spans to a bounded queue and move on;
//! a background service gathers them into batches and POSTs each batch (JSON, `otlp.rs`) to
//! `tracing.otlp_endpoint` every [`FLUSH_EVERY`] or as soon as [`BATCH_SPANS`] spans wait.
//!
//! Nothing here can slow a request down: a full queue drops the request's spans (counted as
//! `strait_trace_spans_total{outcome="dropped"}`), a collector that is down or slow costs
//! only the exporter's own task (`failed`), and failures are logged at most once every
//! [`WARN_EVERY`]. The HTTP client is Pingora's own connector (HTTP/1.1, keep-alive to the
//! collector), so nothing new is built for it.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::upstreams::peer::HttpPeer;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::context::{SpanId, TraceId};
use crate::config::{OtlpEndpoint, Tracing};
use crate::metrics::TRACE_SPANS;

/// Requests whose spans may wait for the exporter; beyond this they are dropped.
pub(crate) const QUEUE: usize = 8192;
/// A batch is sent once it holds this many spans...
pub(crate) const BATCH_SPANS: usize = 512;
/// ...or this long after the previous send, whichever comes first.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Export failures are logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// Connecting to the collector.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One whole POST, from connecting to the end of the answer.
const POST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a kept-alive connection to the collector may idle in the pool.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// On shutdown, what is queued gets this long to reach the collector.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

/// One request's spans, as the proxy's `logging` phase hands them over: the server span's
/// fields, and one [`AttemptSpan`] per upstream attempt (child spans of the server span).
#[derive(Debug)]
pub(crate) struct RequestSpans {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The client's parent-id, when it sent a valid `traceparent`.
    pub parent: Option<SpanId>,
    /// The W3C trace flags.
    pub flags: u8,
    /// When the request started (wall clock).
    pub start: SystemTime,
    pub duration: Duration,
    pub method: http::Method,
    /// The request's host (`server.address`).
    pub host: String,
    pub path: String,
    /// 0: no response was sent.
    pub status: u16,
    pub client: Option<IpAddr>,
    pub domain: Option<String>,
    pub route: Option<String>,
    pub request_id: String,
    pub error: Option<&'static str>,
    pub attempts: Vec<AttemptSpan>,
}

/// One upstream attempt. Times are offsets from the request's start.
#[derive(Debug)]
pub(crate) struct AttemptSpan {
    pub span_id: SpanId,
    pub start: Duration,
    pub end: Duration,
    /// The backend's host and port.
    pub host: String,
    pub port: u16,
    /// The backend's response status, when it answered.
    pub status: Option<u16>,
    /// What went wrong, when the attempt failed.
    pub error: Option<&'static str>,
}

impl RequestSpans {
    fn span_count(&self) -> usize {
        1 + self.attempts.len()
    }
}

type Item = Box<RequestSpans>;

/// One server's exporter (kept in its `State`): off until [`Exporter::install`] finds an
/// `otlp_endpoint`.
#[derive(Default)]
pub(crate) struct Exporter {
    tx: ArcSwapOption<mpsc::Sender<Item>>,
}

impl Exporter {
    /// Whether spans are exported (so requests record them only then).
    pub(crate) fn enabled(&self) -> bool {
        self.tx.load().is_some()
    }

    /// Queues one request's spans; never waits. Counts them as dropped when the queue is full.
    pub(crate) fn send(&self, spans: Box<RequestSpans>) {
        let guard = self.tx.load();
        let Some(tx) = guard.as_ref() else {
            return;
        };
        let n = spans.span_count() as u64;
        match tx.try_send(spans) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Closed(_)) => {
                TRACE_SPANS.with_label_values(&["dropped"]).inc_by(n);
            }
        }
    }

    /// Installs the queue and returns the background service that drains it; `None` when no
    /// endpoint is configured.
    pub(crate) fn install(&self, config: &Tracing) -> Option<ExportService> {
        let Some(endpoint) = config.otlp_endpoint.clone() else {
            self.tx.store(None);
            return None;
        };
        crate::metrics::init();
        let (tx, rx) = mpsc::channel(QUEUE);
        self.tx.store(Some(Arc::new(tx)));
        Some(ExportService {
            rx: Mutex::new(Some(rx)),
            endpoint,
            service_name: config.service_name.clone(),
        })
    }
}

pub(crate) struct ExportService {
    rx: Mutex<Option<mpsc::Receiver<Item>>>,
    endpoint: OtlpEndpoint,
    service_name: String,
}

#[async_trait]
impl BackgroundService for ExportService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(mut rx) = rx else {
            return;
        };
        let client = Client::new(self.endpoint.clone());
        let mut batch: Vec<Item> = Vec::new();
        let mut spans = 0usize;
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                item = rx.recv() => {
                    let Some(item) = item else { break };
                    spans += item.span_count();
                    batch.push(item);
                    if spans >= BATCH_SPANS {
                        self.send(&client, &mut batch, &mut spans).await;
                    }
                }
                _ = tick.tick() => {
                    if !batch.is_empty() {
                        self.send(&client, &mut batch, &mut spans).await;
                    }
                }
            }
        }
        // Shutting down: what is queued gets one last, bounded try.
        while let Ok(item) = rx.try_recv() {
            spans += item.span_count();
            batch.push(item);
        }
        if !batch.is_empty() {
            let _ =
                tokio::time::timeout(SHUTDOWN_FLUSH, self.send(&client, &mut batch, &mut spans))
                    .await;
        }
    }
}

impl ExportService {
    async fn send(&self, client: &Client, batch: &mut Vec<Item>, spans: &mut usize) {
        let body = super::otlp::encode(batch, &self.service_name);
        let n = *spans as u64;
        batch.clear();
        *spans = 0;
        match tokio::time::timeout(POST_TIMEOUT, client.post(body)).await {
            Ok(Ok(())) => TRACE_SPANS.with_label_values(&["exported"]).inc_by(n),
            Ok(Err(e)) => failed(&self.endpoint, n, &e),
            Err(_) => failed(&self.endpoint, n, "timed out"),
        }
    }
}

fn failed(endpoint: &OtlpEndpoint, spans: u64, why: &str) {
    TRACE_SPANS.with_label_values(&["failed"]).inc_by(spans);
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
        *last = Some(Instant::now());
        log::warn!(
            "cannot export spans to {}: {why} ({spans} spans lost; further failures are counted in strait_trace_spans_total{{outcome=\"failed\"}})",
            endpoint.url
        );
    }
}

/// POSTs bodies to the endpoint over Pingora's HTTP/1.1 connector (which pools connections).
struct Client {
    endpoint: OtlpEndpoint,
    connector: Connector,
    /// `host[:port]`, the Host header.
    authority: String,
}

impl Client {
    fn new(endpoint: OtlpEndpoint) -> Client {
        let host = if endpoint.host.contains(':') {
            format!("[{}]", endpoint.host)
        } else {
            endpoint.host.clone()
        };
        let authority = if endpoint.port == 80 {
            host
        } else {
            format!("{host}:{}", endpoint.port)
        };
        Client {
            endpoint,
            connector: Connector::new(None),
            authority,
        }
    }

    /// One POST; once more on a fresh connection when a pooled one turns out to have been
    /// closed by the collector meanwhile.
    async fn post(&self, body: Vec<u8>) -> Result<(), String> {
        let body = Bytes::from(body);
        let peer = self.peer().await?;
        match self.post_once(&peer, body.clone()).await {
            Err((_, true)) => self.post_once(&peer, body).await.map_err(|(e, _)| e),
            other => other.map_err(|(e, _)| e),
        }
    }

    async fn peer(&self) -> Result<HttpPeer, String> {
        let e = &self.endpoint;
        // Resolved for each batch (at most about once a second), so a collector that moves
        // is followed.
        let addr = tokio::net::lookup_host((e.host.as_str(), e.port))
            .await
            .map_err(|err| format!("cannot resolve {}: {err}", e.host))?
            .next()
            .ok_or_else(|| format!("{} resolves to no address", e.host))?;
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.connection_timeout = Some(CONNECT_TIMEOUT);
        peer.options.idle_timeout = Some(IDLE_TIMEOUT);
        Ok(peer)
    }

    /// Err((why, whether it failed on a reused connection before any answer)).
    async fn post_once(&self, peer: &HttpPeer, body: Bytes) -> Result<(), (String, bool)> {
        let fresh = |err: Box<pingora::Error>| (err.to_string(), false);
        let e = &self.endpoint;
        let mut req = RequestHeader::build("POST", e.path.as_bytes(), Some(4)).map_err(fresh)?;
        req.insert_header(http::header::HOST, self.authority.as_str())
            .map_err(fresh)?;
        req.insert_header(http::header::CONTENT_TYPE, "application/json")
            .map_err(fresh)?;
        req.insert_header(http::header::CONTENT_LENGTH, body.len())
            .map_err(fresh)?;
        let (mut session, reused) = self.connector.get_http_session(peer).await.map_err(fresh)?;
        let before_answer = |err: Box<pingora::Error>| (err.to_string(), reused);
        session.set_read_timeout(Some(POST_TIMEOUT));
        session.set_write_timeout(Some(POST_TIMEOUT));
        session
            .write_request_header(Box::new(req))
            .await
            .map_err(before_answer)?;
        session
            .write_request_body(body, true)
            .await
            .map_err(before_answer)?;
        session.finish_request_body().await.map_err(before_answer)?;
        session
            .read_response_header()
            .await
            .map_err(before_answer)?;
        let status = session.response_header().map_or(0, |r| r.status.as_u16());
        while session.read_response_body().await.map_err(fresh)?.is_some() {}
        self.connector
            .release_http_session(session, peer, Some(IDLE_TIMEOUT))
            .await;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err((format!("the collector answered {status}"), false))
        }
    }
}
