//! strait: an edge reverse proxy on Pingora.
//!
//! The binary is a thin CLI over this library: `config::load_file` → `server::run`.

pub mod access_log;
pub mod admin;
pub mod balance;
pub mod cache;
pub mod config;
pub mod demo;
pub mod health;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod router;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod tls;
