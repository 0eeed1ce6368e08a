//! OTLP/HTTP's JSON encoding of a batch of spans (`ExportTraceServiceRequest`, as the OTLP
//! spec maps protobuf to JSON: ids as lower-case hex, 64-bit integers and times in Unix
//! nanoseconds as decimal strings, enums as numbers, camelCase field names). JSON rather than
//! protobuf keeps a protobuf code generator and runtime out of the build; every OTLP/HTTP
//! collector accepts both. Written by hand (serde_json only escapes strings): this runs on the
//! exporter's task, once per batch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::context::push_hex;
use super::export::RequestSpans;

const SPAN_KIND_SERVER: u8 = 2;
const SPAN_KIND_CLIENT: u8 = 3;
const STATUS_ERROR: u8 = 2;

/// One `ExportTraceServiceRequest` holding every span of `batch`.
pub(super) fn encode(batch: &[Box<RequestSpans>], service_name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + batch.len() * 1024);
    out.extend_from_slice(b"{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    attr_str(&mut out, true, "service.name", service_name);
    out.extend_from_slice(b"]},\"scopeSpans\":[{\"scope\":{\"name\":\"strait\",\"version\":");
    push_str(&mut out, env!("CARGO_PKG_VERSION"));
    out.extend_from_slice(b"},\"spans\":[");
    let mut first = true;
    for r in batch {
        server_span(&mut out, &mut first, r);
        for (i, _) in r.attempts.iter().enumerate() {
            client_span(&mut out, &mut first, r, i);
        }
    }
    out.extend_from_slice(b"]}]}]}");
    out
}

fn server_span(out: &mut Vec<u8>, first: &mut bool, r: &RequestSpans) {
    let name = match (&r.route, &r.domain) {
        (Some(route), _) => format!("{} {route}", r.method),
        (None, Some(domain)) => format!("{} {domain}", r.method),
        (None, None) => r.method.to_string(),
    };
    let end = r.start + r.duration;
    span_head(
        out,
        first,
        r,
        &r.span_id,
        r.parent.as_ref(),
        &name,
        SPAN_KIND_SERVER,
        r.start,
        end,
    );
    attr_str(out, true, "http.request.method", r.method.as_str());
    attr_str(out, false, "url.path", &r.path);
    if r.status > 0 {
        attr_int(out, "http.response.status_code", u64::from(r.status));
    }
    attr_str(out, false, "server.address", &r.host);
    if let Some(ip) = r.client {
        attr_str(out, false, "client.address", &ip.to_string());
    }
    if let Some(d) = &r.domain {
        attr_str(out, false, "strait.domain", d);
    }
    if let Some(route) = &r.route {
        attr_str(out, false, "strait.route", route);
    }
    attr_str(out, false, "strait.request_id", &r.request_id);
    if let Some(e) = r.error {
        attr_str(out, false, "error.type", e);
    }
    out.push(b']');
    // HTTP server spans: 5xx (or no response at all after an error) is an error.
    let error = r.status >= 500 || (r.status == 0 && r.error.is_some());
    status(out, error);
    out.push(b'}');
}

fn client_span(out: &mut Vec<u8>, first: &mut bool, r: &RequestSpans, i: usize) {
    let a = &r.attempts[i];
    span_head(
        out,
        first,
        r,
        &a.span_id,
        Some(&r.span_id),
        r.method.as_str(),
        SPAN_KIND_CLIENT,
        r.start + a.start,
        r.start + a.end,
    );
    attr_str(out, true, "http.request.method", r.method.as_str());
    attr_str(out, false, "server.address", &a.host);
    attr_int(out, "server.port", u64::from(a.port));
    if let Some(s) = a.status {
        attr_int(out, "http.response.status_code", u64::from(s));
    }
    if let Some(e) = a.error {
        attr_str(out, false, "error.type", e);
    }
    attr_int(out, "strait.attempt", i as u64 + 1);
    out.push(b']');
    // HTTP client spans: 4xx and 5xx are errors, as is no response.
    status(out, a.error.is_some() || a.status.is_some_and(|s| s >= 400));
    out.push(b'}');
}

/// `{"traceId":..,"spanId":..,["parentSpanId":..,]"name":..,"kind":..,times,"attributes":[`
#[allow(clippy::too_many_arguments)]
fn span_head(
    out: &mut Vec<u8>,
    first: &mut bool,
    r: &RequestSpans,
    span_id: &[u8; 8],
    parent: Option<&[u8; 8]>,
    name: &str,
    kind: u8,
    start: SystemTime,
    end: SystemTime,
) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    out.extend_from_slice(b"{\"traceId\":\"");
    push_hex(out, &r.trace_id);
    out.extend_from_slice(b"\",\"spanId\":\"");
    push_hex(out, span_id);
    out.push(b'"');
    if let Some(p) = parent {
        out.extend_from_slice(b",\"parentSpanId\":\"");
        push_hex(out, p);
        out.push(b'"');
    }
    out.extend_from_slice(b",\"flags\":");
    // The W3C trace flags in the low byte; bit 8 says bit 9 is set, which says whether the
    // parent is remote: only a server span's parent (the client's) is.
    let remote = if parent.is_some() && kind == SPAN_KIND_SERVER {
        0x300
    } else {
        0x100
    };
    push_num(out, u64::from(r.flags) | remote);
    out.extend_from_slice(b",\"name\":");
    push_str(out, name);
    out.extend_from_slice(b",\"kind\":");
    push_num(out, u64::from(kind));
    out.extend_from_slice(b",\"startTimeUnixNano\":\"");
    push_num(out, nanos(start));
    out.extend_from_slice(b"\",\"endTimeUnixNano\":\"");
    push_num(out, nanos(end.max(start)));
    out.extend_from_slice(b"\",\"attributes\":[");
}

fn status(out: &mut Vec<u8>, error: bool) {
    if error {
        out.extend_from_slice(b",\"status\":{\"code\":");
        push_num(out, u64::from(STATUS_ERROR));
        out.push(b'}');
    } else {
        out.extend_from_slice(b",\"status\":{}");
    }
}

fn attr_str(out: &mut Vec<u8>, first: bool, key: &str, value: &str) {
    if !first {
        out.push(b',');
    }
    out.extend_from_slice(b"{\"key\":");
    push_str(out, key);
    out.extend_from_slice(b",\"value\":{\"stringValue\":");
    push_str(out, value);
    out.extend_from_slice(b"}}");
}

/// Never the first attribute (callers put a string first).
fn attr_int(out: &mut Vec<u8>, key: &str, value: u64) {
    out.extend_from_slice(b",{\"key\":");
    push_str(out, key);
    out.extend_from_slice(b",\"value\":{\"intValue\":\"");
    push_num(out, value);
    out.extend_from_slice(b"\"}}");
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn push_num(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos()
        .min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::AttemptSpan;
    use serde_json::Value;

    fn request() -> Box<RequestSpans> {
        Box::new(RequestSpans {
            trace_id: [0xab; 16],
            span_id: [1; 8],
            parent: Some([2; 8]),
            flags: 1,
            start: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            duration: Duration::from_millis(5),
            method: http::Method::GET,
            host: "a.test".into(),
            path: "/x\"y".into(),
            status: 502,
            client: Some("127.0.0.1".parse().unwrap()),
            domain: Some("a.test".into()),
            route: Some("/api".into()),
            request_id: "r1".into(),
            error: None,
            attempts: vec![
                AttemptSpan {
                    span_id: [3; 8],
                    start: Duration::from_millis(1),
                    end: Duration::from_millis(2),
                    host: "127.0.0.1".into(),
                    port: 9,
                    status: None,
                    error: Some("ConnectRefused"),
                },
                AttemptSpan {
                    span_id: [4; 8],
                    start: Duration::from_millis(2),
                    end: Duration::from_millis(4),
                    host: "127.0.0.1".into(),
                    port: 10,
                    status: Some(502),
                    error: None,
                },
            ],
        })
    }

    #[test]
    fn encodes_otlp_json() {
        let body = encode(&[request()], "edge \"one\"");
        let v: Value = serde_json::from_slice(&body).expect("valid JSON");
        let rs = &v["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0]["value"]["stringValue"],
            "edge \"one\""
        );
        let spans = rs["scopeSpans"][0]["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 3);
        let server = &spans[0];
        assert_eq!(server["traceId"], "ab".repeat(16));
        assert_eq!(server["spanId"], "0101010101010101");
        assert_eq!(server["parentSpanId"], "0202020202020202");
        assert_eq!(server["name"], "GET /api");
        assert_eq!(server["kind"], 2);
        assert_eq!(server["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(server["endTimeUnixNano"], "1700000000005000000");
        assert_eq!(server["status"]["code"], 2);
        let attr = |span: &Value, key: &str| -> Value {
            span["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == key)
                .map(|a| a["value"].clone())
                .unwrap_or(Value::Null)
        };
        assert_eq!(attr(server, "url.path")["stringValue"], "/x\"y");
        assert_eq!(attr(server, "http.response.status_code")["intValue"], "502");
        assert_eq!(attr(server, "client.address")["stringValue"], "127.0.0.1");
        assert_eq!(attr(server, "strait.request_id")["stringValue"], "r1");
        for (i, client) in spans[1..].iter().enumerate() {
            assert_eq!(client["parentSpanId"], "0101010101010101");
            assert_eq!(client["kind"], 3);
            assert_eq!(client["status"]["code"], 2, "{client}");
            assert_eq!(
                attr(client, "strait.attempt")["intValue"],
                format!("{}", i + 1)
            );
        }
        assert_eq!(
            attr(&spans[1], "error.type")["stringValue"],
            "ConnectRefused"
        );
        assert_eq!(attr(&spans[2], "server.port")["intValue"], "10");
        assert_eq!(spans[2]["startTimeUnixNano"], "1700000000002000000");
    }

    #[test]
    fn a_root_span_has_no_parent_and_ok_has_no_code() {
        let mut r = request();
        r.parent = None;
        r.status = 200;
        r.attempts.clear();
        r.route = None;
        let v: Value = serde_json::from_slice(&encode(&[r], "s")).unwrap();
        let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert!(span.get("parentSpanId").is_none(), "{span}");
        assert_eq!(span["status"], serde_json::json!({}));
        assert_eq!(span["name"], "GET a.test");
    }
}
