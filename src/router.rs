//! Host and path routing (docs/routing.md). Hosts: an exact name, then the most specific
//! pattern (`config::pattern::host`), then `*`. Inside the domain, routes in rank order
//! (`config::pattern::path`): the first whose path and matchers all match.

use std::collections::HashMap;

use crate::config::pattern::request::Verdict;
use crate::config::{HostPattern, PathPattern, RequestMatch};

/// Where a request goes: a domain index and, if a route matched, the route index
/// (both in config order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub domain: usize,
    pub route: Option<usize>,
    /// No route took the request, but one would have but for its `methods`: answer 405.
    pub wrong_method: bool,
}

/// The parts of a request routing reads.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The Host (a port and any letter case are fine).
    pub host: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The request's headers.
    pub headers: &'a http::HeaderMap,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// A request of `method` with no headers and no query (for tests and callers that know
    /// only the host and path).
    pub fn simple(host: &'a str, path: &'a str, headers: &'a http::HeaderMap) -> Request<'a> {
        Request {
            host,
            path,
            method: "GET",
            headers,
            query: None,
        }
    }
}

/// One route of a domain as the router tries it.
#[derive(Debug)]
pub struct RouteEntry {
    pub path: PathPattern,
    /// `None` when the route has no matchers (the common case costs one branch).
    pub matchers: Option<RequestMatch>,
    /// The route's index in its domain.
    pub index: usize,
}

/// What a domain gives the router: its hosts and its routes (pattern, matchers), in file order.
/// A route that is `None` is not part of this router (not on this listener); its index stays.
pub(crate) type DomainSpec<'a> = (
    &'a [HostPattern],
    Vec<Option<(&'a PathPattern, &'a RequestMatch)>>,
);

#[derive(Debug, Default)]
pub struct Router {
    exact: HashMap<String, usize>,
    /// Every other pattern but `*`, most specific first (file order among equals).
    patterns: Vec<(HostPattern, usize)>,
    default: Option<usize>,
    /// Per domain: its routes in the order they are tried.
    routes: Vec<Vec<RouteEntry>>,
}

impl Router {
    pub fn new<'a>(domains: impl IntoIterator<Item = DomainSpec<'a>>) -> Router {
        let mut router = Router::default();
        for (index, (hosts, routes)) in domains.into_iter().enumerate() {
            for host in hosts {
                match host {
                    HostPattern::Exact(h) => {
                        router.exact.entry(h.clone()).or_insert(index);
                    }
                    HostPattern::Any => {
                        router.default.get_or_insert(index);
                    }
                    pattern => router.patterns.push((pattern.clone(), index)),
                }
            }
            let mut entries: Vec<RouteEntry> = routes
                .into_iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    let (path, matchers) = r?;
                    Some(RouteEntry {
                        path: path.clone(),
                        matchers: (!matchers.is_empty()).then(|| matchers.clone()),
                        index: i,
                    })
                })
                .collect();
            entries.sort_by_key(|r| r.path.rank());
            router.routes.push(entries);
        }
        router
            .patterns
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.specificity()));
        router
    }

    pub fn route(&self, req: &Request<'_>) -> Option<Hit> {
        let domain = self.domain(req.host)?;
        let mut wrong_method = false;
        for r in self.routes.get(domain).map_or(&[][..], Vec::as_slice) {
            if !r.path.matches(req.path) {
                continue;
            }
            match r.matchers.as_ref().map_or(Verdict::Match, |m| {
                m.check(req.method, req.headers, req.query)
            }) {
                Verdict::Match => {
                    return Some(Hit {
                        domain,
                        route: Some(r.index),
                        wrong_method: false,
                    })
                }
                Verdict::WrongMethod => wrong_method = true,
                Verdict::NoMatch => {}
            }
        }
        Some(Hit {
            domain,
            route: None,
            wrong_method,
        })
    }

    /// The methods of the routes that failed `req` only on their method: the `Allow` of a 405.
    pub fn allowed(&self, domain: usize, req: &Request<'_>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in self.routes.get(domain).map_or(&[][..], Vec::as_slice) {
            let Some(m) = &r.matchers else { continue };
            if r.path.matches(req.path)
                && m.check(req.method, req.headers, req.query) == Verdict::WrongMethod
            {
                for method in &m.methods {
                    if !out.contains(method) {
                        out.push(method.clone());
                    }
                }
            }
        }
        out
    }

    fn domain(&self, host: &str) -> Option<usize> {
        let host = normalize(host);
        let host = host.as_ref();
        if let Some(&d) = self.exact.get(host) {
            return Some(d);
        }
        self.patterns
            .iter()
            .find(|(p, _)| p.matches(host))
            .map(|(_, d)| *d)
            .or(self.default)
    }

    /// Every host pattern that matches `host`, in the order the router ranks them: the first
    /// is the one [`Router::route`] uses (exact, then the most specific pattern, then `*`).
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
        for (pattern, domain) in &self.patterns {
            if pattern.matches(host) {
                out.push(HostMatch {
                    domain: *domain,
                    pattern: pattern.text(),
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

    /// The routes of `domain` in the order they are tried.
    pub fn route_order(&self, domain: usize) -> &[RouteEntry] {
        self.routes.get(domain).map_or(&[], Vec::as_slice)
    }
}

/// A host pattern matching a request's host (see [`Router::host_matches`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMatch {
    pub domain: usize,
    /// As written: `api.example.com`, `*.example.com`, `cdn-*.example.com`, `*`.
    pub pattern: String,
    /// `exact`, `wildcard` or `default`.
    pub kind: &'static str,
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
    use crate::config::ValueMatch;

    fn host(p: &str) -> HostPattern {
        HostPattern::parse(p).unwrap()
    }

    fn prefix(p: &str) -> PathPattern {
        PathPattern::Prefix(p.to_string())
    }

    const NONE: RequestMatch = RequestMatch {
        methods: Vec::new(),
        headers: Vec::new(),
        query: Vec::new(),
    };

    fn router() -> Router {
        let d0 = [host("api.example.com")];
        let d1 = [host("*.example.com")];
        let d2 = [host("*.eu.example.com")];
        let d3 = [host("*")];
        let d4 = [host("cdn-*.example.com")];
        let (p0, p1, p2, p3) = (
            prefix("/"),
            prefix("/auth/"),
            prefix("/auth/admin/"),
            prefix("/ping"),
        );
        Router::new([
            (
                &d0[..],
                vec![Some((&p0, &NONE)), Some((&p1, &NONE)), Some((&p2, &NONE))],
            ),
            (&d1[..], vec![]),
            (&d2[..], vec![]),
            (&d3[..], vec![Some((&p3, &NONE))]),
            (&d4[..], vec![]),
        ])
    }

    fn domain_of(r: &Router, h: &str) -> Option<usize> {
        let headers = http::HeaderMap::new();
        r.route(&Request::simple(h, "/", &headers))
            .map(|hit| hit.domain)
    }

    #[test]
    fn exact_beats_wildcard_and_port_and_case_are_ignored() {
        let r = router();
        assert_eq!(domain_of(&r, "API.Example.com:8080"), Some(0));
        assert_eq!(domain_of(&r, "api.example.com."), Some(0));
    }

    #[test]
    fn most_specific_pattern_wins() {
        let r = router();
        assert_eq!(domain_of(&r, "www.example.com"), Some(1));
        assert_eq!(domain_of(&r, "a.eu.example.com"), Some(2));
        assert_eq!(domain_of(&r, "cdn-7.example.com"), Some(4));
        // The bare suffix is not covered by its own wildcard.
        assert_eq!(domain_of(&r, "example.com"), Some(3));
    }

    #[test]
    fn default_and_unknown() {
        let r = router();
        let headers = http::HeaderMap::new();
        let hit = r.route(&Request::simple("other.org", "/ping", &headers));
        assert_eq!(hit.map(|h| h.route), Some(Some(0)));
        let d = [host("a")];
        let no_default = Router::new([(&d[..], vec![])]);
        assert_eq!(no_default.route(&Request::simple("b", "/", &headers)), None);
        assert_eq!(
            no_default.route(&Request::simple("[::1]:80", "/", &headers)),
            None
        );
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
        let m = r.host_matches("api.example.com");
        assert_eq!((m[0].domain, m[0].kind), (0, "exact"));
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn routes_by_rank_with_matchers_and_405() {
        let d = [host("a.com")];
        let get_only = RequestMatch {
            methods: vec!["GET".into(), "HEAD".into()],
            ..Default::default()
        };
        let canary = RequestMatch {
            headers: vec![("x-canary".into(), ValueMatch::Equals("1".into()))],
            ..Default::default()
        };
        let post = RequestMatch {
            methods: vec!["POST".into()],
            ..Default::default()
        };
        let api_v1 = PathPattern::path("/api/v1/*").unwrap();
        let api = prefix("/api/");
        let exact = PathPattern::path("/api/v1/ping").unwrap();
        let r = Router::new([(
            &d[..],
            vec![
                Some((&api_v1, &get_only)),
                Some((&api, &canary)),
                Some((&exact, &post)),
            ],
        )]);
        let mut headers = http::HeaderMap::new();
        let go = |method: &'static str, path: &'static str, headers: &http::HeaderMap| {
            let req = Request {
                host: "a.com",
                path,
                method,
                headers,
                query: None,
            };
            let hit = r.route(&req).unwrap();
            (hit.route, hit.wrong_method, r.allowed(0, &req))
        };
        assert_eq!(go("GET", "/api/v1/x", &headers).0, Some(0));
        assert_eq!(go("POST", "/api/v1/ping", &headers).0, Some(2));
        let (route, wrong, allow) = go("DELETE", "/api/v1/x", &headers);
        assert_eq!((route, wrong), (None, true));
        assert_eq!(allow, ["GET", "HEAD"]);
        assert_eq!(go("GET", "/api/v2", &headers).0, None);
        headers.insert("x-canary", "1".parse().unwrap());
        assert_eq!(go("GET", "/api/v2", &headers).0, Some(1));
        // A route that takes the request wins over a 405 from a more specific one.
        assert_eq!(go("DELETE", "/api/v1/x", &headers).0, Some(1));
    }

    #[test]
    fn a_route_left_out_keeps_the_others_indices() {
        let d = [host("a.com")];
        let (a, b) = (prefix("/a/"), prefix("/b/"));
        let r = Router::new([(&d[..], vec![None, Some((&b, &NONE))])]);
        let headers = http::HeaderMap::new();
        assert_eq!(
            r.route(&Request::simple("a.com", "/b/x", &headers))
                .unwrap()
                .route,
            Some(1)
        );
        assert_eq!(
            r.route(&Request::simple("a.com", "/a/x", &headers))
                .unwrap()
                .route,
            None
        );
        let _ = a;
    }
}
