//! Validators and what a request asks of them: `ETag` and `Last-Modified` of a file,
//! `If-None-Match` / `If-Modified-Since` (304), and `Range` with `If-Range` (206 / 416).

use std::fs::Metadata;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A strong `ETag` from the file's size and modification time (to the nanosecond, so a file
/// rewritten within one second still gets a new tag): `"<mtime ns hex>-<size hex>"`.
pub(crate) fn etag(meta: &Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    format!("\"{:x}-{:x}\"", mtime.as_nanos(), meta.len())
}

/// The modification time, to the second (what `Last-Modified` can say).
pub(crate) fn modified(meta: &Metadata) -> Option<SystemTime> {
    let since = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(since.as_secs()))
}

/// Whether the client's copy is current (304). `If-None-Match` takes precedence: when it is
/// present `If-Modified-Since` is not looked at (RFC 9110 §13.2.2).
pub(crate) fn not_modified(
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    etag: &str,
    modified: Option<SystemTime>,
) -> bool {
    if let Some(list) = if_none_match {
        // Weak comparison: `W/"x"` matches `"x"`.
        return list
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || opaque(tag) == opaque(etag));
    }
    match (
        if_modified_since.and_then(|d| httpdate::parse_http_date(d.trim()).ok()),
        modified,
    ) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ranged {
    /// The whole body, 200: no `Range`, an `If-Range` that does not match, a header that is
    /// not one valid `bytes=` range, or several ranges (strait sends no multipart bodies).
    Full,
    /// Bytes `start..=end`, 206.
    Part { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Reads `Range` (with `If-Range`) against a body of `len` bytes whose validators are `etag`
/// and `modified`.
pub(crate) fn range(
    range: Option<&str>,
    if_range: Option<&str>,
    etag: &str,
    modified: Option<SystemTime>,
    len: u64,
) -> Ranged {
    let Some(range) = range else {
        return Ranged::Full;
    };
    if let Some(cond) = if_range.map(str::trim) {
        let current = if cond.starts_with('"') || cond.starts_with("W/") {
            // Strong comparison: a weak tag never matches.
            cond == etag
        } else {
            // A date matches only exactly (and our dates are only to the second).
            matches!(
                (httpdate::parse_http_date(cond), modified),
                (Ok(date), Some(modified)) if date == modified
            )
        };
        if !current {
            return Ranged::Full;
        }
    }
    let Some((unit, spec)) = range.trim().split_once('=') else {
        return Ranged::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Ranged::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ranged::Full;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if first.trim().is_empty() {
        // `-N`: the last N bytes.
        return match number(last) {
            None => Ranged::Full,
            Some(0) => Ranged::Unsatisfiable,
            Some(_) if len == 0 => Ranged::Unsatisfiable,
            Some(n) => Ranged::Part {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        };
    }
    let Some(start) = number(first) else {
        return Ranged::Full;
    };
    let end = if last.trim().is_empty() {
        u64::MAX
    } else {
        match number(last) {
            Some(end) if end >= start => end,
            _ => return Ranged::Full,
        }
    };
    if start >= len {
        return Ranged::Unsatisfiable;
    }
    Ranged::Part {
        start,
        end: end.min(len - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "\"17-4\"";

    #[test]
    fn if_none_match_takes_precedence() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = httpdate::fmt_http_date(t);
        assert!(not_modified(Some(TAG), None, TAG, Some(t)));
        assert!(not_modified(Some("\"x\", W/\"17-4\""), None, TAG, Some(t)));
        assert!(not_modified(Some("*"), None, TAG, Some(t)));
        assert!(!not_modified(Some("\"x\""), Some(&date), TAG, Some(t)));
        assert!(not_modified(None, Some(&date), TAG, Some(t)));
        let earlier = httpdate::fmt_http_date(t - Duration::from_secs(1));
        assert!(!not_modified(None, Some(&earlier), TAG, Some(t)));
        assert!(!not_modified(None, Some("yesterday"), TAG, Some(t)));
        assert!(!not_modified(None, None, TAG, Some(t)));
    }

    #[test]
    fn ranges() {
        let r = |h: &str, len| range(Some(h), None, TAG, None, len);
        assert_eq!(r("bytes=0-3", 10), Ranged::Part { start: 0, end: 3 });
        assert_eq!(r("bytes=5-", 10), Ranged::Part { start: 5, end: 9 });
        assert_eq!(r("bytes=5-100", 10), Ranged::Part { start: 5, end: 9 });
        assert_eq!(r("bytes=-3", 10), Ranged::Part { start: 7, end: 9 });
        assert_eq!(r("bytes=-30", 10), Ranged::Part { start: 0, end: 9 });
        assert_eq!(r("Bytes = 1-1", 10), Ranged::Part { start: 1, end: 1 });
        assert_eq!(r("bytes=10-", 10), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=-0", 10), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=0-", 0), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=0-1,3-4", 10), Ranged::Full);
        assert_eq!(r("bytes=3-1", 10), Ranged::Full);
        assert_eq!(r("bytes=a-b", 10), Ranged::Full);
        assert_eq!(r("bytes=-", 10), Ranged::Full);
        assert_eq!(r("items=0-1", 10), Ranged::Full);
        assert_eq!(r("bytes=+1-2", 10), Ranged::Full);
        assert_eq!(range(None, None, TAG, None, 10), Ranged::Full);
    }

    #[test]
    fn if_range_needs_a_strong_match_or_the_exact_date() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let part = Ranged::Part { start: 0, end: 0 };
        let r = |cond: &str| range(Some("bytes=0-0"), Some(cond), TAG, Some(t), 10);
        assert_eq!(r(TAG), part);
        assert_eq!(r("W/\"17-4\""), Ranged::Full);
        assert_eq!(r("\"other\""), Ranged::Full);
        assert_eq!(r(&httpdate::fmt_http_date(t)), part);
        assert_eq!(
            r(&httpdate::fmt_http_date(t + Duration::from_secs(5))),
            Ranged::Full
        );
        assert_eq!(r("garbage"), Ranged::Full);
    }
}
