//! Tracing (docs/tracing.md): W3C Trace Context on every upstream request (`context.rs`,
//! applied by `proxy/trace.rs`) and, when `tracing.otlp_endpoint` is set, one server span per
//! request with a client span per upstream attempt, exported in batches to an OTLP/HTTP
//! collector off the request path (`export.rs`, encoded by `otlp.rs`).

pub(crate) mod context;
pub(crate) mod export;
mod otlp;

pub(crate) use context::{SpanId, TraceId};
pub(crate) use export::{AttemptSpan, Exporter, RequestSpans};
