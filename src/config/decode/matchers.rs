//! A route's request matchers: `methods`, the header names in its `headers` map (beside the
//! `request`/`response` edit rules) and `query`.

use super::fields::{is_header_value, is_token, item_path, key_path, list, string, Errors, Fields};
use crate::config::model::{RequestMatch, ValueMatch};
use crate::config::yaml::{Node, Value};

/// The keys of a route's `headers` map that are edit rules, not header matchers.
pub(super) const RULE_KEYS: [&str; 2] = ["request", "response"];

pub(super) fn read(e: &mut Errors, f: &Fields) -> RequestMatch {
    let mut out = RequestMatch::default();
    if let Some(items) = f.list(e, "methods") {
        let path = f.path("methods");
        if items.is_empty() {
            e.push(
                f.get("methods").map_or(f.node.pos, |n| n.pos),
                &path,
                "an empty methods list would match nothing: leave methods out to match every method",
            );
        }
        for (i, item) in items.iter().enumerate() {
            let Some(name) = string(e, item, &item_path(&path, i)) else {
                continue;
            };
            if !is_token(&name) {
                e.push(
                    item.pos,
                    &item_path(&path, i),
                    format!("{name:?} is not an HTTP method"),
                );
                continue;
            }
            let upper = name.to_ascii_uppercase();
            if !out.methods.contains(&upper) {
                out.methods.push(upper);
            }
        }
    }
    if let Some(Node {
        value: Value::Map(entries),
        ..
    }) = f.get("headers")
    {
        let path = f.path("headers");
        for entry in entries
            .iter()
            .filter(|en| !RULE_KEYS.contains(&en.key.as_str()))
        {
            if !is_token(&entry.key) {
                e.push(
                    entry.key_pos,
                    &path,
                    format!("{:?} is not a header name", entry.key),
                );
                continue;
            }
            let at = key_path(&path, &entry.key);
            if let Some(want) = value_match(e, &entry.value, &at, true) {
                out.headers.push((entry.key.to_ascii_lowercase(), want));
            }
        }
    }
    if let Some(node) = f.get("query") {
        let path = f.path("query");
        match &node.value {
            Value::Map(entries) => {
                for entry in entries {
                    let at = key_path(&path, &entry.key);
                    if let Some(want) = value_match(e, &entry.value, &at, false) {
                        out.query.push((entry.key.clone(), want));
                    }
                }
            }
            Value::Seq(_) => {
                for (i, item) in list(e, node, &path).unwrap_or_default().iter().enumerate() {
                    if let Some(name) = string(e, item, &item_path(&path, i)) {
                        out.query.push((name, ValueMatch::Present));
                    }
                }
            }
            _ => e.push(
                node.pos,
                &path,
                format!(
                    "expected a mapping of NAME: VALUE or a list of names, found {}",
                    node.describe()
                ),
            ),
        }
    }
    out
}

/// `VALUE` (exact) or `{ present: true }`.
fn value_match(e: &mut Errors, node: &Node, path: &str, header: bool) -> Option<ValueMatch> {
    if let Value::Map(entries) = &node.value {
        let present = entries
            .iter()
            .find(|en| en.key == "present")
            .map(|en| super::fields::boolean(e, &en.value, &key_path(path, "present")));
        if entries.len() != 1 || present.is_none() {
            e.push(
                node.pos,
                path,
                "expected a value to match exactly, or { present: true }",
            );
            return None;
        }
        return match present.flatten() {
            Some(true) => Some(ValueMatch::Present),
            Some(false) => {
                e.push(
                    node.pos,
                    path,
                    "present: false is not supported: leave the matcher out",
                );
                None
            }
            None => None,
        };
    }
    let value = string(e, node, path)?;
    if header && !is_header_value(&value) {
        e.push(node.pos, path, format!("invalid header value {value:?}"));
        return None;
    }
    Some(ValueMatch::Equals(value))
}
