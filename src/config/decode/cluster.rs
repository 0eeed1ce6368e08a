//! The top-level `cluster` section: what several strait nodes share (docs/cluster.md).

use super::fields::{Errors, Fields};
use crate::config::keys::{self, Section};
use crate::config::model::{Cluster, Redis};
use crate::config::yaml::Node;

pub(super) fn cluster(e: &mut Errors, node: Option<&Node>) -> Cluster {
    let mut cluster = Cluster {
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
