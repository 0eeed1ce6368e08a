//! strait's `ProxyHttp`: each Pingora phase delegates to the file of its phase group. The
//! path of a proxied request, top-down:
//!
//! - `request.rs`: snapshot, request id, client, routing, limits, `on_request` hooks, and
//!   the decision to proxy or to answer (`answer.rs`: `respond`, `redirect`, error pages;
//!   `serve.rs`: files, through `crate::serve`);
//! - `cache.rs`: whether and how the response cache takes part;
//! - `compress.rs`: on-the-fly compression, armed here, applied by a downstream module;
//! - `upstream.rs`: the backend for each attempt, and the request it gets;
//! - `response.rs`: what the client gets back;
//! - `failure.rs`: retries and the error page, on what `error_class.rs` (the one classifier
//!   of errors) makes of each error;
//! - `logging.rs`: metrics and the access log line.
//!
//! `trace.rs` carries the W3C trace context through those phases (and the spans exported).
//!
//! `acme_challenge.rs` answers ACME HTTP-01 challenges before routing (`crate::acme`).
//!
//! `hook_calls.rs` is where those phases call the embedder's hooks, `plugin_calls.rs` the
//! configured plugins; `header_rules.rs` applies
//! configured header edits; `host.rs` reads the request's host and scheme.

mod acme_challenge;
mod answer;
mod cache;
mod compress;
mod ctx;
mod error_class;
mod failure;
mod header_rules;
mod hook_calls;
mod host;
pub(crate) mod logging;
mod plugin_calls;
mod request;
mod response;
mod serve;
mod template;
mod trace;
mod upstream;

use std::sync::Arc;

use async_trait::async_trait;
use pingora::cache::key::HashBinary;
use pingora::cache::{CacheKey, CacheMeta, ForcedFreshness, HitHandler, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, RangeType, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::Error;

pub(crate) use ctx::Ctx;
pub(crate) use template::{render as render_template, Vars as TemplateVars};

use crate::state::State;

pub(crate) struct StraitProxy {
    state: Arc<State>,
}

impl StraitProxy {
    pub(crate) fn new(state: Arc<State>) -> Self {
        StraitProxy { state }
    }
}

#[async_trait]
impl ProxyHttp for StraitProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new(&self.state.in_flight)
    }

    /// strait's compression module in place of Pingora's (which is registered disabled by
    /// default): it runs on every response written to the client, armed per request.
    fn init_downstream_modules(&self, modules: &mut pingora::modules::http::HttpModules) {
        modules.add_module(Box::new(crate::compress::Builder));
    }

    // --- request ---

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        request::filter(&self.state, session, ctx).await
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        request::count_body(ctx, body.as_ref())
    }

    // --- cache ---

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        cache::request_filter(session, ctx)
    }

    fn cache_key_callback(&self, session: &Session, ctx: &mut Ctx) -> Result<CacheKey> {
        cache::cache_key(session, ctx)
    }

    fn cache_miss(&self, session: &mut Session, ctx: &mut Ctx) {
        cache::miss(session, ctx)
    }

    async fn cache_hit_filter(
        &self,
        session: &mut Session,
        _meta: &CacheMeta,
        hit_handler: &mut HitHandler,
        is_fresh: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<ForcedFreshness>> {
        cache::hit_filter(session, hit_handler, is_fresh, ctx);
        Ok(None)
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<RespCacheable> {
        cache::response_cacheable(session, resp, ctx)
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut Ctx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        cache::variance(meta, req)
    }

    fn should_serve_stale(
        &self,
        _session: &mut Session,
        _ctx: &mut Ctx,
        error: Option<&Error>,
    ) -> bool {
        cache::serve_stale(error)
    }

    fn range_header_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> RangeType {
        cache::range(session, resp, ctx)
    }

    // --- upstream ---

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        upstream::choose(ctx).await
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        upstream::request(session, req, ctx)
    }

    // --- response ---

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        response::from_upstream(&self.state, session, resp, ctx).await;
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        response::to_client(&self.state, session, resp, ctx).await
    }

    // --- failure ---

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        e: Box<Error>,
    ) -> Box<Error> {
        failure::on_connect_failure(&self.state, session, ctx, e)
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        failure::on_proxy_failure(&self.state, peer, session, ctx, e, client_reused)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        failure::on_request_failure(&self.state, session, e, ctx).await
    }

    /// Pingora logs every failed request at ERROR; a client hanging up is logged at debug
    /// instead (one load test's end would otherwise write a thousand ERROR lines).
    fn suppress_error_log(&self, session: &Session, ctx: &Ctx, e: &Error) -> bool {
        let abort = error_class::classify(e).client_abort;
        if abort {
            log::debug!(
                "client went away: {e}, {}",
                self.request_summary(session, ctx)
            );
        }
        abort
    }

    /// The same for the warning Pingora writes when it would retry after a client error.
    fn suppress_proxy_warn_log(
        &self,
        session: &Session,
        ctx: &Ctx,
        e: &Error,
        _context: ProxyWarnLogContext,
    ) -> bool {
        self.suppress_error_log(session, ctx, e)
    }

    // --- logging ---

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        logging::logging(&self.state, session, e, ctx);
    }
}
