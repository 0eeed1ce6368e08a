//! strait: an edge reverse proxy on Pingora.
//!
//! The binary is a thin CLI over this library. Programs that embed strait use the [`Strait`]
//! builder, which adds Rust hooks (see [`hooks`]) to a YAML or in-code config ([`config`]):
//!
//! ```no_run
//! strait::Strait::from_file("conf/strait.yaml")?
//!     .on_response(|resp| resp.set_header("X-Served-By", "strait"))
//!     .run()?;
//! # Ok::<(), strait::StartError>(())
//! ```
//!
//! The rest of the crate is private; `docs/architecture.md` maps it.

#![warn(missing_docs, unreachable_pub)]

pub mod config;
pub mod demo;
pub mod explain;
pub mod hooks;
pub mod logging;
pub mod plan;

pub(crate) mod access_log;
pub(crate) mod acme;
pub(crate) mod admin;
pub(crate) mod balance;
pub(crate) mod cache;
pub(crate) mod cluster;
pub(crate) mod compress;
pub(crate) mod daemon;
pub(crate) mod discovery;
pub(crate) mod health;
pub(crate) mod l4;
pub(crate) mod lifecycle;
pub(crate) mod limits;
pub(crate) mod metrics;
pub(crate) mod plugins;
pub(crate) mod proxy;
pub(crate) mod router;
pub(crate) mod serve;
pub(crate) mod server;
pub(crate) mod snapshot;
pub(crate) mod state;
pub(crate) mod tls;
pub(crate) mod trace;

mod ascii;
mod builder;

pub use builder::Strait;
pub use hooks::{ErrorEvent, Reject, Request, Response};
pub use server::{Prepared, StartError};

/// What `benches/` measures; not part of the API.
#[doc(hidden)]
pub mod bench {
    pub use crate::balance::hash_ip;
    pub use crate::cache::key;
    pub use crate::cache::storage::StoredMeta;
    pub use crate::cache::MemoryStore;
    pub use crate::router::Request;
    pub use crate::snapshot::Snapshot;
}
