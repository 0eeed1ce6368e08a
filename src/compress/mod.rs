//! On-the-fly response compression (`compress:` on a domain or route; docs/compression.md).
//!
//! strait negotiates; Pingora compresses. `negotiate` picks the coding from the request's
//! `Accept-Encoding` with quality values and the configured order, in the request phase;
//! `module` is a Pingora downstream module that, at the response header, decides whether the
//! response is compressible (status, type, size, no coding yet, no `no-transform`), adds
//! `Vary`, fixes the framing and validator headers, and streams the body through Pingora's
//! own encoders (`pingora::protocols::http::compression::Algorithm::compressor`).
//!
//! Pingora's `ResponseCompression` module is not used for the decision: it ignores quality
//! values (it takes the first coding the client lists, so `br;q=0` still selects br), has
//! no server-side preference, treats a leading `*` as "no compression", fixes the compressible
//! types (a regex over `text/`, `application/`, ...) and the minimum size (20 bytes), and adds
//! `Vary` only when it could compress for some client under its own rules.

mod module;
mod negotiate;

pub(crate) use module::{Builder, Compression};
pub(crate) use negotiate::choose;
