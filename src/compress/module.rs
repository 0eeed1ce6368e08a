//! The downstream module that compresses: registered once per proxy service, armed per
//! request by `proxy/compress.rs`, and run by Pingora on every response header and body chunk
//! written to the client, whichever path wrote it (a backend's response, a cache hit, or one
//! of strait's own answers through `Session::write_response_*`). An unarmed module returns
//! at once from every filter.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{
    self, HeaderValue, ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG,
    TRANSFER_ENCODING, VARY,
};
use pingora::http::ResponseHeader;
use pingora::modules::http::{HttpModule, HttpModuleBuilder, Module};
use pingora::protocols::http::compression::{Algorithm, Encode};
use pingora::Result;

use crate::config::{Coding, Compress};

/// Compression levels: fast enough for every response on the fly, most of the size gain
/// (zstd's own default, brotli's and gzip's middle ground).
fn level(c: Coding) -> u32 {
    match c {
        Coding::Zstd => 3,
        Coding::Br => 4,
        Coding::Gzip => 6,
    }
}

fn algorithm(c: Coding) -> Algorithm {
    match c {
        Coding::Zstd => Algorithm::Zstd,
        Coding::Br => Algorithm::Brotli,
        Coding::Gzip => Algorithm::Gzip,
    }
}

/// Brotli that ends its stream. Pingora 0.9.1's brotli compressor only flushes at the end
/// (`BROTLI_OPERATION_FLUSH`), so its output lacks the final meta-block and a strict
/// decoder (the `brotli` crate's) rejects it as truncated; this one finishes
/// (`into_inner` is `BROTLI_OPERATION_FINISH`). Same window (2^19) and buffer as Pingora's.
struct Brotli {
    writer: Option<brotli::CompressorWriter<Vec<u8>>>,
    total_in: usize,
    total_out: usize,
}

impl Brotli {
    fn new(level: u32) -> Brotli {
        Brotli {
            writer: Some(brotli::CompressorWriter::new(Vec::new(), 4096, level, 19)),
            total_in: 0,
            total_out: 0,
        }
    }
}

impl Encode for Brotli {
    fn encode(&mut self, input: &[u8], end: bool) -> Result<Bytes> {
        use pingora::OrErr;
        use std::io::Write;
        let Some(w) = self.writer.as_mut() else {
            return Ok(Bytes::new());
        };
        self.total_in += input.len();
        w.write_all(input).or_err(
            pingora::ErrorType::InternalError,
            "while compressing brotli",
        )?;
        let out = if end {
            self.writer
                .take()
                .map(|w| w.into_inner())
                .unwrap_or_default()
        } else {
            std::mem::take(w.get_mut())
        };
        self.total_out += out.len();
        Ok(out.into())
    }

    fn stat(&self) -> (&'static str, usize, usize, std::time::Duration) {
        (
            "brotli",
            self.total_in,
            self.total_out,
            std::time::Duration::ZERO,
        )
    }
}

/// What the request phase decided.
struct Plan {
    settings: Arc<Compress>,
    /// The coding the client gets, if its body may be compressed at all.
    coding: Option<Coding>,
}

/// The per-request module (see the module docs).
#[derive(Default)]
pub(crate) struct Compression {
    plan: Option<Plan>,
    encoder: Option<Box<dyn Encode + Send + Sync>>,
    applied: Option<Coding>,
}

impl Compression {
    /// Takes part in this request's response: a compressible response gets
    /// `Vary: Accept-Encoding`, and its body is compressed with `coding` when given.
    pub(crate) fn arm(&mut self, settings: Arc<Compress>, coding: Option<Coding>) {
        self.plan = Some(Plan { settings, coding });
    }

    /// The coding the response body was compressed with.
    pub(crate) fn applied(&self) -> Option<Coding> {
        self.applied
    }

    fn finish(&mut self, body: &mut Option<Bytes>, end: bool) -> Result<()> {
        let Some(enc) = self.encoder.as_mut() else {
            return Ok(());
        };
        if body.is_none() && !end {
            return Ok(());
        }
        let input = body.as_deref().unwrap_or(&[]);
        *body = Some(enc.encode(input, end)?);
        if end {
            self.encoder = None;
        }
        Ok(())
    }
}

/// Whether a response's representation depends on `Accept-Encoding` under `settings`: a body
/// worth compressing, of a listed type, not encoded yet, and not `no-transform`.
pub(crate) fn compressible(resp: &ResponseHeader, settings: &Compress) -> bool {
    let status = resp.status.as_u16();
    if status < 200 || matches!(status, 204 | 206 | 304) {
        return false;
    }
    if resp
        .headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"))
    {
        return false;
    }
    let Some(ct) = resp.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    // Events are written as they happen; an encoder would hold them back.
    if ct
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
    {
        return false;
    }
    if !settings.types.iter().any(|t| t.matches(ct)) {
        return false;
    }
    let length = resp
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if length.is_some_and(|n| n < settings.min_bytes) {
        return false;
    }
    !resp
        .headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .any(|v| lists(v, "no-transform"))
}

/// Whether a comma-separated header value lists `token` (or `*`, for Vary).
fn lists(value: &HeaderValue, token: &str) -> bool {
    value
        .as_bytes()
        .split(|b| *b == b',')
        .map(|item| {
            let item = item.trim_ascii();
            // `no-transform` carries no argument, but a directive may (`max-age=5`).
            item.split(|b| *b == b'=')
                .next()
                .unwrap_or(item)
                .trim_ascii()
        })
        .any(|item| item.eq_ignore_ascii_case(token.as_bytes()))
}

/// Adds `Accept-Encoding` to `Vary` unless it (or `*`) is there already.
pub(crate) fn add_vary(resp: &mut ResponseHeader) -> Result<()> {
    let listed = resp
        .headers
        .get_all(VARY)
        .iter()
        .any(|v| lists(v, "accept-encoding") || lists(v, "*"));
    if !listed {
        resp.append_header(VARY, "Accept-Encoding")?;
    }
    Ok(())
}

/// The header of the compressed representation: its coding, no length (the body streams
/// chunked), no ranges, and a weak validator (RFC 9110 §8.8.1: the bytes differ from the
/// identity body's); an `ETag` that is not a valid strong one is dropped.
fn compressed_header(resp: &mut ResponseHeader, coding: Coding) -> Result<()> {
    resp.insert_header(CONTENT_ENCODING, coding.as_str())?;
    resp.remove_header(&CONTENT_LENGTH);
    resp.remove_header(&ACCEPT_RANGES);
    resp.insert_header(TRANSFER_ENCODING, "chunked")?;
    let etag = resp.headers.get(ETAG).map(|v| v.as_bytes());
    match etag {
        Some(v) if v.starts_with(b"W/") => {}
        Some(v) if v.starts_with(b"\"") => {
            let weak = [b"W/", v].concat();
            resp.insert_header(ETAG, weak)?;
        }
        Some(_) => {
            resp.remove_header(&ETAG);
        }
        None => {}
    }
    Ok(())
}

#[async_trait]
impl HttpModule for Compression {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        end_of_stream: bool,
    ) -> Result<()> {
        if self.plan.is_none() {
            return Ok(());
        }
        // An interim response: the decision waits for the final one (a 101 has no body).
        if resp.status.is_informational() && resp.status.as_u16() != 101 {
            return Ok(());
        }
        let Some(plan) = self.plan.take() else {
            return Ok(());
        };
        if !compressible(resp, &plan.settings) {
            return Ok(());
        }
        add_vary(resp)?;
        let Some(coding) = plan.coding.filter(|_| !end_of_stream) else {
            return Ok(());
        };
        let encoder: Box<dyn Encode + Send + Sync> = match coding {
            Coding::Br => Box::new(Brotli::new(level(coding))),
            _ => match algorithm(coding).compressor(level(coding)) {
                Some(encoder) => encoder,
                None => return Ok(()),
            },
        };
        compressed_header(resp, coding)?;
        self.encoder = Some(encoder);
        self.applied = Some(coding);
        Ok(())
    }

    fn response_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        self.finish(body, end_of_stream)
    }

    fn response_done_filter(&mut self) -> Result<Option<Bytes>> {
        let mut tail = None;
        self.finish(&mut tail, true)?;
        Ok(tail.filter(|b| !b.is_empty()))
    }
}

/// Registers [`Compression`] with a proxy service.
pub(crate) struct Builder;

impl HttpModuleBuilder for Builder {
    fn init(&self) -> Module {
        Box::<Compression>::default()
    }

    /// After every other module, as Pingora's own compression module runs.
    fn order(&self) -> i16 {
        i16::MIN / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Arc<Compress> {
        Arc::new(crate::config::load_str(
            "listeners: [{addr: 127.0.0.1:1}]\ndomains: [{hosts: [a], respond: {body: x}, compress: {min_bytes: 100}}]\n",
            "t",
            &|_| None,
        )
        .unwrap()
        .domains[0]
            .handling
            .compress
            .clone()
            .unwrap())
    }

    fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn what_is_compressible() {
        let s = settings();
        let html = ("content-type", "text/html");
        assert!(compressible(&resp(200, &[html]), &s));
        assert!(compressible(
            &resp(404, &[html, ("content-length", "100")]),
            &s
        ));
        assert!(!compressible(
            &resp(200, &[html, ("content-length", "99")]),
            &s
        ));
        assert!(!compressible(&resp(206, &[html]), &s));
        assert!(!compressible(&resp(204, &[html]), &s));
        assert!(!compressible(&resp(304, &[html]), &s));
        assert!(!compressible(&resp(200, &[]), &s));
        assert!(!compressible(
            &resp(200, &[("content-type", "image/png")]),
            &s
        ));
        assert!(!compressible(
            &resp(200, &[("content-type", "text/event-stream")]),
            &s
        ));
        assert!(!compressible(
            &resp(200, &[html, ("content-encoding", "br")]),
            &s
        ));
        assert!(compressible(
            &resp(200, &[html, ("content-encoding", "identity")]),
            &s
        ));
        assert!(!compressible(
            &resp(200, &[html, ("cache-control", "public, no-transform")]),
            &s
        ));
    }

    #[test]
    fn vary_is_merged_and_the_validator_weakened() {
        let mut r = resp(200, &[("vary", "Origin"), ("etag", "\"v1\"")]);
        add_vary(&mut r).unwrap();
        add_vary(&mut r).unwrap();
        let vary: Vec<_> = r.headers.get_all(VARY).iter().collect();
        assert_eq!(vary, ["Origin", "Accept-Encoding"]);
        let mut star = resp(200, &[("vary", "*")]);
        add_vary(&mut star).unwrap();
        assert_eq!(star.headers.get_all(VARY).iter().count(), 1);
        r.insert_header("content-length", "10").unwrap();
        compressed_header(&mut r, Coding::Br).unwrap();
        assert_eq!(r.headers.get(ETAG).unwrap(), "W/\"v1\"");
        assert_eq!(r.headers.get(CONTENT_ENCODING).unwrap(), "br");
        assert!(r.headers.get(CONTENT_LENGTH).is_none());
        let mut bad = resp(200, &[("etag", "v1")]);
        compressed_header(&mut bad, Coding::Gzip).unwrap();
        assert!(bad.headers.get(ETAG).is_none());
    }
}
