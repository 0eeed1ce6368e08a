//! The failure phases (`fail_to_connect`, `error_while_proxy`, `fail_to_proxy`), acting on
//! what `error_class` makes of each error.
//!
//! Retries go to another backend (up to `max_retries`, within the pool's `retry_budget`):
//! a connect failure, whatever the method (nothing was sent); and an idempotent request whose
//! reused pooled connection was closed or reset before any response byte (a stale connection
//! the backend never read from). Nothing else: not a timeout, not any error after the
//! backend may have acted on the request. Each failed attempt also counts against its
//! backend's passive health.

use pingora::proxy::{FailToProxy, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::Error;

use super::ctx::Ctx;
use super::error_class::{classify, Failure, Retry};
use super::{answer, hook_calls, trace};
use crate::state::State;

/// `fail_to_connect`: nothing was sent, so another backend may always be tried.
pub(crate) fn on_connect_failure(
    state: &State,
    session: &Session,
    ctx: &mut Ctx,
    mut e: Box<Error>,
) -> Box<Error> {
    record_backend_failure(ctx, true);
    trace::failed(ctx, &e);
    e.set_retry(ctx.can_retry() && within_budget(ctx));
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
    trace::failed(ctx, &e);
    let class = classify(&e);
    let stale = class.retry == Retry::IfStaleConnection && reused && !ctx.upstream_responded;
    // A pooled connection the backend had closed says nothing about the backend's health.
    record_backend_failure(ctx, class.backend_fault && !stale);
    let retry = stale
        && session.req_header().method.is_idempotent()
        && !session.as_ref().retry_buffer_truncated()
        && ctx.can_retry()
        && within_budget(ctx);
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

/// Counts a failed attempt on its backend; `passive` also feeds it to passive health.
fn record_backend_failure(ctx: &Ctx, passive: bool) {
    if let Some(lease) = &ctx.lease {
        lease.backend().record_failure();
    }
    if let (true, Some(target), Some(i)) = (passive, &ctx.target, ctx.backend_index) {
        target.pool.outcome(i, false);
    }
}

/// Whether the pool's retry budget has room for one more retry (only asked when a retry is
/// otherwise allowed, so only real retries are counted).
fn within_budget(ctx: &Ctx) -> bool {
    let Some(target) = &ctx.target else {
        return false;
    };
    let ok = target.pool.retry_allowed();
    crate::metrics::record_retry(ok);
    ok
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
