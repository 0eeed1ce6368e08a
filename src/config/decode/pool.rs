//! A pool's policy (`load_balancer`, `health_check`, `passive_health`, `hash_key`, `sticky`,
//! `retry_budget`): read once for a domain, and for a route over its domain's.

use super::backend::{health_check, strategy};
use super::fields::{is_token, Errors, Fields};
use crate::config::keys::{self, Section};
use crate::config::model::{HashKey, PassiveHealth, PoolPolicy, RetryBudget, Sticky, Strategy};
use crate::config::yaml::{Node, Value};

/// The keys of a pool's policy: a domain or route that answers itself cannot have them.
pub(super) const KEYS: &[&str] = &[
    "backends",
    "load_balancer",
    "health_check",
    "passive_health",
    "hash_key",
    "sticky",
    "retry_budget",
];

/// The policy `f` writes, over `inherited` (a route's domain) or the defaults.
pub(super) fn policy(e: &mut Errors, f: &Fields, inherited: Option<&PoolPolicy>) -> PoolPolicy {
    let base = inherited.cloned().unwrap_or_else(defaults);
    let strategy = f
        .get("load_balancer")
        .and_then(|n| strategy(e, n, &f.path("load_balancer")))
        .unwrap_or(base.strategy);
    let health_check = match f.get("health_check") {
        Some(n) => health_check(e, n, &f.path("health_check")),
        None => base.health_check,
    };
    let passive_health = match f.get("passive_health") {
        Some(n) => passive(e, n, &f.path("passive_health")),
        None => base.passive_health,
    };
    let hash_key = match f.get("hash_key") {
        Some(n) => hash_key(e, n, &f.path("hash_key")).unwrap_or(HashKey::ClientIp),
        None => base.hash_key,
    };
    if f.has("hash_key") && strategy != Strategy::ConsistentHash {
        if let Some(n) = f.get("hash_key") {
            e.push(
                n.pos,
                &f.path("hash_key"),
                "hash_key is only used with load_balancer: consistent_hash",
            );
        }
    }
    let sticky = match f.get("sticky") {
        Some(n) => sticky(e, n, &f.path("sticky")),
        None => base.sticky,
    };
    let retry_budget = match f.get("retry_budget") {
        Some(n) => retry_budget(e, n, &f.path("retry_budget")),
        None => base.retry_budget,
    };
    PoolPolicy {
        strategy,
        health_check,
        passive_health,
        hash_key,
        sticky,
        retry_budget,
    }
}

/// What a pool does when its config says nothing: round robin, no active checks, passive
/// ejection and the retry budget on with the table's defaults.
pub(super) fn defaults() -> PoolPolicy {
    PoolPolicy {
        strategy: Strategy::RoundRobin,
        health_check: None,
        passive_health: Some(passive_defaults()),
        hash_key: HashKey::ClientIp,
        sticky: None,
        retry_budget: Some(RetryBudget {
            percent: keys::default_int(Section::RetryBudget, "percent") as u32,
            min_per_second: keys::default_int(Section::RetryBudget, "min_per_second") as u32,
        }),
    }
}

fn passive_defaults() -> PassiveHealth {
    PassiveHealth {
        consecutive_failures: keys::default_int(Section::PassiveHealth, "consecutive_failures")
            as u32,
        ejection_time: keys::default_duration(Section::PassiveHealth, "ejection_time"),
        max_ejection_time: keys::default_duration(Section::PassiveHealth, "max_ejection_time"),
        max_ejected_percent: keys::default_int(Section::PassiveHealth, "max_ejected_percent")
            as u32,
    }
}

/// `passive_health: false`, `true`, or a map over the defaults.
fn passive(e: &mut Errors, node: &Node, path: &str) -> Option<PassiveHealth> {
    match &node.value {
        Value::Map(_) => {}
        _ => {
            return match super::fields::boolean(e, node, path) {
                Some(true) => Some(passive_defaults()),
                _ => None,
            }
        }
    }
    let f = Fields::new(e, node, path, Section::PassiveHealth)?;
    let d = passive_defaults();
    let out = PassiveHealth {
        consecutive_failures: f
            .int(e, "consecutive_failures")
            .map_or(d.consecutive_failures, |n| n as u32),
        ejection_time: f
            .positive_duration(e, "ejection_time")
            .unwrap_or(d.ejection_time),
        max_ejection_time: f
            .positive_duration(e, "max_ejection_time")
            .unwrap_or(d.max_ejection_time),
        max_ejected_percent: f
            .int(e, "max_ejected_percent")
            .map_or(d.max_ejected_percent, |n| n as u32),
    };
    if out.max_ejection_time < out.ejection_time {
        let at = f.get("max_ejection_time").map_or(node.pos, |n| n.pos);
        e.push(
            at,
            &f.path("max_ejection_time"),
            "max_ejection_time must not be shorter than ejection_time",
        );
    }
    Some(out)
}

/// `hash_key`: exactly one of `header`, `cookie`, `query`, `path: true`, `client_ip: true`.
fn hash_key(e: &mut Errors, node: &Node, path: &str) -> Option<HashKey> {
    let f = Fields::new(e, node, path, Section::HashKey)?;
    let mut found = Vec::new();
    if let Some(name) = f.string(e, "header") {
        if is_token(&name) {
            found.push(HashKey::Header(name.to_ascii_lowercase()));
        } else {
            e.push(
                f.get("header").map_or(node.pos, |n| n.pos),
                &f.path("header"),
                format!("expected a header name, found {name:?}"),
            );
        }
    }
    if let Some(name) = f.string(e, "cookie").filter(|n| !n.is_empty()) {
        found.push(HashKey::Cookie(name));
    }
    if let Some(name) = f.string(e, "query").filter(|n| !n.is_empty()) {
        found.push(HashKey::Query(name));
    }
    if f.boolean(e, "path") == Some(true) {
        found.push(HashKey::Path);
    }
    if f.boolean(e, "client_ip") == Some(true) {
        found.push(HashKey::ClientIp);
    }
    if found.len() != 1 {
        e.push(
            node.pos,
            path,
            "hash_key needs exactly one of: header, cookie, query, path: true, client_ip: true",
        );
        return None;
    }
    found.pop()
}

fn sticky(e: &mut Errors, node: &Node, path: &str) -> Option<Sticky> {
    let f = Fields::new(e, node, path, Section::Sticky)?;
    let cookie = f
        .string(e, "cookie")
        .unwrap_or_else(|| keys::default_text(Section::Sticky, "cookie").to_string());
    let bad_name = !is_token(&cookie);
    if bad_name {
        e.push(
            f.get("cookie").map_or(node.pos, |n| n.pos),
            &f.path("cookie"),
            format!("expected a cookie name, found {cookie:?}"),
        );
    }
    let same_site = match f.one_of(e, "same_site", &["lax", "strict", "none"]) {
        Some(0) => Some("Lax".to_string()),
        Some(1) => Some("Strict".to_string()),
        Some(_) => Some("None".to_string()),
        None => None,
    };
    let ttl = f.positive_duration(e, "ttl");
    if bad_name {
        return None;
    }
    Some(Sticky {
        cookie,
        ttl,
        secure: f
            .boolean(e, "secure")
            .unwrap_or_else(|| keys::default_bool(Section::Sticky, "secure")),
        http_only: f
            .boolean(e, "http_only")
            .unwrap_or_else(|| keys::default_bool(Section::Sticky, "http_only")),
        same_site,
    })
}

/// `retry_budget: false` turns it off; a map sets it.
fn retry_budget(e: &mut Errors, node: &Node, path: &str) -> Option<RetryBudget> {
    if !matches!(node.value, Value::Map(_)) {
        return match super::fields::boolean(e, node, path) {
            Some(true) => defaults().retry_budget,
            _ => None,
        };
    }
    let f = Fields::new(e, node, path, Section::RetryBudget)?;
    Some(RetryBudget {
        percent: f
            .int(e, "percent")
            .map_or(keys::default_int(Section::RetryBudget, "percent"), |n| n)
            as u32,
        min_per_second: f.int(e, "min_per_second").map_or(
            keys::default_int(Section::RetryBudget, "min_per_second"),
            |n| n,
        ) as u32,
    })
}
