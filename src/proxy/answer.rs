//! strait's own answers: `respond` and `redirect` routes, hook rejections and error pages.
//! They all leave through [`write`], so each gets the rate-limit headers and the
//! `on_response` hooks like a backend's response would.

use bytes::Bytes;
use http::header::{HeaderValue, LOCATION};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use super::ctx::Ctx;
use super::error_class::Failure;
use super::template::{self, Vars};
use super::{header_rules, hook_calls, plugin_calls, response};
use crate::config::Redirect;
use crate::hooks::{Reject, ResponseSource};
use crate::snapshot::StaticResponse;
use crate::state::State;

/// Writes a response strait makes itself, after the rate-limit headers and the `on_response`
/// hooks. Returns the status written.
pub(crate) async fn write(
    state: &State,
    session: &mut Session,
    ctx: &mut Ctx,
    header: ResponseHeader,
    body: Bytes,
) -> Result<u16> {
    let head_only = session.req_header().method == http::Method::HEAD || body.is_empty();
    let status = write_head(state, session, ctx, header, head_only).await?;
    if !head_only {
        Box::pin(session.write_response_body(Some(body), true)).await?;
    }
    Ok(status)
}

/// The head of [`write`], for answers whose body follows in pieces (`serve`'s files):
/// rate-limit headers, `on_response` hooks, then the head; `end` when no body follows.
pub(crate) async fn write_head(
    state: &State,
    session: &mut Session,
    ctx: &mut Ctx,
    mut header: ResponseHeader,
    end: bool,
) -> Result<u16> {
    response::rate_headers(ctx, &mut header);
    plugin_calls::on_response(session, ctx, &mut header).await;
    hook_calls::on_response(state, session, ctx, &mut header, ResponseSource::Strait).await;
    let status = header.status.as_u16();
    // Boxed: Pingora's write future is several KiB and would otherwise sit inline in
    // `request_filter`'s future, which every request allocates and moves.
    Box::pin(session.write_response_header(Box::new(header), end)).await?;
    Ok(status)
}

/// The error page's header and body.
pub(crate) fn page(failure: Failure) -> Result<(ResponseHeader, Bytes)> {
    let body = Bytes::from_static(failure.body().as_bytes());
    let mut header = ResponseHeader::build(failure.status(), Some(4))?;
    header.insert_header("Content-Type", "text/plain; charset=utf-8")?;
    header.insert_header("Content-Length", body.len().to_string())?;
    header.insert_header("Cache-Control", "no-store")?;
    header.insert_header("X-Strait-Error", failure.code())?;
    Ok((header, body))
}

/// An error page (design §7).
pub(crate) async fn error_page(
    state: &State,
    session: &mut Session,
    ctx: &mut Ctx,
    failure: Failure,
) -> Result<u16> {
    let (header, body) = page(failure)?;
    write(state, session, ctx, header, body).await
}

/// A `respond` route's answer.
pub(crate) async fn respond(
    state: &State,
    session: &mut Session,
    ctx: &mut Ctx,
    r: &StaticResponse,
) -> Result<u16> {
    let mut header = r.header.clone();
    let mut body = r.body.clone();
    if let Some(t) = &r.template {
        let vars = Vars::of(session, ctx);
        let req = session.req_header();
        body = Bytes::from(template::render(&t.body, req, &vars));
        for (name, value) in &t.headers {
            if crate::config::pattern::template::literal(value).is_none() {
                let value = template::render(value, req, &vars);
                if header.append_header(name.clone(), value.as_str()).is_err() {
                    log::debug!("respond: header {name} filled in with bytes a header cannot carry; left out");
                }
            }
        }
        header.insert_header("Content-Length", body.len().to_string())?;
    }
    if let Some(rules) = &ctx.headers {
        header_rules::apply_response(
            &rules.response,
            &mut header,
            session.req_header(),
            &Vars::of(session, ctx),
        );
    }
    write(state, session, ctx, header, body).await
}

/// A 405: a route would have taken the request but for its `methods`.
pub(crate) async fn method_not_allowed(
    state: &State,
    session: &mut Session,
    ctx: &mut Ctx,
    allow: &[String],
) -> Result<u16> {
    let (mut header, body) = page(Failure::MethodNotAllowed)?;
    header.insert_header(http::header::ALLOW, allow.join(", "))?;
    write(state, session, ctx, header, body).await
}

/// A `redirect` route's answer.
pub(crate) async fn redirect(
    state: &State,
    session: &mut Session,
    ctx: &mut Ctx,
    r: &Redirect,
) -> Result<u16> {
    let target = template::render(&r.location, session.req_header(), &Vars::of(session, ctx));
    let Ok(value) = HeaderValue::from_str(&target) else {
        // Only a request target or Host with bytes a header cannot carry gets here.
        return error_page(state, session, ctx, Failure::BadRequest).await;
    };
    let body = Bytes::from(format!("Redirecting to {target}\n"));
    let mut header = ResponseHeader::build(r.status, Some(4))?;
    header.insert_header(LOCATION, value)?;
    header.insert_header("Content-Type", "text/plain; charset=utf-8")?;
    header.insert_header("Content-Length", body.len().to_string())?;
    if let Some(rules) = &ctx.headers {
        header_rules::apply_response(
            &rules.response,
            &mut header,
            session.req_header(),
            &Vars::of(session, ctx),
        );
    }
    write(state, session, ctx, header, body).await
}

/// An `on_request` hook's rejection.
pub(crate) async fn rejection(
    state: &State,
    session: &mut Session,
    ctx: &mut Ctx,
    reject: &Reject,
) -> Result<u16> {
    let header = rejection_header(reject)?;
    write(state, session, ctx, header, reject.body.clone()).await
}

fn rejection_header(reject: &Reject) -> Result<ResponseHeader> {
    let mut header = ResponseHeader::build(reject.status, Some(reject.headers.len() + 2))?;
    for (name, value) in &reject.headers {
        if name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if header.append_header(name.clone(), value.as_str()).is_err() {
            log::warn!("hook: invalid header {name:?} in a rejection ignored");
        }
    }
    if !header.headers.contains_key(http::header::CONTENT_TYPE) && !reject.body.is_empty() {
        header.insert_header("Content-Type", "text/plain; charset=utf-8")?;
    }
    header.insert_header("Content-Length", reject.body.len().to_string())?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_frame_their_body() {
        let r = Reject::new(401)
            .body("no\n")
            .header("WWW-Authenticate", "Bearer")
            .header("Content-Length", "999");
        let h = rejection_header(&r).unwrap();
        assert_eq!(h.status.as_u16(), 401);
        assert_eq!(h.headers.get("content-length").unwrap(), "3");
        assert_eq!(h.headers.get("www-authenticate").unwrap(), "Bearer");
        assert_eq!(Reject::new(42).status(), 500);
    }
}
