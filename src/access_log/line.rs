//! Turns an [`Entry`] into its JSON line. Written by hand rather than through serde: this
//! runs once per request on the writer thread, and serde_json's generic escaping and float
//! formatting plus a `format!` for the time were three quarters of the log's cost per request
//! (8.5k instructions of 11.5k).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Entry;
use crate::ascii::{push_ip, push_padded, push_u64};

/// The formatted `YYYY-MM-DDTHH:MM:SS` of the last second seen: lines within a second reuse it.
#[derive(Default)]
pub(crate) struct Clock {
    second: Option<u64>,
    text: [u8; 19],
}

impl Clock {
    fn write(&mut self, out: &mut Vec<u8>, at: SystemTime) {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        if self.second != Some(secs) {
            self.second = Some(secs);
            self.text = date_time(secs);
        }
        out.extend_from_slice(&self.text);
        out.push(b'.');
        push_padded(out, u64::from(since.subsec_millis()), 3);
        out.push(b'Z');
    }
}

/// Appends a line that is not a request's (a relayed connection's, `crate::l4`): `time`
/// first as in every line, then `fields`, the rest of a JSON object without its `{`.
pub(crate) fn write_other(out: &mut Vec<u8>, at: SystemTime, fields: &[u8], clock: &mut Clock) {
    out.extend_from_slice(b"{\"time\":\"");
    clock.write(out, at);
    out.extend_from_slice(b"\",");
    out.extend_from_slice(fields);
    out.push(b'\n');
}

/// Appends `entry` as one JSON object and a newline. Field order is fixed: `time` first.
pub(crate) fn write_line(out: &mut Vec<u8>, entry: &Entry, clock: &mut Clock) {
    out.extend_from_slice(b"{\"time\":\"");
    clock.write(out, entry.at);
    out.extend_from_slice(b"\",\"request_id\":");
    push_str(out, &entry.request_id);
    out.extend_from_slice(b",\"trace_id\":");
    match &entry.trace_id {
        Some(id) => {
            out.push(b'"');
            crate::trace::context::push_hex(out, id);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"client\":");
    match entry.client {
        Some(ip) => {
            out.push(b'"');
            push_ip(out, ip);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"method\":");
    push_str(out, entry.method.as_str());
    out.extend_from_slice(b",\"host\":");
    push_str(out, &entry.host);
    out.extend_from_slice(b",\"path\":");
    push_str(out, entry.uri.path());
    out.extend_from_slice(b",\"query\":");
    push_opt(out, entry.uri.query());
    out.extend_from_slice(b",\"status\":");
    push_u64(out, u64::from(entry.status));
    out.extend_from_slice(b",\"bytes_in\":");
    push_u64(out, entry.bytes_in);
    out.extend_from_slice(b",\"bytes_out\":");
    push_u64(out, entry.bytes_out);
    out.extend_from_slice(b",\"duration_ms\":");
    push_millis(out, entry.duration);
    out.extend_from_slice(b",\"domain\":");
    push_opt(out, entry.domain.as_deref());
    out.extend_from_slice(b",\"route\":");
    push_opt(out, entry.route.as_deref());
    out.extend_from_slice(b",\"upstream\":");
    push_opt(out, entry.upstream.as_deref());
    out.extend_from_slice(b",\"upstream_duration_ms\":");
    match entry.upstream_duration {
        Some(d) => push_millis(out, d),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"attempts\":");
    push_u64(out, u64::from(entry.attempts));
    out.extend_from_slice(b",\"cache\":");
    push_opt(out, entry.cache);
    out.extend_from_slice(b",\"user_agent\":");
    match &entry.user_agent {
        Some(v) => push_str(out, &String::from_utf8_lossy(v.as_bytes())),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"error\":");
    push_opt(out, entry.error);
    if let Some(cert) = &entry.tls_client {
        // Only on connections that presented a verified client certificate (`client_auth`).
        out.extend_from_slice(b",\"tls_client\":{\"subject\":");
        push_str(out, &cert.subject);
        out.extend_from_slice(b",\"fingerprint\":");
        push_str(out, &cert.fingerprint);
        out.push(b'}');
    }
    out.extend_from_slice(b"}\n");
}

fn push_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string: `"` and `\` escaped, control characters as `\n`-style or `\u00XX` escapes,
/// everything else (UTF-8 included) as is, which is what RFC 8259 requires.
fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Milliseconds with microsecond precision, as a JSON number: `3.412`, `0.071`, `1500.000`.
fn push_millis(out: &mut Vec<u8>, d: Duration) {
    let micros = d.as_micros().min(u128::from(u64::MAX)) as u64;
    push_u64(out, micros / 1000);
    out.push(b'.');
    push_padded(out, micros % 1000, 3);
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of a Unix time.
fn date_time(secs: u64) -> [u8; 19] {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let mut text = Vec::with_capacity(19);
    push_padded(&mut text, y.clamp(0, 9999) as u64, 4);
    text.push(b'-');
    push_padded(&mut text, u64::from(m), 2);
    text.push(b'-');
    push_padded(&mut text, u64::from(d), 2);
    text.push(b'T');
    push_padded(&mut text, rem / 3600, 2);
    text.push(b':');
    push_padded(&mut text, rem / 60 % 60, 2);
    text.push(b':');
    push_padded(&mut text, rem % 60, 2);
    let mut out = [b'0'; 19];
    out.copy_from_slice(&text[..19]);
    out
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (the well-known era-based method:
/// 400-year eras of 146 097 days, years starting in March so leap days fall at the end).
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Method};
    use std::net::{IpAddr, Ipv6Addr};

    fn time(at: SystemTime) -> String {
        let mut out = Vec::new();
        Clock::default().write(&mut out, at);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats_times() {
        let at = |s: u64, ms: u64| UNIX_EPOCH + Duration::from_millis(s * 1000 + ms);
        assert_eq!(time(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(time(at(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(time(at(1_709_251_199, 999)), "2024-02-29T23:59:59.999Z");
        assert_eq!(time(at(4_102_444_800, 0)), "2100-01-01T00:00:00.000Z");
        // The cached second is replaced when the second changes.
        let mut clock = Clock::default();
        let mut out = Vec::new();
        clock.write(&mut out, at(59, 10));
        clock.write(&mut out, at(60, 20));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1970-01-01T00:00:59.010Z1970-01-01T00:01:00.020Z"
        );
    }

    fn entry() -> Entry {
        Entry {
            at: UNIX_EPOCH,
            request_id: "r1".into(),
            trace_id: Some([0x4b; 16]),
            client: Some("127.0.0.1".parse().unwrap()),
            method: Method::GET,
            host: "a.te\"s\u{1}t".into(),
            uri: "/x%20y?a=1&b=\\".parse().unwrap(),
            status: 200,
            bytes_in: 0,
            bytes_out: 5,
            duration: Duration::from_micros(1_500),
            domain: Some("a.test".into()),
            route: None,
            upstream: Some("http://127.0.0.1:3001".into()),
            upstream_duration: Some(Duration::from_micros(71)),
            attempts: 1,
            cache: Some("miss"),
            user_agent: Some(HeaderValue::from_bytes(b"ua\tv\xff").unwrap()),
            referer: None,
            version: http::Version::HTTP_11,
            error: None,
            tls_client: None,
        }
    }

    fn line(entry: &Entry) -> String {
        let mut out = Vec::new();
        write_line(&mut out, entry, &mut Clock::default());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_are_json_with_time_first() {
        let text = line(&entry());
        assert!(text.ends_with("}\n"));
        assert!(text.starts_with("{\"time\":\"1970-01-01T00:00:00.000Z\",\"request_id\":\"r1\""));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["trace_id"], "4b".repeat(16));
        assert_eq!(v["client"], "127.0.0.1");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["host"], "a.te\"s\u{1}t");
        assert_eq!(v["path"], "/x%20y");
        assert_eq!(v["query"], "a=1&b=\\");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes_out"], 5);
        assert_eq!(v["duration_ms"].as_f64(), Some(1.5));
        assert_eq!(v["upstream_duration_ms"].as_f64(), Some(0.071));
        assert_eq!(v["domain"], "a.test");
        assert_eq!(v["route"], serde_json::Value::Null);
        assert_eq!(v["upstream"], "http://127.0.0.1:3001");
        assert_eq!(v["attempts"], 1);
        assert_eq!(v["cache"], "miss");
        assert_eq!(v["user_agent"], "ua\tv\u{fffd}");
        assert_eq!(v["error"], serde_json::Value::Null);
        assert_eq!(v.as_object().unwrap().len(), 20);
    }

    #[test]
    fn nulls_and_ipv6() {
        let mut e = entry();
        e.client = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
        e.uri = "/".parse().unwrap();
        e.user_agent = None;
        e.upstream_duration = None;
        e.error = Some("ConnectRefused");
        e.trace_id = None;
        let v: serde_json::Value = serde_json::from_str(&line(&e)).unwrap();
        assert_eq!(v["client"], "::1");
        assert_eq!(v["query"], serde_json::Value::Null);
        assert_eq!(v["user_agent"], serde_json::Value::Null);
        assert_eq!(v["upstream_duration_ms"], serde_json::Value::Null);
        assert_eq!(v["error"], "ConnectRefused");
        assert_eq!(v["trace_id"], serde_json::Value::Null);
    }

    #[test]
    fn millis() {
        let mut out = Vec::new();
        push_millis(&mut out, Duration::from_secs(2));
        out.push(b' ');
        push_millis(&mut out, Duration::from_nanos(999));
        out.push(b' ');
        push_millis(&mut out, Duration::from_micros(3_412));
        assert_eq!(String::from_utf8(out).unwrap(), "2000.000 0.000 3.412");
    }
}
