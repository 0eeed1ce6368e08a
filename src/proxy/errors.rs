//! The error responses users see (design §7): a status, a short text body and
//! `X-Strait-Error` naming the cause.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};

/// Raised by `upstream_peer` when the pool has nothing usable left.
pub const NO_HEALTHY_BACKEND: ErrorType = ErrorType::Custom("no-healthy-backend");
/// Raised by `request_body_filter` when a body outgrows `max_body_bytes`.
pub const BODY_TOO_LARGE: ErrorType = ErrorType::Custom("body-too-large");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    UnknownHost,
    NoRoute,
    /// The client's network is in a `deny` list.
    Denied,
    RateLimited,
    BodyTooLarge,
    NoHealthyBackend,
    /// Every candidate backend stayed at its `max_connections` for the queue wait.
    BackendBusy,
    UpstreamFailed,
    UpstreamTimeout,
    BadRequest,
    Internal,
}

impl Failure {
    pub fn status(self) -> u16 {
        match self {
            Failure::UnknownHost | Failure::NoRoute => 404,
            Failure::Denied => 403,
            Failure::RateLimited => 429,
            Failure::BodyTooLarge => 413,
            Failure::NoHealthyBackend | Failure::BackendBusy => 503,
            Failure::UpstreamFailed => 502,
            Failure::UpstreamTimeout => 504,
            Failure::BadRequest => 400,
            Failure::Internal => 500,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Failure::UnknownHost => "unknown-host",
            Failure::NoRoute => "no-route",
            Failure::Denied => "denied",
            Failure::RateLimited => "rate-limited",
            Failure::BodyTooLarge => "body-too-large",
            Failure::NoHealthyBackend => "no-healthy-backend",
            Failure::BackendBusy => "backend-busy",
            Failure::UpstreamFailed => "upstream-failed",
            Failure::UpstreamTimeout => "upstream-timeout",
            Failure::BadRequest => "bad-request",
            Failure::Internal => "internal-error",
        }
    }

    fn body(self) -> &'static str {
        match self {
            Failure::UnknownHost => "strait: no domain is configured for this host\n",
            Failure::NoRoute => "strait: no route for this path\n",
            Failure::Denied => "strait: access denied\n",
            Failure::RateLimited => "strait: too many requests\n",
            Failure::BodyTooLarge => "strait: the request body is too large\n",
            Failure::NoHealthyBackend => "strait: no healthy backend\n",
            Failure::BackendBusy => "strait: the backend is busy\n",
            Failure::UpstreamFailed => "strait: the upstream failed\n",
            Failure::UpstreamTimeout => "strait: the upstream timed out\n",
            Failure::BadRequest => "strait: bad request\n",
            Failure::Internal => "strait: internal error\n",
        }
    }

    /// Classifies a proxy error; `None` when the client is gone and nothing can be written.
    pub fn of(e: &Error) -> Option<Failure> {
        use ErrorType::*;
        match e.etype() {
            t if *t == NO_HEALTHY_BACKEND => Some(Failure::NoHealthyBackend),
            t if *t == crate::limits::concurrency::BACKEND_BUSY => Some(Failure::BackendBusy),
            t if *t == BODY_TOO_LARGE => Some(Failure::BodyTooLarge),
            ConnectTimedout | ReadTimedout | WriteTimedout => match e.esource() {
                ErrorSource::Downstream => None,
                _ => Some(Failure::UpstreamTimeout),
            },
            HTTPStatus(400..=499) => Some(Failure::BadRequest),
            _ => match e.esource() {
                ErrorSource::Upstream => Some(Failure::UpstreamFailed),
                ErrorSource::Downstream => match e.etype() {
                    WriteError | ReadError | ConnectionClosed => None,
                    _ => Some(Failure::BadRequest),
                },
                ErrorSource::Internal | ErrorSource::Unset => Some(Failure::Internal),
            },
        }
    }
}

/// Whether `e` only says the client went away (closed, reset, or stopped reading) before the
/// response was complete: routine at any scale (browsers cancel, load tools stop), so it is
/// not an error of the proxy's. The access log still records the request (status 0 when
/// nothing was sent, and the error's name).
pub fn is_client_abort(e: &Error) -> bool {
    *e.esource() == ErrorSource::Downstream
        && matches!(
            e.etype(),
            ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
        )
}

/// The error page: its header and body.
pub fn page(failure: Failure) -> Result<(ResponseHeader, Bytes)> {
    let body = Bytes::from_static(failure.body().as_bytes());
    let mut header = ResponseHeader::build(failure.status(), Some(4))?;
    header.insert_header("Content-Type", "text/plain; charset=utf-8")?;
    header.insert_header("Content-Length", body.len().to_string())?;
    header.insert_header("Cache-Control", "no-store")?;
    header.insert_header("X-Strait-Error", failure.code())?;
    Ok((header, body))
}

/// Writes the error page. Returns the status written.
pub async fn respond(session: &mut Session, failure: Failure) -> Result<u16> {
    let (header, body) = page(failure)?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(header), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(failure.status())
}
