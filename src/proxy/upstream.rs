//! `upstream_peer` and `upstream_request_filter`: choose a backend, shape the request sent to it.

use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::Error;

use super::ctx::Ctx;
use super::errors::NO_HEALTHY_BACKEND;
use crate::limits::concurrency::{self, Pick};

pub async fn peer(ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
    let Some(target) = ctx.target.clone() else {
        return Error::e_explain(
            ErrorType::InternalError,
            "no upstream target for this request",
        );
    };
    ctx.attempts += 1;
    // Release the previous attempt's backend before taking the next one.
    ctx.lease = None;
    // The first attempt prefers the backend `on_request` hooks were shown; `max_connections`
    // may make the pick wait for a slot (crate::limits::concurrency).
    let preferred = ctx.first_pick.take();
    let wait = target.options.connect_timeout;
    let (index, lease) =
        match concurrency::select(&target.pool, ctx.client_ip, &ctx.tried, preferred, wait).await {
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

pub fn rewrite_request(session: &Session, req: &mut RequestHeader, ctx: &Ctx) -> Result<()> {
    let Some(target) = &ctx.target else {
        return Ok(());
    };
    if !target.options.preserve_host {
        let host = match &target.options.host_header {
            Some(h) => h.as_str(),
            None => ctx
                .backend_index
                .and_then(|i| target.default_hosts.get(i))
                .map(String::as_str)
                .unwrap_or(""),
        };
        if !host.is_empty() {
            req.insert_header(http::header::HOST, host)?;
        }
    }

    // This hop appends the address it was connected from (the peer, not the client it names).
    if let Some(ip) = ctx.peer_ip.or(ctx.client_ip) {
        let ip = ip.to_string();
        let xff = match req
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
            _ => ip,
        };
        req.insert_header("X-Forwarded-For", xff)?;
    }
    let proto = if is_tls(session) { "https" } else { "http" };
    req.insert_header("X-Forwarded-Proto", proto)?;
    // `req` is already rewritten; the client's original Host is still in the session.
    let client_host = super::request::request_host(session.req_header());
    if !client_host.is_empty() {
        req.insert_header("X-Forwarded-Host", client_host)?;
    }
    if let Some(rules) = &ctx.headers {
        super::headers::apply_request(&rules.request, req);
    }
    Ok(())
}

fn is_tls(session: &Session) -> bool {
    session
        .digest()
        .map(|d| d.ssl_digest.is_some())
        .unwrap_or(false)
}
