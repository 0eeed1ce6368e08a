//! Pre-compression: gzip copies made after a fill, served by `Accept-Encoding`.

use std::io::Read;
use std::time::Duration;

use crate::support::eventually_msg;
use crate::support::origin::Reply;

use super::{by_path, cached, expect, header, send, start, SMALL_CACHE};

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

#[test]
fn gzip_copies_decompress_to_the_origin_body() {
    let text: String = (0..400)
        .map(|i| format!("line {i} of a compressible page\n"))
        .collect();
    let already = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"pre-compressed by the origin").unwrap();
        e.finish().unwrap()
    };
    let t = text.clone();
    let a = already.clone();
    let o = by_path("o", move |req| match req.target.as_str() {
        "/page" => Reply::new(200)
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Cache-Control", "max-age=600")
            .header("ETag", "\"p1\"")
            .body(t.clone()),
        _ => Reply::new(200)
            .header("Content-Type", "text/plain")
            .header("Content-Encoding", "gzip")
            .header("Cache-Control", "max-age=600")
            .body(a.clone()),
    });
    let cache =
        format!("{SMALL_CACHE}  precompress: {{ enabled: true, level: 6, min_bytes: 256 }}\n");
    let s = start(&cache, &[cached("gz.test", &o)], None);
    let gzip = [("Accept-Encoding", "gzip, br")];
    let first = send(&s, "GET", "gz.test", "/page", &gzip);
    expect(&first, "MISS");
    assert_eq!(first.text(), text);
    assert!(first
        .header_all("vary")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("accept-encoding")));
    assert_eq!(
        header(&o.last_request().unwrap(), "accept-encoding"),
        Some("identity")
    );
    // The copy is made in the background right after the fill.
    let mut zipped = None;
    eventually_msg(Duration::from_secs(10), "a gzip hit", || {
        let r = send(&s, "GET", "gz.test", "/page", &gzip);
        let is_gz = r.header("content-encoding") == Some("gzip");
        zipped = Some(r);
        is_gz
    });
    let zipped = zipped.unwrap();
    expect(&zipped, "HIT");
    assert!(
        zipped.body.len() < text.len() / 4,
        "{} bytes",
        zipped.body.len()
    );
    assert_eq!(gunzip(&zipped.body), text.as_bytes());
    assert_eq!(zipped.header("etag"), Some("W/\"p1\""));
    assert!(zipped
        .header_all("vary")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("accept-encoding")));
    for headers in [
        &[][..],
        &[("Accept-Encoding", "identity")][..],
        &[("Accept-Encoding", "gzip;q=0")][..],
    ] {
        let plain = send(&s, "GET", "gz.test", "/page", headers);
        expect(&plain, "HIT");
        assert_eq!(plain.header("content-encoding"), None);
        assert_eq!(plain.text(), text);
        assert!(plain
            .header_all("vary")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("accept-encoding")));
    }
    // A range is served from the identity body.
    let ranged = send(
        &s,
        "GET",
        "gz.test",
        "/page",
        &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-3")],
    );
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.text(), "line");
    // Already encoded by the origin: stored and served as is, never compressed twice.
    send(&s, "GET", "gz.test", "/pre", &gzip);
    // The fill completes after the first response: poll until it is served from the cache.
    let mut pre = None;
    eventually_msg(
        Duration::from_secs(10),
        "the pre-compressed object as a hit",
        || {
            let r = send(&s, "GET", "gz.test", "/pre", &gzip);
            let hit = r.header("x-cache") == Some("HIT");
            pre = Some(r);
            hit
        },
    );
    let pre = pre.unwrap();
    expect(&pre, "HIT");
    assert_eq!(pre.body, already);
    assert_eq!(gunzip(&pre.body), b"pre-compressed by the origin");
    assert_eq!(o.hits_path("/page"), 1);
}
