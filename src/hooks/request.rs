//! What an `on_request` hook sees and returns.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use pingora::http::RequestHeader;

use super::{warn_invalid, Meta};

/// Which way strait answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestKind {
    /// Proxied to a backend (or answered from the cache).
    Proxy,
    /// A WebSocket (or other HTTP/1.1 `Upgrade`) request, tunnelled to a backend.
    Upgrade,
    /// Answered by a `respond` or `redirect` rule.
    Static,
}

/// The request, as an `on_request` hook sees and changes it.
pub struct Request<'a> {
    pub(crate) header: &'a mut RequestHeader,
    pub(crate) meta: Meta<'a>,
    pub(crate) kind: RequestKind,
    pub(crate) upstream_host: &'a mut Option<String>,
}

impl<'a> Request<'a> {
    /// The domain that matched: its first configured host (`*.example.com` and `*` included).
    pub fn domain(&self) -> &str {
        self.meta.domain
    }

    /// The `path_prefix` of the route that matched, if any.
    pub fn route(&self) -> Option<&str> {
        self.meta.route
    }

    /// The backend (its URL as configured) the first attempt will use, for proxied requests.
    /// A retry may use another; `on_error` names each attempt's backend.
    pub fn backend(&self) -> Option<&str> {
        self.meta.backend
    }

    /// The TCP peer.
    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.meta.client_addr
    }

    /// The client: the TCP peer, or the address `X-Forwarded-For` names when the peer is in
    /// `server.trusted_proxies`.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.meta.client_ip
    }

    /// The `X-Request-Id` strait logs and forwards for this request.
    pub fn request_id(&self) -> &str {
        self.meta.request_id
    }

    /// The subject DN (`CN=client,O=Example`) of the certificate the client presented and
    /// strait verified (`listeners[].tls.client_auth`); `None` without one.
    pub fn client_cert_subject(&self) -> Option<&str> {
        self.meta.client_cert.as_ref().map(|c| c.subject.as_str())
    }

    /// The SHA-256 fingerprint (lower-case hex, no colons) of that certificate.
    pub fn client_cert_fingerprint(&self) -> Option<&str> {
        self.meta
            .client_cert
            .as_ref()
            .map(|c| c.fingerprint.as_str())
    }

    /// How strait answers this request.
    pub fn kind(&self) -> RequestKind {
        self.kind
    }

    /// Whether this is a WebSocket (or other `Upgrade`) request.
    pub fn is_upgrade(&self) -> bool {
        self.kind == RequestKind::Upgrade
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.header.method
    }

    /// The request target as received.
    pub fn uri(&self) -> &Uri {
        &self.header.uri
    }

    /// The path of the request target.
    pub fn path(&self) -> &str {
        self.header.uri.path()
    }

    /// The query of the request target, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.header.uri.query()
    }

    /// Every request header.
    pub fn headers(&self) -> &HeaderMap {
        &self.header.headers
    }

    /// The first value of header `name` (case-insensitive), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Replaces header `name`. An invalid name or value is ignored (and logged).
    pub fn set_header(&mut self, name: &str, value: &str) {
        let r = self.header.insert_header(name.to_string(), value);
        warn_invalid("request", name, r.is_ok());
    }

    /// Adds a value to header `name`, keeping the ones there.
    pub fn append_header(&mut self, name: &str, value: &str) {
        let r = self.header.append_header(name.to_string(), value);
        warn_invalid("request", name, r.is_ok());
    }

    /// Removes every value of a request header.
    pub fn remove_header(&mut self, name: &str) {
        self.header.remove_header(name);
    }

    /// The `Host` sent to the backend, whatever `preserve_host` / `host_header` say.
    pub fn set_upstream_host(&mut self, host: impl Into<String>) {
        *self.upstream_host = Some(host.into());
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", self.method())
            .field("uri", self.uri())
            .field("kind", &self.kind)
            .field("domain", &self.meta.domain)
            .field("route", &self.meta.route)
            .field("backend", &self.meta.backend)
            .field("client_ip", &self.meta.client_ip)
            .finish_non_exhaustive()
    }
}

/// An `on_request` hook's refusal: this status, body and headers go to the client, and the
/// request never reaches a backend.
#[derive(Debug, Clone)]
pub struct Reject {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
    pub(crate) headers: Vec<(String, String)>,
}

impl Reject {
    /// A status outside 100..=599 becomes 500.
    pub fn new(status: u16) -> Reject {
        Reject {
            status: if (100..=599).contains(&status) {
                status
            } else {
                500
            },
            body: Bytes::new(),
            headers: Vec::new(),
        }
    }

    /// The response body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Reject {
        self.body = body.into();
        self
    }

    /// Adds a header (e.g. `WWW-Authenticate`). `Content-Length` is always strait's.
    pub fn header(mut self, name: &str, value: &str) -> Reject {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The status the client gets (an invalid one becomes 500).
    pub fn status(&self) -> u16 {
        self.status
    }
}
