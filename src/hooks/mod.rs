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

mod error;
mod request;
mod response;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// For implementing [`RequestHook`] / [`ResponseHook`] without naming the crate yourself.
pub use async_trait::async_trait;

pub use error::{ErrorEvent, ErrorKind};
pub use request::{Reject, Request, RequestKind};
pub(crate) use response::{apply_edits, Edit};
pub use response::{CacheDecision, Response, ResponseSource};

/// What every hook is told about the request it runs for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta<'a> {
    pub domain: &'a str,
    pub route: Option<&'a str>,
    pub backend: Option<&'a str>,
    pub client_addr: Option<SocketAddr>,
    pub client_ip: Option<IpAddr>,
    pub request_id: &'a str,
    /// The client's verified certificate (`client_auth`).
    pub client_cert: Option<&'a crate::tls::ClientCert>,
}

fn warn_invalid(side: &str, name: &str, ok: bool) {
    if !ok {
        log::warn!("hook: invalid {side} header {name:?} (name or value) ignored");
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
