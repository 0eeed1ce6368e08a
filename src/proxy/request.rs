//! `request_filter`: pick the snapshot, route by Host and path, answer static routes.

use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::ctx::Ctx;
use super::errors::{self, Failure};
use crate::snapshot::RouteAction;
use crate::state::State;

/// Returns `true` when the response has been written here and the request is done.
pub async fn route(state: &State, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let snapshot = state.snapshot();
    // Pingora keeps idle HTTP/1 clients forever unless told otherwise.
    session.set_keepalive(Some(snapshot.config.server.keepalive_timeout.as_secs()));
    super::policy::identify_client(&snapshot, session, ctx);

    let req = session.req_header();
    let found = snapshot
        .lookup(request_host(req), req.uri.path())
        .map(|(hit, action, headers)| (hit, action, headers.clone()));
    let Some((hit, action, headers)) = found else {
        errors::respond(session, Failure::UnknownHost).await?;
        return Ok(true);
    };
    ctx.headers = Some(headers);
    if super::policy::enforce(state, &snapshot, hit, action, session, ctx).await? {
        ctx.snapshot = Some(snapshot);
        return Ok(true);
    }
    match action {
        RouteAction::Proxy(target) => {
            ctx.target = Some(target.clone());
        }
        RouteAction::Respond(r) => {
            let done = super::policy::respond(state, &snapshot, session, ctx, r).await?;
            ctx.snapshot = Some(snapshot);
            return Ok(done);
        }
        RouteAction::Redirect(r) => {
            let done = super::policy::redirect(state, &snapshot, session, ctx, r).await?;
            ctx.snapshot = Some(snapshot);
            return Ok(done);
        }
        RouteAction::NotFound => {
            errors::respond(session, Failure::NoRoute).await?;
            return Ok(true);
        }
    }
    ctx.snapshot = Some(snapshot);
    Ok(false)
}

/// HTTP/2 and absolute-form requests carry the authority in the URI; HTTP/1 in `Host`.
pub fn request_host(req: &RequestHeader) -> &str {
    match req.uri.authority() {
        Some(a) => a.as_str(),
        None => req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(""),
    }
}
