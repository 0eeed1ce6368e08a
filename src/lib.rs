//! strait: an edge reverse proxy on Pingora.
//!
//! The binary is a thin CLI over this library: `config::load_file` → `server::run`. Programs
//! that embed strait use the [`Strait`] builder, which adds Rust hooks (see [`hooks`]) to a
//! YAML or in-code config:
//!
//! ```no_run
//! strait::Strait::from_file("conf/strait.yaml")?
//!     .on_response(|resp| resp.set_header("X-Served-By", "strait"))
//!     .run()?;
//! # Ok::<(), strait::StartError>(())
//! ```

pub mod access_log;
pub mod admin;
pub mod balance;
pub mod cache;
pub mod config;
pub mod demo;
pub mod health;
pub mod hooks;
pub mod lifecycle;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod router;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod tls;

mod ascii;
mod builder;

pub use builder::Strait;
pub use hooks::{ErrorEvent, Hooks, Reject, Request, Response};
pub use server::StartError;
