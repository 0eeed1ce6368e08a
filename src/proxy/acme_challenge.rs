//! HTTP-01 (RFC 8555 §8.3): on plain listeners, `GET /.well-known/acme-challenge/TOKEN` is
//! answered with the token's key authorization while strait's order for it is in flight,
//! before routing, so it works whatever the host's domain does (redirects to HTTPS, plugins,
//! `deny`, or no domain at all). Hooks and plugins do not see these answers.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use crate::state::State;

const PREFIX: &str = "/.well-known/acme-challenge/";

/// Whether the request was a challenge strait answered (the response is written).
pub(crate) async fn answer(state: &State, session: &mut Session) -> Result<bool> {
    let Some(acme) = state.acme() else {
        return Ok(false);
    };
    let req = session.req_header();
    let Some(token) = req.uri.path().strip_prefix(PREFIX) else {
        return Ok(false);
    };
    if session.digest().is_some_and(|d| d.ssl_digest.is_some()) {
        return Ok(false);
    }
    if !matches!(req.method, http::Method::GET | http::Method::HEAD) {
        return Ok(false);
    }
    // Unknown tokens go on to routing: a backend may answer its own challenges.
    let Some(key_authorization) = acme.certs.http01(token) else {
        return Ok(false);
    };
    let head = req.method == http::Method::HEAD;
    let body = Bytes::from(key_authorization);
    let mut header = ResponseHeader::build(200, Some(3))?;
    header.insert_header("Content-Type", "application/octet-stream")?;
    header.insert_header("Content-Length", body.len().to_string())?;
    header.insert_header("Cache-Control", "no-store")?;
    session
        .write_response_header(Box::new(header), head)
        .await?;
    if !head {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(true)
}
