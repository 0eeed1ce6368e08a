//! Durations (`250ms`, `1h30m`) and sizes (`512`, `64KiB`, `1GB`) as written in the config.
//!
//! Errors are complete messages; the caller adds the position and field path.

use std::time::Duration;

/// Milliseconds per unit, largest first; `ms` must be tried before `m` when parsing.
const DURATION_UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];
/// What a duration may be written in: days too (`acme.renew_before: 30d`), though durations
/// are shown in hours at most so existing ones keep the spelling they are documented in.
const PARSE_UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Longest first, so `KiB` is not read as `K` + `iB`.
const SIZE_UNITS: [(&str, u64); 9] = [
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("B", 1),
];

/// Parses one or more `<digits><unit>` groups, e.g. `10s` or `1h30m`.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("expected a duration like 10s, found {text:?}");
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{} (add a unit, e.g. 10s)", bad()));
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| too_long(text))?;
        rest = &rest[digits..];
        let Some((unit, scale)) = PARSE_UNITS
            .iter()
            .rev()
            .find(|(unit, _)| rest.starts_with(unit))
        else {
            return Err(bad());
        };
        rest = &rest[unit.len()..];
        total_ms = number
            .checked_mul(*scale)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| too_long(text))?;
    }
    Ok(Duration::from_millis(total_ms))
}

fn too_long(text: &str) -> String {
    format!("duration {text:?} is too long")
}

/// Parses a byte count with an optional unit suffix.
pub(super) fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("expected a size like 64KiB, found {text:?}");
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if text.starts_with('-') {
        return Err(format!("a size cannot be negative, found {text:?}"));
    }
    if digits == 0 {
        return Err(bad());
    }
    let too_large = || format!("size {text:?} is too large");
    let number: u64 = text[..digits].parse().map_err(|_| too_large())?;
    let suffix = &text[digits..];
    let scale = if suffix.is_empty() {
        1
    } else {
        match SIZE_UNITS.iter().find(|(unit, _)| *unit == suffix) {
            Some((_, scale)) => *scale,
            None => {
                return Err(format!(
                    "{} (units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)",
                    bad()
                ))
            }
        }
    };
    number.checked_mul(scale).ok_or_else(too_large)
}

/// Writes a duration the way the config would, for messages (`1h30m`, `250ms`, `0s`).
pub(super) fn fmt_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, scale) in DURATION_UNITS {
        let scale = u128::from(scale);
        if ms >= scale {
            out.push_str(&format!("{}{unit}", ms / scale));
            ms %= scale;
        }
    }
    out
}

/// Writes a size with the largest binary unit that divides it exactly, for messages.
pub(super) fn fmt_size(bytes: u64) -> String {
    for (unit, scale) in SIZE_UNITS[..4].iter().rev() {
        if bytes >= *scale && bytes % scale == 0 {
            return format!("{}{unit}", bytes / scale);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn days() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(36 * 3600)));
        // Shown in hours, as every duration is.
        assert_eq!(fmt_duration(Duration::from_secs(86_400)), "24h");
    }

    #[test]
    fn bad_durations() {
        assert_eq!(
            parse_duration("30"),
            Err(r#"expected a duration like 10s, found "30" (add a unit, e.g. 10s)"#.into())
        );
        for text in [
            "", "abc", "10", "s", "1.5s", "10 s", "-1s", "10sec", "1w", "5mm",
        ] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
        assert_eq!(
            parse_duration("99999999999999999999h"),
            Err(r#"duration "99999999999999999999h" is too long"#.into())
        );
        assert!(parse_duration("5124095576030432h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("64KB"), Ok(64_000));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
    }

    #[test]
    fn bad_sizes() {
        assert_eq!(
            parse_size("-1"),
            Err(r#"a size cannot be negative, found "-1""#.into())
        );
        assert_eq!(
            parse_size("4mb"),
            Err(r#"expected a size like 64KiB, found "4mb" (units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"#.into())
        );
        assert_eq!(
            parse_size("abc"),
            Err(r#"expected a size like 64KiB, found "abc""#.into())
        );
        assert_eq!(
            parse_size("20000000TiB"),
            Err(r#"size "20000000TiB" is too large"#.into())
        );
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("1.5GiB").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_duration(Duration::from_secs(5_400)), "1h30m");
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::ZERO), "0s");
        assert_eq!(fmt_size(4 << 20), "4MiB");
        assert_eq!(fmt_size(1_000), "1000");
        assert_eq!(fmt_size(3 << 10), "3KiB");
    }
}
