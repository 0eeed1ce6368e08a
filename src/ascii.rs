//! Numbers and addresses written as ASCII bytes without `core::fmt`, for the per-request
//! paths (the `X-Forwarded-For` value, access-log lines), where the formatting machinery
//! costs several times the work itself.

use std::net::IpAddr;

/// Appends `n` in decimal.
pub(crate) fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `n` in at least `width` digits, zero-padded.
pub(crate) fn push_padded(out: &mut Vec<u8>, n: u64, width: u32) {
    let mut bound = 10u64.pow(width.saturating_sub(1));
    while bound > 1 && n < bound {
        out.push(b'0');
        bound /= 10;
    }
    push_u64(out, n);
}

/// Appends `ip` as `Display` writes it; IPv4 by hand, IPv6 (rare, and long) through `fmt`.
pub(crate) fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_u64(out, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_ip_matches_display() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "10.0.100.9",
            "255.255.255.255",
            "192.168.10.200",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:10.1.2.3",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = b"x".to_vec();
            push_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), format!("x{ip}"));
        }
    }

    #[test]
    fn numbers() {
        let mut out = Vec::new();
        push_u64(&mut out, 0);
        out.push(b' ');
        push_u64(&mut out, u64::MAX);
        out.push(b' ');
        push_padded(&mut out, 7, 3);
        out.push(b' ');
        push_padded(&mut out, 1234, 3);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0 18446744073709551615 007 1234"
        );
    }
}
