//! The failure phases (`fail_to_connect`, `error_while_proxy`, `fail_to_proxy`), acting on
//! what `error_class` makes of each error.
//!
//! Retries: a connect failure may always go to another backend (nothing was sent); after
//! connecting, only a replayable request (idempotent, body still buffered, no response byte
//! seen) may. A read or write timeout is retried only when it happened on a pooled connection
//! that went stale: otherwise the backend got the request and is slow, and a second backend
//! would only double the wait and the load.

use pingora::proxy::{FailToProxy, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::Error;

use super::ctx::Ctx;
use super::error_class::{classify, Failure, Retry};
use super::{answer, hook_calls};
use crate::state::State;

/// `fail_to_connect`: nothing was sent, so another backend may always be tried.
pub(crate) fn on_connect_failure(
    state: &State,
    session: &Session,
    ctx: &mut Ctx,
    mut e: Box<Error>,
) -> Box<Error> {
    record_backend_failure(ctx);
    e.set_retry(ctx.can_retry());
    hook_calls::on_attempt_error(state, session, ctx, &e);
    e
}

/// `error_while_proxy`: the attempt failed after connecting.
pub(crate) fn on_proxy_failure(
    state: &State,
    peer: &HttpPeer,
    session: &Session,
    ctx: &mut Ctx,
    e: Box<Error>,
    reused: bool,
) -> Box<Error> {
    let mut e = e.more_context(format!("peer: {peer}"));
    let retry = match classify(&e).retry {
        // The client's fault: not the backend's, and not worth a retry.
        Retry::Never => false,
        allowed => {
            record_backend_failure(ctx);
            let replayable = session.req_header().method.is_idempotent()
                && !session.as_ref().retry_buffer_truncated()
                && !ctx.upstream_responded;
            replayable && (allowed == Retry::IfReplayable || reused) && ctx.can_retry()
        }
    };
    e.set_retry(retry);
    hook_calls::on_attempt_error(state, session, ctx, &e);
    e
}

/// Reads and drops what is left of a refused request body, briefly: closing a socket with
/// unread input sends a reset, which can destroy the 413 before the client reads it.
async fn drain_briefly(session: &mut Session) {
    const LINGER: std::time::Duration = std::time::Duration::from_secs(1);
    const MAX_BYTES: usize = 1 << 20;
    let drain = async {
        let mut total = 0;
        while total < MAX_BYTES {
            match session.read_request_body().await {
                Ok(Some(chunk)) => total += chunk.len(),
                Ok(None) | Err(_) => break,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

fn record_backend_failure(ctx: &Ctx) {
    if let Some(lease) = &ctx.lease {
        lease.backend().record_failure();
    }
}

/// `fail_to_proxy`: the request failed; the client gets the error page unless it is gone or
/// already has a response head.
pub(crate) async fn on_request_failure(
    state: &State,
    session: &mut Session,
    e: &Error,
    ctx: &mut Ctx,
) -> FailToProxy {
    hook_calls::on_final_error(state, session, ctx, e);
    // After a failed proxy attempt Pingora closes the client connection whatever this
    // returns (its reuse flag only applies to filter errors), so the page must say so.
    session.set_keepalive(None);
    let code = match classify(e).page {
        Some(f) if session.response_written().is_none() => {
            let status = answer::error_page(state, session, ctx, f)
                .await
                .unwrap_or(0);
            if f == Failure::BodyTooLarge {
                drain_briefly(session).await;
            }
            status
        }
        Some(f) => f.status(),
        None => 0,
    };
    FailToProxy {
        error_code: code,
        can_reuse_downstream: false,
    }
}
