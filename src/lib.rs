//! strait: an edge reverse proxy on Pingora.
//!
//! The binary is a thin CLI over this library: `config::load_file` → `server::run`.

pub mod balance;
pub mod config;
pub mod demo;
pub mod health;
pub mod logging;
pub mod proxy;
pub mod router;
pub mod server;
pub mod snapshot;
pub mod state;
