//! Path patterns: a route's `path_prefix` or `path` (docs/routing.md).
//!
//! - `path_prefix: /api/` matches `/api/...` and, being written with its trailing slash, `/api`
//!   itself, never `/apix`; `path_prefix: /api` is a plain string prefix (`/apix` too).
//! - `path: /health` without wildcards matches that path only.
//! - `path: /api/v1/*` globs: `*` is any characters within one segment (no `/`), `**` is a
//!   whole segment or more (`/old/**` matches everything under `/old/`). Each wildcard captures,
//!   left to right, as `$1`..`$9`.
//!
//! Routes are tried by [`PathPattern::rank`]: exact paths first, then by the length of the
//! literal text before the first wildcard (a prefix's whole text), a `path_prefix` before a glob
//! with the same literal start, then the glob with more literal characters; ties keep file order.

use std::cmp::Reverse;

/// How a route matches the request path (the raw path as received, before percent-decoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// `path_prefix`.
    Prefix(String),
    /// `path` without wildcards.
    Exact(String),
    /// `path` with `*` or `**`.
    Glob(PathGlob),
}

/// A `path` with `*` or `**`.
#[derive(Debug, Clone)]
pub struct PathGlob {
    text: String,
    regex: regex::Regex,
    /// Bytes before the first wildcard.
    literal_start: usize,
    /// Literal bytes in all.
    literal: usize,
    captures: usize,
}

impl PartialEq for PathGlob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for PathGlob {}

/// At most this many wildcards (captures `$1`..`$9`).
const MAX_WILDCARDS: usize = 9;

impl PathPattern {
    /// A `path` value: exact when it has no `*`, else a glob.
    pub fn path(text: &str) -> Result<PathPattern, String> {
        if !text.starts_with('/') {
            return Err(format!("a path must start with /, found {text:?}"));
        }
        if let Some(c) = text
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || *c == '?' || *c == '#')
        {
            return Err(format!(
                "a path cannot contain {c:?} (the query is matched with `query`), found {text:?}"
            ));
        }
        if !text.contains('*') {
            return Ok(PathPattern::Exact(text.to_string()));
        }
        let mut regex = String::from("^");
        let mut wildcards = 0;
        for (i, segment) in text.split('/').enumerate() {
            if i > 0 {
                regex.push('/');
            }
            if segment == "**" {
                regex.push_str("(.*)");
                wildcards += 1;
                continue;
            }
            if segment.contains("**") {
                return Err(format!(
                    "`**` must be a whole segment (`/files/**`), found {text:?}"
                ));
            }
            for (j, part) in segment.split('*').enumerate() {
                if j > 0 {
                    regex.push_str("([^/]*)");
                    wildcards += 1;
                }
                regex.push_str(&regex::escape(part));
            }
        }
        regex.push('$');
        if wildcards > MAX_WILDCARDS {
            return Err(format!(
                "a path has at most {MAX_WILDCARDS} wildcards ($1..$9), found {wildcards} in {text:?}"
            ));
        }
        let regex = regex::Regex::new(&regex).map_err(|e| format!("invalid path {text:?}: {e}"))?;
        Ok(PathPattern::Glob(PathGlob {
            literal_start: text.find('*').unwrap_or(text.len()),
            literal: text.bytes().filter(|b| *b != b'*').count(),
            captures: wildcards,
            text: text.to_string(),
            regex,
        }))
    }

    /// As written in the config.
    pub fn text(&self) -> &str {
        match self {
            PathPattern::Prefix(p) | PathPattern::Exact(p) => p,
            PathPattern::Glob(g) => &g.text,
        }
    }

    /// The config key it is written under.
    pub fn key(&self) -> &'static str {
        match self {
            PathPattern::Prefix(_) => "path_prefix",
            PathPattern::Exact(_) | PathPattern::Glob(_) => "path",
        }
    }

    /// How many `$N` captures a match yields.
    pub fn captures(&self) -> usize {
        match self {
            PathPattern::Glob(g) => g.captures,
            _ => 0,
        }
    }

    /// Whether the request path matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Prefix(p) => {
                path.starts_with(p.as_str())
                    || (p.len() > 1 && p.ends_with('/') && path == &p[..p.len() - 1])
            }
            PathPattern::Exact(p) => path == p,
            PathPattern::Glob(g) => g.regex.is_match(path),
        }
    }

    /// The wildcards' text for `path` (`$1` first), when it matches.
    pub fn capture(&self, path: &str) -> Option<Vec<String>> {
        match self {
            PathPattern::Glob(g) => g.regex.captures(path).map(|c| {
                c.iter()
                    .skip(1)
                    .map(|m| m.map_or(String::new(), |m| m.as_str().to_string()))
                    .collect()
            }),
            other => other.matches(path).then(Vec::new),
        }
    }

    /// The order routes are tried in: smaller first (see the module docs).
    pub fn rank(&self) -> (u8, Reverse<usize>, u8, Reverse<usize>) {
        match self {
            PathPattern::Exact(p) => (0, Reverse(p.len()), 0, Reverse(0)),
            PathPattern::Prefix(p) => (1, Reverse(p.len()), 0, Reverse(0)),
            PathPattern::Glob(g) => (1, Reverse(g.literal_start), 1, Reverse(g.literal)),
        }
    }

    /// Whether every path this pattern matches is also matched by `earlier` (so a route with
    /// this pattern tried after an unconditional `earlier` can never match).
    pub fn covered_by(&self, earlier: &PathPattern) -> bool {
        match earlier {
            PathPattern::Prefix(p) => {
                let start = match self {
                    PathPattern::Exact(x) | PathPattern::Prefix(x) => x.as_str(),
                    PathPattern::Glob(g) => &g.text[..g.literal_start],
                };
                start.starts_with(p.as_str())
            }
            PathPattern::Exact(p) => matches!(self, PathPattern::Exact(x) if x == p),
            PathPattern::Glob(g) => match self {
                PathPattern::Exact(x) => g.regex.is_match(x),
                PathPattern::Glob(other) => other.text == g.text,
                PathPattern::Prefix(_) => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(t: &str) -> PathPattern {
        PathPattern::path(t).unwrap()
    }

    #[test]
    fn prefixes_are_segment_aware_when_written_with_a_slash() {
        let p = PathPattern::Prefix("/api/".into());
        assert!(p.matches("/api/x"));
        assert!(p.matches("/api"));
        assert!(!p.matches("/apix"));
        let bare = PathPattern::Prefix("/api".into());
        assert!(bare.matches("/apix"));
        assert!(PathPattern::Prefix("/".into()).matches("/"));
    }

    #[test]
    fn globs_and_captures() {
        let g = glob("/api/v1/*");
        assert!(g.matches("/api/v1/users"));
        assert!(g.matches("/api/v1/"));
        assert!(!g.matches("/api/v1/users/7"));
        let g = glob("/old/**");
        assert_eq!(
            g.capture("/old/a/b.html"),
            Some(vec!["a/b.html".to_string()])
        );
        assert_eq!(g.capture("/older/a"), None);
        let g = glob("/u/*/files/*.txt");
        assert_eq!(
            g.capture("/u/ann/files/x.y.txt"),
            Some(vec!["ann".to_string(), "x.y".to_string()])
        );
        assert_eq!(g.captures(), 2);
        assert!(glob("/a.b/*").matches("/a.b/c"));
        assert!(!glob("/a.b/*").matches("/aXb/c"));
        assert_eq!(glob("/health"), PathPattern::Exact("/health".into()));
    }

    #[test]
    fn bad_paths() {
        for bad in [
            "api/*",
            "/a**",
            "/a/**b",
            "/a?x=1",
            "/a b",
            "/*/*/*/*/*/*/*/*/*/*",
        ] {
            assert!(PathPattern::path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rank_orders_exact_then_longest_literal_start() {
        let mut v = [
            PathPattern::Prefix("/".into()),
            glob("/api/v1/*"),
            PathPattern::Prefix("/api/".into()),
            glob("/api/*"),
            PathPattern::Exact("/api/v1/ping".into()),
            PathPattern::Prefix("/api/v1/".into()),
        ];
        v.sort_by_key(PathPattern::rank);
        let got: Vec<&str> = v.iter().map(PathPattern::text).collect();
        assert_eq!(
            got,
            [
                "/api/v1/ping",
                "/api/v1/",
                "/api/v1/*",
                "/api/",
                "/api/*",
                "/"
            ]
        );
    }

    #[test]
    fn coverage() {
        let api = PathPattern::Prefix("/api/".into());
        assert!(glob("/api/v1/*").covered_by(&api));
        assert!(!glob("/ap*").covered_by(&api));
        assert!(PathPattern::Exact("/x".into()).covered_by(&glob("/*")));
    }
}
