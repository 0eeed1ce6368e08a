//! Per-request state carried through Pingora's phases: what each phase group keeps is
//! declared here, so every phase depends on this file and this file on none of them.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora::http::ResponseHeader;

use crate::balance::Lease;
use crate::cache::storage::FillOptions;
use crate::cache::RouteCache;
use crate::config::{Coding, HeaderRules};
use crate::hooks::{CacheDecision, Edit};
use crate::lifecycle::{InFlight, InFlightCounter};
use crate::limits::RateState;
use crate::router::Hit;
use crate::snapshot::{Snapshot, Target};
use crate::trace::{SpanId, TraceId};

pub(crate) struct Ctx {
    pub(crate) started: Instant,
    /// Counts this request as in flight until the context is dropped (graceful exit).
    _in_flight: InFlight,
    /// The one snapshot this request reads, so a reload never splits a request across configs.
    pub(crate) snapshot: Option<Arc<Snapshot>>,
    pub(crate) target: Option<Arc<Target>>,
    pub(crate) headers: Option<Arc<HeaderRules>>,
    /// The client: the TCP peer, or whom `X-Forwarded-For` names behind a trusted proxy.
    pub(crate) client_ip: Option<IpAddr>,
    /// The TCP peer (what this hop appends to `X-Forwarded-For`).
    pub(crate) peer_ip: Option<IpAddr>,
    /// The client's verified certificate (`client_auth`), for templates, hooks and the log.
    pub(crate) client_cert: Option<crate::tls::ClientCert>,
    /// The domain and route the request matched.
    pub(crate) hit: Option<Hit>,
    /// `$1`..`$9` of the route's path glob, when its templates use them.
    pub(crate) captures: Vec<String>,
    /// The request's URI as the client sent it, when a rewrite changed it (for the access log).
    pub(crate) original_uri: Option<http::Uri>,
    /// A WebSocket (HTTP/1.1 `Upgrade`) request.
    pub(crate) upgrade: bool,
    /// The backend shown to `on_request` hooks (or named by a sticky cookie), which the first
    /// attempt then uses if it can.
    pub(crate) first_pick: Option<usize>,
    /// The request's affinity key for the hashing strategies (`Pool::key`).
    pub(crate) affinity: Option<u64>,
    /// Memory taken by a buffered request body, given back when the request ends.
    pub(crate) buffered: Option<Reservation>,
    /// Limits state (see `proxy/request.rs`).
    pub(crate) limits: LimitsCtx,
    /// Hook state (see `proxy/hook_calls.rs`).
    pub(crate) hook: HookCtx,
    /// Plugin state (see `proxy/plugin_calls.rs`).
    pub(crate) plugin: PluginCtx,
    /// Indexes (into the target's pool) of backends already tried on this request.
    pub(crate) tried: Vec<usize>,
    /// Holds the in-flight count of the backend in use; replaced on retry, released on drop.
    pub(crate) lease: Option<Lease>,
    pub(crate) backend_index: Option<usize>,
    pub(crate) attempts: u32,
    /// An upstream response header arrived: from here on a failure cannot be retried.
    pub(crate) upstream_responded: bool,
    /// Request id and upstream timing for the access log and metrics.
    pub(crate) observe: Observe,
    /// Response-cache state (see `proxy/cache.rs`).
    pub(crate) cache: CacheCtx,
    /// On-the-fly compression state (see `proxy/compress.rs`).
    pub(crate) compress: CompressCtx,
    /// Trace context and, when exported, span timing (see `proxy/trace.rs`).
    pub(crate) trace: TraceCtx,
}

impl Ctx {
    pub(crate) fn new(in_flight: &InFlightCounter) -> Ctx {
        Ctx {
            started: Instant::now(),
            _in_flight: in_flight.start(),
            snapshot: None,
            target: None,
            headers: None,
            client_ip: None,
            peer_ip: None,
            client_cert: None,
            hit: None,
            captures: Vec::new(),
            original_uri: None,
            upgrade: false,
            first_pick: None,
            affinity: None,
            buffered: None,
            limits: Default::default(),
            hook: Default::default(),
            plugin: Default::default(),
            tried: Vec::new(),
            lease: None,
            backend_index: None,
            attempts: 0,
            upstream_responded: false,
            observe: Default::default(),
            cache: Default::default(),
            compress: Default::default(),
            trace: Default::default(),
        }
    }

    /// Whether a retry could go to a backend this request has not tried yet.
    pub(crate) fn can_retry(&self) -> bool {
        let Some(target) = &self.target else {
            return false;
        };
        if self.attempts > target.options.max_retries {
            return false;
        }
        target
            .pool
            .backends
            .iter()
            .enumerate()
            .any(|(i, b)| b.is_usable() && !self.tried.contains(&i))
    }
}

/// Per-request limits state.
#[derive(Debug, Default)]
pub(crate) struct LimitsCtx {
    /// The rate limit's count for this request, for the `RateLimit-*` headers.
    pub(super) rate: Option<RateState>,
    pub(super) max_body: Option<u64>,
    pub(super) body_seen: u64,
}

/// Per-request hook state.
#[derive(Debug, Default)]
pub(crate) struct HookCtx {
    /// `Request::set_upstream_host`.
    pub(super) upstream_host: Option<String>,
    /// Edits made to a backend's response before cache admission, for `response_filter`.
    pub(super) edits: Option<Vec<Edit>>,
    /// `on_response` ran for this request.
    pub(super) response_done: bool,
    /// `cache_for` / `dont_cache`.
    pub(super) cache: Option<CacheDecision>,
    /// `on_error` reported the current attempt's failure.
    pub(super) error_reported: bool,
}

/// Per-request plugin state.
#[derive(Debug, Default)]
pub(crate) struct PluginCtx {
    /// Response headers the request phase's plugins asked for.
    pub(super) response_headers: Vec<(String, String)>,
    /// Plugins that let the request go on and handle the response phase, in order.
    pub(super) response_phase: Vec<Arc<crate::plugins::Plugin>>,
    /// The response phase ran (a response gets it once).
    pub(super) response_done: bool,
}

/// Per-request observations.
#[derive(Debug, Default)]
pub(crate) struct Observe {
    pub(super) request_id: String,
    /// Whether strait made the id (the client sent none, or one not fit to forward): the
    /// upstream request then gets it in place of the client's header.
    pub(super) request_id_generated: bool,
    /// When the current upstream attempt started (its backend was chosen).
    pub(super) upstream_started: Option<Instant>,
    /// From choosing the backend of the answering attempt to its response head.
    pub(super) upstream_duration: Option<Duration>,
}

/// Per-request cache state.
#[derive(Debug, Default)]
pub(crate) struct CacheCtx {
    /// Set when the request's domain or route caches: such responses all get `X-Cache`.
    pub(super) policy: Option<Arc<RouteCache>>,
    pub(super) rule: Option<usize>,
    pub(super) fill: FillOptions,
    pub(super) bypass: Option<&'static str>,
    /// The storage was consulted and nothing usable was served from it.
    pub(super) missed: bool,
    /// A stored entry was found, but stale.
    pub(super) found_stale: bool,
    pub(super) accepts_gzip: bool,
    /// The hit handler serves the gzip copy, of this many bytes.
    pub(super) gzip_len: Option<usize>,
    pub(super) debug: bool,
    /// An unsafe method: invalidate the URL when the origin succeeds.
    pub(super) invalidate: bool,
    /// Why `response_cacheable` refused the response.
    pub(super) refused: Option<&'static str>,
    /// The origin's 304 on revalidation, merged into the stored header.
    pub(super) not_modified: Option<Box<ResponseHeader>>,
    /// Why a response was not a hit (what `X-Cache-Reason` says), for `/stats`.
    pub(super) reason: Option<&'static str>,
}

/// Per-request compression state.
#[derive(Debug, Default)]
pub(crate) struct CompressCtx {
    /// The downstream compression module takes part in this response.
    pub(super) armed: bool,
    /// The coding negotiated for the body (`None`: sent as it is).
    pub(super) coding: Option<Coding>,
}

/// Per-request trace state.
#[derive(Debug, Default)]
pub(crate) struct TraceCtx {
    /// The request's trace: the client's (a valid `traceparent`) or a new one. `None` only
    /// before `request_filter` names the request.
    pub(super) trace_id: Option<TraceId>,
    /// The W3C trace flags passed on (the client's, or `sampled` as strait decided).
    pub(super) flags: u8,
    /// The client's parent-id, when its `traceparent` was valid.
    pub(super) remote_parent: Option<SpanId>,
    /// The client's `tracestate` goes upstream (its traceparent was valid and it fits).
    pub(super) keep_tracestate: bool,
    /// strait's server span for this request (made only when it is exported).
    pub(super) span_id: SpanId,
    /// The current upstream attempt's span: the parent-id its request carries.
    pub(super) attempt_span: SpanId,
    /// Span timing, kept only for sampled requests while an exporter runs.
    pub(super) recording: Option<Box<Recording>>,
}

/// What the exporter needs beyond [`TraceCtx`]: when the request started, and its attempts.
#[derive(Debug)]
pub(crate) struct Recording {
    pub(super) wall_start: std::time::SystemTime,
    pub(super) attempts: Vec<Attempt>,
}

/// One upstream attempt as it happens.
#[derive(Debug)]
pub(crate) struct Attempt {
    pub(super) span_id: SpanId,
    pub(super) backend: Option<usize>,
    pub(super) start: Instant,
    pub(super) end: Option<Instant>,
    pub(super) status: Option<u16>,
    pub(super) error: Option<&'static str>,
}

/// Bytes reserved against `server.max_buffered_bytes`; released on drop.
pub(crate) struct Reservation {
    counter: Arc<std::sync::atomic::AtomicU64>,
    bytes: u64,
}

impl Reservation {
    /// Reserves `bytes` unless that would pass `cap`.
    pub(crate) fn take(
        counter: &Arc<std::sync::atomic::AtomicU64>,
        bytes: u64,
        cap: u64,
    ) -> Option<Reservation> {
        use std::sync::atomic::Ordering::Relaxed;
        counter
            .fetch_update(Relaxed, Relaxed, |n| {
                n.checked_add(bytes).filter(|&total| total <= cap)
            })
            .ok()?;
        Some(Reservation {
            counter: Arc::clone(counter),
            bytes,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.counter
            .fetch_sub(self.bytes, std::sync::atomic::Ordering::Relaxed);
    }
}
