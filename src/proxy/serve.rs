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
    // Looked up on this worker thread, as nginx does without `aio`: path resolution, the
    // metadata and a file up to 64 KiB are a few syscalls that the page cache answers in
    // microseconds, and handing them to the blocking pool cost 2.5 times the CPU per request
    // (static4k: 44.5 µs against 17.6 µs, benches/README.md). A slow or network disk stalls
    // this worker's other connections meanwhile; larger files stream from the blocking pool.
    let (mut header, body) = match site.answer(&request) {
        Answer::Reply { header, body } => (*header, body),
        Answer::Refused(refusal) => return refused(state, session, ctx, refusal).await,
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
