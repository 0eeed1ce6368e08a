//! Layer 4: connections relayed as raw bytes rather than served as HTTP (docs/l4.md).
//!
//! - `tcp` listeners (`tcp.rs`): every connection goes to the listener's pool.
//! - `pass` domains (`pass.rs`): on a TLS listener, the ClientHello is read first
//!   (`client_hello.rs`); a server name that routes to a `pass` domain has its connection
//!   relayed, still encrypted, to the domain's pool, any other is handed back for strait to
//!   terminate and serve as HTTP.
//!
//! Both relay through `session.rs`: a backend (`connect.rs`, with the pools' balancing,
//! health, `max_connections` and retries), an optional PROXY v2 header (`proxy_header.rs`),
//! the relay itself (`relay.rs`), then metrics (`metrics.rs`) and one access-log line.

pub(crate) mod client_hello;
mod connect;
pub(crate) mod metrics;
pub(crate) mod pass;
mod proxy_header;
mod relay;
mod session;
pub(crate) mod tcp;
