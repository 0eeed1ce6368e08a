//! What a domain or route answers itself: `respond` and `redirect`.

use crate::config::keys::{self, Section};
use std::collections::BTreeMap;

use super::fields::{one_of, Errors, Fields};
use super::headers::header_map;
use crate::config::model::{Action, LocationPart, Redirect, Respond};
use crate::config::yaml::Node;

pub(super) fn respond(e: &mut Errors, node: &Node, path: &str) -> Option<Respond> {
    let f = Fields::new(e, node, path, Section::Respond)?;
    let headers = f
        .get("headers")
        .map(|n| header_map(e, n, &f.path("headers")))
        .unwrap_or_default();
    Some(Respond {
        status: f
            .int(e, "status")
            .unwrap_or_else(|| keys::default_int(Section::Respond, "status"))
            as u16,
        body: f.string(e, "body").unwrap_or_default(),
        headers: headers.into_iter().collect::<BTreeMap<_, _>>(),
    })
}

/// A `respond`, `redirect`, `serve` or `drop: true` of a domain or route: the answer it gives
/// instead of proxying. Each excludes the others and the `exclusive` keys (a pool's fields).
pub(super) fn answer(e: &mut Errors, f: &Fields, exclusive: &[&str]) -> Option<Action> {
    let mut found = None;
    if f.boolean(e, "drop") == Some(true) {
        found = Some(Action::Drop);
        if let Some(node) = f.get("drop") {
            for other in exclusive.iter().chain(ANSWERS) {
                if f.has(other) {
                    e.push(
                        node.pos,
                        &f.path("drop"),
                        format!("drop cannot be combined with `{other}`"),
                    );
                }
            }
        }
    }
    for (i, key) in ANSWERS.iter().enumerate() {
        let Some(node) = f.get(key) else {
            continue;
        };
        // Each pair of answers is reported once, at the later key of the table.
        for other in ANSWERS[..i].iter().rev().chain(exclusive) {
            if f.has(other) {
                e.push(
                    node.pos,
                    &f.path(key),
                    format!("{key} cannot be combined with `{other}`"),
                );
            }
        }
        let action = match *key {
            "respond" => respond(e, node, &f.path(key)).map(Action::Respond),
            "redirect" => redirect(e, node, &f.path(key)).map(Action::Redirect),
            _ => super::serve::serve(e, node, &f.path(key)).map(Action::Serve),
        };
        if found.is_none() {
            found = action;
        }
    }
    found
}

/// The keys of answers that take a mapping, in the order they are checked.
pub(super) const ANSWERS: &[&str] = &["respond", "redirect", "serve"];

const REDIRECT_STATUSES: &[&str] = &["301", "302", "303", "307", "308"];

pub(super) fn redirect(e: &mut Errors, node: &Node, path: &str) -> Option<Redirect> {
    let f = Fields::new(e, node, path, Section::Redirect)?;
    f.require(e, "location");
    let status = match f.get("status") {
        None => Some(302),
        Some(n) => one_of(e, n, &f.path("status"), REDIRECT_STATUSES)
            .and_then(|i| REDIRECT_STATUSES[i].parse().ok()),
    };
    let location_node = f.get("location");
    let location = f.string(e, "location").and_then(|text| {
        let at = location_node.map_or(node.pos, |n| n.pos);
        parse_location(&text)
            .map_err(|message| e.push(at, &f.path("location"), message))
            .ok()
    });
    Some(Redirect {
        status: status?,
        location: location?,
    })
}

/// Splits a `location` template into text and `$host` / `$path` / `$query`. A `$` not
/// followed by a letter is kept as is.
pub(super) fn parse_location(text: &str) -> Result<Vec<LocationPart>, String> {
    if text.is_empty() {
        return Err(
            "expected a URL or path like https://example.com$path, found an empty string".into(),
        );
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "a location cannot contain spaces or non-ASCII characters, found {text:?}"
        ));
    }
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let name_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if name_len == 0 || !after.as_bytes()[0].is_ascii_alphabetic() {
            literal.push('$');
            rest = after;
            continue;
        }
        let part = match &after[..name_len] {
            "host" => LocationPart::Host,
            "path" => LocationPart::Path,
            "query" => LocationPart::Query,
            "scheme" => LocationPart::Scheme,
            "port" => LocationPart::Port,
            "uri" => LocationPart::Uri,
            "remote_addr" => LocationPart::RemoteAddr,
            "request_id" => LocationPart::RequestId,
            other => {
                return Err(format!(
                    "unknown variable ${other} in location, expected $scheme, $host, $port, $uri, $path, $query, $remote_addr or $request_id"
                ))
            }
        };
        if !literal.is_empty() {
            parts.push(LocationPart::Text(std::mem::take(&mut literal)));
        }
        parts.push(part);
        rest = &after[name_len..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(LocationPart::Text(literal));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        use LocationPart::*;
        assert_eq!(
            parse_location("https://$host$path$query").unwrap(),
            vec![Text("https://".into()), Host, Path, Query]
        );
        assert_eq!(
            parse_location("/new$path?x=$1").unwrap(),
            vec![Text("/new".into()), Path, Text("?x=$1".into())]
        );
        assert_eq!(
            parse_location("https://a.com/$paths").unwrap_err(),
            "unknown variable $paths in location, expected $scheme, $host, $port, $uri, $path, $query, $remote_addr or $request_id"
        );
        assert!(parse_location("https://a b").is_err());
        assert!(parse_location("").is_err());
    }
}
