//! `tcp` on a listener and `pass` on a domain: a pool of `host:port` backends that connections
//! are relayed to as raw bytes, and the relay's options (docs/l4.md).

use super::backend::{backend_list, split_host_port};
use super::fields::{Errors, Fields};
use super::pool;
use crate::config::keys::{self, Section};
use crate::config::model::{BackendConfig, HealthKind, PoolConfig, Pos, Scheme, L4};
use crate::config::yaml::{Node, Value};

/// The pool and the options a `tcp` or `pass` map describes; the caller adds the pool to the
/// config's pools and sets [`L4::pool`]. `name` names the pool (a domain's first host, or
/// the listener's name).
pub(super) fn read(
    e: &mut Errors,
    node: &Node,
    path: &str,
    name: String,
) -> Option<(PoolConfig, L4)> {
    let f = Fields::new(e, node, path, Section::L4)?;
    let backends = f
        .require(e, "backends")
        .map(|n| backends(e, n, &f.path("backends")))
        .unwrap_or_default();
    let mut policy = pool::policy(e, &f, None);
    if let (Some(check), Some(n)) = (policy.health_check.as_mut(), f.get("health_check")) {
        // An HTTP request means nothing to a TLS or database backend: TCP is the default here.
        if explicit_http(n) {
            e.push(
                n.pos,
                &f.path("health_check.type"),
                "a tcp or pass pool is checked by connecting: type must be tcp",
            );
        }
        check.kind = HealthKind::Tcp;
    }
    let l4 = L4 {
        pool: usize::MAX,
        connect_timeout: f
            .positive_duration(e, "connect_timeout")
            .unwrap_or_else(|| keys::default_duration(Section::L4, "connect_timeout")),
        idle_timeout: f
            .positive_duration(e, "idle_timeout")
            .unwrap_or_else(|| keys::default_duration(Section::L4, "idle_timeout")),
        max_retries: f
            .int(e, "max_retries")
            .unwrap_or_else(|| keys::default_int(Section::L4, "max_retries"))
            as u32,
        proxy_protocol: f.one_of(e, "proxy_protocol", &["v2"]).is_some(),
        pos: node.pos,
    };
    Some((
        PoolConfig {
            name,
            backends,
            policy,
        },
        l4,
    ))
}

/// Whether a `health_check` map says `type: http` (or says nothing of its type and has a
/// `path`, which only HTTP checks use).
fn explicit_http(node: &Node) -> bool {
    let Value::Map(entries) = &node.value else {
        return false;
    };
    entries.iter().any(|entry| {
        (entry.key == "type" && matches!(&entry.value.value, Value::Scalar(s) if s.text == "http"))
            || entry.key == "path"
    })
}

/// `- host:port`, `- tcp://host:port` or `- { addr: host:port, weight: 2, max_connections: 100 }`.
fn backends(e: &mut Errors, node: &Node, path: &str) -> Vec<BackendConfig> {
    if matches!(&node.value, Value::Seq(items) if items.is_empty()) {
        e.push(node.pos, path, "at least one backend is required");
    }
    backend_list(e, node, path, |text| {
        parse_addr(text).map(|(host, port)| (Scheme::Tcp, host, port))
    })
}

/// `host:port` or `tcp://host:port`; the port is required (there is no default for raw TCP).
pub(crate) fn parse_addr(text: &str) -> Result<(String, u16), String> {
    let authority = match text.split_once("://") {
        None => text,
        Some(("tcp", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "a tcp or pass backend is host:port (or tcp://host:port), found {scheme}:// in {text:?}"
            ))
        }
    };
    let (host, port) = split_host_port(authority, text)?;
    let Some(port) = port else {
        return Err(format!("missing port in {text:?}, expected host:port"));
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok((host, p)),
        _ => Err(format!(
            "invalid port {port:?} in {text:?}, expected 1-65535"
        )),
    }
}

/// Keys of a domain that make no sense beside `pass` (it answers no HTTP request).
pub(super) const NOT_WITH_PASS: &[&str] = &[
    "backends",
    "routes",
    "respond",
    "redirect",
    "drop",
    "serve",
    "cache",
    "compress",
    "rate_limit",
    "headers",
    "upstream_tls",
    "plugins",
];

/// Keys of a listener that only HTTP uses.
pub(super) const NOT_WITH_TCP: &[&str] = &["tls", "http2", "plugins"];

/// Reports each of `keys` present in `f` as not allowed beside `with`.
pub(super) fn exclusive(e: &mut Errors, f: &Fields, with: &str, keys: &[&str], why: &str) {
    for key in keys {
        if let Some(n) = f.get(key) {
            e.push(
                n.pos,
                &f.path(key),
                format!("`{key}` cannot be used with `{with}`: {why}"),
            );
        }
    }
}

/// Where the error about a `pass` on a listener without TLS points.
pub(super) fn pass_pos(pass: &L4, fallback: Pos) -> Pos {
    if pass.pos == Pos::default() {
        fallback
    } else {
        pass.pos
    }
}

#[cfg(test)]
mod tests {
    use super::parse_addr;

    #[test]
    fn addresses() {
        assert_eq!(parse_addr("10.0.0.9:443"), Ok(("10.0.0.9".into(), 443)));
        assert_eq!(
            parse_addr("tcp://db.internal:5432"),
            Ok(("db.internal".into(), 5432))
        );
        assert_eq!(parse_addr("[::1]:22"), Ok(("::1".into(), 22)));
        assert!(parse_addr("10.0.0.9").unwrap_err().contains("missing port"));
        assert!(parse_addr("http://a:1").unwrap_err().contains("host:port"));
        assert!(parse_addr("a:0").unwrap_err().contains("invalid port"));
    }
}
