//! Metrics and the access-log line for a request head refused with 408 or 431 before Pingora
//! parsed it (see [`super::listener`]). Nothing was routed, so the domain is `(unknown)`; the
//! method, path and host are read from whatever part of the head had arrived, when they can
//! be.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use http::{Method, Uri};

use super::listener::Partial;
use crate::access_log::Entry;
use crate::metrics::{self, RequestRecord, NO_ROUTE, UNKNOWN_DOMAIN};
use crate::proxy::logging::new_request_id;
use crate::state::State;

/// `code` is the `X-Strait-Error` the client was sent; the log line's `error`.
pub(crate) fn record(
    state: &State,
    status: u16,
    code: &'static str,
    partial: &Partial,
    client: Option<IpAddr>,
) {
    let duration = partial.since.elapsed();
    metrics::record(
        &state.domain_stats,
        &RequestRecord {
            domain: UNKNOWN_DOMAIN,
            route: NO_ROUTE,
            status,
            duration,
            ratelimited: false,
            cache: None,
            cache_reason: None,
            compressed: None,
        },
    );
    if !state.access_log.enabled() {
        return;
    }
    state
        .access_log
        .send(entry(status, code, &partial.bytes, client, duration));
}

fn entry(
    status: u16,
    code: &'static str,
    head: &[u8],
    client: Option<IpAddr>,
    duration: Duration,
) -> Entry {
    let (method, uri) = request_line(head);
    Entry {
        at: SystemTime::now(),
        request_id: new_request_id(),
        // Refused before any trace context was read.
        trace_id: None,
        client,
        method: method.unwrap_or(Method::GET),
        host: host(head).unwrap_or_default(),
        uri: uri.unwrap_or_else(|| Uri::from_static("/")),
        status,
        bytes_in: 0,
        bytes_out: 0,
        duration,
        domain: None,
        route: None,
        upstream: None,
        upstream_duration: None,
        attempts: 0,
        cache: None,
        user_agent: None,
        referer: None,
        version: http::Version::HTTP_11,
        error: Some(code),
        tls_client: None,
    }
}

/// Method and target of the request line, each when it arrived whole and is valid.
fn request_line(head: &[u8]) -> (Option<Method>, Option<Uri>) {
    let start = head
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(head.len());
    let rest = &head[start..];
    let Some(end) = rest.iter().position(|&b| b == b'\n') else {
        return (None, None);
    };
    let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next().and_then(|m| Method::from_bytes(m).ok());
    let uri = parts.next().and_then(|t| Uri::try_from(t).ok());
    (method, uri)
}

/// The `Host` header's value, when its line arrived whole and is text.
fn host(head: &[u8]) -> Option<String> {
    let whole_lines = head.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    head[..whole_lines]
        .split(|&b| b == b'\n')
        .skip(1)
        .find_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            if !line[..colon].eq_ignore_ascii_case(b"host") {
                return None;
            }
            let value = std::str::from_utf8(&line[colon + 1..]).ok()?;
            Some(value.trim().to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_arrived() {
        let head = b"GET /slow?x=1 HTTP/1.1\r\nHost: a.test\r\nX-Drip: 1";
        let (m, u) = request_line(head);
        assert_eq!(m, Some(Method::GET));
        assert_eq!(u.map(|u| u.to_string()), Some("/slow?x=1".into()));
        assert_eq!(host(head).as_deref(), Some("a.test"));

        // An unfinished request line or header line gives nothing rather than a guess.
        assert_eq!(request_line(b"GET /sl"), (None, None));
        assert_eq!(host(b"GET / HTTP/1.1\r\nHost: a.te"), None);
        assert_eq!(
            host(b"GET / HTTP/1.1\r\nHost: a.test\r\n").as_deref(),
            Some("a.test")
        );
        let e = entry(
            431,
            "header-too-large",
            b"\r\nPUT /x HTTP/1.1\n",
            None,
            Duration::ZERO,
        );
        assert_eq!(e.method, Method::PUT);
        assert_eq!(e.uri.path(), "/x");
        assert_eq!(e.error, Some("header-too-large"));
    }
}
