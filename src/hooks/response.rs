//! What an `on_response` hook sees and changes.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use http::{HeaderMap, Method, Uri};
use pingora::http::ResponseHeader;

use super::{warn_invalid, Meta};

/// Where the response an `on_response` hook sees comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseSource {
    /// A backend answered (a 101 for upgrades included).
    Backend,
    /// Served from the cache (fresh, stale, or revalidated).
    Cache,
    /// strait answered itself: a `respond`/`redirect` rule, a hook's rejection, or an error.
    Strait,
}

/// A hook's caching decision for a response from a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheDecision {
    /// Store it, fresh for this long, whatever its headers and the cache rules say.
    For(Duration),
    /// Do not store it.
    Never,
}

/// A header edit recorded for later (see [`Response`]).
#[derive(Debug, Clone)]
pub(crate) enum Edit {
    Status(u16),
    Set(String, String),
    Append(String, String),
    Remove(String),
}

/// The response, as an `on_response` hook sees and changes it.
pub struct Response<'a> {
    /// The response; for a backend response about to be offered to the cache, a copy, with
    /// the edits also recorded in `edits` to be applied to what the client gets.
    pub(crate) header: &'a mut ResponseHeader,
    pub(crate) edits: Option<&'a mut Vec<Edit>>,
    pub(crate) cache: &'a mut Option<CacheDecision>,
    pub(crate) source: ResponseSource,
    pub(crate) meta: Meta<'a>,
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
}

impl<'a> Response<'a> {
    /// The response status.
    pub fn status(&self) -> u16 {
        self.header.status.as_u16()
    }

    /// Changes the status sent to the client. Ignored (and logged) for a 101 and for 101 as
    /// the new status: an upgrade cannot be undone or faked here.
    pub fn set_status(&mut self, status: u16) {
        if self.status() == 101 || status == 101 || !(100..=599).contains(&status) {
            log::warn!("hook: status {} -> {status} ignored", self.status());
            return;
        }
        if self.header.set_status(status).is_ok() {
            self.record(Edit::Status(status));
        }
    }

    /// Every response header.
    pub fn headers(&self) -> &HeaderMap {
        &self.header.headers
    }

    /// The first value of a response header, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Replaces a response header (an invalid name or value is ignored and logged).
    pub fn set_header(&mut self, name: &str, value: &str) {
        let ok = self.header.insert_header(name.to_string(), value).is_ok();
        warn_invalid("response", name, ok);
        if ok {
            self.record(Edit::Set(name.to_string(), value.to_string()));
        }
    }

    /// Adds a value to a response header.
    pub fn append_header(&mut self, name: &str, value: &str) {
        let ok = self.header.append_header(name.to_string(), value).is_ok();
        warn_invalid("response", name, ok);
        if ok {
            self.record(Edit::Append(name.to_string(), value.to_string()));
        }
    }

    /// Removes every value of a response header.
    pub fn remove_header(&mut self, name: &str) {
        self.header.remove_header(name);
        self.record(Edit::Remove(name.to_string()));
    }

    /// Stores this response in the cache, fresh for `ttl`, overriding its `Cache-Control` and
    /// the cache rules. Takes effect for backend responses to requests the cache handles (a
    /// domain or route with `cache` on, GET or HEAD); elsewhere it does nothing.
    pub fn cache_for(&mut self, ttl: Duration) {
        *self.cache = Some(CacheDecision::For(ttl));
    }

    /// Keeps this response out of the cache, whatever its headers and the rules say.
    pub fn dont_cache(&mut self) {
        *self.cache = Some(CacheDecision::Never);
    }

    /// The caching decision made so far by hooks.
    pub fn cache_decision(&self) -> Option<CacheDecision> {
        *self.cache
    }

    /// Where the response comes from.
    pub fn source(&self) -> ResponseSource {
        self.source
    }

    /// The domain that matched: its first configured host.
    pub fn domain(&self) -> &str {
        self.meta.domain
    }

    /// The `path_prefix` of the route that matched, if any.
    pub fn route(&self) -> Option<&str> {
        self.meta.route
    }

    /// The backend that answered (or was tried last), if any.
    pub fn backend(&self) -> Option<&str> {
        self.meta.backend
    }

    /// The client (see [`Request::client_ip`]).
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.meta.client_ip
    }

    /// The `X-Request-Id` strait logs and forwards for this request.
    pub fn request_id(&self) -> &str {
        self.meta.request_id
    }

    /// The request's method and target, as routed.
    pub fn method(&self) -> &Method {
        self.method
    }

    /// The path of the request target.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    fn record(&mut self, edit: Edit) {
        if let Some(edits) = self.edits.as_mut() {
            edits.push(edit);
        }
    }
}

impl fmt::Debug for Response<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status())
            .field("source", &self.source)
            .field("domain", &self.meta.domain)
            .field("backend", &self.meta.backend)
            .finish_non_exhaustive()
    }
}

/// Applies recorded edits to the response a client gets.
pub(crate) fn apply_edits(edits: &[Edit], header: &mut ResponseHeader) {
    for edit in edits {
        // Each was valid when the hook made it, so none of these can fail.
        match edit {
            Edit::Status(s) => {
                let _ = header.set_status(*s);
            }
            Edit::Set(n, v) => {
                let _ = header.insert_header(n.clone(), v.as_str());
            }
            Edit::Append(n, v) => {
                let _ = header.append_header(n.clone(), v.as_str());
            }
            Edit::Remove(n) => {
                header.remove_header(n.as_str());
            }
        }
    }
}
