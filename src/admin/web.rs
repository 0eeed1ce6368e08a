//! Small HTTP plumbing shared by the admin and probe apps: reading a bounded body, query
//! parameters, bearer auth in constant time, JSON and text replies.

use std::collections::HashMap;

use http::{Response, StatusCode};
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};

/// Largest admin request body accepted.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// An error reply: `{"error": message}` with `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Extra JSON fields (e.g. the list of config errors of a failed reload).
    pub details: Option<(&'static str, Value)>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            details: None,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub(crate) fn with(mut self, key: &'static str, value: Value) -> Self {
        self.details = Some((key, value));
        self
    }

    /// Adds `"errors": [...]`, one string per error (config errors with their file:line).
    pub(crate) fn with_errors<E: std::fmt::Display>(self, errors: &[E]) -> Self {
        let list: Vec<Value> = errors.iter().map(|e| e.to_string().into()).collect();
        self.with("errors", list.into())
    }

    pub(crate) fn into_response(self) -> Response<Vec<u8>> {
        let mut body = json!({ "error": self.message });
        if let (Some((k, v)), Some(map)) = (self.details, body.as_object_mut()) {
            map.insert(k.to_string(), v);
        }
        json_response(self.status, &body)
    }
}

pub(crate) type ApiResult = Result<(StatusCode, Value), ApiError>;

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(body).unwrap_or_else(|_| b"{}".to_vec());
    bytes.push(b'\n');
    respond(status, "application/json", bytes)
}

pub(crate) fn text_response(status: StatusCode, text: &str) -> Response<Vec<u8>> {
    respond(
        status,
        "text/plain; charset=utf-8",
        text.as_bytes().to_vec(),
    )
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut r = Response::new(Vec::new());
    *r.status_mut() = status;
    let headers = r.headers_mut();
    // Static strings and numbers: always valid header values.
    if let Ok(v) = content_type.parse() {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    headers.insert(http::header::CONTENT_LENGTH, body.len().into());
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    *r.body_mut() = body;
    r
}

/// Reads the whole request body, refusing more than [`MAX_BODY`] bytes.
pub(crate) async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("request body larger than {MAX_BODY} bytes"),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(ApiError::bad_request(format!("cannot read the body: {e}"))),
        }
    }
}

/// Query parameters, percent-decoded (`+` is a space). A repeated name keeps its last value.
pub(crate) fn query_params(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Compares in time that depends on neither the token's length nor where the first
/// difference is: both sides are hashed to a fixed size first (BLAKE2s, already built for
/// Pingora's cache keys), then compared with `subtle`.
pub(crate) fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    use blake2::{Blake2s256, Digest};
    use subtle::ConstantTimeEq;
    let a = Blake2s256::digest(given);
    let b = Blake2s256::digest(expected);
    a.as_slice().ct_eq(b.as_slice()).into()
}

/// Whether the request carries `Authorization: Bearer <token>`.
pub(crate) fn authorized(session: &ServerSession, token: &str) -> bool {
    let Some(value) = session.get_header(http::header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    let scheme = b"bearer ";
    if value.len() < scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return false;
    }
    let given = value[scheme.len()..].trim_ascii();
    constant_time_eq(given, token.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries() {
        let q = query_params(Some(
            "domain=a.test&addr=http%3A%2F%2F127.0.0.1%3A80&x&route=/p/+q",
        ));
        assert_eq!(q["domain"], "a.test");
        assert_eq!(q["addr"], "http://127.0.0.1:80");
        assert_eq!(q["x"], "");
        assert_eq!(q["route"], "/p/ q");
        let one = |q: &str| query_params(Some(q)).remove("k").unwrap_or_default();
        assert_eq!(one("k=100%"), "100%");
        assert_eq!(one("k=%zz%4"), "%zz%4");
        assert_eq!(one("k=%41"), "A");
    }

    #[test]
    fn compares_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret1", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(!constant_time_eq(b"x", b""));
        // "secretsecret" wraps around the expected bytes but the length differs.
        assert!(!constant_time_eq(b"secretsecret", b"secret"));
    }
}
