//! Which failed attempts go to another backend. Connect failures always may (nothing was
//! sent); after connecting, only idempotent requests whose body is still buffered and which
//! have not seen a response byte. A read timeout is not retried: the backend got the request
//! and is slow, and a second backend would only double the wait and the load.

use pingora::proxy::Session;
use pingora::{Error, ErrorType};

use super::ctx::Ctx;

pub fn on_connect_failure(ctx: &mut Ctx, mut e: Box<Error>) -> Box<Error> {
    record_failure(ctx);
    e.set_retry(ctx.can_retry());
    e
}

pub fn on_proxy_failure(
    session: &Session,
    ctx: &mut Ctx,
    mut e: Box<Error>,
    reused: bool,
) -> Box<Error> {
    record_failure(ctx);
    let replayable = session.req_header().method.is_idempotent()
        && !session.as_ref().retry_buffer_truncated()
        && !ctx.upstream_responded;
    let timed_out = matches!(
        e.etype(),
        ErrorType::ReadTimedout | ErrorType::WriteTimedout
    );
    // A timeout on a pooled connection that went stale says nothing about the backend.
    let retry = replayable && (!timed_out || reused) && ctx.can_retry();
    e.set_retry(retry);
    e
}

fn record_failure(ctx: &Ctx) {
    if let Some(lease) = &ctx.lease {
        lease.backend().record_failure();
    }
}
