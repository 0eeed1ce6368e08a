//! `routes` of a domain: inheritance from the domain and pool sharing.

use super::answer;
use super::backend::backends;
use super::cache;
use super::fields::{item_path, list, Errors, Fields};
use super::handling;
use super::options;
use super::pool;
use crate::config::keys::Section;
use crate::config::model::{
    Action, CacheSettings, Handling, PoolConfig, PoolPolicy, Pos, ProxyOptions, Route,
};
use crate::config::yaml::Node;

/// What a route inherits from its domain.
pub(super) struct Parent<'a> {
    /// The domain's pool name; a route's own pool is named `{name}{path_prefix}`.
    pub name: &'a str,
    /// `None` when the domain has no `backends`.
    pub pool: Option<usize>,
    pub policy: &'a PoolPolicy,
    pub options: &'a ProxyOptions,
    pub handling: &'a Handling,
    pub global_cache: Option<&'a CacheSettings>,
}

pub(super) fn routes(
    e: &mut Errors,
    node: &Node,
    path: &str,
    parent: &Parent,
    pools: &mut Vec<PoolConfig>,
) -> Vec<Route> {
    let mut prefixes: Vec<(String, Pos)> = Vec::new();
    let mut out = Vec::new();
    for (i, item) in list(e, node, path).unwrap_or_default().iter().enumerate() {
        let item_path = item_path(path, i);
        if let Some(r) = route(e, item, &item_path, parent, pools, &mut prefixes) {
            out.push(r);
        }
    }
    out
}

fn route(
    e: &mut Errors,
    node: &Node,
    path: &str,
    parent: &Parent,
    pools: &mut Vec<PoolConfig>,
    prefixes: &mut Vec<(String, Pos)>,
) -> Option<Route> {
    let f = Fields::new(e, node, path, Section::Route)?;
    f.require(e, "path_prefix");
    let prefix = f
        .string(e, "path_prefix")
        .and_then(|p| cache::path_prefix(e, &f, p));
    if let (Some(prefix), Some(at)) = (&prefix, f.get("path_prefix")) {
        match prefixes.iter().find(|(p, _)| p == prefix) {
            Some((_, first)) => e.push(
                at.pos,
                &f.path("path_prefix"),
                format!(
                    "duplicate path_prefix {prefix:?} (first at line {})",
                    first.line
                ),
            ),
            None => prefixes.push((prefix.clone(), at.pos)),
        }
    }
    let answer = answer::answer(e, &f, pool::KEYS);
    let own_backends = f
        .get("backends")
        .map(|n| backends(e, n, &f.path("backends")));
    let policy = pool::policy(e, &f, Some(parent.policy));
    let proxy_options = options::read(e, &f).apply(parent.options);
    let pool_name = format!("{}{}", parent.name, prefix.as_deref().unwrap_or_default());
    let action = if let Some(answer) = answer {
        answer
    } else if answer::ANSWERS.iter().any(|k| f.has(k)) {
        // Reported by `answer::answer`.
        Action::NotFound
    } else if let Some(backends) = own_backends {
        pools.push(PoolConfig {
            name: pool_name,
            backends,
            policy,
        });
        Action::Proxy {
            pool: pools.len() - 1,
            options: proxy_options,
        }
    } else if let Some(shared) = parent.pool {
        // Same backends and policy: share the domain's pool and so its health state and
        // balancing counters. Anything different needs a pool of its own.
        let pool = if &policy == parent.policy {
            shared
        } else {
            let backends = pools
                .get(shared)
                .map(|p| p.backends.clone())
                .unwrap_or_default();
            pools.push(PoolConfig {
                name: pool_name,
                backends,
                policy,
            });
            pools.len() - 1
        };
        Action::Proxy {
            pool,
            options: proxy_options,
        }
    } else {
        e.push(node.pos, path, "no backends (the domain has none)");
        Action::NotFound
    };
    let handling = handling::read(e, &f, action, Some(parent.handling), parent.global_cache);
    Some(Route {
        path_prefix: prefix?,
        handling,
        pos: node.pos,
    })
}
