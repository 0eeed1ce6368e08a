//! The global `cache` section and `cache:` on domains and routes.

use crate::config::keys::{self, Section};

use super::fields::{int, item_path, string, Errors, Fields};
use crate::config::model::{CacheRule, CacheSettings, DomainCache, Precompress};
use crate::config::units::fmt_size;
use crate::config::yaml::{Node, Value};

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

/// The settings a `cache` map starts from when there is nothing to inherit.
pub(super) fn defaults() -> CacheSettings {
    let d = |name| keys::default_duration(Section::Cache, name);
    CacheSettings {
        max_bytes: keys::default_size(Section::Cache, "max_bytes"),
        max_entries: keys::default_int(Section::Cache, "max_entries") as usize,
        max_entry_bytes: keys::default_size(Section::Cache, "max_entry_bytes"),
        default_ttl: None,
        max_ttl: d("max_ttl"),
        stale_while_revalidate: d("stale_while_revalidate"),
        stale_if_error: d("stale_if_error"),
        precompress: Precompress {
            enabled: keys::default_bool(Section::Precompress, "enabled"),
            level: keys::default_int(Section::Precompress, "level") as u32,
            min_bytes: keys::default_size(Section::Precompress, "min_bytes"),
        },
        rules: Vec::new(),
        forward_targeted_cache_control: keys::default_bool(
            Section::Cache,
            "forward_targeted_cache_control",
        ),
    }
}

/// A `cache` mapping applied field by field over `base`. `rules` replaces the inherited list
/// rather than extending it, so a domain can drop global rules that do not fit it.
pub(super) fn settings(
    e: &mut Errors,
    node: &Node,
    path: &str,
    base: &CacheSettings,
) -> CacheSettings {
    let mut out = base.clone();
    let Some(f) = Fields::new(e, node, path, Section::Cache) else {
        return out;
    };
    if let Some(v) = f.size(e, "max_bytes") {
        out.max_bytes = v;
    }
    if let Some(v) = f.int(e, "max_entries") {
        out.max_entries = v as usize;
    }
    if let Some(v) = f.size(e, "max_entry_bytes") {
        out.max_entry_bytes = v;
    }
    if let Some(v) = f.duration(e, "default_ttl") {
        out.default_ttl = Some(v);
    }
    let durations = [
        ("max_ttl", &mut out.max_ttl),
        ("stale_while_revalidate", &mut out.stale_while_revalidate),
        ("stale_if_error", &mut out.stale_if_error),
    ];
    for (key, slot) in durations {
        if let Some(v) = f.duration(e, key) {
            *slot = v;
        }
    }
    if let Some(p) = f.get("precompress") {
        precompress(e, p, &f.path("precompress"), &mut out.precompress);
    }
    if let Some(v) = f.boolean(e, "forward_targeted_cache_control") {
        out.forward_targeted_cache_control = v;
    }
    if let Some(items) = f.list(e, "rules") {
        out.rules = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| rule(e, item, &item_path(&f.path("rules"), i), out.max_bytes))
            .collect();
    }
    check_limits(e, &f, &out);
    out
}

fn check_limits(e: &mut Errors, f: &Fields, s: &CacheSettings) {
    if s.max_bytes == 0 {
        let at = f.get("max_bytes").map_or(f.node.pos, |n| n.pos);
        e.push(at, &f.path("max_bytes"), "max_bytes must be larger than 0");
    } else if s.max_entry_bytes > s.max_bytes {
        // Blame whichever of the two this mapping wrote; the other one was inherited.
        let key = if f.has("max_entry_bytes") || !f.has("max_bytes") {
            "max_entry_bytes"
        } else {
            "max_bytes"
        };
        let at = f.get(key).map_or(f.node.pos, |n| n.pos);
        e.push(
            at,
            &f.path(key),
            format!(
                "max_entry_bytes ({}) must not exceed max_bytes ({})",
                fmt_size(s.max_entry_bytes),
                fmt_size(s.max_bytes)
            ),
        );
    }
}

fn precompress(e: &mut Errors, node: &Node, path: &str, out: &mut Precompress) {
    let Some(f) = Fields::new(e, node, path, Section::Precompress) else {
        return;
    };
    if let Some(v) = f.boolean(e, "enabled") {
        out.enabled = v;
    }
    if let Some(v) = f.int(e, "level") {
        out.level = v as u32;
    }
    if let Some(v) = f.size(e, "min_bytes") {
        out.min_bytes = v;
    }
}

fn rule(e: &mut Errors, node: &Node, path: &str, max_bytes: u64) -> Option<CacheRule> {
    let f = Fields::new(e, node, path, Section::CacheRule)?;
    let prefix = f.require(e, "path_prefix").and(f.string(e, "path_prefix"));
    let prefix = prefix.and_then(|p| path_prefix(e, &f, p));
    let mut methods = Vec::new();
    for (i, item) in f.list(e, "methods").unwrap_or_default().iter().enumerate() {
        let item_path = item_path(&f.path("methods"), i);
        let Some(text) = string(e, item, &item_path) else {
            continue;
        };
        let upper = text.to_ascii_uppercase();
        if !METHODS.contains(&upper.as_str()) {
            e.push(
                item.pos,
                &item_path,
                format!(
                    "unknown method {text:?}, expected one of: {}",
                    METHODS.join(", ")
                ),
            );
        } else if !methods.contains(&upper) {
            methods.push(upper);
        }
    }
    let mut statuses = Vec::new();
    for (i, item) in f.list(e, "statuses").unwrap_or_default().iter().enumerate() {
        let item_path = item_path(&f.path("statuses"), i);
        if let Some(status) = int(e, item, &item_path, "status", 100, 599) {
            statuses.push(status as u16);
        }
    }
    let limit = f.size(e, "max_entry_bytes");
    if let (Some(limit), Some(node)) = (limit, f.get("max_entry_bytes")) {
        if limit > max_bytes {
            e.push(
                node.pos,
                &f.path("max_entry_bytes"),
                format!(
                    "max_entry_bytes ({}) must not exceed the cache's max_bytes ({})",
                    fmt_size(limit),
                    fmt_size(max_bytes)
                ),
            );
        }
    }
    Some(CacheRule {
        path_prefix: prefix?,
        enabled: f.boolean(e, "cache").unwrap_or(true),
        ttl: f.duration(e, "ttl"),
        methods,
        statuses,
        max_entry_bytes: limit,
    })
}

/// Prefixes are matched against the request path, which always starts with `/`.
pub(super) fn path_prefix(e: &mut Errors, f: &Fields, prefix: String) -> Option<String> {
    if prefix.starts_with('/') {
        return Some(prefix);
    }
    let at = f.get("path_prefix").map_or(f.node.pos, |n| n.pos);
    e.push(
        at,
        &f.path("path_prefix"),
        format!("path_prefix must start with /, found {prefix:?}"),
    );
    None
}

/// `cache:` on a domain or route. `None` when absent, so routes can inherit.
/// `base` is what a map overrides: the enclosing effective settings.
pub(super) fn section(
    e: &mut Errors,
    node: Option<&Node>,
    path: &str,
    global: Option<&CacheSettings>,
    base: &CacheSettings,
) -> Option<DomainCache> {
    let node = node?;
    if let Value::Map(_) = node.value {
        return Some(DomainCache::Custom(Box::new(settings(e, node, path, base))));
    }
    match &node.value {
        Value::Scalar(s) if s.plain && matches!(s.text.as_str(), "true" | "True" | "TRUE") => {
            // Without a top-level `cache:` section, `true` means the cache with every
            // default setting (as `strait config defaults` prints them), not an error.
            if global.is_none() {
                return Some(DomainCache::Custom(Box::new(defaults())));
            }
            Some(DomainCache::Global)
        }
        Value::Scalar(s) if s.plain && matches!(s.text.as_str(), "false" | "False" | "FALSE") => {
            Some(DomainCache::Off)
        }
        _ => {
            e.push(
                node.pos,
                path,
                format!(
                    "expected true, false or a mapping, found {}",
                    node.describe()
                ),
            );
            None
        }
    }
}
