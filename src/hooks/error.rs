//! What an `on_error` hook is told.

use std::fmt;
use std::net::IpAddr;

use http::{Method, Uri};

use super::Meta;

/// What went wrong on an attempt (or a request), in `on_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The backend refused the connection.
    ConnectRefused,
    /// Connecting took longer than `connect_timeout`.
    ConnectTimeout,
    /// Another connection failure (TLS, unreachable, ...).
    ConnectFailed,
    /// The backend sent nothing for `read_timeout`.
    ReadTimeout,
    /// Writing to the backend took longer than `write_timeout`.
    WriteTimeout,
    /// The backend closed or broke the connection.
    UpstreamClosed,
    /// The backend's answer was not valid HTTP.
    UpstreamProtocol,
    /// No usable backend (all unhealthy, drained, or already tried).
    NoHealthyBackend,
    /// Every candidate backend stayed at its `max_connections` for the queue wait.
    BackendBusy,
    /// The client went away or sent something invalid.
    Client,
    /// A failure inside strait.
    Internal,
}

impl ErrorKind {
    /// The kind as the access log and metrics name it (`connect-refused`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect-refused",
            ErrorKind::ConnectTimeout => "connect-timeout",
            ErrorKind::ConnectFailed => "connect-failed",
            ErrorKind::ReadTimeout => "read-timeout",
            ErrorKind::WriteTimeout => "write-timeout",
            ErrorKind::UpstreamClosed => "upstream-closed",
            ErrorKind::UpstreamProtocol => "upstream-protocol",
            ErrorKind::NoHealthyBackend => "no-healthy-backend",
            ErrorKind::BackendBusy => "backend-busy",
            ErrorKind::Client => "client",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failure, as `on_error` sees it.
pub struct ErrorEvent<'a> {
    pub(crate) meta: Meta<'a>,
    pub(crate) attempt: u32,
    pub(crate) kind: ErrorKind,
    pub(crate) retrying: bool,
    pub(crate) error: &'a pingora::Error,
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
}

impl ErrorEvent<'_> {
    /// The domain that matched: its first configured host.
    pub fn domain(&self) -> &str {
        self.meta.domain
    }

    /// The `path_prefix` of the route that matched, if any.
    pub fn route(&self) -> Option<&str> {
        self.meta.route
    }

    /// The backend of the failed attempt (`None` when no backend could be chosen).
    pub fn backend(&self) -> Option<&str> {
        self.meta.backend
    }

    /// 1 for the first attempt; a request that failed before any attempt reports the number
    /// of attempts made (0 when none).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether strait tries another backend after this failure.
    pub fn retrying(&self) -> bool {
        self.retrying
    }

    /// Pingora's description of the error.
    pub fn detail(&self) -> String {
        self.error.to_string()
    }

    /// The client (see [`Request::client_ip`]).
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.meta.client_ip
    }

    /// The `X-Request-Id` strait logs and forwards for this request.
    pub fn request_id(&self) -> &str {
        self.meta.request_id
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        self.method
    }

    /// The path of the request target.
    pub fn path(&self) -> &str {
        self.uri.path()
    }
}

impl fmt::Debug for ErrorEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorEvent")
            .field("domain", &self.meta.domain)
            .field("backend", &self.meta.backend)
            .field("attempt", &self.attempt)
            .field("kind", &self.kind)
            .field("retrying", &self.retrying)
            .finish_non_exhaustive()
    }
}
