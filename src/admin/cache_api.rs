//! The admin API's view of the response cache (`GET /cache/stats`, `DELETE /cache`), over the
//! library functions of `crate::cache`.
//!
//! `domain=D` names a configured domain (its first host or any of its host patterns) or any
//! host some domain serves. Purging a configured domain removes the entries of each of its
//! host patterns (`*.example.com` covers every subdomain; the catch-all `*` domain covers
//! everything). An object purge needs concrete hosts: those of the domain's exact names, or
//! the host given.

use http::StatusCode;
use serde_json::Value;

use super::changes::find_domain;
use super::web::ApiError;
use crate::config::HostPattern;
use crate::snapshot::Snapshot;

/// `{entries, bytes, hits, misses, stale_served, evictions, ...}`.
pub(crate) fn stats() -> Result<Value, ApiError> {
    serde_json::from_str(&crate::cache::stats().to_json()).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cache stats: {e}"),
        )
    })
}

/// What `DELETE /cache` removes.
pub(crate) enum Purge<'a> {
    All,
    Domain(&'a str),
    Object {
        domain: &'a str,
        path: &'a str,
        method: &'a str,
    },
}

/// The host patterns `domain` stands for.
fn hosts(snapshot: &Snapshot, domain: &str) -> Result<Vec<String>, ApiError> {
    if let Ok(d) = find_domain(snapshot, domain) {
        return Ok(snapshot.config.domains[d]
            .hosts
            .iter()
            .map(HostPattern::text)
            .collect());
    }
    let host = domain.trim().to_ascii_lowercase();
    if !host.is_empty()
        && !host.starts_with('*')
        && snapshot
            .router
            .route(&crate::router::Request::simple(
                &host,
                "/",
                &http::HeaderMap::new(),
            ))
            .is_some()
    {
        return Ok(vec![host]);
    }
    Err(ApiError::not_found(format!(
        "no domain {domain:?} (and no domain serves that host)"
    )))
}

/// Returns how many entries were removed.
pub(crate) fn purge(snapshot: &Snapshot, what: Purge<'_>) -> Result<u64, ApiError> {
    let removed = match what {
        Purge::All => crate::cache::purge_all(),
        Purge::Domain(domain) => hosts(snapshot, domain)?
            .iter()
            .map(|h| match h.as_str() {
                "*" => crate::cache::purge_all(),
                h => crate::cache::purge_domain(h),
            })
            .sum(),
        Purge::Object {
            domain,
            path,
            method,
        } => {
            if !path.starts_with('/') {
                return Err(ApiError::bad_request(format!(
                    "`path` must start with /, found {path:?}"
                )));
            }
            let concrete: Vec<String> = hosts(snapshot, domain)?
                .into_iter()
                .filter(|h| !h.starts_with('*'))
                .collect();
            if concrete.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "{domain:?} has only wildcard hosts; name the host, e.g. domain=www.example.com"
                )));
            }
            concrete
                .iter()
                .map(|h| crate::cache::purge_object(h, path, method))
                .sum()
        }
    };
    Ok(removed as u64)
}

/// Bytes and entries held by the cache, for `strait_cache_bytes` / `strait_cache_entries`.
pub(crate) fn size() -> (u64, u64) {
    let s = crate::cache::stats();
    (s.bytes, s.entries)
}
