//! Limits that need no backend: `rate_limit`, and the network lists of `deny` and
//! `server.trusted_proxies`.

use crate::config::keys::Section;
use std::net::IpAddr;

use super::fields::{is_token, item_path, list, string, Errors, Fields};
use crate::config::model::{Cidr, RateKey, RateLimit, RateScope};
use crate::config::yaml::Node;

pub(super) fn rate_limit(e: &mut Errors, node: &Node, path: &str) -> Option<RateLimit> {
    let f = Fields::new(e, node, path, Section::RateLimit)?;
    f.require(e, "requests");
    f.require(e, "per");
    let requests = f.int(e, "requests");
    let per = f.positive_duration(e, "per");
    let key = match f.string(e, "key").as_deref() {
        None | Some("client_ip") => Some(RateKey::ClientIp),
        Some("route") => Some(RateKey::Route),
        Some(other) => match other.strip_prefix("header:") {
            Some(name) if is_token(name) => Some(RateKey::Header(name.to_string())),
            _ => {
                let at = f.get("key").map_or(node.pos, |n| n.pos);
                e.push(
                    at,
                    &f.path("key"),
                    format!(
                        "unknown value {other:?}, expected one of: client_ip, route, header:NAME"
                    ),
                );
                None
            }
        },
    };
    let scope = match f.one_of(e, "scope", &["local", "cluster"]) {
        Some(1) => {
            let at = f.get("scope").map_or(node.pos, |n| n.pos);
            e.note_cluster_limit(at, &f.path("scope"));
            RateScope::Cluster
        }
        _ => RateScope::Local,
    };
    Some(RateLimit {
        requests: requests?,
        per: per?,
        key: key?,
        scope,
    })
}

/// A list of networks (`10.0.0.0/8`, `2001:db8::/32`, or a single address).
pub(super) fn cidr_list(e: &mut Errors, node: &Node, path: &str) -> Vec<Cidr> {
    let mut out: Vec<Cidr> = Vec::new();
    for (i, item) in list(e, node, path).unwrap_or_default().iter().enumerate() {
        let item_path = item_path(path, i);
        let Some(text) = string(e, item, &item_path) else {
            continue;
        };
        match parse_cidr(&text) {
            Ok(c) if !out.contains(&c) => out.push(c),
            Ok(_) => e.push(item.pos, &item_path, format!("duplicate network {text:?}")),
            Err(message) => e.push(item.pos, &item_path, message),
        }
    }
    out
}

/// `addr/prefix` or a bare address (a /32 or /128). Bits beyond the prefix must be zero, so
/// `10.1.2.3/8` (probably a typo) is refused with the network it would mean.
pub(crate) fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let (addr_text, prefix_text) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let Ok(addr) = addr_text.parse::<IpAddr>() else {
        return Err(format!(
            "expected an IP network like 10.0.0.0/8 or 2001:db8::/32, found {text:?}"
        ));
    };
    let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix_text {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(format!(
                    "invalid prefix length {p:?} in {text:?}, expected 0-{max}"
                ))
            }
        },
    };
    match Cidr::new(addr, prefix) {
        Some(Ok(cidr)) => Ok(cidr),
        Some(Err(network)) => Err(format!(
            "{text:?} has bits set beyond the /{prefix} prefix; the network is {network}"
        )),
        None => Err(format!(
            "invalid prefix length {prefix:?} in {text:?}, expected 0-{max}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = parse_cidr("10.0.0.0/8").unwrap();
        assert!(c.contains("10.255.1.2".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        // IPv4-mapped IPv6 clients match IPv4 networks.
        assert!(c.contains("::ffff:10.1.1.1".parse().unwrap()));
        let one = parse_cidr("192.168.1.7").unwrap();
        assert_eq!(one.prefix(), 32);
        assert!(one.contains("192.168.1.7".parse().unwrap()));
        assert!(!one.contains("192.168.1.8".parse().unwrap()));
        let all = parse_cidr("0.0.0.0/0").unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
        let v6 = parse_cidr("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(parse_cidr("::/0").unwrap().contains("::1".parse().unwrap()));
        assert_eq!(
            parse_cidr("10.1.2.3/8").unwrap_err(),
            r#""10.1.2.3/8" has bits set beyond the /8 prefix; the network is 10.0.0.0/8"#
        );
        assert_eq!(
            parse_cidr("10.0.0.0/33").unwrap_err(),
            r#"invalid prefix length "33" in "10.0.0.0/33", expected 0-32"#
        );
        assert!(parse_cidr("example.com/8").is_err());
        assert!(parse_cidr("10.0.0.0/+8").is_err());
    }
}
