//! The top-level `cluster` section: what several strait nodes share (docs/cluster.md).

use super::fields::{item_path, list, string, Errors, Fields};
use crate::config::keys::{self, Section};
use crate::config::model::{Cluster, Etcd, EtcdTls, Redis};
use crate::config::yaml::Node;

pub(super) fn cluster(e: &mut Errors, node: Option<&Node>) -> Cluster {
    let mut cluster = Cluster {
        etcd: None,
        redis: None,
        nodes: keys::default_int(Section::Cluster, "nodes"),
    };
    let Some(f) = node.and_then(|n| Fields::new(e, n, "cluster", Section::Cluster)) else {
        return cluster;
    };
    if let Some(n) = f.int(e, "nodes") {
        cluster.nodes = n;
    }
    cluster.redis = f.get("redis").and_then(|n| redis(e, n, &f.path("redis")));
    if let Some(n) = f.get("etcd") {
        cluster.etcd = etcd(e, n, &f.path("etcd"));
    }
    cluster
}

fn redis(e: &mut Errors, node: &Node, path: &str) -> Option<Redis> {
    let f = Fields::new(e, node, path, Section::Redis)?;
    let timeout = f
        .positive_duration(e, "timeout")
        .unwrap_or_else(|| keys::default_duration(Section::Redis, "timeout"));
    f.require(e, "url")?;
    let url = f.string(e, "url")?;
    let at = f.get("url").map_or(node.pos, |n| n.pos);
    // Checked here with the client's own parser, so a typo is a config error rather than a
    // node that quietly falls back forever.
    match redis::parse_redis_url(&url) {
        Some(u) if u.scheme() == "redis" => {
            if let Err(err) = redis::Client::open(url.as_str()) {
                e.push(at, &f.path("url"), format!("{err}"));
                return None;
            }
        }
        Some(u) => {
            e.push(
                at,
                &f.path("url"),
                format!(
                    "unsupported scheme {:?}, expected redis:// (no TLS to Redis)",
                    u.scheme()
                ),
            );
            return None;
        }
        None => {
            e.push(
                at,
                &f.path("url"),
                format!("expected a URL like redis://127.0.0.1:6379/0, found {url:?}"),
            );
            return None;
        }
    }
    Some(Redis { url, timeout })
}

fn etcd(e: &mut Errors, node: &Node, path: &str) -> Option<Etcd> {
    let f = Fields::new(e, node, path, Section::Etcd)?;
    let mut endpoints = Vec::new();
    if let Some(n) = f.require(e, "endpoints") {
        let items = list(e, n, &f.path("endpoints")).unwrap_or_default();
        if items.is_empty() {
            e.push(
                n.pos,
                &f.path("endpoints"),
                "at least one etcd endpoint is required",
            );
        }
        for (i, item) in items.iter().enumerate() {
            let at = item_path(&f.path("endpoints"), i);
            if let Some(url) = string(e, item, &at) {
                match endpoint(&url) {
                    Ok(()) => endpoints.push(url),
                    Err(message) => e.push(item.pos, &at, message),
                }
            }
        }
    }
    let tls = f.get("tls").and_then(|n| tls(e, n, &f.path("tls")));
    if tls.is_none() {
        if let Some(url) = endpoints.iter().find(|u| u.starts_with("https://")) {
            let at = f.get("endpoints").map_or(node.pos, |n| n.pos);
            e.push(
                at,
                &f.path("endpoints"),
                format!("{url:?} is https://: add `tls` (at least `tls: {{}}`) to say how to trust etcd"),
            );
        }
    }
    let prefix = match f.string(e, "prefix") {
        Some(p) => match prefix(&p) {
            Ok(p) => p,
            Err(message) => {
                let at = f.get("prefix").map_or(node.pos, |n| n.pos);
                e.push(at, &f.path("prefix"), message);
                String::new()
            }
        },
        None => keys::default_text(Section::Etcd, "prefix").to_string(),
    };
    let username = f.string(e, "username");
    let password = f.string(e, "password");
    let user = match (username, password) {
        (Some(u), Some(p)) if !u.is_empty() => Some((u, p)),
        (Some(_), Some(_)) => {
            let at = f.get("username").map_or(node.pos, |n| n.pos);
            e.push(
                at,
                &f.path("username"),
                "expected a user name, found an empty string",
            );
            None
        }
        (Some(_), None) | (None, Some(_)) => {
            let missing = if f.has("username") {
                "password"
            } else {
                "username"
            };
            e.push(
                node.pos,
                path,
                format!("`username` and `password` go together: `{missing}` is missing"),
            );
            None
        }
        (None, None) => None,
    };
    let node_name = f.string(e, "node_name");
    if let Some(name) = &node_name {
        if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) {
            let at = f.get("node_name").map_or(node.pos, |n| n.pos);
            e.push(
                at,
                &f.path("node_name"),
                format!("expected a name without `/` or control characters, found {name:?}"),
            );
        }
    }
    Some(Etcd {
        endpoints,
        prefix,
        user,
        node_name,
        tls,
        pos: node.pos,
    })
}

fn tls(e: &mut Errors, node: &Node, path: &str) -> Option<EtcdTls> {
    let f = Fields::new(e, node, path, Section::EtcdTls)?;
    let ca = f.file_path(e, "ca");
    let identity = match (f.file_path(e, "cert"), f.file_path(e, "key")) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (c, _) => {
            let missing = if c.is_some() { "key" } else { "cert" };
            e.push(
                node.pos,
                path,
                format!("`cert` and `key` go together: `{missing}` is missing"),
            );
            None
        }
    };
    Some(EtcdTls { ca, identity })
}

/// `http://host:port` or `https://host:port`, nothing after the authority.
fn endpoint(url: &str) -> Result<(), String> {
    let example = "like http://127.0.0.1:2379";
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("expected an etcd URL {example}, found {url:?}"));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "expected an http:// or https:// etcd URL {example}, found {url:?}"
        ));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "an etcd endpoint is a scheme, host and port only ({example}), found {url:?}"
        ));
    }
    super::parse_url(&format!("http://{authority}"))
        .map(|_| ())
        .map_err(|m| m.replace("backend address", "etcd endpoint"))
}

/// A key prefix: starts with `/`, ends with `/` (added when missing), printable.
pub(super) fn prefix(text: &str) -> Result<String, String> {
    if !text.starts_with('/') {
        return Err(format!(
            "expected a key prefix starting with `/`, like /strait/, found {text:?}"
        ));
    }
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "a key prefix cannot hold spaces or control characters, found {text:?}"
        ));
    }
    Ok(if text.ends_with('/') {
        text.to_string()
    } else {
        format!("{text}/")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_prefixes() {
        assert!(endpoint("http://127.0.0.1:2379").is_ok());
        assert!(endpoint("https://etcd.internal:2379/").is_ok());
        for bad in [
            "127.0.0.1:2379",
            "grpc://e:1",
            "http://e:1/v3",
            "http://u@e:1",
            "http://e:0",
        ] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
        assert_eq!(prefix("/strait").unwrap(), "/strait/");
        assert_eq!(prefix("/services/shop/").unwrap(), "/services/shop/");
        assert!(prefix("strait/").is_err());
        assert!(prefix("/a b/").is_err());
    }
}
