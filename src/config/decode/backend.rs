//! What a pool is made of: `backends`, `load_balancer`, `health_check`.

use crate::config::keys::{self, Section};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::fields::{item_path, key_path, list, one_of, string, Errors, Fields};
use crate::config::model::{BackendConfig, HealthCheck, HealthKind, Scheme, Strategy};
use crate::config::units::fmt_duration;
use crate::config::yaml::{Node, Value};

const STRATEGIES: [Strategy; 7] = [
    Strategy::RoundRobin,
    Strategy::WeightedRoundRobin,
    Strategy::LeastConnections,
    Strategy::IpHash,
    Strategy::Random,
    Strategy::ConsistentHash,
    Strategy::LeastLatency,
];

pub(super) fn strategy(e: &mut Errors, node: &Node, path: &str) -> Option<Strategy> {
    let names = STRATEGIES.map(Strategy::name);
    one_of(e, node, path, &names).map(|i| STRATEGIES[i])
}

/// A backend list; `- http://host:port` is shorthand for `- { addr: http://host:port }`.
pub(super) fn backends(e: &mut Errors, node: &Node, path: &str) -> Vec<BackendConfig> {
    backend_list(e, node, path, parse_url)
}

/// A backend list whose addresses `parse` reads (HTTP pools' URLs here, relay pools'
/// `host:port` in `super::l4`): shorthand or `{ addr, weight, max_connections }` entries, each
/// checked, duplicates refused.
pub(super) fn backend_list(
    e: &mut Errors,
    node: &Node,
    path: &str,
    parse: impl Fn(&str) -> Result<(Scheme, String, u16), String>,
) -> Vec<BackendConfig> {
    let mut out: Vec<BackendConfig> = Vec::new();
    for (i, item) in list(e, node, path).unwrap_or_default().iter().enumerate() {
        let item_path = item_path(path, i);
        let (addr_node, addr_path, weight, max_connections) = match &item.value {
            Value::Map(_) => {
                let Some(f) = Fields::new(e, item, &item_path, Section::Backend) else {
                    continue;
                };
                let weight = f
                    .int(e, "weight")
                    .unwrap_or_else(|| keys::default_int(Section::Backend, "weight"))
                    as u32;
                let max_connections = f.int(e, "max_connections").map(|n| n as u32);
                let Some(addr) = f.require(e, "addr") else {
                    continue;
                };
                (addr, key_path(&item_path, "addr"), weight, max_connections)
            }
            _ => (item, item_path, 1, None),
        };
        let Some(url) = string(e, addr_node, &addr_path) else {
            continue;
        };
        let (scheme, host, port) = match parse(&url) {
            Ok(parts) => parts,
            Err(message) => {
                e.push(addr_node.pos, &addr_path, message);
                continue;
            }
        };
        let backend = BackendConfig {
            url,
            scheme,
            host,
            port,
            weight,
            max_connections,
            pos: addr_node.pos,
            path: addr_path,
        };
        if let Some(first) = out.iter().find(|b| same_backend(b, &backend)) {
            let message = format!(
                "duplicate backend {} (first at line {})",
                backend.url, first.pos.line
            );
            e.push(backend.pos, &backend.path, message);
            continue;
        }
        out.push(backend);
    }
    out
}

fn same_backend(a: &BackendConfig, b: &BackendConfig) -> bool {
    // `[::1]` and `[0::1]` are one backend; names are already lower-cased.
    let ip = |h: &str| h.parse::<IpAddr>().ok();
    let same_host = match (ip(&a.host), ip(&b.host)) {
        (Some(x), Some(y)) => x == y,
        _ => a.host == b.host,
    };
    a.scheme == b.scheme && a.port == b.port && same_host
}

/// Splits `scheme://host[:port][/]` and checks every part; the message says which part is
/// wrong because "invalid URL" alone does not help anyone fix a config.
pub fn parse_url(url: &str) -> Result<(Scheme, String, u16), String> {
    let Some((scheme_text, rest)) = url.split_once("://") else {
        return Err(format!(
            "expected a URL like http://127.0.0.1:3000, found {url:?} (missing http://, https:// or h2c://)"
        ));
    };
    let (scheme, default_port) = match scheme_text.to_ascii_lowercase().as_str() {
        "http" => (Scheme::Http, 80),
        "https" => (Scheme::Https, 443),
        "h2c" => (Scheme::H2c, 80),
        _ => {
            return Err(format!(
                "unsupported scheme {scheme_text:?} in {url:?}, expected http, https or h2c"
            ))
        }
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if tail.contains('?') {
        return Err(format!(
            "a backend address cannot have a query string, found {url:?}"
        ));
    }
    if tail.contains('#') {
        return Err(format!(
            "a backend address cannot have a fragment, found {url:?}"
        ));
    }
    if !tail.is_empty() && tail != "/" {
        return Err(format!(
            "a backend address cannot have a path, found {tail:?} in {url:?}"
        ));
    }
    if authority.contains('@') {
        return Err(format!(
            "a backend address cannot contain user info, found {url:?}"
        ));
    }
    let (host, port) = split_host_port(authority, url)?;
    let port = match port {
        None => default_port,
        Some(text) => match text.parse::<u16>() {
            Ok(p) if p > 0 && text.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => {
                return Err(format!(
                    "invalid port {text:?} in {url:?}, expected 1-65535"
                ))
            }
        },
    };
    Ok((scheme, host, port))
}

pub(super) fn split_host_port<'a>(
    authority: &'a str,
    url: &str,
) -> Result<(String, Option<&'a str>), String> {
    if authority.is_empty() {
        return Err(format!("missing host in {url:?}"));
    }
    if let Some(inner) = authority.strip_prefix('[') {
        let Some((ip, after)) = inner.split_once(']') else {
            return Err(format!("missing `]` after the IPv6 address in {url:?}"));
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!("invalid IPv6 address {ip:?} in {url:?}"));
        }
        return match after {
            "" => Ok((ip.to_ascii_lowercase(), None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((ip.to_ascii_lowercase(), Some(port))),
                None => Err(format!(
                    "unexpected {after:?} after the IPv6 address in {url:?}"
                )),
            },
        };
    }
    let (host, port) = match authority.split_once(':') {
        Some((_, after)) if after.contains(':') => {
            return Err(format!(
                "IPv6 addresses must be in brackets, e.g. http://[::1]:8080, found {url:?}"
            ))
        }
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err(format!("missing host in {url:?}"));
    }
    if host.parse::<Ipv4Addr>().is_err() && !is_hostname(host) {
        return Err(format!("invalid host {host:?} in {url:?}"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// Letters, digits, `-` and `_` in non-empty dot-separated labels.
pub(super) fn is_hostname(name: &str) -> bool {
    name.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

pub(super) fn health_check(e: &mut Errors, node: &Node, path: &str) -> Option<HealthCheck> {
    let f = Fields::new(e, node, path, Section::HealthCheck)?;
    let tcp = f.one_of(e, "type", &["http", "tcp"]) == Some(1);
    let kind = if tcp {
        if let Some(p) = f.get("path") {
            e.push(p.pos, &f.path("path"), "path is only used with type: http");
        }
        HealthKind::Tcp
    } else {
        let probe_path = f.string(e, "path").unwrap_or_else(|| "/".to_string());
        if !probe_path.starts_with('/') {
            let at = f.get("path").map_or(node.pos, |n| n.pos);
            e.push(
                at,
                &f.path("path"),
                format!("path must start with /, found {probe_path:?}"),
            );
        }
        HealthKind::Http { path: probe_path }
    };
    let interval = f
        .positive_duration(e, "interval")
        .unwrap_or_else(|| keys::default_duration(Section::HealthCheck, "interval"));
    let timeout = f
        .positive_duration(e, "timeout")
        .unwrap_or_else(|| keys::default_duration(Section::HealthCheck, "timeout"));
    if timeout > interval {
        // Blame the value the user wrote; with both written, the timeout is the odd one.
        let key = if f.has("timeout") {
            "timeout"
        } else {
            "interval"
        };
        let at = f.get(key).map_or(node.pos, |n| n.pos);
        e.push(
            at,
            &f.path(key),
            format!(
                "timeout ({}) must not be longer than interval ({})",
                fmt_duration(timeout),
                fmt_duration(interval)
            ),
        );
    }
    Some(HealthCheck {
        kind,
        interval,
        timeout,
        fail_threshold: f
            .int(e, "fail_threshold")
            .unwrap_or_else(|| keys::default_int(Section::HealthCheck, "fail_threshold"))
            as u32,
        success_threshold: f
            .int(e, "success_threshold")
            .unwrap_or_else(|| keys::default_int(Section::HealthCheck, "success_threshold"))
            as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = |u: &str| parse_url(u).unwrap();
        assert_eq!(
            ok("http://127.0.0.1:3000"),
            (Scheme::Http, "127.0.0.1".into(), 3000)
        );
        assert_eq!(
            ok("https://App.Internal"),
            (Scheme::Https, "app.internal".into(), 443)
        );
        assert_eq!(ok("h2c://grpc:50051/"), (Scheme::H2c, "grpc".into(), 50051));
        assert_eq!(ok("HTTP://x"), (Scheme::Http, "x".into(), 80));
        assert_eq!(ok("http://[::1]:8080"), (Scheme::Http, "::1".into(), 8080));
        assert_eq!(ok("http://[::1]"), (Scheme::Http, "::1".into(), 80));
    }

    #[test]
    fn bad_urls() {
        let err = |u: &str| parse_url(u).unwrap_err();
        assert_eq!(
            err("127.0.0.1:3000"),
            r#"expected a URL like http://127.0.0.1:3000, found "127.0.0.1:3000" (missing http://, https:// or h2c://)"#
        );
        assert_eq!(
            err("ftp://a"),
            r#"unsupported scheme "ftp" in "ftp://a", expected http, https or h2c"#
        );
        assert_eq!(
            err("http://a/api"),
            r#"a backend address cannot have a path, found "/api" in "http://a/api""#
        );
        assert_eq!(
            err("http://u:p@a"),
            r#"a backend address cannot contain user info, found "http://u:p@a""#
        );
        assert_eq!(
            err("http://a?x=1"),
            r#"a backend address cannot have a query string, found "http://a?x=1""#
        );
        assert_eq!(
            err("http://a:0"),
            r#"invalid port "0" in "http://a:0", expected 1-65535"#
        );
        assert_eq!(
            err("http://a:99999"),
            r#"invalid port "99999" in "http://a:99999", expected 1-65535"#
        );
        assert_eq!(
            err("http://a:+1"),
            r#"invalid port "+1" in "http://a:+1", expected 1-65535"#
        );
        assert_eq!(
            err("http://::1:80"),
            r#"IPv6 addresses must be in brackets, e.g. http://[::1]:8080, found "http://::1:80""#
        );
        assert_eq!(err("http://"), r#"missing host in "http://""#);
        assert_eq!(err("http://:80"), r#"missing host in "http://:80""#);
        assert_eq!(err("http://a b"), r#"invalid host "a b" in "http://a b""#);
        assert_eq!(
            err("http://[zz]:1"),
            r#"invalid IPv6 address "zz" in "http://[zz]:1""#
        );
    }
}
