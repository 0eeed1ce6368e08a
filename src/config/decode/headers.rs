//! `headers:` rules on domains and routes, and how a route's rules combine with its domain's.

use super::fields::{is_header_value, is_token, key_path, list, string, Errors, Fields};
use crate::config::keys::Section;
use crate::config::model::{HeaderEdits, HeaderRules};
use crate::config::pattern::template;
use crate::config::yaml::{Node, Value};

/// `route`: other names than `request` and `response` are header matchers (read by
/// `matchers.rs`), not unknown fields. `captures`: the `$N` a value may use.
pub(super) fn rules(
    e: &mut Errors,
    node: &Node,
    path: &str,
    route: bool,
    captures: usize,
) -> HeaderRules {
    let filtered;
    let node = match &node.value {
        Value::Map(entries) if route => {
            let mut only_rules = node.clone();
            only_rules.value = Value::Map(
                entries
                    .iter()
                    .filter(|en| super::matchers::RULE_KEYS.contains(&en.key.as_str()))
                    .cloned()
                    .collect(),
            );
            filtered = only_rules;
            &filtered
        }
        _ => node,
    };
    let Some(f) = Fields::new(e, node, path, Section::Headers) else {
        return HeaderRules::default();
    };
    let mut side = |key: &str| {
        f.get(key)
            .map(|n| edits(e, n, &f.path(key), captures))
            .unwrap_or_default()
    };
    HeaderRules {
        request: side("request"),
        response: side("response"),
    }
}

fn edits(e: &mut Errors, node: &Node, path: &str, captures: usize) -> HeaderEdits {
    let Some(f) = Fields::new(e, node, path, Section::HeaderEdits) else {
        return HeaderEdits::default();
    };
    let mut out = HeaderEdits {
        set: f
            .get("set")
            .map(|n| header_map(e, n, &f.path("set"), captures))
            .unwrap_or_default(),
        add: f
            .get("add")
            .map(|n| header_map(e, n, &f.path("add"), captures))
            .unwrap_or_default(),
        remove: Vec::new(),
    };
    let remove_path = f.path("remove");
    for (i, item) in f
        .get("remove")
        .and_then(|n| list(e, n, &remove_path))
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let item_path = format!("{remove_path}[{i}]");
        let Some(name) = string(e, item, &item_path) else {
            continue;
        };
        if !is_token(&name) {
            e.push(item.pos, &item_path, bad_name(&name));
        } else if !contains(&out.remove, &name) {
            out.remove.push(name);
        }
    }
    out
}

/// A `Name: value` mapping with validated names and values, in file order. Values are
/// templates (`$host`, `$1`, ...; `captures` is how many `$N` exist).
pub(super) fn header_map(
    e: &mut Errors,
    node: &Node,
    path: &str,
    captures: usize,
) -> Vec<(String, String)> {
    let Value::Map(entries) = &node.value else {
        e.push(
            node.pos,
            path,
            format!("expected a mapping, found {}", node.describe()),
        );
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for entry in entries {
        let value_path = key_path(path, &entry.key);
        if !is_token(&entry.key) {
            e.push(entry.key_pos, path, bad_name(&entry.key));
            continue;
        }
        // YAML only rejects exact duplicates; HTTP names are case-insensitive.
        if out
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(&entry.key))
        {
            e.push(
                entry.key_pos,
                path,
                format!(
                    "duplicate header {:?} (header names are case-insensitive)",
                    entry.key
                ),
            );
            continue;
        }
        // An empty value is a legitimate header value here, not an absent one.
        let value = if entry.value.is_null() {
            Some(String::new())
        } else {
            string(e, &entry.value, &value_path)
        };
        let Some(value) = value else {
            continue;
        };
        if !is_header_value(&value) {
            e.push(
                entry.value.pos,
                &value_path,
                "invalid header value: only visible ASCII characters, spaces and tabs are allowed",
            );
            continue;
        }
        if let Err(message) = template::parse(&value, captures) {
            e.push(entry.value.pos, &value_path, message);
            continue;
        }
        out.push((entry.key.clone(), value));
    }
    out
}

fn bad_name(name: &str) -> String {
    format!("invalid header name {name:?}: use letters, digits and !#$%&'*+-.^_`|~")
}

fn contains(names: &[String], name: &str) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// The route's rules over the domain's: per header name the route decides, whatever the
/// operation, so a route can undo a domain's `set` with `remove` and the reverse.
pub(super) fn merge(domain: &HeaderRules, route: &HeaderRules) -> HeaderRules {
    HeaderRules {
        request: merge_edits(&domain.request, &route.request),
        response: merge_edits(&domain.response, &route.response),
    }
}

fn merge_edits(domain: &HeaderEdits, route: &HeaderEdits) -> HeaderEdits {
    let route_names: Vec<String> = route
        .set
        .iter()
        .chain(&route.add)
        .map(|(n, _)| n.clone())
        .chain(route.remove.iter().cloned())
        .collect();
    let keep = |(name, _): &&(String, String)| !contains(&route_names, name);
    let mut out = HeaderEdits {
        set: domain.set.iter().filter(keep).cloned().collect(),
        add: domain.add.iter().filter(keep).cloned().collect(),
        remove: domain
            .remove
            .iter()
            .filter(|n| !contains(&route_names, n))
            .cloned()
            .collect(),
    };
    out.set.extend(route.set.iter().cloned());
    out.add.extend(route.add.iter().cloned());
    out.remove.extend(route.remove.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edits(set: &[(&str, &str)], add: &[(&str, &str)], remove: &[&str]) -> HeaderEdits {
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        HeaderEdits {
            set: pairs(set),
            add: pairs(add),
            remove: remove.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn route_wins_per_header_name() {
        let domain = edits(
            &[("X-A", "domain"), ("X-B", "domain"), ("X-C", "domain")],
            &[("X-D", "domain")],
            &[("Server"), ("X-E")],
        );
        let route = edits(&[("x-a", "route")], &[("X-E", "route")], &["X-B", "X-F"]);
        let merged = merge_edits(&domain, &route);
        assert_eq!(
            merged,
            edits(
                &[("X-C", "domain"), ("x-a", "route")],
                &[("X-D", "domain"), ("X-E", "route")],
                &["Server", "X-B", "X-F"],
            )
        );
    }
}
