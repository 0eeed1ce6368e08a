//! W3C Trace Context per request (docs/tracing.md): `begin` in `request_filter` takes the
//! client's `traceparent` or starts a trace, `attempt` gives each upstream attempt its own
//! span id, `carry` writes `traceparent` (and keeps or drops `tracestate`) on the upstream
//! request, and `finish` in the `logging` phase hands a sampled request's spans to the
//! exporter (`crate::trace::export`).
//!
//! Per request this costs one header lookup and parse (or, when strait starts the trace, a
//! random trace id and a sampling draw), and for each attempt a random span id and one
//! 55-byte header value, the only allocation. The server span's id and its timing (one boxed
//! record, one entry per attempt) are made only for sampled requests while an exporter runs.

use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use http::HeaderValue;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::Error;

use super::ctx::{Attempt, Ctx, Recording};
use crate::snapshot::Snapshot;
use crate::state::State;
use crate::trace::context::{
    format_traceparent, new_span_id, new_trace_id, parse_traceparent, sample, tracestate_fits,
    SAMPLED,
};
use crate::trace::{AttemptSpan, RequestSpans, TraceId};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// Reads the client's trace context, or starts a trace (sampled at `tracing.sample_ratio`).
pub(crate) fn begin(state: &State, snapshot: &Snapshot, session: &Session, ctx: &mut Ctx) {
    let headers = &session.req_header().headers;
    let mut given = headers.get_all(TRACEPARENT).iter();
    // Two traceparent lines are as invalid as a malformed one.
    let incoming = match (given.next(), given.next()) {
        (Some(v), None) => parse_traceparent(v.as_bytes()),
        _ => None,
    };
    let t = &mut ctx.trace;
    let sampled = match incoming {
        Some(parent) => {
            t.trace_id = Some(parent.trace_id);
            t.flags = parent.flags;
            t.remote_parent = Some(parent.parent_id);
            t.keep_tracestate =
                tracestate_fits(headers.get_all(TRACESTATE).iter().map(|v| v.as_bytes()));
            parent.sampled()
        }
        None => {
            let sampled = sample(snapshot.config.tracing.sample_ratio);
            t.trace_id = Some(new_trace_id());
            t.flags = if sampled { SAMPLED } else { 0 };
            sampled
        }
    };
    if sampled && state.trace_export.enabled() {
        // Only an exported trace needs strait's server span.
        t.span_id = new_span_id();
        let wall_start = SystemTime::now()
            .checked_sub(ctx.started.elapsed())
            .unwrap_or_else(SystemTime::now);
        t.recording = Some(Box::new(Recording {
            wall_start,
            attempts: Vec::new(),
        }));
    }
}

/// The request's trace id, for the access log.
pub(crate) fn trace_id(ctx: &Ctx) -> Option<TraceId> {
    ctx.trace.trace_id
}

/// `upstream_peer` chose a backend: a new attempt, with its own span.
pub(crate) fn attempt(ctx: &mut Ctx) {
    let span_id = new_span_id();
    ctx.trace.attempt_span = span_id;
    if let Some(rec) = &mut ctx.trace.recording {
        let now = Instant::now();
        if let Some(last) = rec.attempts.last_mut() {
            last.end.get_or_insert(now);
        }
        rec.attempts.push(Attempt {
            span_id,
            backend: ctx.backend_index,
            start: now,
            end: None,
            status: None,
            error: None,
        });
    }
}

/// `upstream_request_filter`: `traceparent` names this attempt's span as the parent; the
/// client's `tracestate` goes on only with its own valid `traceparent`.
pub(crate) fn carry(req: &mut RequestHeader, ctx: &Ctx) -> pingora::Result<()> {
    let t = &ctx.trace;
    let Some(trace_id) = &t.trace_id else {
        return Ok(());
    };
    let value = format_traceparent(trace_id, &t.attempt_span, t.flags);
    // Lower-case hex and dashes: always a valid header value.
    if let Ok(value) = HeaderValue::from_bytes(&value) {
        req.insert_header(TRACEPARENT, value)?;
    }
    if !t.keep_tracestate && req.headers.contains_key(TRACESTATE) {
        req.remove_header(TRACESTATE);
    }
    Ok(())
}

/// The attempt's backend answered with `status`.
pub(crate) fn answered(ctx: &mut Ctx, status: u16) {
    if let Some(last) = last_attempt(ctx) {
        last.status = Some(status);
        last.end = Some(Instant::now());
    }
}

/// The attempt failed.
pub(crate) fn failed(ctx: &mut Ctx, e: &Error) {
    if let Some(last) = last_attempt(ctx) {
        last.error = Some(e.etype().as_str());
        last.end.get_or_insert_with(Instant::now);
    }
}

fn last_attempt(ctx: &mut Ctx) -> Option<&mut Attempt> {
    ctx.trace.recording.as_mut()?.attempts.last_mut()
}

/// What the `logging` phase knows about the finished request.
pub(crate) struct Finished<'a> {
    pub(crate) host: &'a str,
    pub(crate) status: u16,
    pub(crate) client: Option<IpAddr>,
    pub(crate) domain: Option<&'a str>,
    pub(crate) route: Option<&'a str>,
    pub(crate) error: Option<&'static str>,
}

/// Hands a recorded request's spans (`ctx.trace.recording`, taken by the caller) to the
/// exporter.
pub(crate) fn finish(
    state: &State,
    session: &Session,
    ctx: &Ctx,
    recording: Option<Box<Recording>>,
    done: Finished<'_>,
) {
    let Some(rec) = recording else {
        return;
    };
    let Some(trace_id) = ctx.trace.trace_id else {
        return;
    };
    let end = Instant::now();
    let backends = ctx.target.as_ref().map(|t| &t.pool.backends);
    let attempts = rec
        .attempts
        .iter()
        .map(|a| {
            let backend = a
                .backend
                .and_then(|i| backends.and_then(|b| b.get(i)))
                .map(|b| (b.config.host.clone(), b.config.port));
            let (host, port) = backend.unwrap_or_default();
            AttemptSpan {
                span_id: a.span_id,
                start: a.start.saturating_duration_since(ctx.started),
                end: a.end.unwrap_or(end).saturating_duration_since(ctx.started),
                host,
                port,
                status: a.status,
                // The last attempt failed when the request did without any answer.
                error: a.error.or(if a.status.is_none() && a.end.is_none() {
                    done.error
                } else {
                    None
                }),
            }
        })
        .collect();
    let req = session.req_header();
    let path = ctx
        .original_uri
        .as_ref()
        .map_or_else(|| req.uri.path(), |u| u.path());
    state.trace_export.send(Box::new(RequestSpans {
        trace_id,
        span_id: ctx.trace.span_id,
        parent: ctx.trace.remote_parent,
        flags: ctx.trace.flags,
        start: rec.wall_start,
        duration: end.saturating_duration_since(ctx.started),
        method: req.method.clone(),
        host: done.host.to_string(),
        path: path.to_string(),
        status: done.status,
        client: done.client,
        domain: done.domain.map(str::to_string),
        route: done.route.map(str::to_string),
        request_id: ctx.observe.request_id.clone(),
        error: done.error,
        attempts,
    }));
}
