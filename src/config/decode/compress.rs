//! `compress:` on domains and routes (docs/compression.md).

use super::fields::{item_path, string, Errors, Fields};
use crate::config::keys::{self, Section};
use crate::config::model::{Coding, Compress, TypePattern};
use crate::config::units::fmt_size;
use crate::config::yaml::{Node, Value};

/// The media types compressed when `types` is not written: text and structured text, SVG,
/// icons, WebAssembly and the font formats that are not compressed already.
pub(crate) const DEFAULT_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/*+json",
    "application/javascript",
    "application/xml",
    "application/*+xml",
    "application/wasm",
    "image/svg+xml",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "font/ttf",
    "font/otf",
];

/// The largest `min_bytes`: past it, `compress: false` says what is meant.
const MAX_MIN_BYTES: u64 = 1 << 30;

/// `compress: true`.
pub(crate) fn defaults() -> Compress {
    Compress {
        algorithms: Coding::ALL.to_vec(),
        min_bytes: keys::default_size(Section::Compress, "min_bytes"),
        types: DEFAULT_TYPES
            .iter()
            .map(|t| TypePattern::parse(t).expect("default types parse"))
            .collect(),
    }
}

/// `compress:` on a domain or route: `None` when absent (a route then inherits), `Some(None)`
/// for `false`. A map refines `inherited` (the domain's, for a route) or the defaults.
pub(super) fn section(
    e: &mut Errors,
    node: Option<&Node>,
    path: &str,
    inherited: Option<&Compress>,
) -> Option<Option<Compress>> {
    let node = node?;
    match &node.value {
        Value::Map(_) => {
            let base = inherited.cloned().unwrap_or_else(defaults);
            Some(Some(settings(e, node, path, base)))
        }
        Value::Scalar(s) if s.plain && matches!(s.text.as_str(), "true" | "True" | "TRUE") => {
            Some(Some(inherited.cloned().unwrap_or_else(defaults)))
        }
        Value::Scalar(s) if s.plain && matches!(s.text.as_str(), "false" | "False" | "FALSE") => {
            Some(None)
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

fn settings(e: &mut Errors, node: &Node, path: &str, mut out: Compress) -> Compress {
    let Some(f) = Fields::new(e, node, path, Section::Compress) else {
        return out;
    };
    if let Some(items) = f.list(e, "algorithms") {
        let at = f.path("algorithms");
        if items.is_empty() {
            e.push(
                f.get("algorithms").map_or(f.node.pos, |n| n.pos),
                &at,
                "expected at least one of zstd, br, gzip (`compress: false` turns compression off)",
            );
        }
        let mut list = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = item_path(&at, i);
            let Some(text) = string(e, item, &p) else {
                continue;
            };
            match Coding::ALL
                .into_iter()
                .find(|c| c.as_str().eq_ignore_ascii_case(&text))
            {
                Some(c) if list.contains(&c) => {
                    e.push(item.pos, &p, format!("{text:?} is listed twice"));
                }
                Some(c) => list.push(c),
                None => e.push(
                    item.pos,
                    &p,
                    format!("unknown algorithm {text:?}, expected one of: zstd, br, gzip"),
                ),
            }
        }
        if !list.is_empty() {
            out.algorithms = list;
        }
    }
    if let Some(v) = f.size(e, "min_bytes") {
        if v > MAX_MIN_BYTES {
            e.push(
                f.get("min_bytes").map_or(f.node.pos, |n| n.pos),
                &f.path("min_bytes"),
                format!(
                    "min_bytes ({}) must be at most {} (`compress: false` turns compression off)",
                    fmt_size(v),
                    fmt_size(MAX_MIN_BYTES)
                ),
            );
        } else {
            out.min_bytes = v;
        }
    }
    if let Some(items) = f.list(e, "types") {
        let at = f.path("types");
        if items.is_empty() {
            e.push(
                f.get("types").map_or(f.node.pos, |n| n.pos),
                &at,
                "expected at least one media type (`compress: false` turns compression off)",
            );
        }
        let mut list = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = item_path(&at, i);
            let Some(text) = string(e, item, &p) else {
                continue;
            };
            match TypePattern::parse(&text) {
                Ok(t) if !list.contains(&t) => list.push(t),
                Ok(_) => {}
                Err(why) => e.push(item.pos, &p, format!("bad media type {text:?}: {why}")),
            }
        }
        if !list.is_empty() {
            out.types = list;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_types_parse_and_match() {
        let d = defaults();
        let hit = |ct: &str| d.types.iter().any(|t| t.matches(ct));
        assert!(hit("text/html; charset=utf-8"));
        assert!(hit("TEXT/CSS"));
        assert!(hit("application/vnd.api+json"));
        assert!(hit("image/svg+xml"));
        assert!(!hit("image/png"));
        assert!(!hit("application/octet-stream"));
        assert!(!hit("application/+json"));
        assert!(!hit("nonsense"));
        assert_eq!(d.algorithms, Coding::ALL.to_vec());
    }

    #[test]
    fn routes_inherit_and_refine_their_domain_s() {
        let text = "listeners: [{addr: 127.0.0.1:1}]\ndomains:\n  - hosts: [a]\n    respond: {body: x}\n    compress: {algorithms: [gzip], min_bytes: 1KiB}\n    routes:\n      - {path_prefix: /in, respond: {body: x}}\n      - {path_prefix: /on, respond: {body: x}, compress: true}\n      - {path_prefix: /map, respond: {body: x}, compress: {types: [text/plain]}}\n      - {path_prefix: /off, respond: {body: x}, compress: false}\n";
        let c = crate::config::load_str(text, "t", &|_| None).unwrap();
        let d = &c.domains[0];
        let own = d.handling.compress.clone().unwrap();
        assert_eq!(own.algorithms, [Coding::Gzip]);
        assert_eq!(own.min_bytes, 1024);
        assert_eq!(own.types, defaults().types);
        let route = |i: usize| d.routes[i].handling.compress.clone();
        assert_eq!(route(0).as_ref(), Some(&own));
        assert_eq!(route(1).as_ref(), Some(&own));
        let refined = route(2).unwrap();
        assert_eq!(refined.algorithms, [Coding::Gzip]);
        assert_eq!(refined.min_bytes, 1024);
        assert_eq!(refined.types, [TypePattern::parse("text/plain").unwrap()]);
        assert_eq!(route(3), None);
    }

    #[test]
    fn patterns() {
        assert!(TypePattern::parse("*/*").unwrap().matches("image/png"));
        assert!(TypePattern::parse("Text/*").unwrap().matches("text/plain"));
        assert!(TypePattern::parse("application/*+xml")
            .unwrap()
            .matches("application/atom+xml"));
        for bad in [
            "text",
            "*/json",
            "text/",
            "/json",
            "te xt/html",
            "text/html;q=1",
            "a/*+",
        ] {
            assert!(TypePattern::parse(bad).is_err(), "{bad}");
        }
    }
}
