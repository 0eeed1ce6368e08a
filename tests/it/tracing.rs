//! W3C Trace Context and the OTLP/HTTP exporter (docs/tracing.md): what an origin receives
//! (`traceparent` with the client's trace id and a parent-id of strait's own, `tracestate`
//! passed on), a new trace when the client sent none or a broken one, the trace id in the
//! access log, and spans at a real OTLP/HTTP receiver with their parent links, attributes,
//! and a collector that is down costing no request.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::admin::Ports;
use crate::metrics::scrape;
use crate::support::client::{self, parse_echo};
use crate::support::origin::Refusing;
use crate::support::otlp::Receiver;
use crate::support::{config, domains, eventually_msg, Behaviour, Domain, Origin, Strait};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// A parsed version-00 `traceparent`: (trace-id, parent-id, flags), each checked to be
/// lower-case hex of the right length and the ids not all zero.
fn parse(tp: &str) -> (String, String, String) {
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp:?}");
    assert_eq!(parts[0], "00", "{tp:?}");
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    assert!(hex(parts[1], 32) && parts[1] != "0".repeat(32), "{tp:?}");
    assert!(hex(parts[2], 16) && parts[2] != "0".repeat(16), "{tp:?}");
    assert!(hex(parts[3], 2), "{tp:?}");
    (
        parts[1].to_string(),
        parts[2].to_string(),
        parts[3].to_string(),
    )
}

/// GET `path` on `t.test` with these extra headers; the origin's echo of what it received.
fn sent(s: &Strait, path: &str, headers: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = vec![("Host", "t.test")];
    all.extend_from_slice(headers);
    let r = client::request(s.addr(), "GET", path, &all, b"").expect("request");
    assert_eq!(r.status, 200, "{}", r.text());
    parse_echo(&r.body).1
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    client::find_header(headers, name)
}

fn log_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn echo_config(origin: &Origin, extra: &str) -> String {
    config(&format!(
        "logging:\n  access_log: \"{{dir}}/access.log\"\n{extra}{}",
        domains(&[Domain::new("t.test").origins(&[origin])])
    ))
}

#[test]
fn a_valid_traceparent_keeps_its_trace_and_flags_with_a_new_parent_and_its_tracestate() {
    let origin = Origin::start("o", Behaviour::default().echo());
    let s = Strait::start(&echo_config(&origin, ""));
    let given = format!("00-{TRACE}-{PARENT}-01");
    let got = sent(
        &s,
        "/sampled",
        &[
            ("traceparent", &given),
            ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
        ],
    );
    let (trace, parent, flags) = parse(header(&got, "traceparent").expect("traceparent"));
    assert_eq!(trace, TRACE);
    assert_ne!(
        parent, PARENT,
        "the origin's parent is strait's span, not the client's"
    );
    assert_eq!(flags, "01");
    assert_eq!(
        header(&got, "tracestate"),
        Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
    );

    // Not sampled stays not sampled; a later version is read by its first four fields.
    let got = sent(
        &s,
        "/unsampled",
        &[("traceparent", &format!("00-{TRACE}-{PARENT}-00"))],
    );
    assert_eq!(parse(header(&got, "traceparent").unwrap()).2, "00");
    let later = format!("cc-{TRACE}-{PARENT}-01-future-fields");
    let got = sent(&s, "/later", &[("traceparent", &later)]);
    let (trace, _, flags) = parse(header(&got, "traceparent").unwrap());
    assert_eq!((trace.as_str(), flags.as_str()), (TRACE, "01"));

    // The same client trace on two requests: each gets its own parent-id.
    let a = sent(&s, "/a", &[("traceparent", &given)]);
    let b = sent(&s, "/b", &[("traceparent", &given)]);
    assert_ne!(
        parse(header(&a, "traceparent").unwrap()).1,
        parse(header(&b, "traceparent").unwrap()).1
    );

    // A tracestate over the limits (33 members) is dropped, the traceparent still kept.
    let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    let got = sent(
        &s,
        "/many",
        &[("traceparent", &given), ("tracestate", &many.join(","))],
    );
    assert_eq!(parse(header(&got, "traceparent").unwrap()).0, TRACE);
    assert_eq!(header(&got, "tracestate"), None);

    // The access log names the trace.
    let log = s.dir().join("access.log");
    eventually_msg(Duration::from_secs(5), "six log lines", || {
        log_lines(&log).len() >= 6
    });
    let lines = log_lines(&log);
    let line = lines
        .iter()
        .find(|l| l["path"] == "/sampled")
        .expect("a line");
    assert_eq!(line["trace_id"], TRACE, "{line}");
}

#[test]
fn no_or_an_invalid_traceparent_starts_a_new_trace() {
    let origin = Origin::start("o", Behaviour::default().echo());
    let s = Strait::start(&echo_config(&origin, ""));
    let none = sent(&s, "/none", &[]);
    let (t1, _, flags) = parse(header(&none, "traceparent").expect("a new traceparent"));
    assert_eq!(flags, "01", "sample_ratio defaults to 1.0");
    let again = sent(&s, "/again", &[]);
    assert_ne!(parse(header(&again, "traceparent").unwrap()).0, t1);

    for (n, bad) in [
        format!("00-{}-{PARENT}-01", "0".repeat(32)),
        format!("00-{TRACE}-{}-01", "0".repeat(16)),
        format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
        format!("ff-{TRACE}-{PARENT}-01"),
        format!("00-{TRACE}-{PARENT}-01-extra"),
        "garbage".to_string(),
    ]
    .iter()
    .enumerate()
    {
        let got = sent(
            &s,
            &format!("/bad{n}"),
            &[("traceparent", bad), ("tracestate", "congo=t61rcWkgMzE")],
        );
        let tp = header(&got, "traceparent").expect("a new traceparent");
        let (trace, _, _) = parse(tp);
        assert_ne!(trace, TRACE, "{bad:?} was not refused");
        assert_eq!(header(&got, "tracestate"), None, "{bad:?}: tracestate kept");
    }

    // The log's trace id is the one the origin got.
    let log = s.dir().join("access.log");
    eventually_msg(Duration::from_secs(5), "the /none line", || {
        log_lines(&log).iter().any(|l| l["path"] == "/none")
    });
    let lines = log_lines(&log);
    let line = lines.iter().find(|l| l["path"] == "/none").unwrap();
    assert_eq!(line["trace_id"], t1.as_str(), "{line}");
}

#[test]
fn sample_ratio_zero_marks_new_traces_unsampled_but_follows_the_client() {
    let origin = Origin::start("o", Behaviour::default().echo());
    let s = Strait::start(&echo_config(&origin, "tracing:\n  sample_ratio: 0.0\n"));
    for i in 0..5 {
        let got = sent(&s, &format!("/n{i}"), &[]);
        assert_eq!(parse(header(&got, "traceparent").unwrap()).2, "00");
    }
    let got = sent(
        &s,
        "/c",
        &[("traceparent", &format!("00-{TRACE}-{PARENT}-01"))],
    );
    assert_eq!(parse(header(&got, "traceparent").unwrap()).2, "01");
}

/// The value of the attribute `key` of an OTLP JSON span (`stringValue` or `intValue`).
fn attr(span: &Value, key: &str) -> Option<String> {
    let value = &span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)?["value"];
    value["stringValue"]
        .as_str()
        .or(value["intValue"].as_str())
        .map(str::to_string)
}

#[test]
fn spans_reach_an_otlp_collector_with_their_links_and_attributes() {
    let receiver = Receiver::start();
    let origin = Origin::start("o", Behaviour::default().echo());
    let dead = Refusing::new();
    let s = Strait::start(&config(&format!(
        "tracing:\n  otlp_endpoint: {}\n  service_name: edge-test\n{}",
        receiver.url(),
        domains(&[
            Domain::new("t.test")
                .origins(&[&origin])
                .route("{ path_prefix: /api/ }"),
            Domain::new("r.test")
                .strategy("round_robin")
                .backends(format!(
                    "[{{ addr: {} }}, {{ addr: {} }}]",
                    dead.url(),
                    origin.url()
                )),
        ])
    )));
    // Not sampled by the client: not exported.
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    sent(
        &s,
        "/quiet",
        &[("traceparent", &format!("00-{unsampled}-{PARENT}-00"))],
    );
    // The client's sampled trace, with a request id to find in the attributes.
    let got = sent(
        &s,
        "/api/x",
        &[
            ("traceparent", &format!("00-{TRACE}-{PARENT}-01")),
            ("X-Request-Id", "trace-test-1"),
        ],
    );
    let origin_parent = parse(header(&got, "traceparent").unwrap()).1;
    // A new trace of strait's.
    let got = sent(&s, "/root", &[]);
    let (root_trace, _, _) = parse(header(&got, "traceparent").unwrap());
    // Retries: half of these try the refusing backend first.
    for i in 0..4 {
        let r = client::request(
            s.addr(),
            "GET",
            &format!("/r{i}"),
            &[("Host", "r.test")],
            b"",
        )
        .expect("request");
        assert_eq!(r.status, 200);
    }

    // 1 + 1 + 4 server spans, 1 + 1 + 4..=6 client spans.
    eventually_msg(
        Duration::from_secs(10),
        "the spans at the collector",
        || {
            let spans = receiver.spans();
            spans.iter().filter(|s| s["kind"] == 2).count() >= 6
                && spans.iter().filter(|s| s["kind"] == 3).count() >= 8
        },
    );
    let exports = receiver.exports();
    assert!(exports
        .iter()
        .all(|e| e.content_type.as_deref() == Some("application/json")));
    let spans = receiver.spans();
    assert!(
        spans.iter().all(|s| s["traceId"] != unsampled),
        "an unsampled trace was exported"
    );
    assert!(spans.iter().all(|s| s["service"] == "edge-test"));

    // The client's trace: server span under the client's parent, client span under it, and
    // the origin's parent-id is the client span.
    let of = |trace: &str, kind: u64| -> Vec<Value> {
        spans
            .iter()
            .filter(|s| s["traceId"] == trace && s["kind"] == kind)
            .cloned()
            .collect()
    };
    let server = of(TRACE, 2);
    assert_eq!(server.len(), 1, "{spans:#?}");
    let server = &server[0];
    assert_eq!(server["parentSpanId"], PARENT);
    assert_eq!(server["name"], "GET /api/");
    assert_eq!(attr(server, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(attr(server, "url.path").as_deref(), Some("/api/x"));
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attr(server, "server.address").as_deref(), Some("t.test"));
    assert_eq!(attr(server, "client.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(attr(server, "strait.domain").as_deref(), Some("t.test"));
    assert_eq!(attr(server, "strait.route").as_deref(), Some("/api/"));
    assert_eq!(
        attr(server, "strait.request_id").as_deref(),
        Some("trace-test-1")
    );
    let start: u64 = server["startTimeUnixNano"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let end: u64 = server["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(
        end >= start && start > 1_600_000_000_000_000_000,
        "{server}"
    );
    let clients = of(TRACE, 3);
    assert_eq!(clients.len(), 1, "{spans:#?}");
    let c = &clients[0];
    assert_eq!(c["parentSpanId"], server["spanId"]);
    assert_eq!(c["spanId"], origin_parent.as_str());
    assert_eq!(attr(c, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(attr(c, "server.port"), Some(origin.port().to_string()));
    assert_eq!(attr(c, "http.response.status_code").as_deref(), Some("200"));

    // strait's own trace: a root server span.
    let root = of(&root_trace, 2);
    assert_eq!(root.len(), 1);
    assert!(
        root[0].get("parentSpanId").is_none_or(|p| p == ""),
        "{}",
        root[0]
    );
    assert_eq!(root[0]["name"], "GET t.test");

    // A retried request: two client spans with their own ids, the first failed; the origin
    // got the second as its parent.
    let retried: Vec<Value> = spans
        .iter()
        .filter(|s| s["kind"] == 2 && attr(s, "strait.domain").as_deref() == Some("r.test"))
        .filter(|s| of(s["traceId"].as_str().unwrap(), 3).len() == 2)
        .cloned()
        .collect();
    assert!(!retried.is_empty(), "no request was retried: {spans:#?}");
    let trace = retried[0]["traceId"].as_str().unwrap();
    let attempts = of(trace, 3);
    assert_ne!(attempts[0]["spanId"], attempts[1]["spanId"]);
    assert!(attempts
        .iter()
        .all(|a| a["parentSpanId"] == retried[0]["spanId"]));
    let failed = attempts
        .iter()
        .find(|a| attr(a, "error.type").is_some())
        .expect("a failed attempt");
    assert_eq!(attr(failed, "server.port"), Some(dead.port().to_string()));
    assert_eq!(failed["status"]["code"], 2);
    let answered = attempts
        .iter()
        .find(|a| attr(a, "http.response.status_code").as_deref() == Some("200"))
        .expect("an answered attempt");
    let seen = origin
        .requests()
        .into_iter()
        .filter_map(|r| r.header("traceparent").map(parse))
        .find(|(t, _, _)| t == trace)
        .expect("the origin saw the retried trace");
    assert_eq!(answered["spanId"], seen.1.as_str());
    assert_ne!(failed["spanId"], seen.1.as_str());
}

#[test]
fn a_collector_that_is_down_costs_no_request_and_is_counted() {
    let origin = Origin::plain("o");
    let dead = Refusing::new();
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}tracing:\n  otlp_endpoint: {}/v1/traces\n{}",
        p.yaml(true),
        dead.url(),
        domains(&[Domain::new("t.test").origins(&[&origin])])
    )));
    for i in 0..5 {
        let r = client::get(s.addr(), "t.test", &format!("/{i}")).expect("request");
        assert_eq!(r.status, 200);
    }
    eventually_msg(Duration::from_secs(10), "failed spans counted", || {
        scrape(&p).value("strait_trace_spans_total", &[("outcome", "failed")]) >= 10.0
    });
    let m = scrape(&p);
    assert_eq!(
        m.value("strait_trace_spans_total", &[("outcome", "exported")]),
        0.0
    );
    assert_eq!(
        m.value("strait_trace_spans_total", &[("outcome", "dropped")]),
        0.0
    );
    // Logged, but not once per batch.
    assert_eq!(
        s.stderr().matches("cannot export spans").count(),
        1,
        "{}",
        s.stderr()
    );
}

#[test]
fn bad_tracing_values_are_reported_with_their_position() {
    let c = Strait::check(
        "listeners:
  - addr: \"{listen}\"
tracing:
  otlp_endpoint: https://collector:4318/v1/traces
  sample_ratio: 1.5
  sampler: always
domains:
  - hosts: [a.test]
    backends: [http://127.0.0.1:9001]
",
    );
    c.assert_error(4, 18, "tracing.otlp_endpoint", &["https", "not supported"]);
    c.assert_error(
        5,
        17,
        "tracing.sample_ratio",
        &["between 0.0 and 1.0", "1.5"],
    );
    c.assert_error(
        6,
        3,
        "tracing",
        &["unknown field `sampler`", "otlp_endpoint"],
    );

    let c = Strait::check(
        "listeners:
  - addr: \"{listen}\"
tracing:
  otlp_endpoint: collector:4318
  sample_ratio: half
domains:
  - hosts: [a.test]
    backends: [http://127.0.0.1:9001]
",
    );
    c.assert_error(4, 18, "tracing.otlp_endpoint", &["http:// URL"]);
    c.assert_error(5, 17, "tracing.sample_ratio", &["expected a number"]);
}
