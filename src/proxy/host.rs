//! The request's host and scheme, as every phase reads them.

use pingora::http::RequestHeader;
use pingora::proxy::Session;

/// HTTP/2 and absolute-form requests carry the authority in the URI; HTTP/1 in `Host`.
pub(crate) fn request_host(req: &RequestHeader) -> &str {
    match req.uri.authority() {
        Some(a) => a.as_str(),
        None => req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(""),
    }
}

/// `https` when the client connection is TLS, else `http`.
pub(crate) fn scheme(session: &Session) -> &'static str {
    if session.digest().is_some_and(|d| d.ssl_digest.is_some()) {
        "https"
    } else {
        "http"
    }
}

/// `example.com:8080` → `example.com`; `[::1]:8080` → `[::1]`.
pub(crate) fn without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_off() {
        assert_eq!(without_port("a.example:8080"), "a.example");
        assert_eq!(without_port("a.example"), "a.example");
        assert_eq!(without_port("[::1]:80"), "[::1]");
        assert_eq!(without_port("[::1]"), "[::1]");
    }
}
