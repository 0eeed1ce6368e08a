//! The response phase, for every response a client gets from a backend or the cache:
//! `upstream_response_filter` (before cache admission) and `response_filter` (after it).
//! strait's own answers get the same treatment in `answer::write`.

use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use super::ctx::Ctx;
use super::hook_calls::interim;
use super::template::Vars;
use super::{cache, header_rules, hook_calls, logging, plugin_calls, trace};
use crate::state::State;

/// `upstream_response_filter`: a backend answered; the cache and the hooks see it before the
/// cache decides whether to store it.
pub(crate) async fn from_upstream(
    state: &State,
    session: &mut Session,
    resp: &mut ResponseHeader,
    ctx: &mut Ctx,
) {
    ctx.upstream_responded = true;
    logging::upstream_answered(ctx);
    trace::answered(ctx, resp.status.as_u16());
    backend_outcome(resp, ctx);
    cache::upstream_response(session, resp, ctx);
    hook_calls::on_upstream_response(state, session, ctx, resp).await;
}

/// Passive health and latency learn from every backend response: 502, 503 and 504 count as
/// failures, anything else (final) as a success. A 101 or an interim response has no latency
/// worth learning from.
fn backend_outcome(resp: &ResponseHeader, ctx: &Ctx) {
    if interim(resp) {
        return;
    }
    let (Some(target), Some(i)) = (&ctx.target, ctx.backend_index) else {
        return;
    };
    let status = resp.status.as_u16();
    target.pool.outcome(i, !matches!(status, 502..=504));
    if let (Some(took), Some(b), false) = (
        ctx.observe.upstream_duration,
        target.pool.backends.get(i),
        status == 101,
    ) {
        b.observe_latency(took);
    }
}

/// `response_filter`: what the client gets, after the cache.
pub(crate) async fn to_client(
    state: &State,
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
        let vars = Vars::of(session, ctx);
        header_rules::apply_response(&rules.response, resp, session.req_header(), &vars);
    }
    rate_headers(ctx, resp);
    sticky_cookie(session, ctx, resp);
    plugin_calls::on_response(session, ctx, resp).await;
    hook_calls::on_response_filter(state, session, ctx, resp).await;
    Ok(())
}

/// `sticky`: a response from a backend names it in a cookie, unless the request already did.
fn sticky_cookie(session: &Session, ctx: &Ctx, resp: &mut ResponseHeader) {
    let (Some(target), Some(i)) = (&ctx.target, ctx.backend_index) else {
        return;
    };
    if !ctx.upstream_responded || interim(resp) {
        return;
    }
    if let Some(cookie) = target.pool.sticky_cookie(i, session.req_header()) {
        let _ = resp.append_header(http::header::SET_COOKIE, cookie);
    }
}

/// Adds the `RateLimit-*` headers (and `Retry-After` to a 429) when a limit counted the request.
pub(crate) fn rate_headers(ctx: &Ctx, header: &mut ResponseHeader) {
    let Some(state) = ctx.limits.rate else {
        return;
    };
    if interim(header) {
        return;
    }
    let _ = header.insert_header("RateLimit-Limit", state.limit.to_string());
    let _ = header.insert_header("RateLimit-Remaining", state.remaining.to_string());
    let _ = header.insert_header("RateLimit-Reset", state.reset_secs.to_string());
    if !state.allowed {
        let _ = header.insert_header("Retry-After", state.reset_secs.to_string());
    }
}
