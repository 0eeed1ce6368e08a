//! On-the-fly compression (`crate::compress`) in the proxy's phases: the request phase arms
//! the downstream module for a domain or route with `compress`, the cache asks which coding
//! was chosen (its stored gzip copy serves only a client that gets gzip anyway), and the
//! logging phase reads what was applied. Requests of domains and routes without `compress`
//! never reach this file past one `Option` check.

use std::sync::Arc;

use http::header::{RANGE, UPGRADE};
use pingora::proxy::Session;

use super::ctx::Ctx;
use crate::compress::{choose, Compression};
use crate::config::{Coding, Compress};

/// Called once the request is routed to a handler with `compress` set. A HEAD, a range
/// request, an HTTP/1.0 client (no chunked framing) and a background refresh get no
/// compressed body; the first three still get `Vary` when the response is compressible.
pub(crate) fn arm(session: &mut Session, ctx: &mut Ctx, settings: &Arc<Compress>) {
    if session.subrequest_ctx.is_some() {
        return;
    }
    let req = session.req_header();
    if req.headers.contains_key(UPGRADE) {
        return;
    }
    let body = req.method != http::Method::HEAD
        && !req.headers.contains_key(RANGE)
        && req.version >= http::Version::HTTP_11;
    let coding = if body {
        choose(&req.headers, &settings.algorithms)
    } else {
        None
    };
    if let Some(m) = session.downstream_modules_ctx.get_mut::<Compression>() {
        m.arm(settings.clone(), coding);
        ctx.compress.armed = true;
        ctx.compress.coding = coding;
    }
}

/// The coding negotiated for this request's body, if it is compressed on the fly.
pub(crate) fn negotiated(ctx: &Ctx) -> Option<Coding> {
    ctx.compress.coding
}

/// The coding the response body was compressed with, for the metrics.
pub(crate) fn applied(session: &Session, ctx: &Ctx) -> Option<Coding> {
    if !ctx.compress.armed {
        return None;
    }
    session
        .downstream_modules_ctx
        .get::<Compression>()
        .and_then(|m| m.applied())
}
