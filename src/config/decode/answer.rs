//! What a domain or route answers itself: `respond` and `redirect`.

use crate::config::keys::{self, Section};
use std::collections::BTreeMap;

use super::fields::{one_of, Errors, Fields};
use super::headers::header_map;
use crate::config::model::{Action, Redirect, Respond, Template};
use crate::config::pattern::template;
use crate::config::yaml::Node;

pub(super) fn respond(e: &mut Errors, node: &Node, path: &str, captures: usize) -> Option<Respond> {
    let f = Fields::new(e, node, path, Section::Respond)?;
    // header_map reported any value that is not a template.
    let headers = f
        .get("headers")
        .map(|n| header_map(e, n, &f.path("headers"), captures))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, value)| Some((name, template::parse(&value, captures).ok()?)))
        .collect::<BTreeMap<_, _>>();
    let body = f.string(e, "body").unwrap_or_default();
    let body = match template::parse(&body, captures) {
        Ok(t) => t,
        Err(message) => {
            let at = f.get("body").map_or(node.pos, |n| n.pos);
            e.push(at, &f.path("body"), message);
            Vec::new()
        }
    };
    Some(Respond {
        status: f
            .int(e, "status")
            .unwrap_or_else(|| keys::default_int(Section::Respond, "status"))
            as u16,
        body,
        headers,
    })
}

/// A `respond`, `redirect`, `serve` or `drop: true` of a domain or route: the answer it gives
/// instead of proxying. Each excludes the others and the `exclusive` keys (a pool's fields).
/// `captures`: the `$N` the route's path gives its templates.
pub(super) fn answer(
    e: &mut Errors,
    f: &Fields,
    exclusive: &[&str],
    captures: usize,
) -> Option<Action> {
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
            "respond" => respond(e, node, &f.path(key), captures).map(Action::Respond),
            "redirect" => redirect(e, node, &f.path(key), captures).map(Action::Redirect),
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

pub(super) fn redirect(
    e: &mut Errors,
    node: &Node,
    path: &str,
    captures: usize,
) -> Option<Redirect> {
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
        parse_location(&text, captures)
            .map_err(|message| e.push(at, &f.path("location"), message))
            .ok()
    });
    Some(Redirect {
        status: status?,
        location: location?,
    })
}

/// A `location` template: non-empty, visible ASCII only.
pub(super) fn parse_location(text: &str, captures: usize) -> Result<Template, String> {
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
    template::parse(text, captures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TemplatePart::*;

    #[test]
    fn locations() {
        assert_eq!(
            parse_location("https://$host$path$query", 0).unwrap(),
            vec![Text("https://".into()), Host, Path, Query]
        );
        assert_eq!(
            parse_location("/new/$1", 1).unwrap(),
            vec![Text("/new/".into()), Capture(1)]
        );
        assert!(parse_location("/new$path?x=$1", 0).is_err());
        assert!(parse_location("https://a.com/$paths", 0)
            .unwrap_err()
            .starts_with("unknown variable $paths"));
        assert!(parse_location("https://a b", 0).is_err());
        assert!(parse_location("", 0).is_err());
    }
}
