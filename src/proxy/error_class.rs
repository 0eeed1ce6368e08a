//! What strait makes of an error, in one place: [`classify`] maps a `pingora::Error` to the
//! page the client gets (status and `X-Strait-Error` code), the kind `on_error` hooks see,
//! whether another backend may be tried, and how loudly to log. `failure.rs` acts on it.

use pingora::{Error, ErrorSource, ErrorType};

use crate::hooks::ErrorKind;
use crate::limits::concurrency::BACKEND_BUSY;

/// Raised by `upstream_peer` when the pool has nothing usable left.
pub(crate) const NO_HEALTHY_BACKEND: ErrorType = ErrorType::Custom("no-healthy-backend");
/// Raised by `request_filter` for a `drop: true` domain or route: nothing is written.
pub(crate) const DROPPED: ErrorType = ErrorType::Custom("dropped");
/// Raised by `request_body_filter` when a body outgrows `max_body_bytes`.
pub(crate) const BODY_TOO_LARGE: ErrorType = ErrorType::Custom("body-too-large");

/// The error pages users see (design §7): a status, a short text body and `X-Strait-Error`
/// naming the cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    UnknownHost,
    NoRoute,
    /// A route would have taken the request but for its `methods`, or `serve` got another
    /// method than GET and HEAD (sent with `Allow`).
    MethodNotAllowed,
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
    /// `serve`: a traversal attempt, a symlink out of the root, no permission, or a folder
    /// without an index file when `browse` is off.
    ForbiddenPath,
    /// `serve`: no such file.
    FileNotFound,
    /// `serve`: a `Range` past the end of the file (sent with `Content-Range`).
    RangeNotSatisfiable,
    /// A plugin failed (timeout, no connection, a bad answer) and its `on_error` is `deny`.
    PluginUnavailable,
}

impl Failure {
    pub(crate) fn status(self) -> u16 {
        match self {
            Failure::UnknownHost | Failure::NoRoute => 404,
            Failure::MethodNotAllowed => 405,
            Failure::Denied => 403,
            Failure::RateLimited => 429,
            Failure::BodyTooLarge => 413,
            Failure::NoHealthyBackend | Failure::BackendBusy => 503,
            Failure::UpstreamFailed => 502,
            Failure::UpstreamTimeout => 504,
            Failure::BadRequest => 400,
            Failure::Internal => 500,
            Failure::ForbiddenPath => 403,
            Failure::FileNotFound => 404,
            Failure::RangeNotSatisfiable => 416,
            Failure::PluginUnavailable => 503,
        }
    }

    pub(crate) fn code(self) -> &'static str {
        match self {
            Failure::UnknownHost => "unknown-host",
            Failure::NoRoute => "no-route",
            Failure::MethodNotAllowed => "method-not-allowed",
            Failure::Denied => "denied",
            Failure::RateLimited => "rate-limited",
            Failure::BodyTooLarge => "body-too-large",
            Failure::NoHealthyBackend => "no-healthy-backend",
            Failure::BackendBusy => "backend-busy",
            Failure::UpstreamFailed => "upstream-failed",
            Failure::UpstreamTimeout => "upstream-timeout",
            Failure::BadRequest => "bad-request",
            Failure::Internal => "internal-error",
            Failure::ForbiddenPath => "forbidden-path",
            Failure::FileNotFound => "not-found",
            Failure::RangeNotSatisfiable => "range-not-satisfiable",
            Failure::PluginUnavailable => "plugin-unavailable",
        }
    }

    pub(crate) fn body(self) -> &'static str {
        match self {
            Failure::UnknownHost => "strait: no domain is configured for this host\n",
            Failure::NoRoute => "strait: no route for this path\n",
            Failure::MethodNotAllowed => "strait: method not allowed here\n",
            Failure::Denied => "strait: access denied\n",
            Failure::RateLimited => "strait: too many requests\n",
            Failure::BodyTooLarge => "strait: the request body is too large\n",
            Failure::NoHealthyBackend => "strait: no healthy backend\n",
            Failure::BackendBusy => "strait: the backend is busy\n",
            Failure::UpstreamFailed => "strait: the upstream failed\n",
            Failure::UpstreamTimeout => "strait: the upstream timed out\n",
            Failure::BadRequest => "strait: bad request\n",
            Failure::Internal => "strait: internal error\n",
            Failure::ForbiddenPath => "strait: forbidden\n",
            Failure::FileNotFound => "strait: not found\n",
            Failure::RangeNotSatisfiable => "strait: range not satisfiable\n",
            Failure::PluginUnavailable => "strait: a plugin is unavailable\n",
        }
    }
}

/// Whether a failed attempt, after connecting, may be sent to another backend (a connect
/// failure always may: nothing was sent). Once the backend may have acted on the request,
/// never: retrying a read timeout doubles the wait and the load on a slow service, and a
/// non-idempotent request could run twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    Never,
    /// If the connection was a reused pooled one that was closed or reset before any
    /// response byte (a stale connection the backend never read from), and the request is
    /// idempotent.
    IfStaleConnection,
}

/// What strait makes of one error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Class {
    /// The error page; `None` when the client is gone and nothing can be written.
    pub(crate) page: Option<Failure>,
    /// What `on_error` hooks are told.
    pub(crate) kind: ErrorKind,
    pub(crate) retry: Retry,
    /// The backend is to blame: passive health counts it against the backend.
    pub(crate) backend_fault: bool,
    /// The client only went away (closed, reset, or stopped reading): routine at any scale
    /// (browsers cancel, load tools stop), so logged at debug, not as an error of the proxy's.
    /// The access log still records the request.
    pub(crate) client_abort: bool,
}

impl Class {
    /// The backend timed out (for the `timeout` outcome in metrics).
    pub(crate) fn timed_out(&self) -> bool {
        self.page == Some(Failure::UpstreamTimeout)
    }
}

/// The one classifier of `pingora::Error`s.
pub(crate) fn classify(e: &Error) -> Class {
    use ErrorType::*;
    let etype = e.etype();
    let source = e.esource();
    let downstream = *source == ErrorSource::Downstream;
    let class = |page, kind, retry| Class {
        page,
        kind,
        retry,
        backend_fault: false,
        client_abort: false,
    };
    if *etype == NO_HEALTHY_BACKEND {
        return class(
            Some(Failure::NoHealthyBackend),
            ErrorKind::NoHealthyBackend,
            Retry::Never,
        );
    }
    if *etype == BACKEND_BUSY {
        return class(
            Some(Failure::BackendBusy),
            ErrorKind::BackendBusy,
            Retry::Never,
        );
    }
    if *etype == DROPPED {
        return Class {
            page: None,
            kind: ErrorKind::Client,
            retry: Retry::Never,
            backend_fault: false,
            // Deliberate: logged at debug like a client going away, not as an error.
            client_abort: true,
        };
    }
    if *etype == BODY_TOO_LARGE {
        return class(Some(Failure::BodyTooLarge), ErrorKind::Client, Retry::Never);
    }
    if downstream {
        let abort = matches!(etype, ConnectionClosed | ReadError | WriteError)
            || matches!(etype, ConnectTimedout | ReadTimedout | WriteTimedout);
        return Class {
            page: (!abort).then_some(Failure::BadRequest),
            kind: ErrorKind::Client,
            retry: Retry::Never,
            backend_fault: false,
            client_abort: matches!(etype, ConnectionClosed | ReadError | WriteError),
        };
    }
    let upstream = *source == ErrorSource::Upstream;
    let blame = |c: Class| Class {
        backend_fault: upstream,
        ..c
    };
    match etype {
        ConnectTimedout => blame(class(
            Some(Failure::UpstreamTimeout),
            ErrorKind::ConnectTimeout,
            Retry::Never,
        )),
        ReadTimedout | WriteTimedout => blame(class(
            Some(Failure::UpstreamTimeout),
            if *etype == ReadTimedout {
                ErrorKind::ReadTimeout
            } else {
                ErrorKind::WriteTimeout
            },
            Retry::Never,
        )),
        HTTPStatus(400..=499) => {
            class(Some(Failure::BadRequest), ErrorKind::Internal, Retry::Never)
        }
        _ => {
            let kind = match etype {
                ConnectRefused => ErrorKind::ConnectRefused,
                ConnectNoRoute | ConnectError | BindError | TLSHandshakeFailure
                | TLSHandshakeTimedout | InvalidCert | HandshakeError | ConnectProxyFailure
                | SocketError => ErrorKind::ConnectFailed,
                ConnectionClosed | ReadError | WriteError => ErrorKind::UpstreamClosed,
                InvalidHTTPHeader | H1Error | H2Error | InvalidH2 | H2Downgrade => {
                    ErrorKind::UpstreamProtocol
                }
                _ if upstream => ErrorKind::UpstreamClosed,
                _ => ErrorKind::Internal,
            };
            let page = if upstream {
                Failure::UpstreamFailed
            } else {
                Failure::Internal
            };
            let retry = if upstream && matches!(etype, ConnectionClosed | ReadError | WriteError) {
                Retry::IfStaleConnection
            } else {
                Retry::Never
            };
            blame(class(Some(page), kind, retry))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(t: ErrorType) -> Box<Error> {
        Error::new(t).into_up()
    }

    #[test]
    fn hook_kinds() {
        let kind = |e: &Error| classify(e).kind;
        assert_eq!(
            kind(&up(ErrorType::ConnectRefused)),
            ErrorKind::ConnectRefused
        );
        assert_eq!(
            kind(&up(ErrorType::ConnectTimedout)),
            ErrorKind::ConnectTimeout
        );
        assert_eq!(kind(&up(ErrorType::ReadTimedout)), ErrorKind::ReadTimeout);
        assert_eq!(
            kind(&up(ErrorType::ConnectionClosed)),
            ErrorKind::UpstreamClosed
        );
        assert_eq!(
            kind(&up(ErrorType::InvalidHTTPHeader)),
            ErrorKind::UpstreamProtocol
        );
        assert_eq!(
            kind(&Error::new(NO_HEALTHY_BACKEND)),
            ErrorKind::NoHealthyBackend
        );
        assert_eq!(kind(&Error::new(BACKEND_BUSY)), ErrorKind::BackendBusy);
        assert_eq!(
            kind(&Error::new(ErrorType::ReadError).into_down()),
            ErrorKind::Client
        );
    }

    #[test]
    fn pages() {
        let page = |e: &Error| classify(e).page;
        assert_eq!(
            page(&up(ErrorType::ConnectRefused)),
            Some(Failure::UpstreamFailed)
        );
        assert_eq!(
            page(&up(ErrorType::ReadTimedout)),
            Some(Failure::UpstreamTimeout)
        );
        assert_eq!(page(&Error::new(BACKEND_BUSY)), Some(Failure::BackendBusy));
        assert_eq!(
            page(&Error::new(BODY_TOO_LARGE)),
            Some(Failure::BodyTooLarge)
        );
        assert_eq!(
            page(&Error::new(ErrorType::HTTPStatus(431))),
            Some(Failure::BadRequest)
        );
        assert_eq!(
            page(&Error::new(ErrorType::InternalError)),
            Some(Failure::Internal)
        );
        // The client is gone: nothing to write.
        let gone = Error::new(ErrorType::WriteError).into_down();
        assert_eq!(page(&gone), None);
        assert!(classify(&gone).client_abort);
        assert_eq!(page(&Error::new(ErrorType::ReadTimedout).into_down()), None);
        assert!(!classify(&Error::new(ErrorType::ReadTimedout).into_down()).client_abort);
        assert_eq!(
            page(&Error::new(ErrorType::InvalidHTTPHeader).into_down()),
            Some(Failure::BadRequest)
        );
    }

    #[test]
    fn retries() {
        let retry = |e: &Error| classify(e).retry;
        assert_eq!(retry(&Error::new(BODY_TOO_LARGE)), Retry::Never);
        assert_eq!(retry(&up(ErrorType::ReadTimedout)), Retry::Never);
        assert_eq!(
            retry(&up(ErrorType::ConnectionClosed)),
            Retry::IfStaleConnection
        );
        assert_eq!(retry(&up(ErrorType::InvalidHTTPHeader)), Retry::Never);
        assert!(classify(&up(ErrorType::ReadTimedout)).backend_fault);
        assert!(!classify(&Error::new(ErrorType::ReadError).into_down()).backend_fault);
        assert!(!classify(&Error::new(BODY_TOO_LARGE)).backend_fault);
        assert!(classify(&up(ErrorType::WriteTimedout)).timed_out());
        assert!(!classify(&Error::new(ErrorType::WriteTimedout).into_down()).timed_out());
    }
}
