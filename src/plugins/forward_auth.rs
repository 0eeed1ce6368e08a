//! `protocol: forward_auth`: the nginx `auth_request` / Traefik `forwardAuth` convention.
//! Each request becomes a `GET` of the plugin's URL with the client's headers and
//! `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri` and `-For`; a 2xx answer lets the request
//! go on (with `copy_headers` taken from it), any other is what the client gets.

use std::sync::Arc;

use pingora::http::RequestHeader;

use super::protocol::RequestInfo;
use super::{CallError, Decision, Edits, Plugin};
use crate::hooks::Reject;

/// Request headers not passed to the auth service: hop-by-hop ones, and the body's framing
/// (the auth request has no body). `Host` is the auth service's own.
const NOT_PASSED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
    "host",
];

pub(super) async fn call(
    plugin: &Plugin,
    info: &RequestInfo<'_>,
    original: &RequestHeader,
) -> Result<Decision, CallError> {
    let path = plugin.config.target.path();
    let mut req = RequestHeader::build("GET", path.as_bytes(), None)
        .map_err(|e| CallError::Bad(format!("request {path}: {e}")))?;
    for (name, value) in &original.headers {
        if NOT_PASSED.contains(&name.as_str()) || name.as_str().starts_with("x-forwarded-") {
            continue;
        }
        let _ = req.append_header(name.clone(), value.clone());
    }
    let client = info.client_ip.map(|ip| ip.to_string());
    for (name, value) in [
        ("X-Forwarded-Method", Some(info.method)),
        ("X-Forwarded-Proto", Some(info.scheme)),
        ("X-Forwarded-Host", Some(info.host)),
        ("X-Forwarded-Uri", Some(info.uri)),
        ("X-Forwarded-For", client.as_deref()),
    ] {
        if let Some(value) = value {
            if req.insert_header(name, value).is_err() {
                log::debug!("forward_auth: {name} {value:?} cannot be sent as a header");
            }
        }
    }
    let answer = plugin.client.exchange(req, None).await?;
    let status = answer.status();
    if (200..300).contains(&status) {
        let mut edits = Edits::default();
        for name in &plugin.config.copy_headers {
            edits.remove.push(name.clone());
            let values: Vec<String> = answer
                .header
                .headers
                .get_all(name.as_str())
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            if !values.is_empty() {
                edits.set.push((name.clone(), values.join(", ")));
            }
        }
        return Ok(Decision::Continue(Arc::new(edits)));
    }
    // A 1xx cannot get here (skipped by the client); 101 and the like are no refusal.
    if status < 200 {
        return Err(CallError::Bad(format!("status {status}")));
    }
    let mut reject = Reject::new(status).body(answer.body.clone());
    for (name, value) in &answer.header.headers {
        if !super::returnable(name.as_str()) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes());
        reject = reject.header(name.as_str(), &value);
    }
    Ok(Decision::Respond(reject))
}
