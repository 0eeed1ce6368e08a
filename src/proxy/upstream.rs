//! The upstream phase, per attempt: `upstream_peer` chooses a backend (and waits for a slot
//! under `max_connections`), `upstream_request_filter` shapes the request sent to it (Host,
//! `X-Forwarded-*`, header rules, the hooks' Host, the request id, `traceparent`, the cache's
//! `Accept-Encoding`).

use http::HeaderValue;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::Error;

use super::ctx::Ctx;
use super::error_class::NO_HEALTHY_BACKEND;
use super::template::Vars;
use super::{cache, header_rules, hook_calls, host, logging, trace};
use crate::limits::concurrency::{self, Pick};

/// `upstream_peer`: a new attempt (the first, or a retry) gets its backend.
pub(crate) async fn choose(ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
    logging::upstream_attempt(ctx);
    hook_calls::on_attempt(ctx);
    let mut peer = peer(ctx).await?;
    trace::attempt(ctx);
    // A tunnel's backend side may stay silent as long as its client side.
    if let (true, Some(target)) = (ctx.upgrade, &ctx.target) {
        peer.options.read_timeout = Some(target.options.websocket_idle_timeout);
    }
    Ok(peer)
}

async fn peer(ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
    let Some(target) = ctx.target.clone() else {
        return Error::e_explain(
            ErrorType::InternalError,
            "no upstream target for this request",
        );
    };
    ctx.attempts += 1;
    // A retry replays the body from the start: count it afresh against max_body_bytes.
    ctx.limits.body_seen = 0;
    if ctx.attempts == 1 {
        target.pool.count_request();
    }
    // Release the previous attempt's backend before taking the next one.
    ctx.lease = None;
    // The first attempt prefers the backend `on_request` hooks were shown; `max_connections`
    // may make the pick wait for a slot (crate::limits::concurrency).
    let preferred = ctx.first_pick.take();
    let wait = target.options.connect_timeout;
    let (index, lease) =
        match concurrency::select(&target.pool, ctx.affinity, &ctx.tried, preferred, wait).await {
            Pick::Got(index, lease) => (index, lease),
            Pick::NoBackend => {
                return Error::e_explain(NO_HEALTHY_BACKEND, format!("pool {}", target.pool.name))
            }
            Pick::Busy => {
                return Error::e_explain(
                    concurrency::BACKEND_BUSY,
                    format!(
                        "pool {}: every backend at max_connections",
                        target.pool.name
                    ),
                )
            }
        };
    ctx.tried.push(index);
    ctx.backend_index = Some(index);
    ctx.lease = Some(lease);
    match target.peers.get(index) {
        Some(p) => Ok(Box::new(p.clone())),
        None => Error::e_explain(ErrorType::InternalError, "peer list out of step with pool"),
    }
}

/// `upstream_request_filter`.
pub(crate) fn request(session: &Session, req: &mut RequestHeader, ctx: &Ctx) -> Result<()> {
    logging::carry_request_id(req, ctx)?;
    trace::carry(req, ctx)?;
    rewrite(session, req, ctx)?;
    if let Some(host) = &ctx.hook.upstream_host {
        req.insert_header(http::header::HOST, host.as_str())?;
    }
    cache::upstream_request(session, req, ctx)
}

fn rewrite(session: &Session, req: &mut RequestHeader, ctx: &Ctx) -> Result<()> {
    let Some(target) = &ctx.target else {
        return Ok(());
    };
    if target.options.max_idle_conns == 0 {
        // No pooling: the connection closes after this response instead of lingering in
        // Pingora's pool (whose zero idle timeout is coarse enough for a quick next request
        // to pick it up).
        req.insert_header(http::header::CONNECTION, HeaderValue::from_static("close"))?;
    }
    // Header values are prebuilt (Host) or cloned (X-Forwarded-Host, a reference count) where
    // they can be: this runs for every proxied request.
    if !target.options.preserve_host {
        if let Some(host) = ctx
            .backend_index
            .and_then(|i| target.upstream_hosts.get(i))
            .and_then(Option::as_ref)
        {
            req.insert_header(http::header::HOST, host.clone())?;
        }
    }

    // This hop appends the address it was connected from (the peer, not the client it names).
    if let Some(ip) = ctx.peer_ip.or(ctx.client_ip) {
        let prev = req
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.trim().is_empty());
        let mut xff = Vec::with_capacity(prev.map_or(0, |p| p.len() + 2) + 39);
        if let Some(prev) = prev {
            xff.extend_from_slice(prev.as_bytes());
            xff.extend_from_slice(b", ");
        }
        crate::ascii::push_ip(&mut xff, ip);
        req.insert_header("X-Forwarded-For", xff)?;
    }
    req.insert_header(
        "X-Forwarded-Proto",
        HeaderValue::from_static(host::scheme(session)),
    )?;
    // `req` is already rewritten; the client's original Host is still in the session.
    if let Some(client_host) = client_host(session.req_header()) {
        req.insert_header("X-Forwarded-Host", client_host)?;
    }
    if let Some(rules) = &ctx.headers {
        let vars = Vars::of(session, ctx);
        header_rules::apply_request(&rules.request, req, session.req_header(), &vars);
    }
    Ok(())
}

/// The client's host as [`host::request_host`] reads it, as a header value: the
/// `Host` header's own value when that is where it came from.
fn client_host(req: &RequestHeader) -> Option<HeaderValue> {
    let value = match req.uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok()?,
        None => req
            .headers
            .get(http::header::HOST)
            .filter(|h| h.to_str().is_ok())?
            .clone(),
    };
    (!value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_host_prefers_the_authority() {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.insert_header("Host", "a.example").unwrap();
        assert_eq!(client_host(&req).unwrap(), "a.example");
        req.set_uri("http://b.example:8080/x".parse().unwrap());
        assert_eq!(client_host(&req).unwrap(), "b.example:8080");
        let mut bare = RequestHeader::build("GET", b"/", None).unwrap();
        assert!(client_host(&bare).is_none());
        bare.insert_header("Host", "").unwrap();
        assert!(client_host(&bare).is_none());
    }
}
