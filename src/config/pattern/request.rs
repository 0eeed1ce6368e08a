//! Request matchers of a route beside its path: `methods`, `headers` and `query`
//! (docs/routing.md). A route matches only when all of them do.

/// What a header or query parameter must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    /// One of its values is exactly this.
    Equals(String),
    /// It is there, with any value.
    Present,
}

/// A route's matchers; empty lists match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMatch {
    /// Upper-case method names.
    pub methods: Vec<String>,
    /// Lower-case header names.
    pub headers: Vec<(String, ValueMatch)>,
    /// Query parameter names (decoded).
    pub query: Vec<(String, ValueMatch)>,
}

/// How a request fares against a route's matchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every matcher matched.
    Match,
    /// Everything matched but the method: a 405 if no other route takes the request.
    WrongMethod,
    /// A header or query matcher failed.
    NoMatch,
}

impl RequestMatch {
    /// No matchers at all.
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty() && self.headers.is_empty() && self.query.is_empty()
    }

    /// How a request fares.
    pub fn check(&self, method: &str, headers: &http::HeaderMap, query: Option<&str>) -> Verdict {
        let headers_ok = self.headers.iter().all(|(name, want)| {
            let mut values = headers.get_all(name.as_str()).iter();
            match want {
                ValueMatch::Present => values.next().is_some(),
                ValueMatch::Equals(v) => values.any(|h| h.as_bytes() == v.as_bytes()),
            }
        });
        if !headers_ok || !self.query_ok(query) {
            return Verdict::NoMatch;
        }
        if self.methods.is_empty() || self.methods.iter().any(|m| m == method) {
            Verdict::Match
        } else {
            Verdict::WrongMethod
        }
    }

    fn query_ok(&self, query: Option<&str>) -> bool {
        if self.query.is_empty() {
            return true;
        }
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        self.query.iter().all(|(name, want)| {
            pairs.iter().any(|(k, v)| {
                k == name
                    && match want {
                        ValueMatch::Present => true,
                        ValueMatch::Equals(w) => v == w,
                    }
            })
        })
    }

    /// A short text for names and logs: `GET,HEAD x-canary=1 ?debug`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.methods.is_empty() {
            parts.push(self.methods.join(","));
        }
        for (name, want) in &self.headers {
            parts.push(match want {
                ValueMatch::Present => name.clone(),
                ValueMatch::Equals(v) => format!("{name}={v}"),
            });
        }
        for (name, want) in &self.query {
            parts.push(match want {
                ValueMatch::Present => format!("?{name}"),
                ValueMatch::Equals(v) => format!("?{name}={v}"),
            });
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_matchers_must_match() {
        let m = RequestMatch {
            methods: vec!["GET".into(), "HEAD".into()],
            headers: vec![("x-canary".into(), ValueMatch::Equals("1".into()))],
            query: vec![("debug".into(), ValueMatch::Present)],
        };
        let mut h = http::HeaderMap::new();
        h.insert("x-canary", "1".parse().unwrap());
        assert_eq!(m.check("GET", &h, Some("debug&x=1")), Verdict::Match);
        assert_eq!(m.check("POST", &h, Some("debug")), Verdict::WrongMethod);
        assert_eq!(m.check("GET", &h, Some("x=1")), Verdict::NoMatch);
        assert_eq!(m.check("GET", &h, None), Verdict::NoMatch);
        h.insert("x-canary", "2".parse().unwrap());
        assert_eq!(m.check("GET", &h, Some("debug")), Verdict::NoMatch);
        assert_eq!(m.describe(), "GET,HEAD x-canary=1 ?debug");
        let q = RequestMatch {
            query: vec![("v".into(), ValueMatch::Equals("a b".into()))],
            ..Default::default()
        };
        assert_eq!(q.check("GET", &h, Some("v=a+b")), Verdict::Match);
        assert_eq!(q.check("GET", &h, Some("v=a%20b")), Verdict::Match);
        assert_eq!(q.check("GET", &h, Some("v=ab")), Verdict::NoMatch);
    }
}
