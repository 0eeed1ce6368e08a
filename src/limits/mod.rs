//! Traffic limits: who may send (`deny`, `server.trusted_proxies`), how often (`rate_limit`,
//! on pingora-limits), how much (`max_body_bytes`, request heads), and how many requests a
//! backend takes at once (`max_connections`).
//!
//! The per-domain and per-route parts are resolved once per config snapshot into a
//! [`Limits`]; rate counters are carried from one snapshot to the next (see `rate.rs`), so a
//! reload or an admin change does not hand every client a fresh budget.

pub(crate) mod cluster_rate;
pub(crate) mod concurrency;
pub(crate) mod framing;
pub(crate) mod listener;
pub(crate) mod rate;
pub(crate) mod refusal_log;

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{Cidr, RateLimit};

pub(crate) use rate::{RateLimiter, RateLimiters, RateState};

/// What one domain or route enforces before a request is routed anywhere.
#[derive(Debug, Default)]
pub struct Limits {
    /// Client networks answered 403.
    pub deny: Vec<Cidr>,
    pub rate: Option<Arc<RateLimiter>>,
    /// Larger request bodies are answered 413.
    pub max_body_bytes: Option<u64>,
}

impl Limits {
    /// `domain` names the domain (its first host), `route` the route's prefix; together with
    /// the limit itself they identify the rate counter kept across snapshots. A route whose
    /// limit equals its domain's shares the domain's counter (`route: None`).
    pub fn build(
        limiters: &mut RateLimiters,
        domain: &str,
        route: Option<&str>,
        deny: &[Cidr],
        rate_limit: Option<&RateLimit>,
        domain_rate_limit: Option<&RateLimit>,
        max_body_bytes: Option<u64>,
    ) -> Arc<Limits> {
        let scope = match route {
            Some(_) if rate_limit == domain_rate_limit => None,
            other => other,
        };
        Arc::new(Limits {
            deny: deny.to_vec(),
            rate: rate_limit.map(|limit| limiters.get(domain, scope, limit)),
            max_body_bytes,
        })
    }

    pub fn denies(&self, ip: Option<IpAddr>) -> bool {
        match ip {
            Some(ip) => self.deny.iter().any(|c| c.contains(ip)),
            None => false,
        }
    }
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the
/// right-most address of `X-Forwarded-For` that is not itself a trusted proxy (addresses to
/// the left of it were written by the client and prove nothing). When every listed address is
/// trusted, the left-most one.
pub(crate) fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: &[&[u8]],
    trusted: &[Cidr],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if trusted.is_empty() || !is_trusted(peer) {
        return Some(peer);
    }
    let mut last = peer;
    // Several X-Forwarded-For fields are one list, in order.
    for value in forwarded_for.iter().rev() {
        let Ok(text) = std::str::from_utf8(value) else {
            return Some(last);
        };
        for item in text.rsplit(',') {
            let Some(ip) = parse_forwarded_ip(item.trim()) else {
                // Garbage: nothing left of it can be trusted either.
                return Some(last);
            };
            if !is_trusted(ip) {
                return Some(ip);
            }
            last = ip;
        }
    }
    Some(last)
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_forwarded_ip(item: &str) -> Option<IpAddr> {
    if let Ok(ip) = item.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = item.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (host, port) = item.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter()
            .map(|t| {
                let (a, p) = t.split_once('/').unwrap();
                Cidr::new(a.parse().unwrap(), p.parse().unwrap())
                    .unwrap()
                    .unwrap()
            })
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_behind_trusted_peers() {
        let trusted = cidrs(&["127.0.0.0/8", "10.0.0.0/8"]);
        let xff: &[&[u8]] = &[b"6.6.6.6, 9.9.9.9, 10.0.0.5"];
        // Untrusted peer: the header is ignored.
        assert_eq!(
            client_ip(Some(ip("8.8.8.8")), xff, &trusted),
            Some(ip("8.8.8.8"))
        );
        // No trusted proxies configured: the peer.
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), xff, &[]),
            Some(ip("127.0.0.1"))
        );
        // Trusted peer: right-most untrusted address; the client-written 6.6.6.6 is ignored.
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), xff, &trusted),
            Some(ip("9.9.9.9"))
        );
        // Several header fields form one list.
        let split: &[&[u8]] = &[b"6.6.6.6", b"9.9.9.9:4711, 10.0.0.5"];
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), split, &trusted),
            Some(ip("9.9.9.9"))
        );
        // No header: the peer.
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &[], &trusted),
            Some(ip("127.0.0.1"))
        );
        // All trusted: the left-most.
        let inner: &[&[u8]] = &[b"10.1.1.1, 10.0.0.5"];
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), inner, &trusted),
            Some(ip("10.1.1.1"))
        );
        // Garbage stops the walk at the last good hop.
        let bad: &[&[u8]] = &[b"9.9.9.9, unknown, 10.0.0.5"];
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), bad, &trusted),
            Some(ip("10.0.0.5"))
        );
        let v6: &[&[u8]] = &[b"[2001:db8::1]:443"];
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), v6, &trusted),
            Some(ip("2001:db8::1"))
        );
    }
}
