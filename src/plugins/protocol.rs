//! The strait plugin protocol, version 1 (docs/plugins.md): HTTP/1.1 with JSON bodies.
//! `GET /v1/hello` -> the phases; `POST /v1/request` -> continue or respond;
//! `POST /v1/response` -> response edits. Every answer must be a 200 with a JSON object;
//! anything else is an error (and the plugin's `on_error` applies).

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::HeaderMap;
use pingora::http::RequestHeader;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::client::Answer;
use super::{CallError, Decision, Edits, Phases, ResponseEdits};
use crate::hooks::Reject;

/// At most this much of a bad answer's body goes into the log and `/stats`.
const SHOWN: usize = 200;

/// What a request-phase call says about the request (besides its headers).
#[derive(Debug, Clone)]
pub(crate) struct RequestInfo<'a> {
    pub method: &'a str,
    /// The path as routed (after a route's rewrite).
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// `http` or `https`: how the client reached strait.
    pub scheme: &'a str,
    /// The request's host (the `Host` header or the URI's authority).
    pub host: &'a str,
    /// The request target as the client sent it (forward_auth's `X-Forwarded-Uri`).
    pub uri: &'a str,
    pub client_ip: Option<IpAddr>,
    /// The verified client certificate, on a TLS listener with `client_auth`.
    pub tls_client: Option<&'a crate::tls::ClientCert>,
    pub domain: &'a str,
    pub route: Option<&'a str>,
    pub request_id: &'a str,
}

/// What a response-phase call says about the response.
#[derive(Debug, Clone)]
pub(crate) struct ResponseInfo<'a> {
    pub status: u16,
    pub headers: &'a HeaderMap,
    pub method: &'a str,
    pub path: &'a str,
    pub domain: &'a str,
    pub route: Option<&'a str>,
    pub request_id: &'a str,
}

/// Headers as a JSON object: lower-case names, repeated values joined with `, `.
fn headers_json(headers: &HeaderMap) -> Value {
    let mut out = Map::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        match out.get_mut(name.as_str()) {
            Some(Value::String(s)) => {
                s.push_str(", ");
                s.push_str(&value);
            }
            _ => {
                out.insert(name.as_str().to_string(), Value::String(value.into_owned()));
            }
        }
    }
    Value::Object(out)
}

/// The body of `POST /v1/request`.
pub(super) fn request_body(info: &RequestInfo<'_>, req: &RequestHeader) -> Vec<u8> {
    let v = json!({
        "version": 1,
        "method": info.method,
        "path": info.path,
        "query": info.query,
        "headers": headers_json(&req.headers),
        "client_ip": info.client_ip.map(|ip| ip.to_string()),
        "tls_client": info.tls_client.map(|c| json!({
            "subject": c.subject,
            "fingerprint": c.fingerprint,
        })),
        "domain": info.domain,
        "route": info.route,
        "request_id": info.request_id,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The body of `POST /v1/response`.
pub(super) fn response_body(info: &ResponseInfo<'_>) -> Vec<u8> {
    let v = json!({
        "version": 1,
        "status": info.status,
        "headers": headers_json(info.headers),
        "method": info.method,
        "path": info.path,
        "domain": info.domain,
        "route": info.route,
        "request_id": info.request_id,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// What a connection-phase call says about a new connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionInfo<'a> {
    pub client_ip: Option<IpAddr>,
    /// The listener's `name` (its address when it has none).
    pub listener: &'a str,
    /// The TLS server name the client asked for, on a TLS listener.
    pub sni: Option<&'a str>,
}

/// The body of `POST /v1/connection`.
pub(super) fn connection_body(info: &ConnectionInfo<'_>) -> Vec<u8> {
    let v = json!({
        "version": 1,
        "client_ip": info.client_ip.map(|ip| ip.to_string()),
        "listener": info.listener,
        "sni": info.sni,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

#[derive(Deserialize)]
struct ConnectionAnswer {
    action: Option<String>,
}

/// `POST /v1/connection`: `allow` (true) or `deny` (false).
pub(super) fn connection_decision(answer: &Answer) -> Result<bool, CallError> {
    let a: ConnectionAnswer = parse(answer)?;
    match a.action.as_deref() {
        Some("allow") => Ok(true),
        Some("deny") => Ok(false),
        other => Err(CallError::Bad(format!(
            "action {other:?} (expected \"allow\" or \"deny\") in {}",
            shown(&answer.body)
        ))),
    }
}

/// The start of a body, for messages.
pub(super) fn shown(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(SHOWN)]).into_owned();
    if body.len() > SHOWN {
        format!("{text:?}...")
    } else {
        format!("{text:?}")
    }
}

/// The JSON object of a 200 answer.
fn parse<T: for<'de> Deserialize<'de>>(answer: &Answer) -> Result<T, CallError> {
    if answer.status() != 200 {
        return Err(CallError::Bad(format!(
            "status {} (expected 200), body {}",
            answer.status(),
            shown(&answer.body)
        )));
    }
    serde_json::from_slice(&answer.body).map_err(|e| {
        CallError::Bad(format!(
            "malformed JSON ({e}), body {}",
            shown(&answer.body)
        ))
    })
}

#[derive(Deserialize)]
struct HelloAnswer {
    #[serde(default)]
    phases: Option<Vec<String>>,
}

/// `GET /v1/hello`: the phases the plugin handles (`request` when it does not say).
/// Phases this version does not know are ignored.
pub(super) fn hello(answer: &Answer) -> Result<Phases, CallError> {
    let a: HelloAnswer = parse(answer)?;
    let Some(names) = a.phases else {
        return Ok(Phases {
            request: true,
            response: false,
            connection: false,
        });
    };
    Ok(Phases {
        request: names.iter().any(|p| p == "request"),
        response: names.iter().any(|p| p == "response"),
        connection: names.iter().any(|p| p == "connection"),
    })
}

#[derive(Deserialize)]
struct RequestAnswer {
    action: Option<String>,
    #[serde(default)]
    set_headers: BTreeMap<String, String>,
    #[serde(default)]
    remove_headers: Vec<String>,
    #[serde(default)]
    response_headers: BTreeMap<String, String>,
    status: Option<u16>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: String,
}

/// `POST /v1/request`: `continue` (with edits) or `respond`.
pub(super) fn request_decision(answer: &Answer) -> Result<Decision, CallError> {
    let a: RequestAnswer = parse(answer)?;
    match a.action.as_deref() {
        Some("continue") => Ok(Decision::Continue(std::sync::Arc::new(Edits {
            set: a.set_headers.into_iter().collect(),
            remove: a.remove_headers,
            response: a.response_headers.into_iter().collect(),
        }))),
        Some("respond") => {
            let status = a
                .status
                .filter(|s| (200..=599).contains(s))
                .ok_or_else(|| {
                    CallError::Bad(format!(
                        "respond needs a status from 200 to 599, body {}",
                        shown(&answer.body)
                    ))
                })?;
            let mut reject = Reject::new(status).body(a.body);
            for (name, value) in a.headers.iter().filter(|(n, _)| super::returnable(n)) {
                reject = reject.header(name, value);
            }
            Ok(Decision::Respond(reject))
        }
        other => Err(CallError::Bad(format!(
            "unknown action {:?} (expected \"continue\" or \"respond\"), body {}",
            other.unwrap_or("(none)"),
            shown(&answer.body)
        ))),
    }
}

#[derive(Deserialize)]
struct ResponseAnswer {
    #[serde(default)]
    set_headers: BTreeMap<String, String>,
    #[serde(default)]
    remove_headers: Vec<String>,
    status: Option<u16>,
}

/// `POST /v1/response`: edits to the response.
pub(super) fn response_edits(answer: &Answer) -> Result<ResponseEdits, CallError> {
    let a: ResponseAnswer = parse(answer)?;
    if let Some(s) = a.status.filter(|s| !(200..=599).contains(s)) {
        return Err(CallError::Bad(format!(
            "status {s} is not one a response can be given (200 to 599)"
        )));
    }
    Ok(ResponseEdits {
        set: a.set_headers.into_iter().collect(),
        remove: a.remove_headers,
        status: a.status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use pingora::http::ResponseHeader;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            header: Box::new(ResponseHeader::build(status, None).unwrap()),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn decisions() {
        let d = request_decision(&answer(
            200,
            r#"{"action":"continue","set_headers":{"X-A":"1"},"remove_headers":["cookie"]}"#,
        ))
        .unwrap();
        let Decision::Continue(e) = d else {
            panic!("continue expected")
        };
        assert_eq!(e.set, [("X-A".to_string(), "1".to_string())]);
        assert_eq!(e.remove, ["cookie"]);
        let d = request_decision(&answer(
            200,
            r#"{"action":"respond","status":403,"headers":{"X-Why":"no"},"body":"no\n"}"#,
        ))
        .unwrap();
        let Decision::Respond(r) = d else {
            panic!("respond expected")
        };
        assert_eq!(r.status(), 403);
        for bad in [
            r#"{"action":"maybe"}"#,
            r#"{"set_headers":{}}"#,
            "not json",
            r#"{"action":"respond","status":42}"#,
        ] {
            let e = request_decision(&answer(200, bad)).unwrap_err();
            assert!(matches!(e, CallError::Bad(_)), "{bad}: {e}");
        }
        assert!(request_decision(&answer(500, r#"{"action":"continue"}"#)).is_err());
    }

    #[test]
    fn hello_phases() {
        let p = hello(&answer(
            200,
            r#"{"phases":["request","response","connection"]}"#,
        ))
        .unwrap();
        assert!(p.request && p.response && p.connection);
        let p = hello(&answer(200, "{}")).unwrap();
        assert!(p.request && !p.response && !p.connection);
    }

    #[test]
    fn connection_decisions() {
        assert!(connection_decision(&answer(200, r#"{"action":"allow"}"#)).unwrap());
        assert!(!connection_decision(&answer(200, r#"{"action":"deny"}"#)).unwrap());
        for bad in [r#"{"action":"continue"}"#, "{}", "nope"] {
            assert!(connection_decision(&answer(200, bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn long_bodies_are_shown_truncated() {
        let s = shown("x".repeat(1000).as_bytes());
        assert!(s.len() < 220 && s.ends_with("..."), "{s}");
    }
}
