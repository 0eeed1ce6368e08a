//! The request phase (`request_filter`, `request_body_filter`), top-down: take the snapshot,
//! name the request, identify the client, route by Host and path, apply the domain's or
//! route's limits (`deny` 403, `rate_limit` 429, `max_body_bytes` 413 by `Content-Length`),
//! run the plugins (`plugin_calls.rs`) and the `on_request` hooks, then act: proxy (later phases), or answer here (`respond`,
//! `redirect`, `serve`, 404).

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use pingora::proxy::Session;
use pingora::{Error, Result};

use super::ctx::Ctx;
use super::error_class::{Failure, BODY_TOO_LARGE, DROPPED};
use super::plugin_calls::{self, Verdict};
use super::template::{self, Vars};
use super::{acme_challenge, answer, compress, hook_calls, host, logging, serve, trace};
use crate::config::Rewrite;
use crate::hooks::RequestKind;
use crate::router::{Hit, Request};
use crate::snapshot::{RouteAction, Snapshot, Target};
use crate::state::State;

/// `request_filter`. Returns `true` when the response has been written here and the request
/// is done.
pub(crate) async fn filter(state: &State, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let snapshot = state.snapshot();
    // Pingora keeps idle HTTP/1 clients forever unless told otherwise; but where it turned
    // keep-alive off (HTTP/1.0 without `keep-alive`, Transfer-Encoding with Content-Length,
    // shutting down), it stays off.
    if session.get_keepalive().is_some() {
        session.set_keepalive(Some(snapshot.config.server.keepalive_timeout.as_secs()));
    }
    logging::name_request(session, ctx);
    trace::begin(state, &snapshot, session, ctx);
    identify_client(&snapshot, session, ctx);
    ctx.snapshot = Some(snapshot.clone());
    if acme_challenge::answer(state, session).await? {
        return Ok(true);
    }

    // Only configs that scope domains to listeners pay for finding the listener.
    let listener = if snapshot.listener_scoped() {
        session
            .server_addr()
            .and_then(|a| a.as_inet())
            .and_then(|a| snapshot.listener_of(*a))
    } else {
        None
    };
    let req = session.req_header();
    let route_req = Request {
        host: host::request_host(req),
        path: req.uri.path(),
        method: req.method.as_str(),
        headers: &req.headers,
        query: req.uri.query(),
    };
    let Some((hit, handler)) = snapshot.lookup_on(listener, &route_req) else {
        answer::error_page(state, session, ctx, Failure::UnknownHost).await?;
        return Ok(true);
    };
    ctx.hit = Some(hit);
    ctx.headers = Some(handler.headers.clone());
    if hit.wrong_method {
        let allow = snapshot.router_on(listener).allowed(hit.domain, &route_req);
        answer::method_not_allowed(state, session, ctx, &allow).await?;
        return Ok(true);
    }
    if let Some(glob) = &handler.captures {
        ctx.captures = glob.capture(route_req.path).unwrap_or_default();
    }
    if let Some(settings) = &handler.compress {
        compress::arm(session, ctx, settings);
    }
    let action = &handler.action;
    if let RouteAction::NotFound = action {
        answer::error_page(state, session, ctx, Failure::NoRoute).await?;
        return Ok(true);
    }
    if let Some(rewrite) = &handler.rewrite {
        if session.subrequest_ctx.is_none() && rewrite_path(session, ctx, rewrite).is_err() {
            answer::error_page(state, session, ctx, Failure::BadRequest).await?;
            return Ok(true);
        }
    }
    // A background cache refresh repeats a request that already passed all of this.
    if session.subrequest_ctx.is_none() {
        if let Some(refusal) = enforce_limits(&snapshot, hit, session, ctx).await {
            answer::error_page(state, session, ctx, refusal).await?;
            return Ok(true);
        }
        let kind = prepare(state, session, ctx, action);
        match plugin_calls::on_request(session, ctx).await {
            Verdict::Go => {}
            Verdict::Respond(reject) => {
                answer::rejection(state, session, ctx, &reject).await?;
                return Ok(true);
            }
            Verdict::Unavailable => {
                answer::error_page(state, session, ctx, Failure::PluginUnavailable).await?;
                return Ok(true);
            }
        }
        if let Some(reject) = hook_calls::on_request(state, session, ctx, kind).await {
            answer::rejection(state, session, ctx, &reject).await?;
            return Ok(true);
        }
    }
    match action {
        RouteAction::Proxy(target) => {
            if ctx.target.is_none() {
                choose_affinity(session, ctx, target);
            }
            ctx.target = Some(target.clone());
            buffer_body(state, session, ctx, target).await?;
            Ok(false)
        }
        RouteAction::Respond(r) => answer::respond(state, session, ctx, r).await.map(|_| true),
        RouteAction::Redirect(r) => answer::redirect(state, session, ctx, r).await.map(|_| true),
        // Boxed: a file answer's future (the file read and send) would otherwise enlarge the
        // future every request allocates for this filter.
        RouteAction::Serve(site) => Box::pin(serve::serve(state, session, ctx, site))
            .await
            .map(|_| true),
        RouteAction::Drop => {
            // No response: fail_to_proxy writes nothing for this error, Pingora closes, and
            // the access log and metrics record status 0 with error `dropped`.
            session.set_keepalive(None);
            Error::e_explain(DROPPED, "drop: true")
        }
        RouteAction::NotFound => Ok(true),
    }
}

/// `strip_prefix` or `rewrite`: the request's path becomes the new one (its query kept), so the
/// upstream request, the cache key and a file server all see it; the access log keeps the
/// original (`ctx.original_uri`).
fn rewrite_path(session: &mut Session, ctx: &mut Ctx, rewrite: &Rewrite) -> Result<(), ()> {
    let req = session.req_header();
    let path = req.uri.path();
    let mut new_path = match rewrite {
        Rewrite::StripPrefix(prefix) => {
            let rest = path
                .strip_prefix(prefix.as_str())
                .or_else(|| path.strip_prefix(prefix.trim_end_matches('/')))
                .unwrap_or(path);
            let rest = rest.trim_start_matches('/');
            format!("/{rest}")
        }
        Rewrite::Path(t) => template::render(t, req, &Vars::of(session, ctx)),
    };
    if !new_path.starts_with('/') {
        new_path.insert(0, '/');
    }
    if let Some(q) = req.uri.query() {
        new_path.push('?');
        new_path.push_str(q);
    }
    let uri: http::Uri = new_path.parse().map_err(|_| ())?;
    let original = session.req_header().uri.clone();
    session.req_header_mut().set_uri(uri);
    ctx.original_uri = Some(original);
    Ok(())
}

/// Sets `ctx.peer_ip` and `ctx.client_ip` (see `limits::client_ip`), and the verified client
/// certificate (`ctx.client_cert`).
fn identify_client(snapshot: &Snapshot, session: &Session, ctx: &mut Ctx) {
    ctx.client_cert = crate::tls::ClientCert::of_session(session).cloned();
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    ctx.peer_ip = peer;
    let trusted = &snapshot.config.server.trusted_proxies;
    ctx.client_ip = if trusted.is_empty() {
        peer
    } else {
        let forwarded: Vec<&[u8]> = session
            .req_header()
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        crate::limits::client_ip(peer, &forwarded, trusted)
    };
}

/// `deny`, `rate_limit` and a declared `Content-Length` over `max_body_bytes`: the refusal, if
/// any. A refused request's connection is not reused when its body may be unread. Only a
/// `scope: cluster` rate limit waits (for Redis, at most `cluster.redis.timeout`).
async fn enforce_limits(
    snapshot: &Snapshot,
    hit: Hit,
    session: &mut Session,
    ctx: &mut Ctx,
) -> Option<Failure> {
    let limits = &snapshot.handler(hit)?.limits;

    if limits.denies(ctx.client_ip) {
        return Some(Failure::Denied);
    }
    if let Some(limiter) = &limits.rate {
        let req = session.req_header();
        let prefix = snapshot.names(hit).and_then(|(_, r)| r).unwrap_or("");
        let key = limiter.key(
            ctx.client_ip,
            |name| req.headers.get(name).map(|v| v.as_bytes()),
            prefix,
        );
        let verdict = limiter.decide(&key).await;
        ctx.limits.rate = Some(verdict);
        if !verdict.allowed {
            session.set_keepalive(None);
            return Some(Failure::RateLimited);
        }
    }
    ctx.limits.max_body = limits.max_body_bytes;
    if let Some(max) = limits.max_body_bytes {
        let declared = session
            .req_header()
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > max) {
            // The body is not read: the connection cannot carry another request.
            session.set_keepalive(None);
            return Some(Failure::BodyTooLarge);
        }
    }
    None
}

/// What the hooks are told about the request, and what a proxied request needs before them:
/// a WebSocket upgrade's idle timeout, and the backend `on_request` hooks are shown.
fn prepare(
    state: &State,
    session: &mut Session,
    ctx: &mut Ctx,
    action: &RouteAction,
) -> RequestKind {
    let RouteAction::Proxy(target) = action else {
        return RequestKind::Static;
    };
    if session.is_upgrade_req() {
        ctx.upgrade = true;
        // The client side of a tunnel may stay silent this long (Pingora's default read
        // timeout would cut it after 60 s).
        session.set_read_timeout(Some(target.options.websocket_idle_timeout));
    }
    choose_affinity(session, ctx, target);
    if !state.hooks().request.is_empty() {
        if ctx.first_pick.is_none() {
            ctx.first_pick = target.pool.pick(ctx.affinity, &|_| false);
        }
        ctx.target = Some(target.clone());
    }
    if ctx.upgrade {
        RequestKind::Upgrade
    } else {
        RequestKind::Proxy
    }
}

/// `buffer_request_body`: reads a body of a known length up to the limit before a backend is
/// chosen, so a slow upload never holds a backend connection, and a connect failure can be
/// retried with the body whatever the method. The body lives in Pingora's replay buffer
/// (which is why the limit is at most 64 KiB); a chunked body, a larger one, or one that
/// would pass `server.max_buffered_bytes` streams as usual.
async fn buffer_body(
    state: &State,
    session: &mut Session,
    ctx: &mut Ctx,
    target: &Target,
) -> Result<()> {
    let Some(limit) = target.options.buffer_request_body else {
        return Ok(());
    };
    if ctx.upgrade || session.subrequest_ctx.is_some() {
        return Ok(());
    }
    let declared = session
        .req_header()
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let Some(length) = declared.filter(|&n| n > 0 && n <= limit) else {
        return Ok(());
    };
    let cap = state.snapshot().config.server.max_buffered_bytes;
    let Some(reserved) = super::ctx::Reservation::take(&state.buffered_bytes, length, cap) else {
        return Ok(());
    };
    session.as_mut().enable_retry_buffering();
    while !session.as_mut().is_body_done() {
        if session.read_request_body().await?.is_none() {
            break;
        }
    }
    ctx.buffered = Some(reserved);
    Ok(())
}

/// The request's affinity key, and the backend its sticky cookie names (tried first).
fn choose_affinity(session: &Session, ctx: &mut Ctx, target: &Target) {
    let req = session.req_header();
    ctx.affinity = target.pool.key(req, ctx.client_ip);
    ctx.first_pick = target.pool.sticky_pick(req);
}

/// `request_body_filter`: counts a body sent without (or despite) a `Content-Length` against
/// `max_body_bytes`. Tunnelled (upgraded) bytes are not a body.
pub(crate) fn count_body(ctx: &mut Ctx, chunk: Option<&Bytes>) -> Result<()> {
    let Some(max) = ctx.limits.max_body else {
        return Ok(());
    };
    if ctx.upgrade {
        return Ok(());
    }
    ctx.limits.body_seen += chunk.map_or(0, |c| c.len() as u64);
    if ctx.limits.body_seen > max {
        return Error::e_explain(
            BODY_TOO_LARGE,
            format!("request body over max_body_bytes ({max})"),
        );
    }
    Ok(())
}
