//! The keys domains and routes share (`headers`, `rate_limit`, `cache`, `compress`, `deny`,
//! `max_body_bytes`, `plugins`), read in one place, with a route's inheritance from its domain.

use super::cache;
use super::compress;
use super::fields::{item_path, list, string, Errors, Fields};
use super::headers;
use super::limits;
use crate::config::model::{AccessLogFormat, Action, CacheSettings, DomainCache, Handling};

/// Reads the shared keys of `f`; `inherited` is the domain's handling when `f` is a route, and
/// `captures` the `$N` its templates may use.
pub(super) fn read(
    e: &mut Errors,
    f: &Fields,
    action: Action,
    inherited: Option<&Handling>,
    global_cache: Option<&CacheSettings>,
    captures: usize,
    known_plugins: &[String],
) -> Handling {
    let own_headers = f
        .get("headers")
        .map(|n| headers::rules(e, n, &f.path("headers"), inherited.is_some(), captures));
    let headers = match (own_headers, inherited) {
        (Some(own), Some(parent)) => headers::merge(&parent.headers, &own),
        (Some(own), None) => own,
        (None, Some(parent)) => parent.headers.clone(),
        (None, None) => Default::default(),
    };
    let rate_limit = f
        .get("rate_limit")
        .and_then(|n| limits::rate_limit(e, n, &f.path("rate_limit")))
        .or_else(|| inherited.and_then(|p| p.rate_limit.clone()));
    // A route's cache map refines what its domain actually uses.
    let cache_base = match inherited.map(|p| &p.cache) {
        Some(DomainCache::Custom(settings)) => (**settings).clone(),
        _ => global_cache.cloned().unwrap_or_else(cache::defaults),
    };
    let cache = cache::section(
        e,
        f.get("cache"),
        &f.path("cache"),
        global_cache,
        &cache_base,
    )
    .unwrap_or_else(|| inherited.map_or(DomainCache::Off, |p| p.cache.clone()));
    let compress = compress::section(
        e,
        f.get("compress"),
        &f.path("compress"),
        inherited.and_then(|p| p.compress.as_ref()),
    )
    .unwrap_or_else(|| inherited.and_then(|p| p.compress.clone()));
    let mut deny = inherited.map_or_else(Vec::new, |p| p.deny.clone());
    if let Some(n) = f.get("deny") {
        for c in limits::cidr_list(e, n, &f.path("deny")) {
            if !deny.contains(&c) {
                deny.push(c);
            }
        }
    }
    let max_body_bytes = f
        .size(e, "max_body_bytes")
        .or_else(|| inherited.and_then(|p| p.max_body_bytes));
    let access_log = f
        .file_path(e, "access_log")
        .or_else(|| inherited.and_then(|p| p.access_log.clone()));
    let access_log_format = f
        .one_of(e, "access_log_format", &["json", "combined"])
        .map(|i| {
            if i == 0 {
                AccessLogFormat::Json
            } else {
                AccessLogFormat::Combined
            }
        })
        .or_else(|| inherited.and_then(|p| p.access_log_format));
    if let (Some(n), None) = (f.get("access_log_format"), &access_log) {
        e.push(
            n.pos,
            &f.path("access_log_format"),
            "access_log_format applies to this domain's or route's own `access_log`, and there is none (the global log's is logging.access_log_format)",
        );
    }
    let own_global = f.boolean(e, "access_log_global");
    let access_log_global = own_global
        .or_else(|| inherited.map(|p| p.access_log_global))
        .unwrap_or(true);
    if let (Some(false), None, Some(n)) = (own_global, &access_log, f.get("access_log_global")) {
        e.push(
            n.pos,
            &f.path("access_log_global"),
            "access_log_global: false needs an `access_log` (these requests would be logged nowhere)",
        );
    }
    // A route's list replaces its domain's (`[]`: none).
    let plugins = match f.get("plugins") {
        Some(n) => plugin_names(e, n, &f.path("plugins"), known_plugins),
        None => inherited.map_or_else(Vec::new, |p| p.plugins.clone()),
    };
    Handling {
        plugins,
        action,
        headers,
        rate_limit,
        cache,
        deny,
        max_body_bytes,
        access_log,
        access_log_global,
        access_log_format,
        compress,
    }
}

/// `plugins: [a, b]`: names of the file's `plugins`, each at most once.
pub(super) fn plugin_names(
    e: &mut Errors,
    node: &crate::config::yaml::Node,
    path: &str,
    known: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, item) in list(e, node, path).unwrap_or_default().iter().enumerate() {
        let item_path = item_path(path, i);
        let Some(name) = string(e, item, &item_path) else {
            continue;
        };
        if !known.contains(&name) {
            let message = if known.is_empty() {
                format!("unknown plugin {name:?}: the file has no `plugins`")
            } else {
                format!(
                    "unknown plugin {name:?}, expected one of: {}",
                    known.join(", ")
                )
            };
            e.push(item.pos, &item_path, message);
        } else if out.contains(&name) {
            e.push(
                item.pos,
                &item_path,
                format!("plugin {name:?} is listed twice"),
            );
        } else {
            out.push(name);
        }
    }
    out
}
