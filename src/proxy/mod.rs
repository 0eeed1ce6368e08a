//! strait's `ProxyHttp`: each Pingora phase delegates to the file named for it.

pub mod cache;
mod ctx;
pub mod errors;
mod headers;
mod hooked;
pub mod observe;
mod policy;
mod request;
mod retry;
mod upstream;

use std::sync::Arc;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::Error;

pub use ctx::Ctx;
use errors::Failure;

use crate::state::State;

pub struct StraitProxy {
    state: Arc<State>,
}

impl StraitProxy {
    pub fn new(state: Arc<State>) -> Self {
        StraitProxy { state }
    }
}

#[async_trait]
impl ProxyHttp for StraitProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        observe::on_request(session, ctx);
        request::route(&self.state, session, ctx).await
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        observe::on_upstream_attempt(ctx);
        hooked::on_attempt(ctx);
        let mut peer = upstream::peer(ctx).await?;
        policy::shape_peer(ctx, &mut peer);
        Ok(peer)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        policy::count_body(ctx, body.as_ref())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        observe::on_upstream_request(req, ctx)?;
        upstream::rewrite_request(session, req, ctx)?;
        if let Some(host) = &ctx.hook.upstream_host {
            req.insert_header(http::header::HOST, host.as_str())?;
        }
        cache::upstream_request(session, req, ctx)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.upstream_responded = true;
        observe::on_upstream_response(ctx);
        cache::upstream_response(session, resp, ctx);
        hooked::on_upstream_response(&self.state, session, ctx, resp).await;
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        cache::response_filter(session, resp, ctx)?;
        // An HTTP/1.0 origin's status line would tell HTTP/1.1 clients to drop keep-alive;
        // the proxy speaks HTTP/1.1 whatever the origin speaks.
        if resp.version == http::Version::HTTP_10 {
            resp.set_version(http::Version::HTTP_11);
        }
        if let Some(rules) = &ctx.headers {
            headers::apply_response(&rules.response, resp);
        }
        policy::rate_headers(ctx, resp);
        hooked::on_response_filter(&self.state, session, ctx, resp).await;
        Ok(())
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        cache::request_filter(session, ctx)
    }

    fn cache_key_callback(
        &self,
        session: &Session,
        ctx: &mut Ctx,
    ) -> Result<pingora::cache::CacheKey> {
        cache::cache_key(session, ctx)
    }

    fn cache_miss(&self, session: &mut Session, ctx: &mut Ctx) {
        cache::miss(session, ctx)
    }

    async fn cache_hit_filter(
        &self,
        session: &mut Session,
        _meta: &pingora::cache::CacheMeta,
        hit_handler: &mut pingora::cache::HitHandler,
        is_fresh: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<pingora::cache::ForcedFreshness>> {
        cache::hit_filter(session, hit_handler, is_fresh, ctx);
        Ok(None)
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<pingora::cache::RespCacheable> {
        cache::response_cacheable(session, resp, ctx)
    }

    fn cache_vary_filter(
        &self,
        meta: &pingora::cache::CacheMeta,
        _ctx: &mut Ctx,
        req: &RequestHeader,
    ) -> Option<pingora::cache::key::HashBinary> {
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
    ) -> pingora::proxy::RangeType {
        cache::range(session, resp, ctx)
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        observe::logging(&self.state, session, e, ctx);
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        e: Box<Error>,
    ) -> Box<Error> {
        let e = retry::on_connect_failure(ctx, e);
        hooked::on_attempt_error(&self.state, session, ctx, &e);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("peer: {peer}"));
        // An oversized body is the client's fault: not the backend's, and not worth a retry.
        e = if *e.etype() == errors::BODY_TOO_LARGE {
            e.set_retry(false);
            e
        } else {
            retry::on_proxy_failure(session, ctx, e, client_reused)
        };
        hooked::on_attempt_error(&self.state, session, ctx, &e);
        e
    }

    /// Pingora logs every failed request at ERROR; a client hanging up is logged at debug
    /// instead (one load test's end would otherwise write a thousand ERROR lines).
    fn suppress_error_log(&self, session: &Session, ctx: &Ctx, e: &Error) -> bool {
        let abort = errors::is_client_abort(e);
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
        _context: pingora::proxy::ProxyWarnLogContext,
    ) -> bool {
        self.suppress_error_log(session, ctx, e)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        hooked::on_final_error(&self.state, session, ctx, e);
        // After a failed proxy attempt Pingora closes the client connection whatever this
        // returns (its reuse flag only applies to filter errors), so the page must say so.
        session.set_keepalive(None);
        let code = match Failure::of(e) {
            Some(f) if session.response_written().is_none() => {
                let snapshot = ctx
                    .snapshot
                    .clone()
                    .unwrap_or_else(|| self.state.snapshot());
                hooked::error_page(&self.state, &snapshot, session, ctx, f)
                    .await
                    .unwrap_or(0)
            }
            Some(f) => f.status(),
            None => 0,
        };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
}
