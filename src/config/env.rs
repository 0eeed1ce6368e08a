//! `${VAR}` / `${VAR:-default}` expansion over the raw config text.
//!
//! Expansion runs before YAML parsing (design §2), so the parser sees shifted text whenever a
//! value's length differs from its reference. To keep error positions pointing at what the
//! user wrote, every character of the output remembers where it came from in the source;
//! characters produced by an expansion map to the `$` of their reference.

use crate::config::model::Pos;

/// Expanded text plus, for each of its characters, the source position it came from.
#[derive(Debug)]
pub(super) struct Expanded {
    pub text: String,
    /// One entry per character of `text`, plus one for the end of the text.
    origins: Vec<Pos>,
}

impl Expanded {
    /// Source position of the character at `index` (a character index into `text`, as the
    /// YAML scanner counts them).
    pub(super) fn pos(&self, index: usize) -> Pos {
        let last = self.origins.len().saturating_sub(1);
        self.origins
            .get(index.min(last))
            .copied()
            .unwrap_or(Pos { line: 1, col: 1 })
    }
}

/// Expands every reference; on failure returns each bad reference with its position.
pub(super) fn expand(
    src: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Expanded, Vec<(Pos, String)>> {
    let chars: Vec<char> = src.chars().collect();
    let positions = source_positions(&chars);
    let mut text = String::with_capacity(src.len());
    let mut origins = Vec::with_capacity(chars.len() + 1);
    let mut problems = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let here = positions[i];
        match (chars[i], chars.get(i + 1)) {
            ('$', Some('$')) => {
                text.push('$');
                origins.push(here);
                i += 2;
            }
            ('$', Some('{')) => {
                let Some(len) = chars[i + 2..].iter().position(|&c| c == '}' || c == '\n') else {
                    problems.push((here, "unterminated `${`: missing `}`".to_string()));
                    break;
                };
                if chars[i + 2 + len] == '\n' {
                    problems.push((here, "unterminated `${`: missing `}`".to_string()));
                    i += 2 + len;
                    continue;
                }
                let inner: String = chars[i + 2..i + 2 + len].iter().collect();
                match resolve(&inner, env) {
                    Ok(value) => {
                        for c in value.chars() {
                            text.push(c);
                            origins.push(here);
                        }
                    }
                    Err(message) => problems.push((here, message)),
                }
                i += len + 3;
            }
            (c, _) => {
                text.push(c);
                origins.push(here);
                i += 1;
            }
        }
    }
    origins.push(positions[chars.len()]);
    if problems.is_empty() {
        Ok(Expanded { text, origins })
    } else {
        Err(problems)
    }
}

/// Resolves the inside of `${...}`.
fn resolve(inner: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    if !is_var_name(name) {
        return Err(format!(
            "invalid environment variable reference `${{{inner}}}`: expected ${{NAME}} or ${{NAME:-default}}"
        ));
    }
    match (env(name), default) {
        (Some(value), Some(default)) if value.is_empty() => Ok(default.to_string()),
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_string()),
        (None, None) => Err(format!("environment variable {name} is not set")),
    }
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// 1-based line and column of every character, plus the position just past the end.
fn source_positions(chars: &[char]) -> Vec<Pos> {
    let mut out = Vec::with_capacity(chars.len() + 1);
    let (mut line, mut col) = (1, 1);
    for &c in chars {
        out.push(Pos { line, col });
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    out.push(Pos { line, col });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.com".into()),
            "EMPTY" => Some(String::new()),
            "LINES" => Some("a\nb".into()),
            _ => None,
        }
    }

    fn run(src: &str) -> Result<Expanded, Vec<(Pos, String)>> {
        expand(src, &env)
    }

    fn pos(line: usize, col: usize) -> Pos {
        Pos { line, col }
    }

    #[test]
    fn expands_values_and_defaults() {
        let out = run("a: ${HOST}\nb: ${NOPE:-x y}\nc: ${EMPTY:-d}\ne: ${EMPTY}.\n").unwrap();
        assert_eq!(out.text, "a: example.com\nb: x y\nc: d\ne: .\n");
    }

    #[test]
    fn dollar_escapes_and_lone_dollars() {
        let out = run("a: $$HOST $5 $ ${HOST}$").unwrap();
        assert_eq!(out.text, "a: $HOST $5 $ example.com$");
    }

    #[test]
    fn positions_map_back_to_the_source() {
        let out = run("a: ${HOST} x\n${LINES}: y\n").unwrap();
        assert_eq!(out.text, "a: example.com x\na\nb: y\n");
        // `x` sits after an 11-character value that replaced a 7-character reference.
        assert_eq!(out.pos(15), pos(1, 12));
        // Characters of the value point at the `$`.
        assert_eq!(out.pos(5), pos(1, 4));
        // A value with a newline does not shift the lines after it.
        assert_eq!(out.pos(21), pos(2, 10));
        assert_eq!(out.pos(999), pos(3, 1));
    }

    #[test]
    fn reports_every_bad_reference() {
        let errs = run("a: ${MISSING}\nb: ${1X}\nc: ${OPEN\nd: ${ALSO_MISSING}").unwrap_err();
        assert_eq!(
            errs,
            vec![
                (pos(1, 4), "environment variable MISSING is not set".to_string()),
                (
                    pos(2, 4),
                    "invalid environment variable reference `${1X}`: expected ${NAME} or ${NAME:-default}"
                        .to_string()
                ),
                (pos(3, 4), "unterminated `${`: missing `}`".to_string()),
                (pos(4, 4), "environment variable ALSO_MISSING is not set".to_string()),
            ]
        );
    }
}
