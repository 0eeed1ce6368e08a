//! Prometheus metrics (design §5) and the per-domain figures behind the admin `/stats`.
//!
//! Everything lives in the default registry of the `prometheus` crate as `pingora-prometheus`
//! re-exports it, so `/metrics` on the probe listener (and `pingora-prometheus`'s own app, if a
//! library user adds it) shows one registry: strait's metrics, the process metrics of
//! [`process`] and anything a library user registers.
//!
//! Label values never come from the client: `domain` is the configured name of the matched
//! domain (its first host pattern) or `(unknown)`, `route` the configured path prefix or
//! `(none)`, `status` the number strait answered with, `backend` a configured backend URL (or
//! one added through the admin API).
//!
//! Gauges that describe the current state (backend health, cache size) are refreshed from the
//! live snapshot when `/metrics` is scraped ([`refresh`]), so removed backends disappear.

pub(crate) mod latency;
pub(crate) mod process;
pub(crate) mod runtime;
pub(crate) mod traffic;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use once_cell::sync::Lazy;
use pingora_prometheus::prometheus::{
    self, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, register_int_gauge_vec, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec,
};

use crate::state::State;
pub(crate) use traffic::Traffic;

/// `domain` label of a request whose Host matches no configured domain.
pub(crate) const UNKNOWN_DOMAIN: &str = "(unknown)";
/// `route` label of a request that matched its domain but none of its routes.
pub(crate) const NO_ROUTE: &str = "(none)";

/// Seconds; from sub-millisecond cache hits to slow uploads.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

// Registration can only fail on a name clash inside this one registry, i.e. a bug caught by
// the first test that touches metrics; `expect` documents that.
pub(crate) static REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_requests_total",
        "Requests answered, by configured domain, route prefix and status (0: no response).",
        &["domain", "route", "status"]
    )
    .expect("register strait_requests_total")
});

pub(crate) static REQUEST_DURATION: Lazy<HistogramVec> = Lazy::new(|| {
    register_histogram_vec!(
        "strait_request_duration_seconds",
        "Time from the request head to the end of the response, by configured domain.",
        &["domain"],
        DURATION_BUCKETS.to_vec()
    )
    .expect("register strait_request_duration_seconds")
});

/// Seconds; plugin calls are meant to take well under a millisecond on loopback.
const PLUGIN_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

pub(crate) static CLUSTER_RATE_FALLBACKS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_cluster_rate_fallbacks_total",
        "Cluster rate-limit decisions made by the node alone (its share of the limit) because Redis could not decide, by reason: timeout (no answer within cluster.redis.timeout), error (connection refused or an error answer), held_off (Redis failed a decision less than 500ms before).",
        &["reason"]
    )
    .expect("register strait_cluster_rate_fallbacks_total")
});

pub(crate) static DISCOVERY_LOOKUPS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_discovery_lookups_total",
        "Discovery lookups (discovery.dns) by configured domain and outcome: ok, or error (the last good set of backends is kept).",
        &["domain", "outcome"]
    )
    .expect("register strait_discovery_lookups_total")
});

pub(crate) static CLUSTER_REDIS_UP: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!(
        "strait_cluster_redis_up",
        "1 when cluster.redis answered the last cluster rate-limit decision that asked it, 0 when it did not, none has yet, or no limit has scope: cluster."
    )
    .expect("register strait_cluster_redis_up")
});

pub(crate) static PLUGIN_CALLS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_plugin_calls_total",
        "Plugin calls by configured plugin name, phase (hello, request, response) and outcome: continue, respond, ok, cached (answered by the decision cache, no call), error (an answer strait cannot use), timeout, unavailable (no connection).",
        &["plugin", "phase", "outcome"]
    )
    .expect("register strait_plugin_calls_total")
});

pub(crate) static PLUGIN_CALL_SECONDS: Lazy<HistogramVec> = Lazy::new(|| {
    register_histogram_vec!(
        "strait_plugin_call_seconds",
        "Time each plugin call took (cache answers excluded), by plugin and phase.",
        &["plugin", "phase"],
        PLUGIN_BUCKETS.to_vec()
    )
    .expect("register strait_plugin_call_seconds")
});

pub(crate) static UPSTREAM_REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_upstream_requests_total",
        "Attempts sent to a backend: outcome ok (it answered), error, or timeout.",
        &["backend", "outcome"]
    )
    .expect("register strait_upstream_requests_total")
});

pub(crate) static BACKEND_HEALTHY: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "strait_backend_healthy",
        "1 when the backend passes its health checks (or has none), else 0.",
        &["domain", "backend"]
    )
    .expect("register strait_backend_healthy")
});

pub(crate) static BACKEND_ENABLED: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "strait_backend_enabled",
        "1 unless the backend is drained through the admin API.",
        &["domain", "backend"]
    )
    .expect("register strait_backend_enabled")
});

pub(crate) static BACKEND_ACTIVE: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "strait_backend_active_requests",
        "Requests in flight on the backend.",
        &["domain", "backend"]
    )
    .expect("register strait_backend_active_requests")
});

pub(crate) static BACKEND_EJECTED: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "strait_backend_ejected",
        "1 while passive health keeps the backend out after failures in real traffic, else 0.",
        &["domain", "backend"]
    )
    .expect("register strait_backend_ejected")
});

pub(crate) static BACKEND_EJECTIONS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_backend_ejections_total",
        "Times passive health ejected the backend.",
        &["backend"]
    )
    .expect("register strait_backend_ejections_total")
});

pub(crate) static RETRIES: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_retries_total",
        "Retries onto another backend: retried, or budget_exhausted (not made: over retry_budget).",
        &["outcome"]
    )
    .expect("register strait_retries_total")
});

pub(crate) static CONNECTIONS_QUEUED: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "strait_connections_queued_total",
        "Client connections that waited because server.max_connections were being served."
    )
    .expect("register strait_connections_queued_total")
});

pub(crate) static CACHE_REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_cache_requests_total",
        "Requests that went through the cache, by result: hit, miss, stale or bypass.",
        &["result"]
    )
    .expect("register strait_cache_requests_total")
});

pub(crate) static COMPRESSED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_compressed_responses_total",
        "Responses compressed on the fly (`compress`), by algorithm: zstd, br or gzip.",
        &["algorithm"]
    )
    .expect("register strait_compressed_responses_total")
});

pub(crate) static CACHE_BYTES: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!("strait_cache_bytes", "Bytes held by the response cache.")
        .expect("register strait_cache_bytes")
});

pub(crate) static CACHE_ENTRIES: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!("strait_cache_entries", "Responses held by the cache.")
        .expect("register strait_cache_entries")
});

pub(crate) static RATELIMITED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_ratelimited_total",
        "Requests refused with 429 by strait itself (not by a backend), by configured domain.",
        &["domain"]
    )
    .expect("register strait_ratelimited_total")
});

pub(crate) static ACCESS_LOG_DROPPED: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "strait_access_log_dropped_total",
        "Access log lines dropped because the writer fell behind (the queue was full)."
    )
    .expect("register strait_access_log_dropped_total")
});

pub(crate) static SNI_DROPPED: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "strait_tls_handshakes_dropped_total",
        "TLS handshakes refused because their SNI names a domain with `drop: true`."
    )
    .expect("register strait_tls_handshakes_dropped_total")
});

pub(crate) static TRACE_SPANS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_trace_spans_total",
        "Spans for the OTLP exporter (tracing.otlp_endpoint), by outcome: exported (the collector took them), dropped (the queue was full) or failed (the collector could not be reached or refused them).",
        &["outcome"]
    )
    .expect("register strait_trace_spans_total")
});

pub(crate) static CERTIFICATE_EXPIRY: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "strait_certificate_expiry_seconds",
        "When the certificate an ACME host is served with expires (Unix time, seconds); absent while the host is pending.",
        &["host"]
    )
    .expect("register strait_certificate_expiry_seconds")
});

pub(crate) static ACME_ORDERS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "strait_acme_orders_total",
        "ACME orders, by outcome: issued (a host's first certificate), renewed, or failed (the ACME server unreachable, the order refused, the files not written).",
        &["outcome"]
    )
    .expect("register strait_acme_orders_total")
});

/// Registers every metric (so `/metrics` lists them from the start) and the process collector.
/// Idempotent.
pub(crate) fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        Lazy::force(&REQUESTS);
        Lazy::force(&REQUEST_DURATION);
        Lazy::force(&CERTIFICATE_EXPIRY);
        Lazy::force(&ACME_ORDERS);
        Lazy::force(&UPSTREAM_REQUESTS);
        Lazy::force(&BACKEND_HEALTHY);
        Lazy::force(&BACKEND_ENABLED);
        Lazy::force(&BACKEND_ACTIVE);
        Lazy::force(&BACKEND_EJECTED);
        Lazy::force(&BACKEND_EJECTIONS);
        Lazy::force(&RETRIES);
        Lazy::force(&CONNECTIONS_QUEUED);
        Lazy::force(&CACHE_REQUESTS);
        Lazy::force(&COMPRESSED);
        Lazy::force(&SNI_DROPPED);
        Lazy::force(&CACHE_BYTES);
        Lazy::force(&CACHE_ENTRIES);
        Lazy::force(&RATELIMITED);
        Lazy::force(&ACCESS_LOG_DROPPED);
        for outcome in ["exported", "dropped", "failed"] {
            TRACE_SPANS.with_label_values(&[outcome]);
        }
        if let Err(e) = prometheus::register(Box::new(process::ProcessCollector::new())) {
            log::warn!("process metrics unavailable: {e}");
        }
        if let Err(e) = prometheus::register(Box::new(runtime::RuntimeCollector::new())) {
            log::warn!("runtime metrics unavailable: {e}");
        }
    });
}

/// Status codes as label strings without formatting one per request.
static STATUS_LABELS: Lazy<Vec<String>> = Lazy::new(|| (0..600).map(|s| s.to_string()).collect());

pub(crate) fn status_label(status: u16) -> &'static str {
    STATUS_LABELS
        .get(status as usize)
        .map(String::as_str)
        .unwrap_or("0")
}

/// One finished request, as the proxy's `logging` phase saw it.
pub(crate) struct RequestRecord<'a> {
    pub domain: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub duration: Duration,
    /// Whether strait answered 429 itself (rate limit), as opposed to relaying a backend's 429.
    pub ratelimited: bool,
    /// `hit`, `miss`, `stale` or `bypass`; `None` when the cache was not involved.
    pub cache: Option<&'static str>,
    /// Why it was not a hit (`X-Cache-Reason`), when the cache took part.
    pub cache_reason: Option<&'static str>,
    /// The algorithm the body was compressed with on the fly.
    pub compressed: Option<&'static str>,
}

pub(crate) fn record(stats: &DomainStatsMap, r: &RequestRecord<'_>) {
    // `strait_requests_total` last: a scrape that sees a request there finds it everywhere.
    stats.get(r.domain).record(r);
    REQUEST_DURATION
        .with_label_values(&[r.domain])
        .observe(r.duration.as_secs_f64());
    if r.ratelimited {
        RATELIMITED.with_label_values(&[r.domain]).inc();
    }
    if let Some(result) = r.cache {
        CACHE_REQUESTS.with_label_values(&[result]).inc();
    }
    if let Some(algorithm) = r.compressed {
        COMPRESSED.with_label_values(&[algorithm]).inc();
    }
    REQUESTS
        .with_label_values(&[r.domain, r.route, status_label(r.status)])
        .inc();
}

pub(crate) fn record_ejection(backend: &str) {
    BACKEND_EJECTIONS.with_label_values(&[backend]).inc();
}

pub(crate) fn record_retry(made: bool) {
    RETRIES
        .with_label_values(&[if made { "retried" } else { "budget_exhausted" }])
        .inc();
}

pub(crate) fn record_upstream(backend: &str, outcome: &str) {
    UPSTREAM_REQUESTS
        .with_label_values(&[backend, outcome])
        .inc();
}

/// Refreshes the state gauges from the live snapshot; called before each scrape.
pub(crate) fn refresh(state: &State) {
    let snapshot = state.snapshot();
    BACKEND_HEALTHY.reset();
    BACKEND_ENABLED.reset();
    BACKEND_ACTIVE.reset();
    BACKEND_EJECTED.reset();
    CLUSTER_REDIS_UP.set(
        snapshot
            .cluster_counter()
            .map_or(0, |c| i64::from(c.is_up())),
    );
    let mut seen = Vec::new();
    for (domain, pool) in snapshot_pools(&snapshot) {
        if seen.contains(&pool) {
            continue;
        }
        seen.push(pool);
        let Some(pool) = snapshot.pools.get(pool) else {
            continue;
        };
        for b in &pool.backends {
            let labels = [domain, b.config.url.as_str()];
            BACKEND_HEALTHY
                .with_label_values(&labels)
                .set(i64::from(b.is_healthy()));
            BACKEND_ENABLED
                .with_label_values(&labels)
                .set(i64::from(b.is_enabled()));
            BACKEND_ACTIVE
                .with_label_values(&labels)
                .set(b.active() as i64);
            BACKEND_EJECTED
                .with_label_values(&labels)
                .set(i64::from(b.outlier.ejected_until_ms().is_some()));
        }
    }
    let (bytes, entries) = crate::admin::cache_api::size();
    CACHE_BYTES.set(bytes as i64);
    CACHE_ENTRIES.set(entries as i64);
}

/// `(domain name, pool index)` for every pool a domain or one of its routes proxies to.
pub(crate) fn snapshot_pools(snapshot: &crate::snapshot::Snapshot) -> Vec<(&str, usize)> {
    use crate::config::Action;
    let mut out = Vec::new();
    for (d, runtime) in snapshot.config.domains.iter().zip(&snapshot.domains) {
        for action in d.handlings().map(|h| &h.action) {
            if let Action::Proxy { pool, .. } = action {
                out.push((runtime.name.as_str(), *pool));
            }
        }
    }
    out
}

/// Per-domain request figures for `/stats`.
#[derive(Default)]
pub(crate) struct DomainStats {
    /// Requests, errors, status classes and latency of the whole domain.
    pub traffic: Traffic,
    /// 429s strait answered itself (the dashboard's rate-limit rejections).
    pub ratelimited: AtomicU64,
    /// Cache outcomes: hit, miss, stale, bypass (see [`CACHE_RESULTS`]).
    pub cache: [AtomicU64; 4],
    /// Figures per matched route (`path_prefix`; `(none)` for the domain's own handling).
    /// Keys are configured prefixes, so the map is bounded by the configs this process ran.
    pub routes: RwLock<HashMap<String, Arc<Traffic>>>,
    /// Non-hits by reason (a fixed set of strait's own words, so bounded).
    pub miss_reasons: std::sync::Mutex<HashMap<&'static str, u64>>,
}

/// The cache outcomes counted per domain, in the order of [`DomainStats::cache`].
pub(crate) const CACHE_RESULTS: [&str; 4] = ["hit", "miss", "stale", "bypass"];

impl DomainStats {
    fn record(&self, r: &RequestRecord<'_>) {
        let (status, duration) = (r.status, r.duration);
        if r.ratelimited {
            self.ratelimited.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(i) = r
            .cache
            .and_then(|c| CACHE_RESULTS.iter().position(|x| *x == c))
        {
            self.cache[i].fetch_add(1, Ordering::Relaxed);
        }
        self.route(r.route).record(r.status, r.duration);
        if let Some(reason) = r.cache_reason {
            *self
                .miss_reasons
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(reason)
                .or_default() += 1;
        }
        self.traffic.record(status, duration);
    }
}

impl DomainStats {
    fn route(&self, route: &str) -> Arc<Traffic> {
        if let Some(c) = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(route)
        {
            return c.clone();
        }
        self.routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(route.to_string())
            .or_default()
            .clone()
    }

    /// Non-hits by reason, the most frequent first.
    pub(crate) fn top_miss_reasons(&self) -> Vec<(&'static str, u64)> {
        let map = self.miss_reasons.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = map.iter().map(|(k, v)| (*k, *v)).collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        out
    }

    /// Every route seen so far with its figures, sorted by prefix.
    pub(crate) fn routes(&self) -> Vec<(String, Arc<Traffic>)> {
        let map = self.routes.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// The per-domain stats of one server (kept in its `State`), for the admin API's `/stats`.
#[derive(Default)]
pub(crate) struct DomainStatsMap(RwLock<HashMap<String, Arc<DomainStats>>>);

impl DomainStatsMap {
    /// The stats of `domain`, created on first use. Domains are configured names, so this
    /// map is bounded by the configs this process has run.
    pub(crate) fn get(&self, domain: &str) -> Arc<DomainStats> {
        if let Some(s) = self.0.read().unwrap_or_else(|e| e.into_inner()).get(domain) {
            return s.clone();
        }
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(domain.to_string())
            .or_default()
            .clone()
    }

    /// Every domain seen so far with its stats.
    pub(crate) fn all(&self) -> Vec<(String, Arc<DomainStats>)> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}
