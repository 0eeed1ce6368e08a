//! The cache phases of strait's `ProxyHttp`, on top of `crate::cache`.
//!
//! Flow for a domain or route whose `cache` is on:
//! 1. `request_filter`: GET/HEAD that no rule switches off enable the cache (store, cache lock,
//!    per-entry size limit); POST/PUT/DELETE/PATCH are bypassed and invalidate their URL once
//!    the origin answers 2xx/3xx.
//! 2. `cache_key`: scheme, normalised host, method class and target, framed (see `cache::key`).
//! 3. lookup (Pingora), `vary` for the secondary key, `hit_filter` picks the gzip copy
//!    (unless `compress` serves the client another coding: then the identity body is
//!    compressed on the way out like any response, and a gzip copy is never compressed again).
//! 4. on a miss or a stale entry, the upstream request asks for `identity` (one stored
//!    representation for every client) and `response_cacheable` applies RFC 9111 and the rules.
//! 5. `response_filter` labels every response `X-Cache` (and `X-Cache-Reason` on request with
//!    `X-Cache-Debug: 1`), serves the gzip headers, adds `Vary: Accept-Encoding`, and counts.
//!
//! A request body sent with a request answered from the cache is never parsed as the next
//! request (CVE-2025-4366): Pingora 0.9.1 drains an unread body before reusing a connection,
//! and a response written before the body was read announces `Connection: close` and closes
//! (tested in `tests/it/cache.rs`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header;
use pingora::cache::key::{CacheHashKey, HashBinary};
use pingora::cache::{CacheKey, CacheMeta, CachePhase, HitHandler, NoCacheReason, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{range_header_filter, RangeType, Session};
use pingora::{Error, ErrorSource, Result};

use super::compress;
use super::ctx::{CacheCtx, Ctx};
use super::host::{self, request_host};
use crate::cache::key::{self, normalize_host};
use crate::cache::precompress::{self, Precompress};
use crate::cache::storage::{self, FillOptions};
use crate::cache::{cache_lock, policy, predictor, purge, store, vary, Outcome, RouteCache};
use crate::config::Coding;
use crate::hooks::CacheDecision;
use crate::router::Hit;
use crate::snapshot::Snapshot;

/// Request header asking for the reason of a non-hit.
pub(crate) const DEBUG_HEADER: &str = "x-cache-debug";
/// Response header carrying that reason.
pub(crate) const REASON_HEADER: &str = "x-cache-reason";

/// The cache policy of the domain or route the request was routed to, if it caches. Taken
/// from the routing result, never by routing again: an `on_request` hook may have rewritten
/// the Host since, and the rules must come from the domain that applied its limits.
fn policy_for(snapshot: &Snapshot, hit: Hit) -> Option<Arc<RouteCache>> {
    snapshot.handler(hit)?.cache.clone()
}

/// `request_cache_filter`.
pub(crate) fn request_filter(session: &mut Session, ctx: &mut Ctx) -> Result<()> {
    let (Some(snapshot), Some(hit)) = (ctx.snapshot.as_ref(), ctx.hit) else {
        return Ok(());
    };
    let Some(policy) = policy_for(snapshot, hit) else {
        return Ok(());
    };
    let req = session.req_header();
    let c = &mut ctx.cache;
    c.debug = req
        .headers
        .get(DEBUG_HEADER)
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"1");
    // RFC 9111 §4.4: every method not known to be safe invalidates, unknown ones included.
    c.invalidate = !matches!(
        req.method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS | http::Method::TRACE
    );
    let upgrade = req.headers.contains_key(header::UPGRADE);
    let plan = policy.plan(req.method.as_str(), req.uri.path());
    let accepts_gzip = precompress::accepts_gzip(req);
    c.policy = Some(policy.clone());
    let plan = match plan {
        _ if upgrade => {
            c.bypass = Some("upgrade");
            return Ok(());
        }
        Err(reason) => {
            c.bypass = Some(reason);
            return Ok(());
        }
        Ok(plan) => plan,
    };
    let p = &policy.settings.precompress;
    let precompress = p.enabled.then_some(Precompress {
        level: p.level,
        min_bytes: p.min_bytes,
    });
    c.rule = plan.rule;
    c.accepts_gzip = precompress.is_some() && accepts_gzip;
    c.fill = FillOptions {
        max_body_bytes: Some(plan.max_entry_bytes),
        precompress,
    };
    session
        .cache
        .enable(store(), None, Some(predictor()), Some(cache_lock()), None);
    session
        .cache
        .set_max_file_size_bytes(usize::try_from(plan.max_entry_bytes).unwrap_or(usize::MAX));
    Ok(())
}

/// `cache_key_callback`.
pub(crate) fn cache_key(session: &Session, ctx: &Ctx) -> Result<CacheKey> {
    let req = session.req_header();
    let scheme = host::scheme(session);
    let Some(class) = key::method_class(&req.method) else {
        return Error::e_explain(
            pingora::ErrorType::InternalError,
            "uncacheable method has no key",
        );
    };
    let host = normalize_host(request_host(req));
    let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut key = CacheKey::new(key::primary(scheme, &host, class, target), "");
    // Pingora's predictor and the storage lookup each hash the key (blake2) unless it
    // carries its hash: pinning it here halves that work on every cached request.
    let hash = key.primary_bin();
    key.set_primary_bin_override(hash);
    key.extensions.insert(ctx.cache.fill);
    Ok(key)
}

/// `cache_miss`.
pub(crate) fn miss(session: &mut Session, ctx: &mut Ctx) {
    ctx.cache.missed = true;
    session.cache.cache_miss();
}

/// `cache_hit_filter`: notes freshness and chooses the gzip copy for clients that take it.
pub(crate) fn hit_filter(session: &Session, hit: &mut HitHandler, is_fresh: bool, ctx: &mut Ctx) {
    // A client that `compress` serves another coding gets the identity body, compressed on
    // its way out; the stored gzip copy is for one that gets gzip (or nothing) from it.
    let other_coding = compress::negotiated(ctx).is_some_and(|c| c != Coding::Gzip);
    let c = &mut ctx.cache;
    c.found_stale = !is_fresh;
    c.gzip_len = None;
    // Ranges are byte offsets into the identity body.
    if c.accepts_gzip && !other_coding && !session.req_header().headers.contains_key(header::RANGE)
    {
        if let Some(h) = hit.as_any_mut().downcast_mut::<storage::Hit>() {
            c.gzip_len = h.use_gzip();
        }
    }
}

/// `response_cache_filter`: RFC 9111 and the rules decide; a 304 from revalidation has its
/// fields merged into the stored header first.
pub(crate) fn response_cacheable(
    session: &Session,
    resp: &ResponseHeader,
    ctx: &mut Ctx,
) -> Result<RespCacheable> {
    let Some(policy) = ctx.cache.policy.clone() else {
        return Ok(RespCacheable::Uncacheable(NoCacheReason::Custom(
            "cache-off",
        )));
    };
    let mut merged = resp.clone();
    if let Some(nm) = ctx.cache.not_modified.take() {
        policy::merge_not_modified(&mut merged, &nm);
        if let Some(age) = nm.headers.get(header::AGE) {
            merged.insert_header(header::AGE, age.clone())?;
        }
    }
    let now = SystemTime::now();
    let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    // An `on_response` hook's `cache_for` / `dont_cache` overrides RFC 9111 and the rules;
    // a partial (206) response is never stored whole.
    match ctx.hook.cache {
        Some(CacheDecision::Never) => {
            ctx.cache.refused = Some("hook");
            return Ok(RespCacheable::Uncacheable(NoCacheReason::Custom("hook")));
        }
        Some(CacheDecision::For(ttl)) if merged.status.as_u16() != 206 => {
            let s = &policy.settings;
            let fresh_until = if ttl.is_zero() {
                now - Duration::from_secs(1)
            } else {
                now + ttl
            };
            return Ok(RespCacheable::Cacheable(CacheMeta::new(
                fresh_until,
                now,
                secs(s.stale_while_revalidate),
                secs(s.stale_if_error),
                policy::stored_header(&merged),
            )));
        }
        _ => {}
    }
    let authorization = session
        .req_header()
        .headers
        .contains_key(header::AUTHORIZATION);
    match policy::evaluate(
        &policy.settings,
        policy.rule(ctx.cache.rule),
        authorization,
        &merged,
        now,
    ) {
        Ok(f) => {
            let fresh_until = if f.fresh_for.is_zero() {
                now - Duration::from_secs(1)
            } else {
                now + f.fresh_for
            };
            let mut meta = CacheMeta::new(
                fresh_until,
                now,
                secs(f.stale_while_revalidate),
                secs(f.stale_if_error),
                policy::stored_header(&merged),
            );
            if !f.age.is_zero() {
                // `Age` on hits = the age it arrived with + the time it has been stored.
                meta.set_epoch_override(now.checked_sub(f.age).unwrap_or(SystemTime::UNIX_EPOCH));
            }
            Ok(RespCacheable::Cacheable(meta))
        }
        Err(reason) => {
            ctx.cache.refused = Some(reason);
            Ok(RespCacheable::Uncacheable(NoCacheReason::Custom(reason)))
        }
    }
}

/// `cache_vary_filter`.
pub(crate) fn variance(meta: &CacheMeta, req: &RequestHeader) -> Option<HashBinary> {
    vary::variance(meta.response_header(), req)
}

/// `should_serve_stale`: stale-while-revalidate (`None`) whenever the stored response's window
/// allows it (Pingora checks the window); stale-if-error for every failure not caused by the
/// client (connect errors, timeouts, no healthy backend, 5xx).
pub(crate) fn serve_stale(error: Option<&Error>) -> bool {
    error.is_none_or(|e| *e.esource() != ErrorSource::Downstream)
}

/// `range_header_filter`: no ranges over the gzip copy.
pub(crate) fn range(session: &Session, resp: &mut ResponseHeader, ctx: &Ctx) -> RangeType {
    if ctx.cache.gzip_len.is_some() && served_from_cache(session.cache.phase()) {
        return RangeType::None;
    }
    range_header_filter(session.req_header(), resp, Some(200))
}

/// `upstream_request_filter` addition: cacheable fetches ask for the identity representation.
/// So do requests bypassing a URL remembered as uncacheable: their response may be stored
/// once it is cacheable again.
pub(crate) fn upstream_request(
    session: &Session,
    req: &mut RequestHeader,
    ctx: &Ctx,
) -> Result<()> {
    if ctx.cache.policy.is_some() && (session.cache.enabled() || session.cache.bypassing()) {
        req.insert_header(header::ACCEPT_ENCODING, "identity")?;
    }
    Ok(())
}

/// `upstream_response_filter` addition: keeps a revalidation's 304 for the header merge, and
/// invalidates the URL after a successful unsafe request.
pub(crate) fn upstream_response(session: &Session, resp: &ResponseHeader, ctx: &mut Ctx) {
    let status = resp.status.as_u16();
    if status == 304 && ctx.cache.found_stale {
        ctx.cache.not_modified = Some(Box::new(resp.clone()));
    }
    if ctx.cache.invalidate && (200..400).contains(&status) {
        let req = session.req_header();
        let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
        purge::invalidate(store(), request_host(req), target);
    }
}

/// The response comes from storage (fresh, stale or revalidated), not from the backend.
pub(crate) fn served_from_cache(phase: CachePhase) -> bool {
    matches!(
        phase,
        CachePhase::Hit
            | CachePhase::Stale
            | CachePhase::StaleUpdating
            | CachePhase::Revalidated
            | CachePhase::RevalidatedNoCache(_)
    )
}

fn reason_of(r: NoCacheReason) -> &'static str {
    use NoCacheReason::*;
    match r {
        Custom(s) => s,
        NeverEnabled => "disabled",
        OriginNotCache => "origin-not-cacheable",
        ResponseTooLarge | PredictedResponseTooLarge => "too-large",
        StorageError => "storage-error",
        InternalError => "internal-error",
        Deferred => "deferred",
        DeclinedToUpstream => "declined",
        UpstreamError => "upstream-error",
        CacheLockGiveUp => "uncacheable",
        CacheLockTimeout => "lock-timeout",
        CacheLockRetryLimit => "lock-retries",
    }
}

/// The `X-Cache` value and the reason given with `X-Cache-Debug: 1`.
fn classify(phase: CachePhase, c: &CacheCtx) -> (Outcome, &'static str) {
    let missed = if c.found_stale {
        Outcome::Expired
    } else {
        Outcome::Miss
    };
    match phase {
        CachePhase::Hit => (Outcome::Hit, "fresh"),
        CachePhase::Stale => (Outcome::Stale, "stale-if-error"),
        CachePhase::StaleUpdating => (Outcome::Stale, "stale-while-revalidate"),
        CachePhase::Revalidated => (Outcome::Expired, "revalidated"),
        CachePhase::RevalidatedNoCache(r) => (Outcome::Expired, c.refused.unwrap_or(reason_of(r))),
        CachePhase::Expired => (Outcome::Expired, "expired"),
        CachePhase::Miss => (missed, "not-cached"),
        CachePhase::Bypass => (Outcome::Bypass, "predicted-uncacheable"),
        CachePhase::Disabled(NoCacheReason::NeverEnabled)
        | CachePhase::Uninit
        | CachePhase::CacheKey => (Outcome::Bypass, c.bypass.unwrap_or("disabled")),
        CachePhase::Disabled(
            r @ (NoCacheReason::CacheLockGiveUp
            | NoCacheReason::CacheLockTimeout
            | NoCacheReason::CacheLockRetryLimit),
        ) => (missed, reason_of(r)),
        CachePhase::Disabled(r) if c.missed || c.found_stale => {
            (missed, c.refused.unwrap_or(reason_of(r)))
        }
        CachePhase::Disabled(r) => (Outcome::Bypass, reason_of(r)),
    }
}

/// Adds `token` to `Vary` unless it is listed already.
fn add_vary(resp: &mut ResponseHeader, token: &str) -> Result<()> {
    let listed = policy::list_items(&resp.headers, header::VARY)
        .any(|n| n.eq_ignore_ascii_case(token) || n == "*");
    if !listed {
        resp.append_header(header::VARY, token)?;
    }
    Ok(())
}

/// Turns the stored identity header into the gzip copy's.
fn gzip_headers(resp: &mut ResponseHeader, len: usize) -> Result<()> {
    if resp.status.as_u16() != 304 {
        resp.insert_header(header::CONTENT_ENCODING, "gzip")?;
        resp.insert_header(header::CONTENT_LENGTH, len.to_string())?;
        resp.remove_header(&header::TRANSFER_ENCODING);
        resp.remove_header(&header::ACCEPT_RANGES);
    }
    // The gzip copy is a different representation: its validator may only be weak.
    let weak = resp
        .headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.starts_with("W/"))
        .map(|v| format!("W/{v}"));
    if let Some(weak) = weak {
        resp.insert_header(header::ETAG, weak)?;
    }
    Ok(())
}

/// `response_filter` addition, for every response of a caching domain or route.
pub(crate) fn response_filter(
    session: &Session,
    resp: &mut ResponseHeader,
    ctx: &mut Ctx,
) -> Result<()> {
    let Some(policy) = ctx.cache.policy.clone() else {
        return Ok(());
    };
    // A stale-while-revalidate refresh runs as a subrequest: no client sees it.
    if session.subrequest_ctx.is_some() {
        return Ok(());
    }
    let phase = session.cache.phase();
    let (outcome, reason) = classify(phase, &ctx.cache);
    store().counters.record(outcome);
    ctx.cache.reason = (outcome != Outcome::Hit).then_some(reason);

    let gzip = ctx.cache.gzip_len.filter(|_| served_from_cache(phase));
    if let Some(len) = gzip {
        gzip_headers(resp, len)?;
    }
    // Responses that are (or are being) stored and could get a gzip copy vary by
    // Accept-Encoding from now on; ones never stored are always identity.
    let stored =
        served_from_cache(phase) || matches!(phase, CachePhase::Miss | CachePhase::Expired);
    let p = &policy.settings.precompress;
    if p.enabled && stored {
        let settings = Precompress {
            level: p.level,
            min_bytes: p.min_bytes,
        };
        let could_compress = gzip.is_some()
            || (precompress::eligible(resp)
                && precompress::big_enough(&settings, content_length(resp)));
        if could_compress {
            add_vary(resp, "Accept-Encoding")?;
        }
    }
    if !policy.settings.forward_targeted_cache_control {
        for name in policy::TARGETED {
            resp.remove_header(*name);
        }
    }
    resp.insert_header("X-Cache", outcome.as_str())?;
    if ctx.cache.debug && outcome != Outcome::Hit {
        resp.insert_header(REASON_HEADER, reason)?;
    }
    Ok(())
}

fn content_length(resp: &ResponseHeader) -> Option<u64> {
    resp.headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_covers_every_phase() {
        let mut c = CacheCtx::default();
        assert_eq!(classify(CachePhase::Hit, &c).0, Outcome::Hit);
        assert_eq!(
            classify(CachePhase::StaleUpdating, &c),
            (Outcome::Stale, "stale-while-revalidate")
        );
        assert_eq!(
            classify(CachePhase::Stale, &c),
            (Outcome::Stale, "stale-if-error")
        );
        assert_eq!(classify(CachePhase::Revalidated, &c).0, Outcome::Expired);
        assert_eq!(
            classify(CachePhase::Miss, &c),
            (Outcome::Miss, "not-cached")
        );
        c.bypass = Some("method");
        assert_eq!(
            classify(CachePhase::Disabled(NoCacheReason::NeverEnabled), &c),
            (Outcome::Bypass, "method")
        );
        c.missed = true;
        c.refused = Some("no-store");
        assert_eq!(
            classify(CachePhase::Disabled(NoCacheReason::Custom("no-store")), &c),
            (Outcome::Miss, "no-store")
        );
        c.refused = None;
        assert_eq!(
            classify(CachePhase::Disabled(NoCacheReason::ResponseTooLarge), &c),
            (Outcome::Miss, "too-large")
        );
        c.found_stale = true;
        assert_eq!(
            classify(CachePhase::Disabled(NoCacheReason::UpstreamError), &c).0,
            Outcome::Expired
        );
    }

    #[test]
    fn gzip_headers_make_the_validator_weak() {
        let mut r = ResponseHeader::build(200, None).unwrap();
        r.insert_header("etag", "\"abc\"").unwrap();
        r.insert_header("content-length", "1000").unwrap();
        r.insert_header("accept-ranges", "bytes").unwrap();
        gzip_headers(&mut r, 123).unwrap();
        assert_eq!(r.headers.get("etag").unwrap(), "W/\"abc\"");
        assert_eq!(r.headers.get("content-length").unwrap(), "123");
        assert_eq!(r.headers.get("content-encoding").unwrap(), "gzip");
        assert!(r.headers.get("accept-ranges").is_none());
        add_vary(&mut r, "Accept-Encoding").unwrap();
        add_vary(&mut r, "Accept-Encoding").unwrap();
        assert_eq!(r.headers.get_all("vary").iter().count(), 1);
    }

    #[test]
    fn stale_is_served_for_every_failure_but_the_clients() {
        assert!(serve_stale(None));
        let up = Error::new(pingora::ErrorType::ConnectRefused).into_up();
        assert!(serve_stale(Some(&up)));
        let down = Error::new(pingora::ErrorType::ReadError).into_down();
        assert!(!serve_stale(Some(&down)));
    }
}
