//! strait's integration tests: real origins on loopback, a real `strait` process, real
//! HTTP/1.1 over TCP. One test binary (one link) with a module per area.

mod support;

mod access_log;
/// Against pebble (support/pebble.rs): issuance, renewal, restarts, failures.
mod acme;
/// admin/mod.rs: ports, load and JSON helpers; admin/{add,auth,bad_input,dashboard,drain,
/// one_backend,probe,purge}.rs.
mod admin;
mod balancing;
/// cache/mod.rs: helpers; cache/{body_drain,eviction,freshness,invalidation,keys,lock,
/// precompress,rules,stale}.rs.
mod cache;
mod client_abort;
/// cluster/mod.rs: nodes on one etcd; cluster/{state,discovery,outage}.rs.
mod cluster;
mod cluster_rate;
mod compress;
mod config_cli;
mod config_errors;
mod container;
mod daemon;
mod dashboard_browser;
mod discovery;
mod explain;
mod framing;
mod h2c;
mod headers;
mod health;
mod hooks;
mod include;
mod l4_pass;
mod l4_tcp;
mod lifecycle;
mod logging;
mod metrics;
mod notify;
mod plan;
mod plugin_examples;
mod plugins;
mod policy;
mod resilience;
mod retries;
mod route_match;
mod routing;
mod schema;
mod serve;
mod startup;
mod timeouts;
mod tls;
mod tls_auth;
mod tls_rotate;
mod tracing;
mod watch;
mod websocket;
