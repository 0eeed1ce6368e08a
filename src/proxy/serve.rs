//! A `serve` domain or route's answer: the file server (`crate::serve`) decides on the
//! blocking pool, and its answer leaves like strait's other answers (`answer.rs`: rate-limit
//! headers, `on_response` hooks), with the response header rules applied, then the file is
//! streamed. The access log and metrics see it in the `logging` phase like any response.

use std::sync::Arc;

use http::Method;
use pingora::proxy::Session;
use pingora::Result;

use super::answer;
use super::ctx::Ctx;
use super::error_class::Failure;
use super::header_rules;
use super::template::Vars;
use crate::serve::{send, Answer, Body, Refusal, Request, Site};
use crate::state::State;

/// Answers the request from `site`'s files. Returns the status written.
pub(crate) async fn serve(
    state: &State,
    session: &mut Session,
    ctx: &mut Ctx,
    site: &Arc<Site>,
) -> Result<u16> {
    let req = session.req_header();
    if req.method != Method::GET && req.method != Method::HEAD {
        let (mut header, body) = answer::page(Failure::MethodNotAllowed)?;
        header.insert_header("Allow", "GET, HEAD")?;
        return answer::write(state, session, ctx, header, body).await;
    }
    let request = Request::of(req);
    let decided = {
        let site = site.clone();
        tokio::task::spawn_blocking(move || site.answer(&request)).await
    };
    let (mut header, body) = match decided {
        Ok(Answer::Reply { header, body }) => (*header, body),
        Ok(Answer::Refused(refusal)) => return refused(state, session, ctx, refusal).await,
        Err(e) => {
            log::error!("serve: the file lookup failed: {e}");
            return refused(state, session, ctx, Refusal::Internal).await;
        }
    };
    if let Some(rules) = &ctx.headers {
        let vars = Vars::of(session, ctx);
        header_rules::apply_response(&rules.response, &mut header, session.req_header(), &vars);
    }
    match body {
        Body::Empty => answer::write_head(state, session, ctx, header, true).await,
        Body::Bytes(bytes) => answer::write(state, session, ctx, header, bytes).await,
        Body::File { file, offset, len } => {
            let status = answer::write_head(state, session, ctx, header, false).await?;
            send::file(session, file, offset, len).await?;
            Ok(status)
        }
    }
}

async fn refused(
    state: &State,
    session: &mut Session,
    ctx: &mut Ctx,
    refusal: Refusal,
) -> Result<u16> {
    let failure = match refusal {
        Refusal::Forbidden => Failure::ForbiddenPath,
        Refusal::NotFound => Failure::FileNotFound,
        Refusal::RangeNotSatisfiable { .. } => Failure::RangeNotSatisfiable,
        Refusal::Internal => Failure::Internal,
    };
    let (mut header, body) = answer::page(failure)?;
    if let Refusal::RangeNotSatisfiable { len, vary } = refusal {
        header.insert_header("Content-Range", format!("bytes */{len}"))?;
        if vary {
            header.insert_header("Vary", "Accept-Encoding")?;
        }
    }
    answer::write(state, session, ctx, header, body).await
}
