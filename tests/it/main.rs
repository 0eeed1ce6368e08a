//! strait's integration tests: real origins on loopback, a real `strait` process, real
//! HTTP/1.1 over TCP. One test binary (one link) with a module per area.

mod support;

mod access_log;
mod admin;
mod balancing;
mod cache;
mod client_abort;
mod config_errors;
mod h2c;
mod headers;
mod health;
mod hooks;
mod lifecycle;
mod metrics;
mod policy;
mod retries;
mod routing;
mod startup;
mod timeouts;
mod tls;
mod websocket;
