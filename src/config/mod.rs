//! Loading `strait.yaml` into the validated [`Config`] model.
//!
//! The pipeline is text → `${VAR}` expansion (`env.rs`) → a YAML tree whose every node knows its
//! line and column (`yaml.rs`) → the model (`decode/`). Each stage reports problems as
//! [`ConfigError`]s carrying `file:line:col` of the source text as the user wrote it, so
//! `strait -t` can print one line per problem and a reload can answer with the same list.
//! Decoding never stops at the first problem: a file with five mistakes yields five errors,
//! sorted in file order.
//!
//! # Schema notes beyond design §3
//!
//! * `${VAR}` / `${VAR:-default}` are expanded everywhere in the text, comments included, so a
//!   commented-out `${VAR}` still has to be set (or given a default). `${VAR:-x}` uses `x` when
//!   `VAR` is unset *or empty*; `${VAR}` with an empty `VAR` expands to nothing. `$$` is a
//!   literal `$`; a `$` followed by anything else is kept as is. Defaults cannot nest. The value
//!   is pasted into the YAML before parsing: quote the reference (`"${VAR}"`) when the value may
//!   contain `#`, `: ` or leading special characters. When a variable is missing only the
//!   environment errors are reported, because the text after a failed expansion is not what
//!   the user wrote and would produce misleading follow-up errors.
//! * An explicit empty value (`key:`, `key: ~`, `key: null`) means the same as leaving the key
//!   out. This lets `token: ${TOKEN:-}` switch a setting off from the environment.
//! * Quoted scalars are strings: `threads: "2"` is an error, `token: 12345` is the string
//!   `"12345"`. Booleans are `true`/`false` only (YAML 1.2), not `yes`/`no`.
//! * Durations: `<number><unit>` repeated, units `ms`, `s`, `m`, `h` (`1h30m`, `90s`). A bare
//!   number is rejected because `timeout: 30` is ambiguous.
//! * Sizes: a bare number is bytes; `B`, `KiB`, `MiB`, `GiB`, `TiB` are powers of 1024 and
//!   `KB`, `MB`, `GB`, `TB` powers of 1000, as their names say. Units are case-sensitive.
//! * Anchors, aliases and `<<` merge keys are supported; merged keys never override keys
//!   written in the mapping itself. Tags other than `!!str` are rejected.
//! * `backends: []` is allowed and creates an empty pool (503 until backends are added through
//!   the admin API); leaving `backends` out means the domain answers 404 outside its routes.
//! * A missing `health_check` means no active checks (passive ejection only).
//! * Hosts are names made of letters, digits, `-`, `_` and dots (lower-cased), or patterns
//!   (`*.suffix`, `cdn-*.example.com`, `api.**.example.com`, `*`; see docs/routing.md); IPv6
//!   literals are not accepted as hosts.
//! * A route with `respond` may not also set `backends`, `load_balancer` or `health_check`.
//! * Timeouts, intervals and `rate_limit.per` must be longer than `0s`; `idle_timeout` and the
//!   `server` durations may be `0s`.
//! * A domain's `cache:` map overrides the global settings (or the defaults when there is no
//!   global section); a route's `cache:` map overrides its domain's effective settings. A
//!   `rules` list replaces the inherited rules instead of extending them.
//! * Header rules merge per header name, case-insensitively, route over domain across all
//!   three operations: a route's `remove: [X]` drops the domain's `set`/`add` of `X`, and a
//!   route's `set`/`add` of `X` drops the domain's `remove` of `X`.
//! * A route's `preserve_host: true` drops an inherited `host_header` and vice versa; both in
//!   the same mapping is an error.
//! * Traffic policy (docs/policy.md): `server.trusted_proxies` and `deny` take IPv4/IPv6
//!   networks (`10.0.0.0/8`) or single addresses; host bits beyond the prefix are an error. A
//!   route's `deny` adds to its domain's; its `max_body_bytes` and `rate_limit` replace the
//!   domain's. `redirect` (status 301/302/303/307/308, default 302; `location` a template,
//!   docs/routing.md) and `respond` may be set on a domain or a route, exclusive with each
//!   other and with `backends`, `load_balancer` and `health_check`. `max_connections` is a
//!   per-backend field (`{ addr, weight, max_connections }`). `max_header_bytes` is 1KiB to
//!   512KiB.
//! * Listener, admin and probe addresses must not overlap: the same port on the same IP, or on
//!   an unspecified IP (`0.0.0.0`, `[::]`) of the same family, is an error. Port 0 (pick any
//!   free port) is exempt.

mod decode;
mod defaults;
mod env;
mod include;
mod keys;
mod lint;
pub mod model;
pub mod pattern;
mod schema;
mod show;
mod units;
mod yaml;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;

pub(crate) use decode::parse_l4_addr;
/// Splits a backend URL (`scheme://host[:port]`) as the loader does; the admin API uses it.
pub use decode::parse_url as parse_backend_url;
pub use defaults::defaults_yaml;
pub use keys::reference_markdown;
pub use lint::warnings;
pub use model::*;
pub use schema::{schema as json_schema, schema_text as json_schema_text};
pub use show::show_yaml;

/// One problem in a config file, printed as `file:line:col: path: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or source name) the error is in.
    pub file: String,
    /// 1-based; 0 when the problem is not at a place in the file (e.g. it cannot be read).
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    /// Field path such as `domains[0].backends[1].addr`; empty for problems with the text
    /// itself (syntax, environment variables).
    pub path: String,
    /// What is wrong, and what was expected.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(file: &str, pos: Pos, path: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            line: pos.line,
            col: pos.col,
            path: path.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        if self.path.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads and decodes a config file, expanding `${VAR}` from the process environment.
pub fn load_file(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let source = path.display().to_string();
    let base = path.parent().unwrap_or(Path::new("."));
    match std::fs::read_to_string(path) {
        Ok(text) => load_in(&text, &source, &|name| std::env::var(name).ok(), Some(base)),
        Err(err) => Err(vec![ConfigError::new(
            &source,
            Pos::default(),
            "",
            format!("cannot read: {err}"),
        )]),
    }
}

/// Decodes config text. `source` names the text in errors and becomes [`Config::source`];
/// `env` resolves `${VAR}` references (tests and the admin API pass their own).
pub fn load_str(
    text: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigError>> {
    load_in(text, source, env, None)
}

/// Text to tree: `${VAR}` expansion and YAML, with problems named by `source`.
fn tree(
    text: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) -> Option<yaml::Node> {
    // Editors do not show a byte-order mark, so columns are counted without it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let expanded = match env::expand(text, env) {
        Ok(t) => t,
        Err(problems) => {
            errors.extend(
                problems
                    .into_iter()
                    .map(|(pos, message)| ConfigError::new(source, pos, "", message)),
            );
            return None;
        }
    };
    let parsed = yaml::parse(&expanded);
    errors.extend(
        parsed
            .problems
            .into_iter()
            .map(|p| ConfigError::new(source, p.pos, &p.path, p.message)),
    );
    parsed.root
}

/// The files `root`'s `include` names (relative to `base`), read into trees. Text without a
/// file (`base: None`) cannot include.
fn includes(
    root: &yaml::Node,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
    base: Option<&Path>,
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, yaml::Node)> {
    let Some(node) = root.get("include") else {
        return Vec::new();
    };
    let Some(base) = base else {
        errors.push(ConfigError::new(
            source,
            node.pos,
            "include",
            "include needs a config file to be relative to",
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, (pos, pattern)) in node.strings().into_iter().enumerate() {
        let path = format!("include[{i}]");
        let Some(pattern) = pattern else {
            errors.push(ConfigError::new(
                source,
                pos,
                &path,
                "expected a file path or pattern",
            ));
            continue;
        };
        let files = match include::resolve(base, &pattern) {
            Ok(files) => files,
            Err(message) => {
                errors.push(ConfigError::new(source, pos, &path, message));
                continue;
            }
        };
        for file in files {
            let name = file.display().to_string();
            if out.iter().any(|(n, _)| *n == name) {
                continue;
            }
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    if let Some(t) = tree(&text, &name, env, errors) {
                        out.push((name, t));
                    }
                }
                Err(e) => errors.push(ConfigError::new(
                    &name,
                    Pos::default(),
                    "",
                    format!("cannot read: {e}"),
                )),
            }
        }
    }
    out
}

fn load_in(
    text: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
    base: Option<&Path>,
) -> Result<Config, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let root = tree(text, source, env, &mut errors);
    let included = root
        .as_ref()
        .map(|r| includes(r, source, env, base, &mut errors))
        .unwrap_or_default();
    // No tree means the YAML itself is broken; decoding it would only add noise.
    if let Some(root) = root {
        match decode::decode(&root, source, &included) {
            Ok(mut config) if errors.is_empty() => {
                config.include = include_patterns(&root, base);
                return Ok(config);
            }
            Ok(_) => {}
            Err(more) => errors.extend(more),
        }
    }
    // The main file's problems first, then each included file's; stable, so problems found
    // at the same spot keep the order they were found in.
    errors.sort_by(|a, b| {
        (a.file != source, &a.file, a.line, a.col).cmp(&(b.file != source, &b.file, b.line, b.col))
    });
    Err(errors)
}

/// `include` patterns joined to the including file's folder, for the watcher.
fn include_patterns(root: &yaml::Node, base: Option<&Path>) -> Vec<std::path::PathBuf> {
    let (Some(node), Some(base)) = (root.get("include"), base) else {
        return Vec::new();
    };
    node.strings()
        .into_iter()
        .filter_map(|(_, p)| p.map(|p| base.join(p)))
        .collect()
}

/// The files an `include` pattern (as [`Config::include`] holds it) matches now.
pub fn included_files(pattern: &Path) -> Vec<std::path::PathBuf> {
    include::resolve(Path::new(""), &pattern.to_string_lossy()).unwrap_or_default()
}
