//! W3C Trace Context (https://www.w3.org/TR/trace-context/): reading a client's
//! `traceparent`, checking its `tracestate`, and writing the `traceparent` each upstream
//! attempt carries. Pure functions over bytes: nothing here allocates.
//!
//! `traceparent: 00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>`, lower-case hex only.
//! All-zero ids and version `ff` are invalid; a higher version than 00 is read by its first
//! four fields (and must be followed by `-` or end there), as the spec asks of version-00
//! parsers, and forwarded as version 00.

/// The length of a version-00 `traceparent`.
pub(crate) const TRACEPARENT_LEN: usize = 55;
/// A `tracestate` longer than this (all its header lines joined) is dropped.
pub(crate) const MAX_TRACESTATE_LEN: usize = 512;
/// A `tracestate` with more list members than this is dropped.
pub(crate) const MAX_TRACESTATE_MEMBERS: usize = 32;
/// The `sampled` bit of the trace flags.
pub(crate) const SAMPLED: u8 = 0x01;

pub(crate) type TraceId = [u8; 16];
pub(crate) type SpanId = [u8; 8];

/// A valid `traceparent` as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceParent {
    pub(crate) trace_id: TraceId,
    pub(crate) parent_id: SpanId,
    pub(crate) flags: u8,
}

impl TraceParent {
    pub(crate) fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }
}

/// Parses one `traceparent` value; `None` when it is not valid.
pub(crate) fn parse_traceparent(value: &[u8]) -> Option<TraceParent> {
    if value.len() < TRACEPARENT_LEN {
        return None;
    }
    let version = hex_byte(value[0], value[1])?;
    if version == 0xff || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    // Version 00 is exactly 55 bytes; a later version may carry more after another `-`.
    if version == 0 && value.len() != TRACEPARENT_LEN {
        return None;
    }
    if value.len() > TRACEPARENT_LEN && value[TRACEPARENT_LEN] != b'-' {
        return None;
    }
    let mut trace_id = [0u8; 16];
    decode_hex(&value[3..35], &mut trace_id)?;
    let mut parent_id = [0u8; 8];
    decode_hex(&value[36..52], &mut parent_id)?;
    let flags = hex_byte(value[53], value[54])?;
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some(TraceParent {
        trace_id,
        parent_id,
        flags,
    })
}

/// The version-00 `traceparent` for `trace_id`, with `span_id` as the parent the receiver
/// sees.
pub(crate) fn format_traceparent(
    trace_id: &TraceId,
    span_id: &SpanId,
    flags: u8,
) -> [u8; TRACEPARENT_LEN] {
    let mut out = [0u8; TRACEPARENT_LEN];
    out[..3].copy_from_slice(b"00-");
    encode_hex(trace_id, &mut out[3..35]);
    out[35] = b'-';
    encode_hex(span_id, &mut out[36..52]);
    out[52] = b'-';
    encode_hex(&[flags], &mut out[53..55]);
    out
}

/// Whether the `tracestate` header lines, taken together, stay within the spec's limits
/// (at most 512 characters and 32 list members). Empty members (`a=1,,b=2`) do not count.
pub(crate) fn tracestate_fits<'a>(values: impl Iterator<Item = &'a [u8]>) -> bool {
    let mut len = 0usize;
    let mut members = 0usize;
    for (i, v) in values.enumerate() {
        // Lines are joined with `,` when read as one list.
        len += v.len() + usize::from(i > 0);
        members += v
            .split(|&b| b == b',')
            .filter(|m| m.iter().any(|b| !b.is_ascii_whitespace()))
            .count();
        if len > MAX_TRACESTATE_LEN || members > MAX_TRACESTATE_MEMBERS {
            return false;
        }
    }
    true
}

/// A random, non-zero trace id.
pub(crate) fn new_trace_id() -> TraceId {
    loop {
        let id = rand::random::<u128>();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

/// A random, non-zero span id.
pub(crate) fn new_span_id() -> SpanId {
    loop {
        let id = rand::random::<u64>();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

/// Whether a new trace is sampled at `ratio` (0.0 never, 1.0 always).
pub(crate) fn sample(ratio: f64) -> bool {
    if ratio >= 1.0 {
        true
    } else if ratio <= 0.0 {
        false
    } else {
        rand::random::<f64>() < ratio
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of `bytes` into `out` (twice as long).
pub(crate) fn encode_hex(bytes: &[u8], out: &mut [u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
}

/// Lower-case hex of `bytes` appended to `out`.
pub(crate) fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
}

fn decode_hex(text: &[u8], out: &mut [u8]) -> Option<()> {
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = hex_byte(pair[0], pair[1])?;
    }
    Some(())
}

fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    Some(nibble(hi)? << 4 | nibble(lo)?)
}

/// Lower-case hex digits only: the spec makes upper case invalid.
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_specs_example() {
        let tp = parse_traceparent(GOOD.as_bytes()).unwrap();
        assert_eq!(
            tp.trace_id,
            [
                0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
                0x47, 0x36
            ]
        );
        assert_eq!(
            tp.parent_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(tp.flags, 1);
        assert!(tp.sampled());
        let back = format_traceparent(&tp.trace_id, &tp.parent_id, tp.flags);
        assert_eq!(&back[..], GOOD.as_bytes());
    }

    #[test]
    fn refuses_what_the_spec_calls_invalid() {
        let bad = [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            // all-zero ids
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // version ff
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // upper case
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            // non-hex, wrong separators
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            // version 00 with more after it
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            // a later version whose fifth byte run does not start with `-`
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ];
        for b in bad {
            assert_eq!(parse_traceparent(b.as_bytes()), None, "{b:?}");
        }
    }

    #[test]
    fn later_versions_are_read_by_their_first_four_fields() {
        let v = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-ever";
        let tp = parse_traceparent(v.as_bytes()).unwrap();
        assert_eq!(tp.flags, 9);
        assert!(parse_traceparent(&v.as_bytes()[..55]).is_some());
    }

    #[test]
    fn tracestate_limits() {
        assert!(tracestate_fits([&b"a=1,b=2"[..]].into_iter()));
        assert!(tracestate_fits([&b"a=1"[..], &b"b=2"[..]].into_iter()));
        let members: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        let fits = members.join(",");
        assert!(tracestate_fits([fits.as_bytes()].into_iter()));
        let over = format!("{fits},k32=v");
        assert!(!tracestate_fits([over.as_bytes()].into_iter()));
        // Empty members are not members.
        let spaced = format!("{fits},, ,");
        assert!(tracestate_fits([spaced.as_bytes()].into_iter()));
        let long = format!("k={}", "v".repeat(511));
        assert!(!tracestate_fits([long.as_bytes()].into_iter()));
        assert!(tracestate_fits([&long.as_bytes()[..512]].into_iter()));
        // Two lines count their joining comma.
        assert!(!tracestate_fits(
            [&long.as_bytes()[..256], &long.as_bytes()[..256]].into_iter()
        ));
    }

    #[test]
    fn new_ids_are_not_zero_and_differ() {
        assert_ne!(new_trace_id(), [0; 16]);
        assert_ne!(new_span_id(), [0; 8]);
        assert_ne!(new_trace_id(), new_trace_id());
    }

    #[test]
    fn sampling_edges() {
        assert!(sample(1.0));
        assert!(!sample(0.0));
        let n = (0..10_000).filter(|_| sample(0.25)).count();
        assert!((2000..3000).contains(&n), "{n}");
    }
}
