//! The JSON Schema (draft 2020-12) of the config file, generated from the key table in
//! `keys.rs`, so the schema, the loader and `docs/config-reference.md` cannot disagree about
//! which keys exist, what they take and their defaults. `docs/strait.schema.json` is this
//! function's output (a unit test keeps it current).
//!
//! The schema describes the file as written, before `${VAR}` expansion, which is what an
//! editor sees. Where YAML is looser than the loader the schema follows the loader: any
//! scalar is accepted as free text (`token: 12345` is the string "12345"), an explicit null
//! means the key is left out, and sizes may be bare numbers. What it cannot say (bounds that
//! span two keys, URL syntax, overlapping listeners) is left to `strait -t`.

use serde_json::{json, Map, Value};

use super::keys::{keys_of, DefaultValue, Item, Kind, Section};
use super::units::{fmt_duration, fmt_size};

/// `<number><unit>` repeated: `250ms`, `10s`, `1h30m`.
const DURATION: &str = "^([0-9]+(ms|h|m|s))+$";
/// Only zeros: `0s`, `0ms0s`; refused where a duration must be longer than zero.
const ZERO_DURATION: &str = "^(0+(ms|h|m|s))+$";
/// A bare number is bytes.
const SIZE: &str = "^[0-9]+(KiB|MiB|GiB|TiB|KB|MB|GB|TB|B)?$";

/// The schema as a JSON value.
pub fn schema() -> Value {
    let mut defs = Map::new();
    for section in Section::ALL {
        if section != Section::Top {
            defs.insert(def_name(section), section_schema(section));
        }
    }
    let mut root = match section_schema(Section::Top) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let mut out = Map::new();
    out.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    out.insert("$id".into(), json!("strait.schema.json"));
    out.insert("title".into(), json!("strait config"));
    out.insert(
        "description".into(),
        json!("strait.yaml, as the loader reads it before ${VAR} expansion. Generated from src/config/keys.rs by `strait config schema`."),
    );
    out.append(&mut root);
    // `domains` may all come from included files, so one of the two is needed.
    out.insert(
        "anyOf".into(),
        json!([{ "required": ["domains"] }, { "required": ["include"] }]),
    );
    // A plugin is either a running service or a program to start, never both.
    if let Some(Value::Object(plugin)) = defs.get_mut(&def_name(Section::Plugin)) {
        plugin.insert(
            "oneOf".into(),
            json!([{ "required": ["url"] }, { "required": ["command"] }]),
        );
    }
    out.insert("$defs".into(), Value::Object(defs));
    Value::Object(out)
}

/// [`schema`] as the text of `docs/strait.schema.json`.
pub fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&schema()).unwrap_or_default();
    text.push('\n');
    text
}

fn def_name(section: Section) -> String {
    // The enum's names are unique, so they make stable, readable `$defs` keys.
    format!("{section:?}")
}

fn def_ref(section: Section) -> Value {
    json!({ "$ref": format!("#/$defs/{}", def_name(section)) })
}

fn section_schema(section: Section) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for key in keys_of(section) {
        let mut prop = kind_schema(key.kind);
        let mut doc = key.doc.to_string();
        match key.default {
            DefaultValue::Required => required.push(json!(key.name)),
            DefaultValue::Unset(what) => {
                doc.push_str(&format!(" (default: {what})"));
                prop = nullable(prop);
            }
            other => {
                if let Some(value) = default_json(other) {
                    set(&mut prop, "default", value);
                }
                prop = nullable(prop);
            }
        }
        set(&mut prop, "description", json!(doc));
        properties.insert(key.name.to_string(), prop);
    }
    let mut out = json!({
        "type": "object",
        "description": section.path(),
        "properties": properties,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        set(&mut out, "required", Value::Array(required));
    }
    out
}

fn kind_schema(kind: Kind) -> Value {
    match kind {
        Kind::Duration => json!({ "type": "string", "pattern": DURATION }),
        Kind::PositiveDuration => json!({
            "type": "string",
            "pattern": DURATION,
            "not": { "pattern": ZERO_DURATION },
        }),
        // `minimum` only constrains numbers and `pattern` only strings.
        Kind::Size => json!({ "type": ["integer", "string"], "minimum": 0, "pattern": SIZE }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::Int { min, max } => json!({ "type": "integer", "minimum": min, "maximum": max }),
        Kind::String => json!({ "type": ["string", "number", "boolean"] }),
        Kind::Path | Kind::Address => json!({ "type": "string" }),
        Kind::OneOf(words) => {
            // `status: 301` is a YAML number; the loader reads it as the word "301".
            let mut values: Vec<Value> = words.iter().map(|w| json!(w)).collect();
            values.extend(
                words
                    .iter()
                    .filter_map(|w| w.parse::<u64>().ok())
                    .map(|n| json!(n)),
            );
            json!({ "enum": values })
        }
        Kind::List(item) => json!({ "type": "array", "items": item_schema(item) }),
        Kind::Map(section) => def_ref(section),
        Kind::TextMap => json!({
            "type": "object",
            "additionalProperties": { "type": ["string", "number", "boolean"] },
        }),
        Kind::MapOrBool(section) => json!({ "anyOf": [{ "type": "boolean" }, def_ref(section)] }),
        Kind::Ratio => json!({ "type": "number", "minimum": 0, "maximum": 1 }),
        Kind::Named(section) => {
            json!({ "type": "object", "additionalProperties": def_ref(section) })
        }
    }
}

fn item_schema(item: Item) -> Value {
    match item {
        Item::Of(section) => def_ref(section),
        Item::OfOrText(section) => json!({ "anyOf": [{ "type": "string" }, def_ref(section)] }),
        Item::Text => json!({ "type": "string" }),
        Item::Status => json!({ "type": "integer", "minimum": 100, "maximum": 599 }),
    }
}

fn default_json(default: DefaultValue) -> Option<Value> {
    Some(match default {
        DefaultValue::Required | DefaultValue::Unset(_) => return None,
        DefaultValue::Duration(d) => json!(fmt_duration(d)),
        DefaultValue::Size(n) => json!(fmt_size(n)),
        DefaultValue::Int(n) => json!(n),
        DefaultValue::Bool(b) => json!(b),
        DefaultValue::Text(t) => json!(t),
        DefaultValue::Number(n) => json!(n.parse::<f64>().ok()?),
    })
}

/// An explicit null means the same as leaving the key out (`token: ${TOKEN:-}`).
fn nullable(schema: Value) -> Value {
    let Value::Object(mut map) = schema else {
        return schema;
    };
    match map.get_mut("type") {
        Some(Value::String(t)) => {
            let t = t.clone();
            map.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(types)) => types.push(json!("null")),
        _ => match map.get_mut("enum") {
            Some(Value::Array(values)) => values.push(Value::Null),
            _ => {
                let inner = Value::Object(map);
                return json!({ "anyOf": [inner, { "type": "null" }] });
            }
        },
    }
    Value::Object(map)
}

fn set(schema: &mut Value, key: &str, value: Value) {
    if let Value::Object(map) = schema {
        map.insert(key.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/strait.schema.json` is the generator's output; `STRAIT_BLESS=1` rewrites it.
    #[test]
    fn the_shipped_schema_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/strait.schema.json");
        let want = schema_text();
        if std::env::var_os("STRAIT_BLESS").is_some() {
            std::fs::write(path, &want).expect("write docs/strait.schema.json");
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/strait.schema.json is out of date: run STRAIT_BLESS=1 cargo test --lib config::schema"
        );
    }

    #[test]
    fn every_section_is_reachable_from_the_top() {
        let text = schema_text();
        for section in Section::ALL {
            // An included file is a document of its own (its schema: `$defs/Included`).
            if section != Section::Top && section != Section::Included {
                let reference = format!("\"#/$defs/{}\"", def_name(section));
                assert!(text.contains(&reference), "{section:?} is never referenced");
            }
        }
    }

    #[test]
    fn keys_defaults_and_enums_are_carried() {
        let s = schema();
        let domain = &s["$defs"]["Domain"]["properties"];
        let lb = &domain["load_balancer"];
        assert_eq!(lb["default"], json!("round_robin"));
        assert!(lb["enum"]
            .as_array()
            .is_some_and(|v| v.contains(&json!("ip_hash"))));
        // `domains` may all come from included files.
        assert_eq!(s["required"], json!(["listeners"]));
        assert_eq!(s["anyOf"][0]["required"], json!(["domains"]));
        assert_eq!(
            s["$defs"]["Backend"]["properties"]["weight"]["maximum"],
            100
        );
        assert_eq!(
            s["$defs"]["Server"]["properties"]["grace_period"]["default"],
            json!("30s")
        );
        assert_eq!(s["$defs"]["Domain"]["additionalProperties"], json!(false));
    }
}
