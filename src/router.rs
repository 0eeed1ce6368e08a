//! Host and path routing: exact host, then the most specific `*.suffix` wildcard, then `*`;
//! inside the domain, the longest matching `path_prefix`.

use std::collections::HashMap;

use crate::config::HostPattern;

/// Where a request goes: a domain index and, if a route matched, the route index
/// (both in config order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub domain: usize,
    pub route: Option<usize>,
}

#[derive(Debug, Default)]
pub struct Router {
    exact: HashMap<String, usize>,
    /// `(".example.com", domain)`, longest suffix first so the most specific wins.
    wildcards: Vec<(String, usize)>,
    default: Option<usize>,
    /// Per domain: `(prefix, route index)`, longest prefix first.
    routes: Vec<Vec<(String, usize)>>,
}

impl Router {
    /// `domains` yields, per domain, its host patterns and its routes' path prefixes.
    pub fn new<'a>(domains: impl IntoIterator<Item = (&'a [HostPattern], Vec<&'a str>)>) -> Router {
        let mut router = Router::default();
        for (index, (hosts, prefixes)) in domains.into_iter().enumerate() {
            for host in hosts {
                match host {
                    HostPattern::Exact(h) => {
                        router.exact.entry(h.clone()).or_insert(index);
                    }
                    HostPattern::Wildcard(suffix) => router.wildcards.push((suffix.clone(), index)),
                    HostPattern::Any => {
                        router.default.get_or_insert(index);
                    }
                }
            }
            let mut routes: Vec<(String, usize)> = prefixes
                .into_iter()
                .enumerate()
                .map(|(i, p)| (p.to_string(), i))
                .collect();
            routes.sort_by_key(|r| std::cmp::Reverse(r.0.len()));
            router.routes.push(routes);
        }
        router
            .wildcards
            .sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        router
    }

    /// `host` may carry a port and any letter case; `path` is the request path (no query).
    pub fn route(&self, host: &str, path: &str) -> Option<Hit> {
        let domain = self.domain(host)?;
        let route = self.routes[domain]
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map(|(_, i)| *i);
        Some(Hit { domain, route })
    }

    fn domain(&self, host: &str) -> Option<usize> {
        let host = normalize(host);
        let host = host.as_ref();
        if let Some(&d) = self.exact.get(host) {
            return Some(d);
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| wildcard_matches(suffix, host))
            .map(|(_, d)| *d)
            .or(self.default)
    }

    /// Every host pattern that matches `host`, in the order the router ranks them: the first
    /// is the one [`Router::route`] uses (exact, then the longest `*.suffix`, then `*`).
    /// For `POST /explain`, which shows what won over what.
    pub fn host_matches(&self, host: &str) -> Vec<HostMatch> {
        let host = normalize(host);
        let host = host.as_ref();
        let mut out = Vec::new();
        if let Some(&domain) = self.exact.get(host) {
            out.push(HostMatch {
                domain,
                pattern: host.to_string(),
                kind: "exact",
            });
        }
        for (suffix, domain) in &self.wildcards {
            if wildcard_matches(suffix, host) {
                out.push(HostMatch {
                    domain: *domain,
                    pattern: format!("*{suffix}"),
                    kind: "wildcard",
                });
            }
        }
        if let Some(domain) = self.default {
            out.push(HostMatch {
                domain,
                pattern: "*".to_string(),
                kind: "default",
            });
        }
        out
    }

    /// The route prefixes of `domain` in the order they are tried (longest first), each with
    /// its route index.
    pub fn route_order(&self, domain: usize) -> &[(String, usize)] {
        self.routes.get(domain).map_or(&[], Vec::as_slice)
    }
}

/// A host pattern matching a request's host (see [`Router::host_matches`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMatch {
    pub domain: usize,
    /// As written: `api.example.com`, `*.example.com`, `*`.
    pub pattern: String,
    /// `exact`, `wildcard` or `default`.
    pub kind: &'static str,
}

/// `*.example.com` (stored as `.example.com`) matches `a.example.com` and `a.b.example.com`,
/// not `example.com`.
fn wildcard_matches(suffix: &str, host: &str) -> bool {
    host.len() > suffix.len() && host.ends_with(suffix)
}

/// The host as routing compares it: no port, no trailing dot, lower case.
fn normalize(host: &str) -> std::borrow::Cow<'_, str> {
    let host = strip_port(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    // Most clients send lower-case names; only pay for a copy when one does not.
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // IPv6 literal: `[::1]:8080` → `::1`
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let d0 = [HostPattern::Exact("api.example.com".into())];
        let d1 = [HostPattern::Wildcard(".example.com".into())];
        let d2 = [HostPattern::Wildcard(".eu.example.com".into())];
        let d3 = [HostPattern::Any];
        Router::new([
            (&d0[..], vec!["/", "/auth/", "/auth/admin/"]),
            (&d1[..], vec![]),
            (&d2[..], vec![]),
            (&d3[..], vec!["/ping"]),
        ])
    }

    #[test]
    fn exact_beats_wildcard_and_port_and_case_are_ignored() {
        let r = router();
        assert_eq!(
            r.route("API.Example.com:8080", "/x").map(|h| h.domain),
            Some(0)
        );
        assert_eq!(r.route("api.example.com.", "/x").map(|h| h.domain), Some(0));
    }

    #[test]
    fn most_specific_wildcard_wins() {
        let r = router();
        assert_eq!(r.route("www.example.com", "/").map(|h| h.domain), Some(1));
        assert_eq!(r.route("a.eu.example.com", "/").map(|h| h.domain), Some(2));
        // The bare suffix is not covered by its own wildcard.
        assert_eq!(r.route("example.com", "/").map(|h| h.domain), Some(3));
    }

    #[test]
    fn default_and_unknown() {
        let r = router();
        assert_eq!(
            r.route("other.org", "/ping").map(|h| h.route),
            Some(Some(0))
        );
        let no_default = Router::new([(&[HostPattern::Exact("a".into())][..], vec![])]);
        assert_eq!(no_default.route("b", "/"), None);
        assert_eq!(no_default.route("[::1]:80", "/"), None);
    }

    #[test]
    fn host_matches_are_ranked_as_routing_ranks_them() {
        let r = router();
        let m = r.host_matches("A.EU.example.com:443");
        let got: Vec<(usize, &str)> = m.iter().map(|h| (h.domain, h.pattern.as_str())).collect();
        assert_eq!(
            got,
            [(2, "*.eu.example.com"), (1, "*.example.com"), (3, "*")]
        );
        assert_eq!(
            Some(m[0].domain),
            r.route("a.eu.example.com", "/").map(|h| h.domain)
        );
        let m = r.host_matches("api.example.com");
        assert_eq!((m[0].domain, m[0].kind), (0, "exact"));
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn longest_prefix_wins() {
        let r = router();
        let route = |p| r.route("api.example.com", p).and_then(|h| h.route);
        assert_eq!(route("/auth/admin/x"), Some(2));
        assert_eq!(route("/auth/x"), Some(1));
        assert_eq!(route("/other"), Some(0));
    }
}
