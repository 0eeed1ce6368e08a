//! Warnings about a config that loads but does not do what it seems to: today, routes that can
//! never match because a route tried before them takes every request they could see, and
//! `upstream_tls` that verifies nothing or applies to no `https://` backend. `-t` prints them;
//! a load or reload logs them.

use super::model::{Action, Config, Route, Scheme};
use super::ConfigError;

/// Every warning, in file order, positioned like errors.
pub fn warnings(config: &Config) -> Vec<ConfigError> {
    let mut out = Vec::new();
    for (d, domain) in config.domains.iter().enumerate() {
        let mut order: Vec<(usize, &Route)> = domain.routes.iter().enumerate().collect();
        order.sort_by_key(|(_, r)| r.path.rank());
        for (k, (i, route)) in order.iter().enumerate() {
            let shadow = order[..k].iter().find(|(_, earlier)| {
                earlier.matchers.is_empty()
                    && route.path.covered_by(&earlier.path)
                    && covers(earlier.listeners.as_deref(), route.listeners.as_deref())
            });
            if let Some((_, earlier)) = shadow {
                out.push(ConfigError::new(
                    &config.source,
                    route.pos,
                    &format!("domains[{d}].routes[{i}]"),
                    format!(
                        "route {:?} can never match: route {:?} (line {}) is tried first and takes every request it could see",
                        route.name, earlier.name, earlier.pos.line
                    ),
                ));
            }
        }
    }
    upstream_tls(config, &mut out);
    acme_hosts(config, &mut out);
    out.sort_by_key(|e| (e.line, e.col));
    out
}

/// `verify: false` (once per `upstream_tls` map, naming the domain), and an `upstream_tls`
/// whose domain or route sends only to `http://` or `h2c://` backends, where it does nothing.
fn upstream_tls(config: &Config, out: &mut Vec<ConfigError>) {
    let mut seen = Vec::new();
    let mut warned_verify = Vec::new();
    for domain in &config.domains {
        let name = domain.hosts.first().map(|h| h.text()).unwrap_or_default();
        for h in domain.handlings() {
            let Action::Proxy { pool, options } = &h.action else {
                continue;
            };
            let Some(t) = &options.upstream_tls else {
                continue;
            };
            if seen.contains(&(t.pos, *pool)) {
                continue;
            }
            seen.push((t.pos, *pool));
            let https = config
                .pools
                .get(*pool)
                .is_some_and(|p| p.backends.iter().any(|b| b.scheme == Scheme::Https));
            if !https {
                out.push(ConfigError::new(
                    &config.source,
                    t.pos,
                    &t.path,
                    format!(
                        "upstream_tls does nothing for domain {name:?}: it applies to https:// backends only, and these are plain"
                    ),
                ));
            } else if !t.verify && !warned_verify.contains(&t.pos) {
                warned_verify.push(t.pos);
                out.push(ConfigError::new(
                    &config.source,
                    t.pos,
                    &t.path,
                    format!(
                        "upstream_tls.verify is false for domain {name:?}: its https:// backends' certificates are not checked, so anyone on the path can impersonate them"
                    ),
                ));
            }
        }
    }
}

/// Whether listener scope `a` includes every listener of `b` (`None`: every listener).
fn covers(a: Option<&[usize]>, b: Option<&[usize]>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => b.iter().all(|l| a.contains(l)),
    }
}

/// A `tls.acme` host that no domain answers on its listener: strait would obtain and renew a
/// certificate only to answer 404 behind it (usually a typo, or a domain scoped to other
/// listeners).
fn acme_hosts(config: &Config, out: &mut Vec<ConfigError>) {
    for (i, listener) in config.listeners.iter().enumerate() {
        let Some(tls) = &listener.tls else {
            continue;
        };
        for host in &tls.acme {
            let answered = config.domains.iter().any(|d| {
                d.listeners.as_ref().is_none_or(|ls| ls.contains(&i))
                    && d.hosts.iter().any(|p| p.matches(host))
            });
            if !answered {
                out.push(ConfigError::new(
                    &config.source,
                    tls.pos,
                    &format!("listeners[{i}].tls.acme"),
                    format!("no domain answers {host} on this listener: its certificate would front only 404s"),
                ));
            }
        }
    }
}
