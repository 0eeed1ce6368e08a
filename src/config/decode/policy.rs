//! Per-request policies that need no backend: `respond` and `rate_limit`.

use std::collections::BTreeMap;

use super::fields::{is_token, Errors, Fields};
use super::headers::header_map;
use crate::config::model::{RateKey, RateLimit, Respond};
use crate::config::yaml::Node;

const RESPOND_KEYS: &[&str] = &["status", "body", "headers"];
const RATE_KEYS: &[&str] = &["requests", "per", "key"];

pub fn respond(e: &mut Errors, node: &Node, path: &str) -> Option<Respond> {
    let f = Fields::new(e, node, path, RESPOND_KEYS)?;
    let headers = f
        .get("headers")
        .map(|n| header_map(e, n, &f.path("headers")))
        .unwrap_or_default();
    Some(Respond {
        status: f.int(e, "status", 100, 599).unwrap_or(200) as u16,
        body: f.string(e, "body").unwrap_or_default(),
        headers: headers.into_iter().collect::<BTreeMap<_, _>>(),
    })
}

pub fn rate_limit(e: &mut Errors, node: &Node, path: &str) -> Option<RateLimit> {
    let f = Fields::new(e, node, path, RATE_KEYS)?;
    f.require(e, "requests");
    f.require(e, "per");
    let requests = f.int(e, "requests", 1, u32::MAX.into());
    let per = f.positive_duration(e, "per");
    let key = match f.string(e, "key").as_deref() {
        None | Some("client_ip") => Some(RateKey::ClientIp),
        Some("route") => Some(RateKey::Route),
        Some(other) => match other.strip_prefix("header:") {
            Some(name) if is_token(name) => Some(RateKey::Header(name.to_string())),
            _ => {
                let at = f.get("key").map_or(node.pos, |n| n.pos);
                e.push(
                    at,
                    &f.path("key"),
                    format!(
                        "unknown value {other:?}, expected one of: client_ip, route, header:NAME"
                    ),
                );
                None
            }
        },
    };
    Some(RateLimit {
        requests: requests?,
        per: per?,
        key: key?,
    })
}
