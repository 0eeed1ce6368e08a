//! Typed reads from the YAML tree. Every reader takes the node and its field path, pushes a
//! positioned error when the node does not fit, and returns `None` then, so callers can fall
//! back to a placeholder and keep going to find the next problem.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::keys::{self, Section};
use crate::config::model::Pos;
use crate::config::units;
use crate::config::yaml::{Entry, Node, Value};
use crate::config::ConfigError;

pub(super) struct Errors {
    file: String,
    list: Vec<ConfigError>,
    /// Where `rate_limit.scope: cluster` was written (file, position, path): an error unless
    /// the file also has `cluster.redis`, which is only known once everything is read.
    cluster_limits: Vec<(String, Pos, String)>,
}

impl Errors {
    pub(super) fn new(file: &str) -> Self {
        Errors {
            file: file.to_string(),
            list: Vec::new(),
            cluster_limits: Vec::new(),
        }
    }

    /// Notes a `scope: cluster` at `pos`, checked against `cluster.redis` at the end.
    pub(super) fn note_cluster_limit(&mut self, pos: Pos, path: &str) {
        self.cluster_limits
            .push((self.file.clone(), pos, path.to_string()));
    }

    pub(super) fn take_cluster_limits(&mut self) -> Vec<(String, Pos, String)> {
        std::mem::take(&mut self.cluster_limits)
    }

    pub(super) fn push(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.list
            .push(ConfigError::new(&self.file, pos, path, message));
    }

    /// The file problems are reported in.
    pub(super) fn file(&self) -> &str {
        &self.file
    }

    /// Reports into `file` from now on (an included file); returns the previous name.
    pub(super) fn set_file(&mut self, file: &str) -> String {
        std::mem::replace(&mut self.file, file.to_string())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(super) fn into_vec(self) -> Vec<ConfigError> {
        self.list
    }
}

pub(super) fn key_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

pub(super) fn item_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// A mapping whose keys have been checked against the fields it may have.
pub(super) struct Fields<'a> {
    pub node: &'a Node,
    pub path: String,
    section: Section,
    entries: &'a [Entry],
}

impl<'a> Fields<'a> {
    /// Checks that `node` is a mapping with only the keys the table (`config::keys`) allows
    /// in `section`; unknown keys are reported (at the key) but do not prevent reading the
    /// known ones.
    pub(super) fn new(
        e: &mut Errors,
        node: &'a Node,
        path: &str,
        section: Section,
    ) -> Option<Self> {
        let Value::Map(entries) = &node.value else {
            e.push(
                node.pos,
                path,
                format!("expected a mapping, found {}", node.describe()),
            );
            return None;
        };
        for entry in entries {
            if keys::find(section, &entry.key).is_none() {
                let allowed: Vec<&str> = keys::keys_of(section).map(|k| k.name).collect();
                e.push(
                    entry.key_pos,
                    path,
                    format!(
                        "unknown field `{}`, expected one of: {}",
                        entry.key,
                        allowed.join(", ")
                    ),
                );
            }
        }
        Some(Fields {
            node,
            path: path.to_string(),
            section,
            entries,
        })
    }

    /// The value of `key`, treating an explicit null like a missing key.
    pub(super) fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|entry| entry.key == key)
            .map(|entry| &entry.value)
            .filter(|node| !node.is_null())
    }

    pub(super) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub(super) fn path(&self, key: &str) -> String {
        key_path(&self.path, key)
    }

    /// Like [`Fields::get`], reporting `missing field` at the mapping when absent.
    pub(super) fn require(&self, e: &mut Errors, key: &str) -> Option<&'a Node> {
        let found = self.get(key);
        if found.is_none() {
            e.push(self.node.pos, &self.path, format!("missing field `{key}`"));
        }
        found
    }

    pub(super) fn string(&self, e: &mut Errors, key: &str) -> Option<String> {
        self.get(key).and_then(|n| string(e, n, &self.path(key)))
    }

    pub(super) fn boolean(&self, e: &mut Errors, key: &str) -> Option<bool> {
        self.get(key).and_then(|n| boolean(e, n, &self.path(key)))
    }

    /// An integer in `lo..=hi`; the range message names the field by its key.
    /// An integer within the bounds the key table gives `key`.
    pub(super) fn int(&self, e: &mut Errors, key: &str) -> Option<u64> {
        let (lo, hi) = keys::int_bounds(self.section, key);
        self.get(key)
            .and_then(|n| int(e, n, &self.path(key), key, lo, hi))
    }

    pub(super) fn duration(&self, e: &mut Errors, key: &str) -> Option<Duration> {
        self.get(key).and_then(|n| duration(e, n, &self.path(key)))
    }

    /// A duration that must be longer than zero (timeouts, intervals).
    pub(super) fn positive_duration(&self, e: &mut Errors, key: &str) -> Option<Duration> {
        let node = self.get(key)?;
        let value = duration(e, node, &self.path(key))?;
        if value.is_zero() {
            e.push(
                node.pos,
                &self.path(key),
                format!("{key} must be longer than 0s"),
            );
            return None;
        }
        Some(value)
    }

    pub(super) fn size(&self, e: &mut Errors, key: &str) -> Option<u64> {
        self.get(key).and_then(|n| size(e, n, &self.path(key)))
    }

    pub(super) fn file_path(&self, e: &mut Errors, key: &str) -> Option<PathBuf> {
        let node = self.get(key)?;
        let text = string(e, node, &self.path(key))?;
        if text.is_empty() {
            e.push(
                node.pos,
                &self.path(key),
                "expected a file path, found an empty string",
            );
            return None;
        }
        Some(PathBuf::from(text))
    }

    /// Index into `options` of the value of `key`.
    pub(super) fn one_of(&self, e: &mut Errors, key: &str, options: &[&str]) -> Option<usize> {
        self.get(key)
            .and_then(|n| one_of(e, n, &self.path(key), options))
    }

    pub(super) fn list(&self, e: &mut Errors, key: &str) -> Option<&'a [Node]> {
        self.get(key).and_then(|n| list(e, n, &self.path(key)))
    }

    pub(super) fn addr(&self, e: &mut Errors, key: &str) -> Option<(SocketAddr, Pos)> {
        let node = self.get(key)?;
        socket_addr(e, node, &self.path(key)).map(|a| (a, node.pos))
    }
}

/// Any non-null scalar, quoted or not: `token: 12345` is the string `"12345"`.
pub(super) fn string(e: &mut Errors, node: &Node, path: &str) -> Option<String> {
    match &node.value {
        Value::Scalar(s) if !node.is_null() => Some(s.text.clone()),
        _ => {
            e.push(
                node.pos,
                path,
                format!("expected a string, found {}", node.describe()),
            );
            None
        }
    }
}

/// A plain scalar's text; quoted scalars are strings and never numbers or booleans.
fn plain(node: &Node) -> Option<&str> {
    match &node.value {
        Value::Scalar(s) if s.plain => Some(&s.text),
        _ => None,
    }
}

pub(super) fn boolean(e: &mut Errors, node: &Node, path: &str) -> Option<bool> {
    match plain(node) {
        Some("true" | "True" | "TRUE") => Some(true),
        Some("false" | "False" | "FALSE") => Some(false),
        _ => {
            e.push(
                node.pos,
                path,
                format!("expected true or false, found {}", node.describe()),
            );
            None
        }
    }
}

pub(super) fn int(
    e: &mut Errors,
    node: &Node,
    path: &str,
    label: &str,
    lo: u64,
    hi: u64,
) -> Option<u64> {
    let text = plain(node).unwrap_or_default();
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        e.push(
            node.pos,
            path,
            format!("expected an integer, found {}", node.describe()),
        );
        return None;
    }
    // Anything unparsable here is too large for u64, hence out of range too.
    match text.parse::<u64>() {
        Ok(value) if (lo..=hi).contains(&value) => Some(value),
        _ => {
            let shown = text.strip_prefix('+').unwrap_or(text);
            e.push(
                node.pos,
                path,
                format!("{label} must be between {lo} and {hi}, found {shown}"),
            );
            None
        }
    }
}

/// Quoted or plain text: `"10s"` and `10s` mean the same.
fn unit_text(node: &Node) -> Option<&str> {
    match &node.value {
        Value::Scalar(s) if !node.is_null() => Some(&s.text),
        _ => None,
    }
}

pub(super) fn duration(e: &mut Errors, node: &Node, path: &str) -> Option<Duration> {
    let Some(text) = unit_text(node) else {
        e.push(
            node.pos,
            path,
            format!("expected a duration like 10s, found {}", node.describe()),
        );
        return None;
    };
    units::parse_duration(text)
        .map_err(|message| e.push(node.pos, path, message))
        .ok()
}

pub(super) fn size(e: &mut Errors, node: &Node, path: &str) -> Option<u64> {
    let Some(text) = unit_text(node) else {
        e.push(
            node.pos,
            path,
            format!("expected a size like 64KiB, found {}", node.describe()),
        );
        return None;
    };
    units::parse_size(text)
        .map_err(|message| e.push(node.pos, path, message))
        .ok()
}

pub(super) fn one_of(e: &mut Errors, node: &Node, path: &str, options: &[&str]) -> Option<usize> {
    let text = string(e, node, path)?;
    let found = options.iter().position(|o| *o == text);
    if found.is_none() {
        e.push(
            node.pos,
            path,
            format!(
                "unknown value {text:?}, expected one of: {}",
                options.join(", ")
            ),
        );
    }
    found
}

pub(super) fn list<'a>(e: &mut Errors, node: &'a Node, path: &str) -> Option<&'a [Node]> {
    match &node.value {
        Value::Seq(items) => Some(items),
        _ => {
            e.push(
                node.pos,
                path,
                format!("expected a list, found {}", node.describe()),
            );
            None
        }
    }
}

/// `IP:port`; names are refused because a listener binds before any resolver is trusted.
pub(super) fn socket_addr(e: &mut Errors, node: &Node, path: &str) -> Option<SocketAddr> {
    let text = string(e, node, path)?;
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let hint = match text.rsplit_once(':') {
        None => " (missing :port)",
        Some((host, port)) if port.parse::<u16>().is_err() => {
            if host.is_empty() {
                " (missing IP address)"
            } else {
                " (invalid port)"
            }
        }
        Some((host, _)) if host.contains(':') && !host.starts_with('[') => {
            " (put IPv6 addresses in brackets, e.g. [::1]:8080)"
        }
        Some(_) => " (use an IP address, not a host name)",
    };
    e.push(
        node.pos,
        path,
        format!("expected IP:port like 0.0.0.0:8080, found {text:?}{hint}"),
    );
    None
}

/// Header field names are RFC 9110 tokens.
pub(super) fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Header field values: visible ASCII, spaces and tabs; notably no CR/LF.
pub(super) fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
}
