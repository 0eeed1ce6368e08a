//! Where the proxy phases call the embedder's hooks (`crate::hooks`).
//!
//! Every request that matched a domain gets each hook kind at most once: `on_request` in
//! `request_filter`; `on_response` in `upstream_response_filter` for a backend's response
//! (edits recorded, applied in `response_filter`, so they never reach the cache), else in
//! `response_filter` (cache hits) or in `answer::write` (strait's own answers); `on_error` per failed attempt and once
//! for a final failure no attempt reported. Background cache refreshes (subrequests) run none:
//! no client sees them, and their request already carries the hooks' edits.

use std::net::SocketAddr;

use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Error;

use super::ctx::Ctx;
use super::error_class::classify;
use crate::hooks::{
    apply_edits, ErrorEvent, Meta, Reject, Request, RequestKind, Response, ResponseSource,
};
use crate::snapshot::Snapshot;
use crate::state::State;

fn client_addr(session: &Session) -> Option<SocketAddr> {
    session.client_addr().and_then(|a| a.as_inet()).copied()
}

/// The names hooks see; `None` when the request matched no domain (no hook runs then).
fn meta<'a>(
    snapshot: &'a Snapshot,
    ctx: &'a Ctx,
    client_addr: Option<SocketAddr>,
) -> Option<Meta<'a>> {
    let (domain, route) = snapshot.names(ctx.hit?)?;
    let backend = ctx.target.as_ref().and_then(|t| {
        let i = ctx.backend_index.or(ctx.first_pick)?;
        t.pool.backends.get(i).map(|b| b.config.url.as_str())
    });
    Some(Meta {
        domain,
        route,
        backend,
        client_addr,
        client_ip: ctx.client_ip,
        request_id: &ctx.observe.request_id,
        client_cert: ctx.client_cert.as_ref(),
    })
}

fn is_subrequest(session: &Session) -> bool {
    session.subrequest_ctx.is_some()
}

/// Runs the `on_request` hooks; `Some` when one rejected the request.
pub(crate) async fn on_request(
    state: &State,
    session: &mut Session,
    ctx: &mut Ctx,
    kind: RequestKind,
) -> Option<Reject> {
    let hooks = state.hooks();
    if hooks.request.is_empty() || is_subrequest(session) {
        return None;
    }
    let snapshot = ctx.snapshot.clone()?;
    let addr = client_addr(session);
    let mut upstream_host = ctx.hook.upstream_host.take();
    let mut rejected = None;
    if let Some(meta) = meta(&snapshot, ctx, addr) {
        let mut req = Request {
            header: session.req_header_mut(),
            meta,
            kind,
            upstream_host: &mut upstream_host,
        };
        for hook in &hooks.request {
            if let Err(reject) = hook.on_request(&mut req).await {
                rejected = Some(reject);
                break;
            }
        }
    }
    ctx.hook.upstream_host = upstream_host;
    rejected
}

/// Runs the `on_response` hooks on `resp` itself (edits apply directly).
pub(crate) async fn on_response(
    state: &State,
    session: &Session,
    ctx: &mut Ctx,
    resp: &mut ResponseHeader,
    source: ResponseSource,
) {
    let hooks = state.hooks();
    if hooks.response.is_empty() || ctx.hook.response_done || is_subrequest(session) {
        return;
    }
    let Some(snapshot) = ctx.snapshot.clone() else {
        return;
    };
    ctx.hook.response_done = true;
    let mut decision = ctx.hook.cache.take();
    if let Some(meta) = meta(&snapshot, ctx, client_addr(session)) {
        let req = session.req_header();
        let mut view = Response {
            header: resp,
            edits: None,
            cache: &mut decision,
            source,
            meta,
            method: &req.method,
            uri: &req.uri,
        };
        for hook in &hooks.response {
            hook.on_response(&mut view).await;
        }
    }
    ctx.hook.cache = decision;
}

/// `upstream_response_filter`: shows a backend's response to the hooks before the cache
/// decides on it, recording their edits for `response_filter`. A 304 answering a cache
/// revalidation is left to `response_filter`, where the client's (stored) response is known.
pub(crate) async fn on_upstream_response(
    state: &State,
    session: &Session,
    ctx: &mut Ctx,
    resp: &ResponseHeader,
) {
    let hooks = state.hooks();
    if hooks.response.is_empty()
        || ctx.hook.response_done
        || is_subrequest(session)
        || interim(resp)
    {
        return;
    }
    if resp.status.as_u16() == 304 && session.cache.enabled() {
        return;
    }
    let Some(snapshot) = ctx.snapshot.clone() else {
        return;
    };
    ctx.hook.response_done = true;
    let mut copy = resp.clone();
    let mut edits = Vec::new();
    let mut decision = ctx.hook.cache.take();
    if let Some(meta) = meta(&snapshot, ctx, client_addr(session)) {
        let req = session.req_header();
        let mut view = Response {
            header: &mut copy,
            edits: Some(&mut edits),
            cache: &mut decision,
            source: ResponseSource::Backend,
            meta,
            method: &req.method,
            uri: &req.uri,
        };
        for hook in &hooks.response {
            hook.on_response(&mut view).await;
        }
    }
    ctx.hook.cache = decision;
    ctx.hook.edits = Some(edits);
}

/// `response_filter`: applies recorded edits, or runs the hooks for a response that did not
/// come through `upstream_response_filter` (a cache hit).
pub(crate) async fn on_response_filter(
    state: &State,
    session: &Session,
    ctx: &mut Ctx,
    resp: &mut ResponseHeader,
) {
    if interim(resp) {
        return;
    }
    if let Some(edits) = ctx.hook.edits.take() {
        apply_edits(&edits, resp);
        return;
    }
    let source =
        if ctx.upstream_responded && !super::cache::served_from_cache(session.cache.phase()) {
            ResponseSource::Backend
        } else {
            ResponseSource::Cache
        };
    on_response(state, session, ctx, resp, source).await;
}

/// A new upstream attempt starts: its failure has not been reported yet, and no backend is
/// its own until `upstream::peer` picks one (a pick that fails must not name the last one).
pub(crate) fn on_attempt(ctx: &mut Ctx) {
    ctx.hook.error_reported = false;
    ctx.backend_index = None;
}

/// `fail_to_connect` / `error_while_proxy`: one failed attempt, after the retry decision.
pub(crate) fn on_attempt_error(state: &State, session: &Session, ctx: &mut Ctx, e: &Error) {
    report(state, session, ctx, e, e.retry());
    ctx.hook.error_reported = true;
}

/// `fail_to_proxy`: the request failed; reported unless its last attempt already was.
pub(crate) fn on_final_error(state: &State, session: &Session, ctx: &mut Ctx, e: &Error) {
    if !ctx.hook.error_reported {
        report(state, session, ctx, e, false);
        ctx.hook.error_reported = true;
    }
}

fn report(state: &State, session: &Session, ctx: &Ctx, e: &Error, retrying: bool) {
    let hooks = state.hooks();
    if hooks.error.is_empty() || is_subrequest(session) {
        return;
    }
    let Some(snapshot) = ctx.snapshot.clone() else {
        return;
    };
    let Some(meta) = meta(&snapshot, ctx, client_addr(session)) else {
        return;
    };
    let req = session.req_header();
    let event = ErrorEvent {
        meta,
        attempt: ctx.attempts,
        kind: classify(e).kind,
        retrying,
        error: e,
        method: &req.method,
        uri: &req.uri,
    };
    for hook in &hooks.error {
        hook.on_error(&event);
    }
}

/// `100 Continue`, `103 Early Hints`: forwarded as they are; rules and hooks see the final
/// answer.
pub(crate) fn interim(resp: &ResponseHeader) -> bool {
    resp.status.is_informational() && resp.status.as_u16() != 101
}
