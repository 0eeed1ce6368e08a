//! The metrics of relayed connections (`tcp` listeners and `pass` domains) and of the
//! ClientHellos read on TLS listeners. `pool` is the pool's configured name (the `pass`
//! domain's first host, or the `tcp` listener's name), `backend` a configured backend
//! address or `(none)` when no backend took the connection.

use once_cell::sync::Lazy;
use pingora_prometheus::prometheus::{
    register_int_counter_vec, register_int_gauge_vec, IntCounterVec, IntGaugeVec,
};

/// `backend` of a connection no backend took.
pub(crate) const NO_BACKEND: &str = "(none)";

// Registration fails only on a name clash in the one registry (see crate::metrics).
pub(crate) static CONNECTIONS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_l4_connections_total",
        "Relayed connections (tcp listeners, pass domains) that ended, by pool, backend and how they ended: client_closed, backend_closed, client_error, backend_error, idle_timeout, shutdown, or, with backend (none), no_backend, busy, connect_failed.",
        &["pool", "backend", "close"]
    )
    .expect("register strait_l4_connections_total")
});

pub(crate) static BYTES: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_l4_bytes_total",
        "Bytes relayed, by pool and direction: in (client to backend) or out (backend to client).",
        &["pool", "direction"]
    )
    .expect("register strait_l4_bytes_total")
});

pub(crate) static ACTIVE: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "strait_l4_active_connections",
        "Relayed connections open now, by pool.",
        &["pool"]
    )
    .expect("register strait_l4_active_connections")
});

pub(crate) static CONNECT_FAILURES: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_l4_connect_failures_total",
        "Failed connects to a relay backend (refused, unreachable or slower than connect_timeout); each is retried on another backend within max_retries.",
        &["pool", "backend"]
    )
    .expect("register strait_l4_connect_failures_total")
});

pub(crate) static HELLO_REFUSED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_tls_hello_refused_total",
        "Connections to TLS listeners closed before a handshake because their ClientHello was not one strait accepts: timeout (not complete within request_header_timeout), not_tls, not_client_hello, malformed, too_large, bad_server_name.",
        &["reason"]
    )
    .expect("register strait_tls_hello_refused_total")
});

pub(crate) static HANDSHAKE_FAILED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_tls_handshake_failures_total",
        "TLS handshakes on strait's TLS listeners that failed after a good ClientHello, by reason: error (refused by either side, e.g. no shared version, a missing or bad client certificate) or timeout (not done within request_header_timeout).",
        &["reason"]
    )
    .expect("register strait_tls_handshake_failures_total")
});
