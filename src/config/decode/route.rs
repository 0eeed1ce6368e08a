//! `routes` of a domain: path patterns, matchers, rewrites, listener scope, inheritance from
//! the domain and pool sharing.

use super::answer;
use super::backend::backends;
use super::cache;
use super::domain::{self, overlap};
use super::fields::{item_path, list, Errors, Fields};
use super::handling;
use super::matchers;
use super::options;
use super::pool;
use crate::config::keys::Section;
use crate::config::model::{
    Action, CacheSettings, Handling, Listener, PathPattern, PoolConfig, PoolPolicy, Pos,
    ProxyOptions, RequestMatch, Rewrite, Route,
};
use crate::config::pattern::template;
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
    /// Every listener of the file (what a route's `listeners` names).
    pub listeners: &'a [Listener],
    /// The domain's own listener scope.
    pub scope: Option<&'a Vec<usize>>,
    /// The names of the file's `plugins`.
    pub plugins: &'a [String],
}

pub(super) fn routes(
    e: &mut Errors,
    node: &Node,
    path: &str,
    parent: &Parent,
    pools: &mut Vec<PoolConfig>,
) -> Vec<Route> {
    // Each route so far: its name, where it was, and its listeners.
    let mut seen: Vec<(String, Pos, Option<Vec<usize>>)> = Vec::new();
    let mut out = Vec::new();
    for (i, item) in list(e, node, path).unwrap_or_default().iter().enumerate() {
        let item_path = item_path(path, i);
        if let Some(r) = route(e, item, &item_path, parent, pools) {
            match seen
                .iter()
                .find(|(name, _, ls)| *name == r.name && overlap(ls.as_ref(), r.listeners.as_ref()))
            {
                Some((_, first, _)) => e.push(
                    r.pos,
                    &item_path,
                    format!(
                        "duplicate route {:?} (first at line {}): the second could never match",
                        r.name, first.line
                    ),
                ),
                None => seen.push((r.name.clone(), r.pos, r.listeners.clone())),
            }
            out.push(r);
        }
    }
    out
}

/// The route's path pattern: exactly one of `path_prefix` and `path`.
fn path_pattern(e: &mut Errors, f: &Fields, node: &Node, path: &str) -> Option<PathPattern> {
    match (f.get("path_prefix"), f.get("path")) {
        (Some(_), Some(at)) => {
            e.push(
                at.pos,
                &f.path("path"),
                "path and path_prefix cannot both be set: choose one",
            );
            None
        }
        (None, None) => {
            e.push(node.pos, path, "missing field `path_prefix` or `path`");
            None
        }
        (Some(_), None) => f
            .string(e, "path_prefix")
            .and_then(|p| cache::path_prefix(e, f, p))
            .map(PathPattern::Prefix),
        (None, Some(at)) => {
            let text = f.string(e, "path")?;
            PathPattern::path(&text)
                .map_err(|m| e.push(at.pos, &f.path("path"), m))
                .ok()
        }
    }
}

fn route(
    e: &mut Errors,
    node: &Node,
    path: &str,
    parent: &Parent,
    pools: &mut Vec<PoolConfig>,
) -> Option<Route> {
    let f = Fields::new(e, node, path, Section::Route)?;
    let pattern = path_pattern(e, &f, node, path);
    let captures = pattern.as_ref().map_or(9, PathPattern::captures);
    let matchers = matchers::read(e, &f);
    let listeners = f
        .get("listeners")
        .map(|n| domain::listener_scope(e, n, &f.path("listeners"), parent.listeners));
    if let (Some(own), Some(domain), Some(at)) = (&listeners, parent.scope, f.get("listeners")) {
        if let Some(outside) = own.iter().find(|l| !domain.contains(l)) {
            let name = parent.listeners[*outside].name.clone().unwrap_or_default();
            e.push(
                at.pos,
                &f.path("listeners"),
                format!("listener {name:?} is not one of its domain's listeners: the route would never see a request there"),
            );
        }
    }
    let rewrite = rewrite(e, &f, pattern.as_ref(), captures);
    let answer = answer::answer(e, &f, pool::KEYS, captures);
    let own_backends = f
        .get("backends")
        .map(|n| backends(e, n, &f.path("backends")));
    let policy = pool::policy(e, &f, Some(parent.policy));
    let proxy_options = options::read(e, &f).apply(parent.options);
    let pool_name = format!(
        "{}{}",
        parent.name,
        pattern.as_ref().map_or("", PathPattern::text)
    );
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
    let handling = handling::read(
        e,
        &f,
        action,
        Some(parent.handling),
        parent.global_cache,
        captures,
        parent.plugins,
    );
    let pattern = pattern?;
    Some(Route {
        name: route_name(&pattern, &matchers, listeners.as_deref(), parent.listeners),
        path: pattern,
        matchers,
        listeners,
        rewrite,
        handling,
        pos: node.pos,
    })
}

/// `/api/v1/* GET,HEAD x-canary=1 @web`: the pattern, then matchers and listeners if any.
fn route_name(
    pattern: &PathPattern,
    matchers: &RequestMatch,
    listeners: Option<&[usize]>,
    all: &[Listener],
) -> String {
    let mut name = pattern.text().to_string();
    if !matchers.is_empty() {
        name.push(' ');
        name.push_str(&matchers.describe());
    }
    for l in listeners.unwrap_or_default() {
        if let Some(n) = all.get(*l).and_then(|l| l.name.as_deref()) {
            name.push_str(" @");
            name.push_str(n);
        }
    }
    name
}

/// `strip_prefix: true` or `rewrite: TEMPLATE` (not both).
fn rewrite(
    e: &mut Errors,
    f: &Fields,
    pattern: Option<&PathPattern>,
    captures: usize,
) -> Option<Rewrite> {
    let strip = f.boolean(e, "strip_prefix") == Some(true);
    if let (true, Some(at)) = (strip, f.get("rewrite")) {
        e.push(
            at.pos,
            &f.path("rewrite"),
            "rewrite and strip_prefix: true cannot both be set",
        );
        return None;
    }
    if strip {
        return match pattern {
            Some(PathPattern::Prefix(p)) => Some(Rewrite::StripPrefix(p.clone())),
            Some(_) => {
                let at = f.get("strip_prefix").map_or(f.node.pos, |n| n.pos);
                e.push(
                    at,
                    &f.path("strip_prefix"),
                    "strip_prefix needs a path_prefix; with a `path` glob, use rewrite with a capture ($1)",
                );
                None
            }
            None => None,
        };
    }
    let at = f.get("rewrite")?;
    let text = f.string(e, "rewrite")?;
    if !(text.starts_with('/') || text.starts_with('$')) {
        e.push(
            at.pos,
            &f.path("rewrite"),
            format!("a rewrite is a path and must start with / (or a variable such as $path), found {text:?}"),
        );
        return None;
    }
    if text.contains(['?', '#', ' ']) || text.chars().any(char::is_control) {
        e.push(
            at.pos,
            &f.path("rewrite"),
            format!("a rewrite is a path only (the query is kept as it came), found {text:?}"),
        );
        return None;
    }
    template::parse(&text, captures)
        .map(Rewrite::Path)
        .map_err(|m| e.push(at.pos, &f.path("rewrite"), m))
        .ok()
}
