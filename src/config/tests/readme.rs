//! The README's configuration walk-through cannot drift from the defaults: every key it shows
//! with a value that has a default either shows that default or says on its line
//! `default: X` (or `KEY default: X` when the line holds several keys) with X the default.

use super::super::defaults::{child, value_text};
use super::super::env as vars;
use super::super::keys::{self, DefaultValue, Kind, Section};
use super::super::units;
use super::super::yaml::{self, Node, Value};

const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));

/// The first ```yaml block after the walk-through's heading.
fn walkthrough() -> &'static str {
    let start = README
        .find("## Configuration, walked through")
        .expect("the README has its configuration walk-through");
    let rest = &README[start..];
    let open = rest.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let len = rest[open..].find("```").expect("the block's end");
    &rest[open..open + len]
}

/// Whether `written` means the same value as the key's default.
fn same(kind: Kind, written: &str, default: &str) -> bool {
    let unquote = |t: &str| t.trim().trim_matches('"').to_string();
    let (w, d) = (unquote(written), unquote(default));
    match kind {
        Kind::Duration | Kind::PositiveDuration => {
            matches!((units::parse_duration(&w), units::parse_duration(&d)), (Ok(a), Ok(b)) if a == b)
        }
        Kind::Size => {
            matches!((units::parse_size(&w), units::parse_size(&d)), (Ok(a), Ok(b)) if a == b)
        }
        Kind::Ratio => matches!((w.parse::<f64>(), d.parse::<f64>()), (Ok(a), Ok(b)) if a == b),
        _ => w == d,
    }
}

/// The X of `KEY default: X` or `default: X` in the line's comment.
fn stated_default<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let comment = &line[line.find(" #")?..];
    let at = comment
        .find(&format!("{key} default: "))
        .map(|i| i + key.len() + " default: ".len())
        .or_else(|| comment.find("(default: ").map(|i| i + "(default: ".len()))
        .or_else(|| comment.find("# default: ").map(|i| i + "# default: ".len()))?;
    let value = &comment[at..];
    let end = value
        .find(|c: char| c.is_whitespace() || c == ',' || c == ')')
        .unwrap_or(value.len());
    Some(&value[..end])
}

fn walk(node: &Node, section: Section, lines: &[&str], problems: &mut Vec<String>) {
    let Value::Map(entries) = &node.value else {
        return;
    };
    for e in entries {
        let Some(key) = keys::find(section, &e.key) else {
            problems.push(format!(
                "line {}: `{}` is not a key of {}",
                e.key_pos.line,
                e.key,
                section.path()
            ));
            continue;
        };
        if let Some((sub, is_list)) =
            child(section, &e.key).filter(|_| !matches!(key.kind, Kind::MapOrBool(_)))
        {
            match (&e.value.value, is_list) {
                (Value::Seq(items), true) => {
                    for item in items {
                        walk(item, sub, lines, problems);
                    }
                }
                (_, false) => walk(&e.value, sub, lines, problems),
                _ => {}
            }
            continue;
        }
        let (Value::Scalar(s), Some(default)) = (&e.value.value, value_text(key.default)) else {
            continue;
        };
        if matches!(key.default, DefaultValue::Required | DefaultValue::Unset(_))
            || same(key.kind, &s.text, &default)
        {
            continue;
        }
        let line = lines
            .get(e.key_pos.line.saturating_sub(1))
            .copied()
            .unwrap_or_default();
        match stated_default(line, &e.key) {
            Some(stated) if same(key.kind, stated, &default) => {}
            Some(stated) => problems.push(format!(
                "line {}: `{}` says its default is {stated}, the default is {default}",
                e.key_pos.line, e.key
            )),
            None => problems.push(format!(
                "line {}: `{}: {}` is not the default ({default}); show the default or say `default: {default}` on the line",
                e.key_pos.line, e.key, s.text
            )),
        }
    }
}

#[test]
fn readme_walkthrough_shows_the_defaults() {
    let block = walkthrough();
    let lines: Vec<&str> = block.lines().collect();
    let expanded = vars::expand(block, &|_| Some("x".to_string())).expect("expands");
    let parsed = yaml::parse(&expanded);
    let root = parsed.root.expect("the block is YAML");
    let mut problems = Vec::new();
    walk(&root, Section::Top, &lines, &mut problems);
    assert!(
        problems.is_empty(),
        "README.md's walk-through:\n{}",
        problems.join("\n")
    );
}

/// The check itself catches a wrong default and a wrong `default:` note.
#[test]
fn the_check_catches_drift() {
    let check = |block: &str| {
        let lines: Vec<&str> = block.lines().collect();
        let expanded = vars::expand(block, &|_| None).expect("expands");
        let root = yaml::parse(&expanded).root.expect("yaml");
        let mut problems = Vec::new();
        walk(&root, Section::Top, &lines, &mut problems);
        problems
    };
    assert_eq!(check("server:\n  drain_delay: 5s\n").len(), 1);
    assert_eq!(
        check("server:\n  drain_delay: 5s   # default: 2s\n").len(),
        1
    );
    assert!(check("server:\n  drain_delay: 5s   # default: 1s\n").is_empty());
    assert!(check("server:\n  drain_delay: 1000ms\n").is_empty());
    assert_eq!(
        check("domains:\n  - { hosts: [a], connect_timeout: 2s, read_timeout: 1m }\n").len(),
        1
    );
    assert!(check(
        "domains:\n  - { hosts: [a], connect_timeout: 2s }  # connect_timeout default: 5s\n"
    )
    .is_empty());
}
