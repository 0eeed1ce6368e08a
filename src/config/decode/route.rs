//! `routes` of a domain: inheritance from the domain and pool sharing.

use super::backend::{backends, health_check, strategy};
use super::cache;
use super::fields::{item_path, list, Errors, Fields};
use super::headers;
use super::options;
use super::policy;
use crate::config::model::{
    Action, CacheSettings, Cidr, DomainCache, HeaderRules, HealthCheck, PoolConfig, Pos,
    ProxyOptions, RateLimit, Route, Strategy,
};
use crate::config::yaml::Node;

const ROUTE_KEYS: &[&str] = &[
    "path_prefix",
    "backends",
    "load_balancer",
    "health_check",
    "respond",
    "redirect",
    "connect_timeout",
    "read_timeout",
    "write_timeout",
    "max_retries",
    "max_idle_conns",
    "idle_timeout",
    "preserve_host",
    "host_header",
    "websocket_idle_timeout",
    "headers",
    "rate_limit",
    "cache",
    "deny",
    "max_body_bytes",
];

/// What a route inherits from its domain.
pub struct Parent<'a> {
    /// The domain's pool name; a route's own pool is named `{name}{path_prefix}`.
    pub name: &'a str,
    /// `None` when the domain has no `backends`.
    pub pool: Option<usize>,
    pub strategy: Strategy,
    pub health: Option<&'a HealthCheck>,
    pub options: &'a ProxyOptions,
    pub headers: &'a HeaderRules,
    pub rate_limit: Option<&'a RateLimit>,
    pub cache: &'a DomainCache,
    pub global_cache: Option<&'a CacheSettings>,
    pub deny: &'a [Cidr],
    pub max_body_bytes: Option<u64>,
}

pub fn routes(
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
    let f = Fields::new(e, node, path, ROUTE_KEYS)?;
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
    let answer = policy::answer(e, &f, &["backends", "load_balancer", "health_check"]);
    let own_backends = f
        .get("backends")
        .map(|n| backends(e, n, &f.path("backends")));
    let own_strategy = f
        .get("load_balancer")
        .and_then(|n| strategy(e, n, &f.path("load_balancer")));
    let own_health = f
        .get("health_check")
        .and_then(|n| health_check(e, n, &f.path("health_check")));
    let proxy_options = options::read(e, &f).apply(parent.options);
    let route_headers = f
        .get("headers")
        .map(|n| headers::rules(e, n, &f.path("headers")));
    let rate_limit = f
        .get("rate_limit")
        .and_then(|n| policy::rate_limit(e, n, &f.path("rate_limit")))
        .or_else(|| parent.rate_limit.cloned());
    // A route's cache map refines what its domain actually uses.
    let cache_base = match parent.cache {
        DomainCache::Custom(settings) => (**settings).clone(),
        _ => parent.global_cache.cloned().unwrap_or_else(cache::defaults),
    };
    let cache = cache::section(
        e,
        f.get("cache"),
        &f.path("cache"),
        parent.global_cache,
        &cache_base,
    )
    .unwrap_or_else(|| parent.cache.clone());

    let strategy = own_strategy.unwrap_or(parent.strategy);
    let health = own_health.or_else(|| parent.health.cloned());
    let pool_name = format!("{}{}", parent.name, prefix.as_deref().unwrap_or_default());
    let mut deny = parent.deny.to_vec();
    if let Some(n) = f.get("deny") {
        for c in policy::cidr_list(e, n, &f.path("deny")) {
            if !deny.contains(&c) {
                deny.push(c);
            }
        }
    }
    let max_body_bytes = f.size(e, "max_body_bytes").or(parent.max_body_bytes);
    let action = if let Some(answer) = answer {
        answer
    } else if f.has("respond") || f.has("redirect") {
        // Reported by `policy::answer`.
        Action::NotFound
    } else if let Some(backends) = own_backends {
        pools.push(PoolConfig {
            name: pool_name,
            strategy,
            backends,
            health_check: health,
        });
        Action::Proxy {
            pool: pools.len() - 1,
            options: proxy_options,
        }
    } else if let Some(shared) = parent.pool {
        // Same backends, strategy and checks: share the domain's pool and so its health
        // state and balancing counters. Anything different needs a pool of its own.
        let pool = if strategy == parent.strategy && health.as_ref() == parent.health {
            shared
        } else {
            let backends = pools
                .get(shared)
                .map(|p| p.backends.clone())
                .unwrap_or_default();
            pools.push(PoolConfig {
                name: pool_name,
                strategy,
                backends,
                health_check: health,
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
    Some(Route {
        path_prefix: prefix?,
        action,
        headers: match &route_headers {
            Some(own) => headers::merge(parent.headers, own),
            None => parent.headers.clone(),
        },
        rate_limit,
        cache,
        deny,
        max_body_bytes,
        pos: node.pos,
    })
}
