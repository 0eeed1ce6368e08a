//! Host patterns: what a domain's `hosts` entries mean, how specific each is, and whether two
//! of them can match the same name (docs/routing.md).
//!
//! - `api.example.com`: that name only.
//! - `*.example.com` or `**.example.com`: one or more labels in front of `example.com` (the
//!   leading `*.` has always meant this in strait, so it keeps that meaning).
//! - `*` inside a label (`cdn-*.example.com`, `a.*.example.com`): any characters within that one
//!   label, never a dot.
//! - `**` as a whole label anywhere else (`api.**.example.com`): one or more labels.
//! - `*` alone: every host (the default domain).
//!
//! Specificity is the count of literal characters (dots included): an exact name beats every
//! pattern, then the pattern with more literal characters wins. Two patterns with the same count
//! that could match one name are a config error, since file order would silently decide.

/// One `hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Lower-cased, no port.
    Exact(String),
    /// `*.example.com` (or `**.example.com`) stored as the suffix `.example.com`.
    Wildcard(String),
    /// Any other pattern with `*` or `**` in it.
    Glob(HostGlob),
    /// `*`
    Any,
}

/// A host pattern with wildcards inside labels or `**` past the first label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGlob {
    /// Lower-cased, as written.
    text: String,
    labels: Vec<Label>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Label {
    /// `**`: one or more whole labels.
    Labels,
    /// Literal characters and `*` (any characters but a dot).
    Chars(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Star,
}

/// The longest host name matched against a pattern (DNS allows 253 characters).
const MAX_HOST: usize = 253;

impl HostPattern {
    /// Parses a `hosts` entry: a name, a pattern, or `*`; ports are refused because hosts
    /// match on the name only.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let lower = text.to_ascii_lowercase();
        if lower.is_empty() {
            return Err("a host cannot be empty".to_string());
        }
        if lower.chars().any(char::is_whitespace) {
            return Err(format!("a host cannot contain spaces, found {text:?}"));
        }
        if lower == "*" {
            return Ok(HostPattern::Any);
        }
        if lower.contains(':') {
            return Err(format!(
                "a host cannot have a port (hosts match on the name only), found {text:?}"
            ));
        }
        let suffix = lower
            .strip_prefix("**.")
            .or_else(|| lower.strip_prefix("*."));
        if let Some(rest) = suffix.filter(|rest| !rest.contains('*')) {
            if !is_name(rest) {
                return Err(format!("invalid host {text:?}"));
            }
            return Ok(HostPattern::Wildcard(format!(".{rest}")));
        }
        if !lower.contains('*') {
            if !is_name(&lower) {
                return Err(format!("invalid host {text:?}"));
            }
            return Ok(HostPattern::Exact(lower));
        }
        let mut labels = Vec::new();
        for label in lower.split('.') {
            if label == "**" {
                labels.push(Label::Labels);
                continue;
            }
            if label.contains("**") {
                return Err(format!(
                    "`**` must be a whole label (`api.**.example.com`), found {text:?}"
                ));
            }
            let literal: String = label.chars().filter(|c| *c != '*').collect();
            if label.is_empty() || !(literal.is_empty() || is_name(&literal)) {
                return Err(format!("invalid host pattern {text:?}"));
            }
            labels.push(Label::Chars(pieces(label)));
        }
        if lower.bytes().all(|b| b == b'*' || b == b'.') {
            return Err(format!(
                "a host pattern needs at least one literal label, found {text:?} (use `*` for every host)"
            ));
        }
        Ok(HostPattern::Glob(HostGlob {
            text: lower,
            labels,
        }))
    }

    /// The pattern as it is written in a config (`*.example.com`, `*`).
    pub fn text(&self) -> String {
        match self {
            HostPattern::Exact(s) => s.clone(),
            HostPattern::Wildcard(s) => format!("*{s}"),
            HostPattern::Glob(g) => g.text.clone(),
            HostPattern::Any => "*".to_string(),
        }
    }

    /// Literal characters: the pattern's rank among the patterns matching one name.
    pub fn specificity(&self) -> usize {
        match self {
            HostPattern::Exact(s) | HostPattern::Wildcard(s) => s.len(),
            HostPattern::Glob(g) => g.text.bytes().filter(|b| *b != b'*').count(),
            HostPattern::Any => 0,
        }
    }

    /// Whether `host` (lower case, no port, no trailing dot) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(s) => s == host,
            HostPattern::Wildcard(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
            HostPattern::Glob(g) => g.matches(host),
            HostPattern::Any => true,
        }
    }

    /// Whether some host name matches both patterns.
    pub fn overlaps(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (HostPattern::Any, _) | (_, HostPattern::Any) => true,
            (HostPattern::Exact(a), b) => b.matches(a),
            (a, HostPattern::Exact(b)) => a.matches(b),
            (a, b) => labels_overlap(&a.labels(), &b.labels()),
        }
    }

    /// The label form (for comparing a `*.suffix` wildcard with a glob).
    fn labels(&self) -> Vec<Label> {
        match self {
            HostPattern::Glob(g) => g.labels.clone(),
            HostPattern::Wildcard(suffix) => std::iter::once(Label::Labels)
                .chain(
                    suffix[1..]
                        .split('.')
                        .map(|l| Label::Chars(vec![Piece::Text(l.to_string())])),
                )
                .collect(),
            HostPattern::Exact(s) => s
                .split('.')
                .map(|l| Label::Chars(vec![Piece::Text(l.to_string())]))
                .collect(),
            HostPattern::Any => vec![Label::Labels],
        }
    }
}

impl HostGlob {
    fn matches(&self, host: &str) -> bool {
        if host.len() > MAX_HOST {
            return false;
        }
        let labels: Vec<&str> = host.split('.').collect();
        match_labels(&self.labels, &labels)
    }
}

fn pieces(label: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    for (i, part) in label.split('*').enumerate() {
        if i > 0 && out.last() != Some(&Piece::Star) {
            out.push(Piece::Star);
        }
        if !part.is_empty() {
            out.push(Piece::Text(part.to_string()));
        }
    }
    out
}

/// Letters, digits, `-`, `_` and non-empty dot-separated labels.
fn is_name(name: &str) -> bool {
    name.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Backtracking over labels; a host has at most 127 labels and a pattern a handful of `**`.
fn match_labels(pattern: &[Label], host: &[&str]) -> bool {
    match pattern.split_first() {
        None => host.is_empty(),
        Some((Label::Labels, rest)) => {
            (1..=host.len()).any(|taken| match_labels(rest, &host[taken..]))
        }
        Some((Label::Chars(pieces), rest)) => match host.split_first() {
            Some((label, others)) => match_chars(pieces, label) && match_labels(rest, others),
            None => false,
        },
    }
}

/// `*` matches any characters (none included) within one label.
fn match_chars(pieces: &[Piece], label: &str) -> bool {
    match pieces.split_first() {
        None => label.is_empty(),
        Some((Piece::Text(t), rest)) => {
            label.starts_with(t.as_str()) && match_chars(rest, &label[t.len()..])
        }
        Some((Piece::Star, rest)) => (0..=label.len())
            .filter(|i| label.is_char_boundary(*i))
            .any(|i| match_chars(rest, &label[i..])),
    }
}

/// Whether two label sequences share a name. `**` takes one or more labels on either side.
fn labels_overlap(a: &[Label], b: &[Label]) -> bool {
    match (a.split_first(), b.split_first()) {
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some((Label::Labels, ra)), Some((Label::Labels, rb))) => {
            labels_overlap(ra, rb) || labels_overlap(a, rb) || labels_overlap(ra, b)
        }
        (Some((Label::Labels, ra)), Some((_, rb))) => {
            labels_overlap(ra, rb) || labels_overlap(a, rb)
        }
        (Some((_, ra)), Some((Label::Labels, rb))) => {
            labels_overlap(ra, rb) || labels_overlap(ra, b)
        }
        (Some((Label::Chars(pa), ra)), Some((Label::Chars(pb), rb))) => {
            chars_overlap(&flatten(pa), &flatten(pb)) && labels_overlap(ra, rb)
        }
    }
}

/// A label pattern as characters, `None` for `*`.
fn flatten(pieces: &[Piece]) -> Vec<Option<u8>> {
    let mut out = Vec::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.extend(t.bytes().map(Some)),
            Piece::Star => out.push(None),
        }
    }
    out
}

/// Whether two single-label globs share a string (each `*`: any run of characters).
fn chars_overlap(a: &[Option<u8>], b: &[Option<u8>]) -> bool {
    // reach[i][j]: a[i..] and b[j..] can still produce the same rest.
    let mut reach = vec![vec![false; b.len() + 1]; a.len() + 1];
    reach[a.len()][b.len()] = true;
    for i in (0..=a.len()).rev() {
        for j in (0..=b.len()).rev() {
            if i == a.len() && j == b.len() {
                continue;
            }
            let ok = match (a.get(i), b.get(j)) {
                (Some(None), _) if reach[i + 1][j] => true,
                (Some(None), Some(_)) => reach[i][j + 1],
                (_, Some(None)) if reach[i][j + 1] => true,
                (Some(_), Some(None)) => reach[i + 1][j],
                (Some(Some(x)), Some(Some(y))) => x == y && reach[i + 1][j + 1],
                _ => false,
            };
            reach[i][j] = ok;
        }
    }
    reach[0][0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> HostPattern {
        HostPattern::parse(text).unwrap()
    }

    #[test]
    fn parsing() {
        assert_eq!(
            p("API.Example.com"),
            HostPattern::Exact("api.example.com".into())
        );
        assert_eq!(
            p("*.example.com"),
            HostPattern::Wildcard(".example.com".into())
        );
        assert_eq!(
            p("**.example.com"),
            HostPattern::Wildcard(".example.com".into())
        );
        assert_eq!(p("*"), HostPattern::Any);
        assert!(matches!(p("cdn-*.example.com"), HostPattern::Glob(_)));
        assert!(matches!(p("api.**.example.com"), HostPattern::Glob(_)));
        assert!(p("*example.com").matches("myexample.com"));
        for bad in [
            "", "a b", "a.com:80", "a..com", "*.", "a.com.", "a**.com", "**", "*.*", "a.*!.com",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching() {
        let cdn = p("cdn-*.example.com");
        assert!(cdn.matches("cdn-1.example.com"));
        assert!(cdn.matches("cdn-.example.com"));
        assert!(!cdn.matches("cdn-1.eu.example.com"));
        assert!(!cdn.matches("www.example.com"));
        let deep = p("api.**.example.com");
        assert!(deep.matches("api.eu.example.com"));
        assert!(deep.matches("api.a.b.example.com"));
        assert!(!deep.matches("api.example.com"));
        let one = p("a.*.example.com");
        assert!(one.matches("a.b.example.com"));
        assert!(!one.matches("a.b.c.example.com"));
        let w = p("*.example.com");
        assert!(w.matches("a.b.example.com"));
        assert!(!w.matches("example.com"));
        assert!(!p("x*.com").matches(&"x".repeat(300)));
    }

    #[test]
    fn specificity_counts_literal_characters() {
        assert!(p("cdn-*.example.com").specificity() > p("*.example.com").specificity());
        assert_eq!(p("*.example.com").specificity(), 12);
        assert_eq!(p("*").specificity(), 0);
    }

    #[test]
    fn overlap() {
        assert!(p("cdn-*.example.com").overlaps(&p("*-cdn.example.com")));
        assert!(!p("cdn-*.example.com").overlaps(&p("img-*.example.com")));
        assert!(p("*.example.com").overlaps(&p("a.*.example.com")));
        assert!(!p("*.example.com").overlaps(&p("*.example.org")));
        assert!(p("api.**.com").overlaps(&p("**.eu.com")));
        assert!(!p("a.*.com").overlaps(&p("a.*.*.com")));
        assert!(p("a.**.com").overlaps(&p("a.*.*.com")));
        assert!(p("a*b.com").overlaps(&p("ab*.com")));
        assert!(p("a*b.com").overlaps(&p("ac*.com")));
        assert!(!p("a*b.com").overlaps(&p("b*.com")));
        assert!(p("x.com").overlaps(&p("*.com")));
        assert!(!p("x.org").overlaps(&p("*.com")));
    }
}
