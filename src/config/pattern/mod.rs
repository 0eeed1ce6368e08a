//! The patterns and templates routing reads: host patterns, path patterns, request matchers
//! and `$variable` templates. Parsed and checked at load (errors carry `file:line:col` from
//! `decode/`); matched on the request path by `crate::router`.

pub mod host;
pub mod path;
pub mod request;
pub mod template;
