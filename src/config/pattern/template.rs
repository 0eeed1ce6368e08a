//! Templates: text with `$variables`, for `redirect` locations, `respond` bodies and headers,
//! `rewrite` and header rules (docs/routing.md). Parsed once at load; an unknown variable or a
//! capture the route's path does not have is a config error.

/// A parsed template.
pub type Template = Vec<TemplatePart>;

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Literal text.
    Text(String),
    /// The request host, without port.
    Host,
    /// The request path.
    Path,
    /// `?` and the query string, or nothing when the request has none.
    Query,
    /// `http` or `https`, as the client connected.
    Scheme,
    /// The port the client addressed (from `Host`), else the listener's.
    Port,
    /// The path and `?query`.
    Uri,
    /// The client's address.
    RemoteAddr,
    /// The request's `X-Request-Id`.
    RequestId,
    /// `$1`..`$9`: a wildcard of the route's `path` glob.
    Capture(u8),
    /// `$ssl_client_s_dn`: the subject DN of the client's verified certificate (`client_auth`),
    /// empty without one.
    SslClientSDn,
    /// `$ssl_client_fingerprint`: its SHA-256, lower-case hex without colons.
    SslClientFingerprint,
}

/// Every variable, as the error for an unknown one lists them.
const VARIABLES: &str = "$scheme, $host, $port, $uri, $path, $query, $remote_addr, $request_id, $ssl_client_s_dn, $ssl_client_fingerprint or $1..$9";

/// Splits `text` into literal text and variables. `captures` is how many `$N` the route's path
/// glob yields. A `$` followed by neither a letter nor a digit stays literal; `$$` is one `$`.
pub fn parse(text: &str, captures: usize) -> Result<Template, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(more) = after.strip_prefix('$') {
            literal.push('$');
            rest = more;
            continue;
        }
        if let Some(d) = after.bytes().next().filter(u8::is_ascii_digit) {
            let n = d - b'0';
            if n == 0 || usize::from(n) > captures {
                return Err(if captures == 0 {
                    format!("${n}: this route's path has no wildcards to capture (use a `path` glob such as /old/**)")
                } else {
                    let have = if captures == 1 {
                        "1 wildcard, so only $1".to_string()
                    } else {
                        format!("{captures} wildcards: $1..${captures}")
                    };
                    format!("${n}: the route's path has {have}")
                });
            }
            if !literal.is_empty() {
                parts.push(TemplatePart::Text(std::mem::take(&mut literal)));
            }
            parts.push(TemplatePart::Capture(n));
            rest = &after[1..];
            continue;
        }
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
            "host" => TemplatePart::Host,
            "path" => TemplatePart::Path,
            "query" => TemplatePart::Query,
            "scheme" => TemplatePart::Scheme,
            "port" => TemplatePart::Port,
            "uri" => TemplatePart::Uri,
            "remote_addr" => TemplatePart::RemoteAddr,
            "request_id" => TemplatePart::RequestId,
            "ssl_client_s_dn" => TemplatePart::SslClientSDn,
            "ssl_client_fingerprint" => TemplatePart::SslClientFingerprint,
            other => return Err(format!("unknown variable ${other}, expected {VARIABLES}")),
        };
        if !literal.is_empty() {
            parts.push(TemplatePart::Text(std::mem::take(&mut literal)));
        }
        parts.push(part);
        rest = &after[name_len..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(TemplatePart::Text(literal));
    }
    Ok(parts)
}

/// The template's text when it has no variables.
pub fn literal(t: &[TemplatePart]) -> Option<String> {
    let mut out = String::new();
    for part in t {
        match part {
            TemplatePart::Text(s) => out.push_str(s),
            _ => return None,
        }
    }
    Some(out)
}

/// Whether the template uses `$1`..`$9`.
pub fn uses_captures(t: &[TemplatePart]) -> bool {
    t.iter().any(|p| matches!(p, TemplatePart::Capture(_)))
}

/// Back to text, as written (`$` in literal text doubled only where it would read as a
/// variable).
pub fn text(t: &[TemplatePart]) -> String {
    let mut out = String::new();
    for part in t {
        let var = match part {
            TemplatePart::Text(s) => {
                let mut chars = s.chars().peekable();
                while let Some(c) = chars.next() {
                    out.push(c);
                    if c == '$'
                        && chars
                            .peek()
                            .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '$')
                    {
                        out.push('$');
                    }
                }
                continue;
            }
            TemplatePart::Host => "$host",
            TemplatePart::Path => "$path",
            TemplatePart::Query => "$query",
            TemplatePart::Scheme => "$scheme",
            TemplatePart::Port => "$port",
            TemplatePart::Uri => "$uri",
            TemplatePart::RemoteAddr => "$remote_addr",
            TemplatePart::RequestId => "$request_id",
            TemplatePart::SslClientSDn => "$ssl_client_s_dn",
            TemplatePart::SslClientFingerprint => "$ssl_client_fingerprint",
            TemplatePart::Capture(n) => {
                out.push('$');
                out.push(char::from(b'0' + n));
                continue;
            }
        };
        out.push_str(var);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use TemplatePart::*;

    #[test]
    fn parsing() {
        assert_eq!(
            parse("https://$host$path$query", 0).unwrap(),
            vec![Text("https://".into()), Host, Path, Query]
        );
        assert_eq!(
            parse("/new/$1?x=$2", 2).unwrap(),
            vec![
                Text("/new/".into()),
                Capture(1),
                Text("?x=".into()),
                Capture(2)
            ]
        );
        assert_eq!(
            parse("cost: 5$ or $$x", 0).unwrap(),
            vec![Text("cost: 5$ or $x".into())]
        );
        assert!(parse("/new/$1", 0).unwrap_err().contains("no wildcards"));
        assert!(parse("/new/$3", 2).is_err());
        assert!(parse("$0", 2).is_err());
        assert_eq!(
            parse("https://a.com/$paths", 0).unwrap_err(),
            format!("unknown variable $paths, expected {VARIABLES}")
        );
    }

    #[test]
    fn text_round_trips() {
        for t in [
            "https://$host$path$query",
            "/new/$1/$2",
            "5$ and $$x",
            "hi $remote_addr\n",
        ] {
            let parsed = parse(t, 2).unwrap();
            assert_eq!(parse(&text(&parsed), 2).unwrap(), parsed, "{t}");
        }
        assert_eq!(
            literal(&parse("plain", 0).unwrap()).as_deref(),
            Some("plain")
        );
        assert_eq!(literal(&parse("$host", 0).unwrap()), None);
    }
}
