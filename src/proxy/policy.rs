//! The request-phase policies of a domain or route, in `request_filter` order: who the client
//! is (`server.trusted_proxies`), `deny` (403), `rate_limit` (429), `max_body_bytes` (413 by
//! `Content-Length`; a chunked body is counted in `request_body_filter`), the `on_request`
//! hooks, then the static answers (`respond`, `redirect`). WebSocket upgrades get their
//! `websocket_idle_timeout` here and in `upstream_peer`.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, LOCATION};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, Result};

use super::ctx::Ctx;
use super::errors::{Failure, BODY_TOO_LARGE};
use super::hooked;
use crate::config::{LocationPart, Redirect};
use crate::hooks::RequestKind;
use crate::limits::RateState;
use crate::router::Hit;
use crate::snapshot::{RouteAction, Snapshot, StaticResponse};
use crate::state::State;

/// Per-request limits state, kept in [`Ctx`].
#[derive(Debug, Default)]
pub struct PolicyCtx {
    /// The rate limit's count for this request, for the `RateLimit-*` headers.
    pub rate: Option<RateState>,
    pub max_body: Option<u64>,
    pub body_seen: u64,
}

/// Sets `ctx.peer_ip` and `ctx.client_ip` (see `limits::client_ip`).
pub fn identify_client(snapshot: &Snapshot, session: &Session, ctx: &mut Ctx) {
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

/// Everything between routing and the route's action. Returns `true` when a response was
/// written (the request is done).
pub async fn enforce(
    state: &State,
    snapshot: &Snapshot,
    hit: Hit,
    action: &RouteAction,
    session: &mut Session,
    ctx: &mut Ctx,
) -> Result<bool> {
    ctx.hit = Some(hit);
    // A background cache refresh repeats a request that already passed all of this.
    if session.subrequest_ctx.is_some() || matches!(action, RouteAction::NotFound) {
        return Ok(false);
    }
    let Some(domain) = snapshot.domains.get(hit.domain) else {
        return Ok(false);
    };
    let route = hit.route.and_then(|r| domain.routes.get(r));
    let limits = route.map_or(&domain.limits, |r| &r.limits);

    if limits.denies(ctx.client_ip) {
        hooked::error_page(state, snapshot, session, ctx, Failure::Denied).await?;
        return Ok(true);
    }
    if let Some(limiter) = &limits.rate {
        let req = session.req_header();
        let prefix = route.map_or("", |r| r.path_prefix.as_str());
        let key = limiter.key(
            ctx.client_ip,
            |name| req.headers.get(name).map(|v| v.as_bytes()),
            prefix,
        );
        let verdict = limiter.check(&key);
        ctx.policy.rate = Some(verdict);
        if !verdict.allowed {
            session.set_keepalive(None);
            hooked::error_page(state, snapshot, session, ctx, Failure::RateLimited).await?;
            return Ok(true);
        }
    }
    ctx.policy.max_body = limits.max_body_bytes;
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
            hooked::error_page(state, snapshot, session, ctx, Failure::BodyTooLarge).await?;
            return Ok(true);
        }
    }

    let kind = match action {
        RouteAction::Proxy(target) => {
            if session.is_upgrade_req() {
                ctx.upgrade = true;
                // The client side of a tunnel may stay silent this long (Pingora's default
                // read timeout would cut it after 60 s).
                session.set_read_timeout(Some(target.options.websocket_idle_timeout));
            }
            if !state.hooks().request.is_empty() {
                ctx.first_pick = target.pool.pick(ctx.client_ip, &|_| false);
                ctx.target = Some(target.clone());
            }
            if ctx.upgrade {
                RequestKind::Upgrade
            } else {
                RequestKind::Proxy
            }
        }
        _ => RequestKind::Static,
    };
    if let Some(reject) = hooked::on_request(state, snapshot, session, ctx, kind).await {
        let header = hooked::rejection(&reject)?;
        hooked::write_own(state, snapshot, session, ctx, header, reject.body.clone()).await?;
        return Ok(true);
    }
    Ok(false)
}

/// A `respond` route's answer.
pub async fn respond(
    state: &State,
    snapshot: &Snapshot,
    session: &mut Session,
    ctx: &mut Ctx,
    r: &StaticResponse,
) -> Result<bool> {
    let mut header = r.header.clone();
    if let Some(rules) = &ctx.headers {
        super::headers::apply_response(&rules.response, &mut header);
    }
    hooked::write_own(state, snapshot, session, ctx, header, r.body.clone()).await?;
    Ok(true)
}

/// A `redirect` route's answer.
pub async fn redirect(
    state: &State,
    snapshot: &Snapshot,
    session: &mut Session,
    ctx: &mut Ctx,
    r: &Redirect,
) -> Result<bool> {
    let target = location(r, session.req_header());
    let Ok(value) = HeaderValue::from_str(&target) else {
        // Only a request target or Host with bytes a header cannot carry gets here.
        hooked::error_page(state, snapshot, session, ctx, Failure::BadRequest).await?;
        return Ok(true);
    };
    let body = Bytes::from(format!("Redirecting to {target}\n"));
    let mut header = ResponseHeader::build(r.status, Some(4))?;
    header.insert_header(LOCATION, value)?;
    header.insert_header("Content-Type", "text/plain; charset=utf-8")?;
    header.insert_header("Content-Length", body.len().to_string())?;
    if let Some(rules) = &ctx.headers {
        super::headers::apply_response(&rules.response, &mut header);
    }
    hooked::write_own(state, snapshot, session, ctx, header, body).await?;
    Ok(true)
}

/// Fills in a redirect's `location` template for `req`.
pub fn location(r: &Redirect, req: &RequestHeader) -> String {
    let mut out = String::new();
    for part in &r.location {
        match part {
            LocationPart::Text(t) => out.push_str(t),
            LocationPart::Host => {
                out.push_str(host_without_port(super::request::request_host(req)))
            }
            LocationPart::Path => out.push_str(req.uri.path()),
            LocationPart::Query => {
                if let Some(q) = req.uri.query() {
                    out.push('?');
                    out.push_str(q);
                }
            }
        }
    }
    out
}

fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        // `[::1]:8080` → `[::1]`
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
        _ => host,
    }
}

/// Adds the `RateLimit-*` headers (and `Retry-After` to a 429) when a limit counted the request.
pub fn rate_headers(ctx: &Ctx, header: &mut ResponseHeader) {
    let Some(state) = ctx.policy.rate else {
        return;
    };
    if hooked::interim(header) {
        return;
    }
    let _ = header.insert_header("RateLimit-Limit", state.limit.to_string());
    let _ = header.insert_header("RateLimit-Remaining", state.remaining.to_string());
    let _ = header.insert_header("RateLimit-Reset", state.reset_secs.to_string());
    if !state.allowed {
        let _ = header.insert_header("Retry-After", state.reset_secs.to_string());
    }
}

/// `request_body_filter`: counts a body sent without (or despite) a `Content-Length` against
/// `max_body_bytes`. Tunnelled (upgraded) bytes are not a body.
pub fn count_body(ctx: &mut Ctx, chunk: Option<&Bytes>) -> Result<()> {
    let Some(max) = ctx.policy.max_body else {
        return Ok(());
    };
    if ctx.upgrade {
        return Ok(());
    }
    ctx.policy.body_seen += chunk.map_or(0, |c| c.len() as u64);
    if ctx.policy.body_seen > max {
        return Error::e_explain(
            BODY_TOO_LARGE,
            format!("request body over max_body_bytes ({max})"),
        );
    }
    Ok(())
}

/// `upstream_peer` addition: a tunnel's backend side may stay silent as long as its client side.
pub fn shape_peer(ctx: &Ctx, peer: &mut HttpPeer) {
    if let (true, Some(target)) = (ctx.upgrade, &ctx.target) {
        peer.options.read_timeout = Some(target.options.websocket_idle_timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_fill_in_the_request() {
        let r = Redirect {
            status: 301,
            location: crate::config::load_str(
                "listeners: [{addr: 127.0.0.1:1}]\ndomains: [{hosts: [a.com], redirect: {location: \"https://$host/new$path$query\"}}]\n",
                "t",
                &|_| None,
            )
            .map(|c| match &c.domains[0].action {
                crate::config::Action::Redirect(r) => r.location.clone(),
                other => panic!("{other:?}"),
            })
            .unwrap(),
        };
        let mut req = RequestHeader::build("GET", b"/a/b?x=1&y=2", None).unwrap();
        req.insert_header("Host", "old.example:8080").unwrap();
        assert_eq!(location(&r, &req), "https://old.example/new/a/b?x=1&y=2");
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("Host", "[::1]:80").unwrap();
        assert_eq!(location(&r, &req), "https://[::1]/new/");
    }
}
