//! What the proxy records about each request: the `X-Request-Id`, upstream timing, and in the
//! `logging` phase the metrics (`crate::metrics`) and the access log line (`crate::access_log`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use once_cell::sync::Lazy;
use pingora::cache::CachePhase;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::Error;

use super::compress;
use super::ctx::Ctx;
use super::error_class::classify;
use super::host::request_host;
use super::trace;
use crate::access_log::Entry;
use crate::metrics::{self, RequestRecord, NO_ROUTE, UNKNOWN_DOMAIN};
use crate::snapshot::Snapshot;
use crate::state::State;

pub(crate) const REQUEST_ID: &str = "x-request-id";
/// A client's own id longer than this (or not visible ASCII) is replaced.
const MAX_REQUEST_ID: usize = 128;

/// A random per-process prefix and a counter: unique without a syscall per request.
static ID_PREFIX: Lazy<String> = Lazy::new(|| format!("{:012x}", rand::random::<u64>() >> 16));
static ID_COUNTER: AtomicU64 = AtomicU64::new(0);

/// `{prefix}-{counter}`, the counter in lower-case hex of at least 8 digits.
pub(crate) fn new_request_id() -> String {
    let n = ID_COUNTER.fetch_add(1, Ordering::Relaxed);
    // Written by hand: `format!` costs several times this on every request.
    let digits = (16 - n.leading_zeros() as usize / 4).max(8);
    let mut id = String::with_capacity(ID_PREFIX.len() + 1 + digits);
    id.push_str(&ID_PREFIX);
    id.push('-');
    for i in (0..digits).rev() {
        id.push(char::from(
            b"0123456789abcdef"[(n >> (i * 4)) as usize & 0xf],
        ));
    }
    id
}

fn acceptable_id(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.iter().all(|b| b.is_ascii_graphic())
}

/// Keeps the client's `X-Request-Id` when it is sane, else makes a new one, which
/// [`carry_request_id`] puts on the upstream request, so the backend sees the id the log
/// shows. Not written into the client's request here: a cache hit or a static answer never
/// sends it anywhere, and each header insert costs about 2k instructions.
pub(crate) fn name_request(session: &Session, ctx: &mut Ctx) {
    let given = session
        .req_header()
        .headers
        .get(REQUEST_ID)
        .map(|v| v.as_bytes())
        .filter(|v| acceptable_id(v))
        .map(|v| String::from_utf8_lossy(v).into_owned());
    ctx.observe.request_id_generated = given.is_none();
    ctx.observe.request_id = given.unwrap_or_else(new_request_id);
}

/// Carries a generated id to the backend (see [`name_request`]).
pub(crate) fn carry_request_id(req: &mut RequestHeader, ctx: &Ctx) -> pingora::Result<()> {
    if ctx.observe.request_id_generated {
        // An id made of hex digits and `-` is always a valid header value.
        req.insert_header("X-Request-Id", ctx.observe.request_id.as_str())?;
    }
    Ok(())
}

/// `upstream_peer` is about to choose a backend (first attempt or retry).
pub(crate) fn upstream_attempt(ctx: &mut Ctx) {
    ctx.observe.upstream_started = Some(Instant::now());
}

/// The upstream response head arrived.
pub(crate) fn upstream_answered(ctx: &mut Ctx) {
    ctx.observe.upstream_duration = ctx.observe.upstream_started.map(|t| t.elapsed());
}

/// How the cache took part, as the metric and the log name it. Prefers the cache's own
/// `X-Cache` verdict when it sent one, else Pingora's cache phase.
fn cache_result(session: &Session) -> Option<&'static str> {
    let header = session
        .response_written()
        .and_then(|r| r.headers.get("x-cache"))
        .map(|v| v.as_bytes().to_ascii_uppercase());
    if let Some(h) = header {
        return match h.as_slice() {
            b"HIT" | b"REVALIDATED" => Some("hit"),
            b"MISS" | b"EXPIRED" => Some("miss"),
            b"STALE" | b"UPDATING" => Some("stale"),
            b"BYPASS" => Some("bypass"),
            _ => None,
        };
    }
    match session.cache.phase() {
        CachePhase::Hit | CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => {
            Some("hit")
        }
        CachePhase::Miss | CachePhase::Expired => Some("miss"),
        CachePhase::Stale | CachePhase::StaleUpdating => Some("stale"),
        CachePhase::Bypass => Some("bypass"),
        CachePhase::Disabled(pingora::cache::NoCacheReason::NeverEnabled) => None,
        CachePhase::Disabled(_) => Some("bypass"),
        CachePhase::Uninit | CachePhase::CacheKey => None,
    }
}

/// The `logging` phase: metrics always, an access log line when one is configured.
pub(crate) fn logging(state: &State, session: &Session, error: Option<&Error>, ctx: &mut Ctx) {
    let duration = ctx.started.elapsed();
    let current: Arc<Snapshot>;
    let snapshot: &Snapshot = match &ctx.snapshot {
        Some(s) => s,
        None => {
            current = state.snapshot();
            &current
        }
    };
    let req = session.req_header();
    let host = request_host(req);
    // The configured names, never the client's strings: from the route `request_filter`
    // matched.
    let matched = ctx.hit.and_then(|hit| snapshot.names(hit));
    let domain = matched.map_or(UNKNOWN_DOMAIN, |(d, _)| d);
    let route = matched.and_then(|(_, r)| r);
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let cache = cache_result(session);

    // Attempts: every one before the last failed (that is why there was another).
    let mut upstream = None;
    if let Some(target) = &ctx.target {
        let last = ctx.tried.len().saturating_sub(1);
        for (n, &i) in ctx.tried.iter().enumerate() {
            let Some(b) = target.pool.backends.get(i) else {
                continue;
            };
            let outcome = if n < last {
                "error"
            } else if ctx.upstream_responded {
                "ok"
            } else if error.is_some_and(|e| classify(e).timed_out()) {
                "timeout"
            } else {
                "error"
            };
            metrics::record_upstream(&b.config.url, outcome);
            if n == last {
                upstream = Some(b.config.url.as_str());
            }
        }
    }

    metrics::record(
        &state.domain_stats,
        &RequestRecord {
            domain,
            route: route.unwrap_or(NO_ROUTE),
            status,
            duration,
            ratelimited: status == 429 && !ctx.upstream_responded && cache.is_none(),
            cache,
            cache_reason: ctx.cache.reason,
            compressed: compress::applied(session, ctx).map(|c| c.as_str()),
        },
    );

    let client = ctx.client_ip.or_else(|| {
        session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
    });
    let error = error.map(|e| e.etype().as_str());
    // Taken here, where the borrow of `ctx.snapshot` above allows it.
    let recording = ctx.trace.recording.take();
    trace::finish(
        state,
        session,
        ctx,
        recording,
        trace::Finished {
            host,
            status,
            client,
            domain: matched.map(|(d, _)| d),
            route,
            error,
        },
    );

    let handler = ctx.hit.and_then(|hit| snapshot.handler(hit));
    let own = handler.and_then(|h| h.access_log.clone());
    let global = state.access_log.enabled() && handler.is_none_or(|h| h.access_log_global);
    if own.is_none() && !global {
        return;
    }
    let entry = Entry {
        at: SystemTime::now(),
        // The request is over: its id moves into the log instead of being copied.
        request_id: std::mem::take(&mut ctx.observe.request_id),
        trace_id: trace::trace_id(ctx),
        client,
        method: req.method.clone(),
        host: host.to_string(),
        uri: ctx.original_uri.clone().unwrap_or_else(|| req.uri.clone()),
        status,
        bytes_in: session.body_bytes_read() as u64,
        bytes_out: session.body_bytes_sent() as u64,
        duration,
        domain: matched.map(|(d, _)| d.to_string()),
        route: route.map(str::to_string),
        upstream: upstream.map(str::to_string),
        upstream_duration: ctx.observe.upstream_duration,
        attempts: ctx.attempts,
        cache,
        user_agent: req.headers.get(http::header::USER_AGENT).cloned(),
        referer: req.headers.get(http::header::REFERER).cloned(),
        version: req.version,
        error,
        tls_client: ctx.client_cert.take(),
    };
    let own_format = handler.and_then(|h| h.access_log_format);
    match own {
        Some(log) if global => {
            log.send(entry.clone(), own_format);
            state.access_log.send(entry);
        }
        Some(log) => log.send(entry, own_format),
        None => {
            state.access_log.send(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_prefix_dash_hex_counter() {
        let id = new_request_id();
        let (prefix, counter) = id.split_once('-').unwrap();
        assert_eq!(prefix, ID_PREFIX.as_str());
        let n = u64::from_str_radix(counter, 16).unwrap();
        assert_eq!(counter, format!("{n:08x}"));
        ID_COUNTER.fetch_max(0x1_2345_6789, Ordering::Relaxed);
        let long = new_request_id();
        let counter = long.split_once('-').unwrap().1;
        assert_eq!(
            counter,
            format!("{:08x}", u64::from_str_radix(counter, 16).unwrap())
        );
        assert!(counter.len() >= 9, "{long}");
    }

    #[test]
    fn generated_ids_are_unique_and_acceptable() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert!(acceptable_id(a.as_bytes()), "{a}");
        assert!(!acceptable_id(b""));
        assert!(!acceptable_id(b"has space"));
        assert!(!acceptable_id(&[b'x'; 129]));
    }
}
