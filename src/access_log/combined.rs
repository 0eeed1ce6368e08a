//! The Apache/NCSA combined log format, for tools that read nothing else:
//! `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`, e.g.
//! `192.0.2.1 - - [02/Dec/2026:00:59:57 +0000] "GET /a?b=c HTTP/1.1" 200 512 "-" "curl/8.5"`.
//! Times are UTC; `%b` is `-` for an empty body, as Apache writes it. Quotes, backslashes and
//! control bytes inside quoted fields are escaped as `\"`, `\\` and `\xHH`, as Apache does.

use std::time::{SystemTime, UNIX_EPOCH};

use super::line::civil_from_days;
use super::Entry;
use crate::ascii::{push_ip, push_padded, push_u64};

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Appends `entry` as one combined-format line and a newline.
pub(crate) fn write_combined(out: &mut Vec<u8>, entry: &Entry) {
    match entry.client {
        Some(ip) => push_ip(out, ip),
        None => out.push(b'-'),
    }
    out.extend_from_slice(b" - - [");
    push_time(out, entry.at);
    out.extend_from_slice(b"] \"");
    push_escaped(out, entry.method.as_str().as_bytes());
    out.push(b' ');
    let target = entry
        .uri
        .path_and_query()
        .map_or_else(|| entry.uri.path(), |pq| pq.as_str());
    push_escaped(out, target.as_bytes());
    out.push(b' ');
    out.extend_from_slice(version(entry.version));
    out.extend_from_slice(b"\" ");
    push_u64(out, u64::from(entry.status));
    out.push(b' ');
    if entry.bytes_out == 0 {
        out.push(b'-');
    } else {
        push_u64(out, entry.bytes_out);
    }
    for header in [&entry.referer, &entry.user_agent] {
        out.extend_from_slice(b" \"");
        match header {
            Some(v) => push_escaped(out, v.as_bytes()),
            None => out.push(b'-'),
        }
        out.push(b'"');
    }
    out.push(b'\n');
}

fn version(v: http::Version) -> &'static [u8] {
    match v {
        http::Version::HTTP_09 => b"HTTP/0.9",
        http::Version::HTTP_10 => b"HTTP/1.0",
        http::Version::HTTP_2 => b"HTTP/2.0",
        http::Version::HTTP_3 => b"HTTP/3.0",
        _ => b"HTTP/1.1",
    }
}

/// `02/Dec/2026:00:59:57 +0000`
fn push_time(out: &mut Vec<u8>, at: SystemTime) {
    let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    push_padded(out, u64::from(d), 2);
    out.push(b'/');
    out.extend_from_slice(MONTHS[(m as usize).clamp(1, 12) - 1]);
    out.push(b'/');
    push_padded(out, y.clamp(0, 9999) as u64, 4);
    out.push(b':');
    push_padded(out, rem / 3600, 2);
    out.push(b':');
    push_padded(out, rem / 60 % 60, 2);
    out.push(b':');
    push_padded(out, rem % 60, 2);
    out.extend_from_slice(b" +0000");
}

fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(b),
            _ => {
                out.extend_from_slice(b"\\x");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Method};
    use std::time::Duration;

    #[test]
    fn combined_lines() {
        let entry = Entry {
            at: UNIX_EPOCH + Duration::from_secs(1_764_637_197),
            request_id: "r".into(),
            trace_id: Some([1; 16]),
            client: Some("192.0.2.1".parse().unwrap()),
            method: Method::GET,
            host: "h".into(),
            uri: "/a?b=c".parse().unwrap(),
            status: 200,
            bytes_in: 0,
            bytes_out: 512,
            duration: Duration::ZERO,
            domain: None,
            route: None,
            upstream: None,
            upstream_duration: None,
            attempts: 1,
            cache: None,
            user_agent: Some(HeaderValue::from_static("curl/8.5 \"x\"")),
            referer: None,
            version: http::Version::HTTP_11,
            error: None,
            tls_client: None,
        };
        let mut out = Vec::new();
        write_combined(&mut out, &entry);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "192.0.2.1 - - [02/Dec/2025:00:59:57 +0000] \"GET /a?b=c HTTP/1.1\" 200 512 \"-\" \"curl/8.5 \\\"x\\\"\"\n"
        );
        let mut empty = entry.clone();
        empty.bytes_out = 0;
        empty.client = None;
        empty.referer = HeaderValue::from_bytes(b"http://r/\xff").ok();
        let mut out = Vec::new();
        write_combined(&mut out, &empty);
        let line = String::from_utf8(out).unwrap();
        assert!(line.starts_with("- - - ["), "{line}");
        assert!(line.contains("\" 200 - \"http://r/\\xff\""), "{line}");
    }
}
