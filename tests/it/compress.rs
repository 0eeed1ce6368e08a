//! On-the-fly compression (`compress:`, issue 13): negotiation by `Accept-Encoding` with
//! quality values, `Vary`, what is never compressed, strait's own answers, the cache, and
//! the metric. Bodies are decoded with real decoders and compared with the origin's bytes.

use std::io::Read;
use std::time::Duration;

use crate::admin::Ports;
use crate::support::origin::Reply;
use crate::support::{client, config, domains, eventually_msg, Behaviour, Domain, Origin};
use crate::support::{Response, Strait};

/// A page that compresses well, larger than the default `min_bytes`.
fn page() -> String {
    (0..300)
        .map(|i| format!("<p>paragraph {i} of a page that compresses well</p>\n"))
        .collect()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

/// Strict: a stream without its final meta-block is an error, not a short body.
fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .expect("a complete brotli stream");
    out
}

fn unzstd(bytes: &[u8]) -> Vec<u8> {
    zstd::decode_all(bytes).expect("a zstd body")
}

/// The body as the origin sent it, undoing the response's `Content-Encoding`.
#[track_caller]
fn decoded(r: &Response) -> Vec<u8> {
    match r.header("content-encoding") {
        None => r.body.clone(),
        Some("gzip") => gunzip(&r.body),
        Some("br") => unbrotli(&r.body),
        Some("zstd") => unzstd(&r.body),
        Some(other) => panic!("unexpected content-encoding {other:?}"),
    }
}

fn varies_on_accept_encoding(r: &Response) -> bool {
    r.header_all("vary")
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|t| t.trim().eq_ignore_ascii_case("accept-encoding"))
        .count()
        == 1
}

/// A body of many read chunks (about 1.6 MB).
fn big() -> String {
    (0..40_000)
        .map(|i| format!("row {i:08} of a long listing\n"))
        .collect()
}

/// An origin answering by path: `/page` (HTML, strong ETag, `Vary: Origin`), `/small`,
/// `/png`, `/pre` (already gzip), `/json`, `/stream` (events) and ranges of `/page` as 206.
fn origin() -> Origin {
    let text = page();
    let long = big();
    Origin::start(
        "o",
        Behaviour::default().respond_with(move |req| {
            let range = req.header("range").is_some();
            match req.target.as_str() {
                "/page" if range => Reply::new(206)
                    .header("Content-Type", "text/html; charset=utf-8")
                    .header("Content-Range", format!("bytes 0-3/{}", text.len()))
                    .body(text[..4].to_string()),
                "/page" | "/cached" => Reply::new(200)
                    .header("Content-Type", "text/html; charset=utf-8")
                    .header("ETag", "\"v1\"")
                    .header("Vary", "Origin")
                    .header("Cache-Control", "max-age=600")
                    .body(text.clone()),
                "/big" => Reply::new(200)
                    .header("Content-Type", "text/plain")
                    .body(long.clone()),
                "/json" => Reply::new(200)
                    .header("Content-Type", "application/json")
                    .body(format!("{{\"items\": \"{}\"}}", "x".repeat(2000))),
                "/small" => Reply::new(200)
                    .header("Content-Type", "text/plain")
                    .body("tiny"),
                "/png" => Reply::new(200)
                    .header("Content-Type", "image/png")
                    .body(text.clone()),
                "/pre" => Reply::new(200)
                    .header("Content-Type", "text/html")
                    .header("Content-Encoding", "gzip")
                    .body(gzip(text.as_bytes())),
                "/stream" => Reply::new(200)
                    .header("Content-Type", "text/event-stream")
                    .body(text.clone()),
                "/transform" => Reply::new(200)
                    .header("Content-Type", "text/html")
                    .header("Cache-Control", "no-transform")
                    .body(text.clone()),
                _ => Reply::new(404).body("no such page"),
            }
        }),
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// strait with `domain` (and the admin and probe listeners when `ports` is given).
fn start(list: &[Domain], ports: Option<&Ports>) -> Strait {
    let admin = ports.map(|p| p.yaml(true)).unwrap_or_default();
    let s = Strait::start(&config(&format!("{admin}{}", domains(list))));
    if let Some(p) = ports {
        p.wait_up();
    }
    s
}

/// One request on a fresh connection.
#[track_caller]
fn send(s: &Strait, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut all = vec![("Host", "z.test")];
    all.extend_from_slice(headers);
    client::request(s.addr(), method, path, &all, b"").unwrap_or_else(|e| {
        panic!(
            "{method} {path} failed: {e}\n--- stderr ---\n{}",
            s.stderr()
        )
    })
}

#[track_caller]
fn get(s: &Strait, path: &str, accept_encoding: &str) -> Response {
    send(s, "GET", path, &[("Accept-Encoding", accept_encoding)])
}

fn compressing(o: &Origin) -> Domain {
    Domain::new("z.test")
        .origins(&[o])
        .field("compress", "true")
}

#[test]
fn negotiation_follows_quality_values_then_the_configured_order() {
    let o = origin();
    let s = start(&[compressing(&o)], None);
    let text = page();
    // (Accept-Encoding, the coding expected) under the default order [zstd, br, gzip].
    let cases: &[(&str, Option<&str>)] = &[
        ("gzip", Some("gzip")),
        ("br", Some("br")),
        ("zstd", Some("zstd")),
        ("gzip, deflate, br, zstd", Some("zstd")),
        ("gzip, br", Some("br")),
        ("br;q=0.5, gzip", Some("gzip")),
        ("gzip;q=0.2, br;q=0.9", Some("br")),
        ("zstd;q=0, br;q=0, gzip", Some("gzip")),
        ("gzip;q=0", None),
        ("*", Some("zstd")),
        ("*;q=0.5, zstd;q=0", Some("br")),
        ("*;q=0", None),
        ("identity", None),
        ("identity;q=1, gzip;q=0.5", None),
        ("identity;q=0, br", Some("br")),
        ("deflate", None),
    ];
    for (ae, want) in cases {
        let r = get(&s, "/page", ae);
        assert_eq!(r.status, 200, "{ae}: {}", r.text());
        assert_eq!(r.header("content-encoding"), *want, "Accept-Encoding: {ae}");
        assert_eq!(decoded(&r), text.as_bytes(), "Accept-Encoding: {ae}");
        assert!(varies_on_accept_encoding(&r), "{ae}: {:?}", r.headers);
        // The origin's own Vary is kept.
        assert!(
            r.header_all("vary").iter().any(|v| v.contains("Origin")),
            "{ae}: {:?}",
            r.headers
        );
        if want.is_some() {
            assert_eq!(r.header("etag"), Some("W/\"v1\""), "{ae}");
            assert_eq!(r.header("content-length"), None, "{ae}");
            assert!(
                r.body.len() < text.len() / 4,
                "{ae}: {} bytes",
                r.body.len()
            );
        } else {
            assert_eq!(r.header("etag"), Some("\"v1\""), "{ae}");
        }
    }
    // No Accept-Encoding at all: identity, and still Vary.
    let plain = send(&s, "GET", "/page", &[]);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.text(), text);
    assert!(varies_on_accept_encoding(&plain));
    // A body that arrives in many chunks streams through the encoder and ends cleanly.
    let long = big();
    for ae in ["zstd", "br", "gzip"] {
        let r = get(&s, "/big", ae);
        assert_eq!(r.header("content-encoding"), Some(ae));
        assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{ae}");
        assert_eq!(decoded(&r), long.as_bytes(), "{ae}");
    }
    // JSON is in the default types.
    let json = get(&s, "/json", "br");
    assert_eq!(json.header("content-encoding"), Some("br"));
    assert!(unbrotli(&json.body).starts_with(b"{\"items\""));
}

#[test]
fn the_configured_order_breaks_ties_and_limits_the_codings() {
    let o = origin();
    let d = Domain::new("z.test")
        .origins(&[&o])
        .field("compress", "{ algorithms: [gzip, br] }")
        .route("{ path_prefix: /json, compress: { algorithms: [br], types: [application/json] } }");
    let s = start(&[d], None);
    assert_eq!(
        get(&s, "/page", "br, gzip, zstd").header("content-encoding"),
        Some("gzip")
    );
    assert_eq!(
        get(&s, "/page", "br;q=1, gzip;q=0.9").header("content-encoding"),
        Some("br")
    );
    assert_eq!(get(&s, "/page", "zstd").header("content-encoding"), None);
    // The route's own list: br only.
    let json = get(&s, "/json", "gzip, br");
    assert_eq!(json.header("content-encoding"), Some("br"));
    assert_eq!(get(&s, "/json", "gzip").header("content-encoding"), None);
}

#[test]
fn what_is_never_compressed() {
    let o = origin();
    let d = compressing(&o).route("{ path_prefix: /png, compress: false }");
    let s = start(&[d], None);
    let text = page();
    let ae = "gzip, br, zstd";

    // Already encoded by the origin: passed on as is, exactly once encoded.
    let pre = get(&s, "/pre", ae);
    assert_eq!(pre.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&pre.body), text.as_bytes());

    // Under min_bytes (Content-Length 4 < 256).
    let small = get(&s, "/small", ae);
    assert_eq!(small.header("content-encoding"), None);
    assert_eq!(small.text(), "tiny");
    assert!(!varies_on_accept_encoding(&small), "{:?}", small.headers);

    // A type not listed (and a route that turns compression off).
    let png = get(&s, "/png", ae);
    assert_eq!(png.header("content-encoding"), None);
    assert_eq!(png.text(), text);

    // Events are streamed; no-transform is obeyed.
    for path in ["/stream", "/transform"] {
        let r = get(&s, path, ae);
        assert_eq!(r.header("content-encoding"), None, "{path}");
        assert_eq!(r.text(), text, "{path}");
    }

    // A range request, answered 206 by the origin.
    let ranged = send(
        &s,
        "GET",
        "/page",
        &[("Accept-Encoding", ae), ("Range", "bytes=0-3")],
    );
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.header("content-encoding"), None);
    assert_eq!(ranged.text(), &text[..4]);

    // HEAD: the headers of the identity representation (its length), and Vary.
    let head = send(&s, "HEAD", "/page", &[("Accept-Encoding", ae)]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-encoding"), None);
    let len = text.len().to_string();
    assert_eq!(head.header("content-length"), Some(len.as_str()));
    assert!(varies_on_accept_encoding(&head), "{:?}", head.headers);

    // A 404 from the origin is small: left alone.
    let missing = get(&s, "/nothing", ae);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("content-encoding"), None);
}

#[test]
fn strait_s_own_answers_are_compressed() {
    let body = "hello from strait ".repeat(100);
    let d = Domain::new("z.test")
        .field("compress", "{ types: [text/plain] }")
        .route(&format!(
            "{{ path_prefix: /hi, respond: {{ status: 200, body: \"{body}\" }} }}"
        ));
    let d = d.route("{ path_prefix: /short, respond: { body: \"short\" } }");
    let s = start(&[d], None);
    for (ae, coding) in [("br", "br"), ("gzip", "gzip"), ("zstd", "zstd")] {
        let r = get(&s, "/hi", ae);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some(coding));
        assert_eq!(decoded(&r), body.as_bytes());
        assert!(varies_on_accept_encoding(&r));
    }
    let plain = get(&s, "/hi", "identity");
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.text(), body);
    let head = send(&s, "HEAD", "/hi", &[("Accept-Encoding", "br")]);
    assert_eq!(head.header("content-encoding"), None);
    let short = get(&s, "/short", "br");
    assert_eq!(short.header("content-encoding"), None);
    assert_eq!(short.text(), "short");
}

#[test]
fn cache_entries_hold_the_identity_body_and_hits_are_compressed_on_the_way_out() {
    let o = origin();
    let d = compressing(&o).cache();
    let cache = "cache:\n  max_bytes: 1MiB\n  max_entry_bytes: 256KiB\n  precompress: { enabled: true, min_bytes: 256 }\n";
    let s = Strait::start(&config(&format!("{cache}{}", domains(&[d]))));
    let text = page();

    let first = get(&s, "/cached", "br");
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(first.header("content-encoding"), Some("br"));
    assert_eq!(unbrotli(&first.body), text.as_bytes());
    // The cache fetched the identity representation.
    let seen = o.last_request().expect("the origin was asked");
    assert_eq!(seen.header("accept-encoding"), Some("identity"));

    // Hits: compressed per client from the stored identity body.
    let mut hit = None;
    eventually_msg(Duration::from_secs(10), "a cache hit", || {
        let r = get(&s, "/cached", "zstd");
        let is_hit = r.header("x-cache") == Some("HIT");
        hit = Some(r);
        is_hit
    });
    let hit = hit.unwrap();
    assert_eq!(hit.header("content-encoding"), Some("zstd"));
    assert_eq!(unzstd(&hit.body), text.as_bytes());
    assert!(varies_on_accept_encoding(&hit), "{:?}", hit.headers);

    let plain = get(&s, "/cached", "identity");
    assert_eq!(plain.header("x-cache"), Some("HIT"));
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.text(), text);
    let none = send(&s, "GET", "/cached", &[]);
    assert_eq!(none.header("content-encoding"), None);
    assert_eq!(none.text(), text);

    // A client that gets gzip is served the stored gzip copy (a length, not chunked) once it
    // exists, and it is never compressed again.
    let mut copy = None;
    eventually_msg(Duration::from_secs(10), "the stored gzip copy", || {
        let r = get(&s, "/cached", "gzip");
        let is_copy = r.header("x-cache") == Some("HIT") && r.header("content-length").is_some();
        copy = Some(r);
        is_copy
    });
    let copy = copy.unwrap();
    assert_eq!(copy.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&copy.body), text.as_bytes());
    assert!(varies_on_accept_encoding(&copy), "{:?}", copy.headers);
    // br preferred over gzip: the identity body compressed with br, not the gzip copy.
    let br = get(&s, "/cached", "gzip;q=0.5, br");
    assert_eq!(br.header("x-cache"), Some("HIT"));
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(unbrotli(&br.body), text.as_bytes());
    // A range of a hit: the identity bytes.
    let ranged = send(
        &s,
        "GET",
        "/cached",
        &[("Accept-Encoding", "br"), ("Range", "bytes=0-3")],
    );
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.header("content-encoding"), None);
    assert_eq!(ranged.text(), &text[..4]);
    assert_eq!(o.hits_path("/cached"), 1);
}

#[test]
fn compressed_responses_are_counted_by_algorithm() {
    let o = origin();
    let p = Ports::new();
    let s = start(&[compressing(&o)], Some(&p));
    for ae in ["br", "br", "gzip", "identity"] {
        get(&s, "/page", ae);
    }
    let name = "strait_compressed_responses_total";
    eventually_msg(Duration::from_secs(10), "the compression counters", || {
        let m = crate::metrics::scrape(&p);
        m.value(name, &[("algorithm", "br")]) == 2.0
            && m.value(name, &[("algorithm", "gzip")]) == 1.0
            && m.value(name, &[("algorithm", "zstd")]) == 0.0
    });
}
