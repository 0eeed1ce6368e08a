//! Warnings about a config that loads but does not do what it seems to: today, routes that can
//! never match because a route tried before them takes every request they could see. `-t`
//! prints them; a load or reload logs them.

use super::model::{Config, Route};
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
    out.sort_by_key(|e| (e.line, e.col));
    out
}

/// Whether listener scope `a` includes every listener of `b` (`None`: every listener).
fn covers(a: Option<&[usize]>, b: Option<&[usize]>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => b.iter().all(|l| a.contains(l)),
    }
}
