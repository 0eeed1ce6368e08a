//! strait's own answers: `respond` and `redirect` routes, hook rejections and error pages.
//! They all leave through [`write`], so each gets the rate-limit headers and the
//! `on_response` hooks like a backend's response would.

use bytes::Bytes;
use http::header::{HeaderValue, LOCATION};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::Result;

use super::ctx::Ctx;
use super::error_class::Failure;
use super::{header_rules, hook_calls, host, response};
use crate::config::{LocationPart, Redirect};
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
        session.write_response_body(Some(body), true).await?;
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
    hook_calls::on_response(state, session, ctx, &mut header, ResponseSource::Strait).await;
    let status = header.status.as_u16();
    session.write_response_header(Box::new(header), end).await?;
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
    if let Some(rules) = &ctx.headers {
        header_rules::apply_response(&rules.response, &mut header);
    }
    write(state, session, ctx, header, r.body.clone()).await
}

/// A `redirect` route's answer.
pub(crate) async fn redirect(
    state: &State,
    session: &mut Session,
    ctx: &mut Ctx,
    r: &Redirect,
) -> Result<u16> {
    let local_port = session
        .server_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.port());
    let conn = Conn {
        scheme: host::scheme(session),
        local_port,
        remote: ctx.client_ip,
        request_id: &ctx.observe.request_id,
    };
    let target = location(r, session.req_header(), &conn);
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
        header_rules::apply_response(&rules.response, &mut header);
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

/// What a template knows of the connection beside the request itself.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Conn<'a> {
    /// `http` or `https`.
    pub(crate) scheme: &'a str,
    /// The port the connection arrived on (used when `Host` names none).
    pub(crate) local_port: Option<u16>,
    pub(crate) remote: Option<std::net::IpAddr>,
    pub(crate) request_id: &'a str,
}

/// Fills in a redirect's `location` template for `req`.
pub(crate) fn location(r: &Redirect, req: &RequestHeader, conn: &Conn<'_>) -> String {
    let mut out = String::new();
    let full_host = host::request_host(req);
    for part in &r.location {
        match part {
            LocationPart::Text(t) => out.push_str(t),
            LocationPart::Host => out.push_str(host::without_port(full_host)),
            LocationPart::Path => out.push_str(req.uri.path()),
            LocationPart::Query => {
                if let Some(q) = req.uri.query() {
                    out.push('?');
                    out.push_str(q);
                }
            }
            LocationPart::Uri => out.push_str(req.uri.path_and_query().map_or("/", |p| p.as_str())),
            LocationPart::Scheme => out.push_str(conn.scheme),
            LocationPart::Port => {
                let from_host = full_host
                    .len()
                    .checked_sub(host::without_port(full_host).len() + 1)
                    .map(|_| &full_host[host::without_port(full_host).len() + 1..]);
                match (from_host, conn.local_port) {
                    (Some(p), _) => out.push_str(p),
                    (None, Some(p)) => out.push_str(&p.to_string()),
                    (None, None) => {}
                }
            }
            LocationPart::RemoteAddr => {
                if let Some(ip) = conn.remote {
                    out.push_str(&ip.to_string());
                }
            }
            LocationPart::RequestId => out.push_str(conn.request_id),
        }
    }
    out
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
            .map(|c| match &c.domains[0].handling.action {
                crate::config::Action::Redirect(r) => r.location.clone(),
                other => panic!("{other:?}"),
            })
            .unwrap(),
        };
        let mut req = RequestHeader::build("GET", b"/a/b?x=1&y=2", None).unwrap();
        req.insert_header("Host", "old.example:8080").unwrap();
        let conn = Conn::default();
        assert_eq!(
            location(&r, &req, &conn),
            "https://old.example/new/a/b?x=1&y=2"
        );
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("Host", "[::1]:80").unwrap();
        assert_eq!(location(&r, &req, &conn), "https://[::1]/new/");
    }

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
