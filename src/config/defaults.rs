//! `strait config defaults`: every key of the file with its default, as YAML, rendered from
//! the key table (`keys.rs`) so it cannot drift from what the decoder does. Keys with a value
//! are written as `key: value`; keys that are unset by default or required are written as
//! comments saying so, and so are optional sections (admin, probe, health_check, ...), so
//! the text stays valid YAML and says exactly what a file without them means.

use super::keys::{self, DefaultValue, Kind, Section};
use super::units;

/// The section a key opens, and whether it is a list of them, as the key table says.
pub(super) fn child(parent: Section, name: &str) -> Option<(Section, bool)> {
    match keys::find(parent, name)?.kind {
        Kind::Map(sub) | Kind::MapOrBool(sub) => Some((sub, false)),
        Kind::List(keys::Item::Of(sub) | keys::Item::OfOrText(sub)) => Some((sub, true)),
        _ => None,
    }
}

/// Sections that exist in effect even when the file omits them: their defaults apply.
fn always_present(section: Section) -> bool {
    matches!(
        section,
        Section::Server
            | Section::Logging
            | Section::Cache
            | Section::Precompress
            | Section::PassiveHealth
            | Section::RetryBudget
            | Section::Tracing
    )
}

/// A default as a YAML value, when it has one.
pub(crate) fn value_text(default: DefaultValue) -> Option<String> {
    Some(match default {
        DefaultValue::Required | DefaultValue::Unset(_) => return None,
        DefaultValue::Duration(d) => units::fmt_duration(d),
        DefaultValue::Size(n) => units::fmt_size(n),
        DefaultValue::Int(n) => n.to_string(),
        DefaultValue::Bool(b) => b.to_string(),
        DefaultValue::Text("") => "\"\"".to_string(),
        DefaultValue::Text(t)
            if t.starts_with('/') || t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            t.to_string()
        }
        DefaultValue::Text(t) => format!("{t:?}"),
        DefaultValue::Number(n) => n.to_string(),
    })
}

/// The whole file with every default.
pub fn defaults_yaml() -> String {
    let mut out = String::from(
        "# strait: every config key with its default (`strait config defaults`).\n\
         # Commented keys are unset or required; commented sections are off unless written.\n",
    );
    section(&mut out, Section::Top, 0, false);
    out
}

fn section(out: &mut String, s: Section, indent: usize, commented: bool) {
    // The route's copies of the domain's keys are documented once, under the domain.
    let shared_with_domain = |name: &str| {
        s == Section::Route && keys::find(Section::Domain, name).is_some() && name != "routes"
    };
    for k in keys::keys_of(s) {
        if shared_with_domain(k.name) {
            continue;
        }
        // A list item's first key carries the `- `.
        let pad = " ".repeat(indent);
        let lead = |out: &mut String, comment: bool| {
            out.push_str(&pad);
            if comment {
                out.push_str("# ");
            }
        };
        // A map of named sections (`plugins`): off unless written, each entry by its name.
        if let Kind::Named(sub) = k.kind {
            lead(out, true);
            out.push_str(&format!("{}:  # unset: {}\n", k.name, k.doc));
            lead(out, true);
            out.push_str("  NAME:  # each entry, by its name:\n");
            section(out, sub, indent + 4, true);
            continue;
        }
        // A map-or-boolean key opens its section when it is on by default (passive_health,
        // retry_budget); off by default (a domain's `cache`) it is shown as the boolean.
        let opens = child(s, k.name).filter(|_| {
            !matches!(k.kind, Kind::MapOrBool(_)) || k.default == DefaultValue::Bool(true)
        });
        match opens {
            Some((sub, is_list)) => {
                // `domains` is required unless included files bring them: shown as required.
                let conditional =
                    matches!(k.default, DefaultValue::Unset(w) if w.starts_with("required"));
                let live = !commented
                    && (always_present(sub) || k.default == DefaultValue::Required || conditional);
                lead(out, !live);
                let why = match k.default {
                    DefaultValue::Unset(what) if conditional => format!("  # {what}"),
                    DefaultValue::Unset(_) if live => {
                        "  # may be omitted: these defaults apply".to_string()
                    }
                    DefaultValue::Unset(what) => format!("  # unset: {what}"),
                    DefaultValue::Required => "  # required".to_string(),
                    _ => String::new(),
                };
                out.push_str(&format!("{}:{why}\n", k.name));
                if is_list {
                    out.push_str(&pad);
                    if !live {
                        out.push_str("# ");
                    }
                    out.push_str("  - # each item:\n");
                    section(out, sub, indent + 4, !live);
                } else {
                    section(out, sub, indent + 2, !live);
                }
            }
            None => {
                let value = value_text(k.default);
                lead(out, commented || value.is_none());
                match (value, k.default) {
                    (Some(v), _) => out.push_str(&format!("{}: {v}", k.name)),
                    (None, DefaultValue::Unset(what)) => {
                        out.push_str(&format!("{}:  (unset: {what})", k.name))
                    }
                    (None, _) => out.push_str(&format!("{}:  (required)", k.name)),
                }
                out.push_str(&format!("  # {}\n", k.doc));
            }
        }
    }
    if s == Section::Route {
        out.push_str(&" ".repeat(indent));
        out.push_str(
            "# ...and every key of a domain but hosts and routes (inherited when unset)\n",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key with a value shows it, and the text is YAML the loader's parser reads.
    #[test]
    fn every_default_is_printed_and_the_text_parses() {
        let text = defaults_yaml();
        for k in keys::KEYS {
            // On by default, these are shown as their section (with its keys' values).
            if matches!(k.kind, Kind::MapOrBool(_)) && k.default == DefaultValue::Bool(true) {
                continue;
            }
            if let Some(v) = value_text(k.default) {
                assert!(
                    text.contains(&format!("{}: {v}", k.name)),
                    "{} = {v} missing:\n{text}",
                    k.name
                );
            }
        }
        let expanded = crate::config::env::expand(&text, &|_| None).expect("no ${VAR} in it");
        let parsed = crate::config::yaml::parse(&expanded);
        let problems: Vec<String> = parsed.problems.iter().map(|p| p.message.clone()).collect();
        assert!(problems.is_empty(), "{problems:?}\n{text}");
        assert!(text.contains("drain_delay: 1s"));
        assert!(text.contains("connect_timeout: 5s"));
        assert!(text.contains("# default_ttl:  (unset"));
    }
}
