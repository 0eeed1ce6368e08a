//! Pre-compression: a gzip copy of a compressible response is made once, next to the stored
//! identity body, and served to clients that accept gzip. Clients that do not get the identity
//! body. Nothing already encoded (or marked `no-transform`) is compressed again, and a copy that
//! is not smaller than the original is dropped.

use std::io::Write;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::header;
use pingora::cache::cache_control::CacheControl;
use pingora::http::{RequestHeader, ResponseHeader};

/// Per-fill settings, carried from the request phase to the storage in the cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Precompress {
    pub level: u32,
    pub min_bytes: u64,
}

/// Whether the client accepts gzip (RFC 9110 §12.5.3): `gzip`/`x-gzip` or `*` with a non-zero
/// weight, and gzip not explicitly refused.
pub(crate) fn accepts_gzip(req: &RequestHeader) -> bool {
    let mut gzip: Option<bool> = None;
    let mut star = false;
    for value in req.headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .is_some_and(|q| q.trim().parse::<f32>().map(|q| q <= 0.0).unwrap_or(false))
            });
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(!q_zero);
            } else if coding == "*" {
                star = !q_zero;
            }
        }
    }
    gzip.unwrap_or(star)
}

/// Whether the body already has a content coding other than `identity`.
pub(crate) fn is_encoded(resp: &ResponseHeader) -> bool {
    resp.headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"))
}

/// Content types that compress well (text and structured text, SVG, WebAssembly, fonts that
/// are not already compressed).
fn compressible_type(content_type: &str) -> bool {
    let t = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    t.starts_with("text/")
        || t.ends_with("+json")
        || t.ends_with("+xml")
        || matches!(
            t.as_str(),
            "application/json"
                | "application/javascript"
                | "application/x-javascript"
                | "application/ecmascript"
                | "application/xml"
                | "application/xhtml+xml"
                | "application/wasm"
                | "application/manifest+json"
                | "application/x-ndjson"
                | "image/svg+xml"
                | "image/x-icon"
                | "image/vnd.microsoft.icon"
                | "font/ttf"
                | "font/otf"
                | "application/vnd.ms-fontobject"
        )
}

/// Whether a gzip copy of this response may be made: a compressible type, no content coding
/// yet, no `no-transform`, and a status that has a body worth compressing.
pub(crate) fn eligible(resp: &ResponseHeader) -> bool {
    if matches!(resp.status.as_u16(), 204 | 206 | 304) || resp.status.is_informational() {
        return false;
    }
    if is_encoded(resp) {
        return false;
    }
    if CacheControl::from_resp_headers(resp).is_some_and(|cc| cc.has_key("no-transform")) {
        return false;
    }
    resp.headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(compressible_type)
}

/// Whether a response of `len` bytes (unknown: `None`) is big enough to be worth a copy.
pub(crate) fn big_enough(settings: &Precompress, len: Option<u64>) -> bool {
    len.is_none_or(|l| l >= settings.min_bytes)
}

/// The gzip copy of `body`, or `None` when it would not be smaller.
pub(crate) fn gzip(body: &[u8], level: u32) -> Option<Bytes> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(body.len() / 3 + 64),
        Compression::new(level.min(9)),
    );
    enc.write_all(body).ok()?;
    let out = enc.finish().ok()?;
    (out.len() < body.len()).then(|| Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn req(ae: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for v in ae {
            r.append_header("accept-encoding", *v).unwrap();
        }
        r
    }

    fn resp(headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn accept_encoding_parsing() {
        assert!(accepts_gzip(&req(&["gzip"])));
        assert!(accepts_gzip(&req(&["br, GZIP;q=0.5"])));
        assert!(accepts_gzip(&req(&["deflate", "x-gzip"])));
        assert!(accepts_gzip(&req(&["*"])));
        assert!(!accepts_gzip(&req(&[])));
        assert!(!accepts_gzip(&req(&["identity"])));
        assert!(!accepts_gzip(&req(&["gzip;q=0"])));
        assert!(!accepts_gzip(&req(&["*, gzip;q=0"])));
        assert!(!accepts_gzip(&req(&["*;q=0"])));
    }

    #[test]
    fn eligibility() {
        assert!(eligible(&resp(&[(
            "content-type",
            "text/html; charset=utf-8"
        )])));
        assert!(eligible(&resp(&[("content-type", "application/json")])));
        assert!(eligible(&resp(&[(
            "content-type",
            "application/vnd.api+json"
        )])));
        assert!(eligible(&resp(&[
            ("content-type", "text/css"),
            ("content-encoding", "identity")
        ])));
        assert!(!eligible(&resp(&[("content-type", "image/png")])));
        assert!(!eligible(&resp(&[])));
        assert!(!eligible(&resp(&[
            ("content-type", "text/plain"),
            ("content-encoding", "gzip")
        ])));
        assert!(!eligible(&resp(&[
            ("content-type", "text/plain"),
            ("cache-control", "max-age=5, no-transform")
        ])));
    }

    #[test]
    fn gzip_round_trips_and_refuses_to_grow() {
        let body = "hello strait ".repeat(200);
        let gz = gzip(body.as_bytes(), 6).unwrap();
        assert!(gz.len() < body.len());
        let mut out = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, body);
        assert!(gzip(b"x", 6).is_none());
    }
}
