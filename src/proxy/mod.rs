//! strait's `ProxyHttp`: each Pingora phase delegates to the file named for it.

mod ctx;
pub mod errors;
mod headers;
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
        request::route(&self.state, session, ctx).await
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        upstream::peer(ctx)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        upstream::rewrite_request(session, req, ctx)
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.upstream_responded = true;
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(rules) = &ctx.headers {
            headers::apply_response(&rules.response, resp);
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        e: Box<Error>,
    ) -> Box<Error> {
        retry::on_connect_failure(ctx, e)
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let e = e.more_context(format!("peer: {peer}"));
        retry::on_proxy_failure(session, ctx, e, client_reused)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, _ctx: &mut Ctx) -> FailToProxy {
        let failure = Failure::of(e);
        // Once a response has started there is nothing sane left to send: close.
        let code = match failure {
            Some(f) if session.response_written().is_none() => {
                errors::respond(session, f).await.unwrap_or(0)
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
