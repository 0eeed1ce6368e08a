//! Hooks: Rust code that embedders run on every request, response and upstream failure.
//!
//! Register them on the [`crate::Strait`] builder, as closures (`on_request`, `on_response`,
//! `on_error`) or as types implementing [`RequestHook`], [`ResponseHook`] or [`ErrorHook`]
//! (`request_hook`, ...), for hooks that await:
//!
//! ```no_run
//! use strait::hooks::Reject;
//!
//! strait::Strait::from_file("conf/strait.yaml")?
//!     .on_request(|req| {
//!         if req.path().starts_with("/admin/") && req.header("authorization").is_none() {
//!             return Err(Reject::new(401).body("login first\n"));
//!         }
//!         req.set_header("X-Seen-By", "strait");
//!         Ok(())
//!     })
//!     .on_response(|resp| resp.set_header("X-Frame-Options", "DENY"))
//!     .on_error(|e| eprintln!("{} attempt {} on {:?}: {}", e.domain(), e.attempt(), e.backend(), e.kind()))
//!     .run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # When each hook runs
//!
//! * `on_request`: once per request that matched a domain, in Pingora's `request_filter`, before
//!   the cache is consulted: for proxied requests (cache hits included), WebSocket upgrades,
//!   and `respond`/`redirect` routes. Requests refused earlier (`deny` 403, `rate_limit` 429,
//!   `max_body_bytes` 413, unknown host 404) never reach it. Header edits apply to the request
//!   as routed (so to the cache key) and to what the backend gets; the domain's and route's
//!   YAML `headers.request` rules are applied after it, on the upstream request.
//! * `on_response`: once per response sent to a client: from a backend (101 included), from
//!   the cache, `respond`/`redirect` routes, and strait's own error pages. It runs after the
//!   YAML `headers.response` rules, and its edits are never stored in the cache: a response
//!   from a backend is shown to the hook before cache admission (so `cache_for`/`dont_cache`
//!   decide storage), and its edits are applied to what the client gets.
//! * `on_error`: once per failed upstream attempt (connect failures and failures after
//!   connecting), with whether strait retries; and once for a request that fails without an
//!   attempt to blame (no healthy backend, all backends busy).
//!
//! Hooks run on the proxy's worker threads: keep them fast, and do not block (an async
//! [`RequestHook`] or [`ResponseHook`] may await). A panicking hook fails its request.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// For implementing [`RequestHook`] / [`ResponseHook`] without naming the crate yourself.
pub use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use pingora::http::{RequestHeader, ResponseHeader};

/// Which way strait answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestKind {
    /// Proxied to a backend (or answered from the cache).
    Proxy,
    /// A WebSocket (or other HTTP/1.1 `Upgrade`) request, tunnelled to a backend.
    Upgrade,
    /// Answered by a `respond` or `redirect` rule.
    Static,
}

/// The request, as an `on_request` hook sees and changes it.
pub struct Request<'a> {
    pub(crate) header: &'a mut RequestHeader,
    pub(crate) meta: Meta<'a>,
    pub(crate) kind: RequestKind,
    pub(crate) upstream_host: &'a mut Option<String>,
}

/// What every hook is told about the request it runs for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta<'a> {
    pub domain: &'a str,
    pub route: Option<&'a str>,
    pub backend: Option<&'a str>,
    pub client_addr: Option<SocketAddr>,
    pub client_ip: Option<IpAddr>,
    pub request_id: &'a str,
}

impl<'a> Request<'a> {
    /// The domain that matched: its first configured host (`*.example.com` and `*` included).
    pub fn domain(&self) -> &str {
        self.meta.domain
    }

    /// The `path_prefix` of the route that matched, if any.
    pub fn route(&self) -> Option<&str> {
        self.meta.route
    }

    /// The backend (its URL as configured) the first attempt will use, for proxied requests.
    /// A retry may use another; `on_error` names each attempt's backend.
    pub fn backend(&self) -> Option<&str> {
        self.meta.backend
    }

    /// The TCP peer.
    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.meta.client_addr
    }

    /// The client: the TCP peer, or the address `X-Forwarded-For` names when the peer is in
    /// `server.trusted_proxies`.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.meta.client_ip
    }

    /// The `X-Request-Id` strait logs and forwards for this request.
    pub fn request_id(&self) -> &str {
        self.meta.request_id
    }

    /// How strait answers this request.
    pub fn kind(&self) -> RequestKind {
        self.kind
    }

    /// Whether this is a WebSocket (or other `Upgrade`) request.
    pub fn is_upgrade(&self) -> bool {
        self.kind == RequestKind::Upgrade
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.header.method
    }

    /// The request target as received.
    pub fn uri(&self) -> &Uri {
        &self.header.uri
    }

    /// The path of the request target.
    pub fn path(&self) -> &str {
        self.header.uri.path()
    }

    /// The query of the request target, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.header.uri.query()
    }

    /// Every request header.
    pub fn headers(&self) -> &HeaderMap {
        &self.header.headers
    }

    /// The first value of header `name` (case-insensitive), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Replaces header `name`. An invalid name or value is ignored (and logged).
    pub fn set_header(&mut self, name: &str, value: &str) {
        let r = self.header.insert_header(name.to_string(), value);
        warn_invalid("request", name, r.is_ok());
    }

    /// Adds a value to header `name`, keeping the ones there.
    pub fn append_header(&mut self, name: &str, value: &str) {
        let r = self.header.append_header(name.to_string(), value);
        warn_invalid("request", name, r.is_ok());
    }

    /// Removes every value of a request header.
    pub fn remove_header(&mut self, name: &str) {
        self.header.remove_header(name);
    }

    /// The `Host` sent to the backend, whatever `preserve_host` / `host_header` say.
    pub fn set_upstream_host(&mut self, host: impl Into<String>) {
        *self.upstream_host = Some(host.into());
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", self.method())
            .field("uri", self.uri())
            .field("kind", &self.kind)
            .field("domain", &self.meta.domain)
            .field("route", &self.meta.route)
            .field("backend", &self.meta.backend)
            .field("client_ip", &self.meta.client_ip)
            .finish_non_exhaustive()
    }
}

fn warn_invalid(side: &str, name: &str, ok: bool) {
    if !ok {
        log::warn!("hook: invalid {side} header {name:?} (name or value) ignored");
    }
}

/// An `on_request` hook's refusal: this status, body and headers go to the client, and the
/// request never reaches a backend.
#[derive(Debug, Clone)]
pub struct Reject {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
    pub(crate) headers: Vec<(String, String)>,
}

impl Reject {
    /// A status outside 100..=599 becomes 500.
    pub fn new(status: u16) -> Reject {
        Reject {
            status: if (100..=599).contains(&status) {
                status
            } else {
                500
            },
            body: Bytes::new(),
            headers: Vec::new(),
        }
    }

    /// The response body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Reject {
        self.body = body.into();
        self
    }

    /// Adds a header (e.g. `WWW-Authenticate`). `Content-Length` is always strait's.
    pub fn header(mut self, name: &str, value: &str) -> Reject {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The status the client gets (an invalid one becomes 500).
    pub fn status(&self) -> u16 {
        self.status
    }
}

/// Where the response an `on_response` hook sees comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseSource {
    /// A backend answered (a 101 for upgrades included).
    Backend,
    /// Served from the cache (fresh, stale, or revalidated).
    Cache,
    /// strait answered itself: a `respond`/`redirect` rule, a hook's rejection, or an error.
    Strait,
}

/// A hook's caching decision for a response from a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheDecision {
    /// Store it, fresh for this long, whatever its headers and the cache rules say.
    For(Duration),
    /// Do not store it.
    Never,
}

/// A header edit recorded for later (see [`Response`]).
#[derive(Debug, Clone)]
pub(crate) enum Edit {
    Status(u16),
    Set(String, String),
    Append(String, String),
    Remove(String),
}

/// The response, as an `on_response` hook sees and changes it.
pub struct Response<'a> {
    /// The response; for a backend response about to be offered to the cache, a copy, with
    /// the edits also recorded in `edits` to be applied to what the client gets.
    pub(crate) header: &'a mut ResponseHeader,
    pub(crate) edits: Option<&'a mut Vec<Edit>>,
    pub(crate) cache: &'a mut Option<CacheDecision>,
    pub(crate) source: ResponseSource,
    pub(crate) meta: Meta<'a>,
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
}

impl<'a> Response<'a> {
    /// The response status.
    pub fn status(&self) -> u16 {
        self.header.status.as_u16()
    }

    /// Changes the status sent to the client. Ignored (and logged) for a 101 and for 101 as
    /// the new status: an upgrade cannot be undone or faked here.
    pub fn set_status(&mut self, status: u16) {
        if self.status() == 101 || status == 101 || !(100..=599).contains(&status) {
            log::warn!("hook: status {} -> {status} ignored", self.status());
            return;
        }
        if self.header.set_status(status).is_ok() {
            self.record(Edit::Status(status));
        }
    }

    /// Every response header.
    pub fn headers(&self) -> &HeaderMap {
        &self.header.headers
    }

    /// The first value of a response header, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Replaces a response header (an invalid name or value is ignored and logged).
    pub fn set_header(&mut self, name: &str, value: &str) {
        let ok = self.header.insert_header(name.to_string(), value).is_ok();
        warn_invalid("response", name, ok);
        if ok {
            self.record(Edit::Set(name.to_string(), value.to_string()));
        }
    }

    /// Adds a value to a response header.
    pub fn append_header(&mut self, name: &str, value: &str) {
        let ok = self.header.append_header(name.to_string(), value).is_ok();
        warn_invalid("response", name, ok);
        if ok {
            self.record(Edit::Append(name.to_string(), value.to_string()));
        }
    }

    /// Removes every value of a response header.
    pub fn remove_header(&mut self, name: &str) {
        self.header.remove_header(name);
        self.record(Edit::Remove(name.to_string()));
    }

    /// Stores this response in the cache, fresh for `ttl`, overriding its `Cache-Control` and
    /// the cache rules. Takes effect for backend responses to requests the cache handles (a
    /// domain or route with `cache` on, GET or HEAD); elsewhere it does nothing.
    pub fn cache_for(&mut self, ttl: Duration) {
        *self.cache = Some(CacheDecision::For(ttl));
    }

    /// Keeps this response out of the cache, whatever its headers and the rules say.
    pub fn dont_cache(&mut self) {
        *self.cache = Some(CacheDecision::Never);
    }

    /// The caching decision made so far by hooks.
    pub fn cache_decision(&self) -> Option<CacheDecision> {
        *self.cache
    }

    /// Where the response comes from.
    pub fn source(&self) -> ResponseSource {
        self.source
    }

    /// The domain that matched: its first configured host.
    pub fn domain(&self) -> &str {
        self.meta.domain
    }

    /// The `path_prefix` of the route that matched, if any.
    pub fn route(&self) -> Option<&str> {
        self.meta.route
    }

    /// The backend that answered (or was tried last), if any.
    pub fn backend(&self) -> Option<&str> {
        self.meta.backend
    }

    /// The client (see [`Request::client_ip`]).
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.meta.client_ip
    }

    /// The `X-Request-Id` strait logs and forwards for this request.
    pub fn request_id(&self) -> &str {
        self.meta.request_id
    }

    /// The request's method and target, as routed.
    pub fn method(&self) -> &Method {
        self.method
    }

    /// The path of the request target.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    fn record(&mut self, edit: Edit) {
        if let Some(edits) = self.edits.as_mut() {
            edits.push(edit);
        }
    }
}

impl fmt::Debug for Response<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status())
            .field("source", &self.source)
            .field("domain", &self.meta.domain)
            .field("backend", &self.meta.backend)
            .finish_non_exhaustive()
    }
}

/// Applies recorded edits to the response a client gets.
pub(crate) fn apply_edits(edits: &[Edit], header: &mut ResponseHeader) {
    for edit in edits {
        // Each was valid when the hook made it, so none of these can fail.
        match edit {
            Edit::Status(s) => {
                let _ = header.set_status(*s);
            }
            Edit::Set(n, v) => {
                let _ = header.insert_header(n.clone(), v.as_str());
            }
            Edit::Append(n, v) => {
                let _ = header.append_header(n.clone(), v.as_str());
            }
            Edit::Remove(n) => {
                header.remove_header(n.as_str());
            }
        }
    }
}

/// What went wrong on an attempt (or a request), in `on_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The backend refused the connection.
    ConnectRefused,
    /// Connecting took longer than `connect_timeout`.
    ConnectTimeout,
    /// Another connection failure (TLS, unreachable, ...).
    ConnectFailed,
    /// The backend sent nothing for `read_timeout`.
    ReadTimeout,
    /// Writing to the backend took longer than `write_timeout`.
    WriteTimeout,
    /// The backend closed or broke the connection.
    UpstreamClosed,
    /// The backend's answer was not valid HTTP.
    UpstreamProtocol,
    /// No usable backend (all unhealthy, drained, or already tried).
    NoHealthyBackend,
    /// Every candidate backend stayed at its `max_connections` for the queue wait.
    BackendBusy,
    /// The client went away or sent something invalid.
    Client,
    /// A failure inside strait.
    Internal,
}

impl ErrorKind {
    /// The kind as the access log and metrics name it (`connect-refused`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect-refused",
            ErrorKind::ConnectTimeout => "connect-timeout",
            ErrorKind::ConnectFailed => "connect-failed",
            ErrorKind::ReadTimeout => "read-timeout",
            ErrorKind::WriteTimeout => "write-timeout",
            ErrorKind::UpstreamClosed => "upstream-closed",
            ErrorKind::UpstreamProtocol => "upstream-protocol",
            ErrorKind::NoHealthyBackend => "no-healthy-backend",
            ErrorKind::BackendBusy => "backend-busy",
            ErrorKind::Client => "client",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failure, as `on_error` sees it.
pub struct ErrorEvent<'a> {
    pub(crate) meta: Meta<'a>,
    pub(crate) attempt: u32,
    pub(crate) kind: ErrorKind,
    pub(crate) retrying: bool,
    pub(crate) error: &'a pingora::Error,
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
}

impl ErrorEvent<'_> {
    /// The domain that matched: its first configured host.
    pub fn domain(&self) -> &str {
        self.meta.domain
    }

    /// The `path_prefix` of the route that matched, if any.
    pub fn route(&self) -> Option<&str> {
        self.meta.route
    }

    /// The backend of the failed attempt (`None` when no backend could be chosen).
    pub fn backend(&self) -> Option<&str> {
        self.meta.backend
    }

    /// 1 for the first attempt; a request that failed before any attempt reports the number
    /// of attempts made (0 when none).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether strait tries another backend after this failure.
    pub fn retrying(&self) -> bool {
        self.retrying
    }

    /// Pingora's description of the error.
    pub fn detail(&self) -> String {
        self.error.to_string()
    }

    /// The client (see [`Request::client_ip`]).
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.meta.client_ip
    }

    /// The `X-Request-Id` strait logs and forwards for this request.
    pub fn request_id(&self) -> &str {
        self.meta.request_id
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        self.method
    }

    /// The path of the request target.
    pub fn path(&self) -> &str {
        self.uri.path()
    }
}

impl fmt::Debug for ErrorEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorEvent")
            .field("domain", &self.meta.domain)
            .field("backend", &self.meta.backend)
            .field("attempt", &self.attempt)
            .field("kind", &self.kind)
            .field("retrying", &self.retrying)
            .finish_non_exhaustive()
    }
}

/// An `on_request` hook. Closures `Fn(&mut Request) -> Result<(), Reject>` are registered with
/// [`Hooks::on_request`]; implement this trait for hooks that await.
#[async_trait]
pub trait RequestHook: Send + Sync + 'static {
    /// Runs for each request (see the module docs); `Err` rejects it.
    async fn on_request(&self, req: &mut Request<'_>) -> Result<(), Reject>;
}

/// An `on_response` hook; see [`RequestHook`].
#[async_trait]
pub trait ResponseHook: Send + Sync + 'static {
    /// Runs for each response (see the module docs).
    async fn on_response(&self, resp: &mut Response<'_>);
}

/// An `on_error` hook. Called from Pingora's synchronous error callbacks: it cannot await.
pub trait ErrorHook: Send + Sync + 'static {
    /// Runs for each failed attempt, and once for a request that failed without one.
    fn on_error(&self, event: &ErrorEvent<'_>);
}

struct RequestFn<F>(F);

#[async_trait]
impl<F> RequestHook for RequestFn<F>
where
    F: Fn(&mut Request<'_>) -> Result<(), Reject> + Send + Sync + 'static,
{
    async fn on_request(&self, req: &mut Request<'_>) -> Result<(), Reject> {
        (self.0)(req)
    }
}

struct ResponseFn<F>(F);

#[async_trait]
impl<F> ResponseHook for ResponseFn<F>
where
    F: Fn(&mut Response<'_>) + Send + Sync + 'static,
{
    async fn on_response(&self, resp: &mut Response<'_>) {
        (self.0)(resp)
    }
}

struct ErrorFn<F>(F);

impl<F> ErrorHook for ErrorFn<F>
where
    F: Fn(&ErrorEvent<'_>) + Send + Sync + 'static,
{
    fn on_error(&self, event: &ErrorEvent<'_>) {
        (self.0)(event)
    }
}

/// The registered hooks, run in registration order. The first `on_request` hook that rejects
/// ends the chain.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) request: Vec<Arc<dyn RequestHook>>,
    pub(crate) response: Vec<Arc<dyn ResponseHook>>,
    pub(crate) error: Vec<Arc<dyn ErrorHook>>,
}

impl Hooks {
    pub(crate) fn on_request<F>(&mut self, f: F) -> &mut Self
    where
        F: Fn(&mut Request<'_>) -> Result<(), Reject> + Send + Sync + 'static,
    {
        self.add_request_hook(RequestFn(f))
    }

    pub(crate) fn on_response<F>(&mut self, f: F) -> &mut Self
    where
        F: Fn(&mut Response<'_>) + Send + Sync + 'static,
    {
        self.add_response_hook(ResponseFn(f))
    }

    pub(crate) fn on_error<F>(&mut self, f: F) -> &mut Self
    where
        F: Fn(&ErrorEvent<'_>) + Send + Sync + 'static,
    {
        self.add_error_hook(ErrorFn(f))
    }

    pub(crate) fn add_request_hook(&mut self, hook: impl RequestHook) -> &mut Self {
        self.request.push(Arc::new(hook));
        self
    }

    pub(crate) fn add_response_hook(&mut self, hook: impl ResponseHook) -> &mut Self {
        self.response.push(Arc::new(hook));
        self
    }

    pub(crate) fn add_error_hook(&mut self, hook: impl ErrorHook) -> &mut Self {
        self.error.push(Arc::new(hook));
        self
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("request", &self.request.len())
            .field("response", &self.response.len())
            .field("error", &self.error.len())
            .finish()
    }
}
