//! Runtime backend changes: find a pool by domain (and route), then add, remove, drain.
//!
//! Adding or removing renders a new [`Config`] with that one pool's list changed and builds the
//! next snapshot from it with the current one as `previous`, exactly as a reload does: every
//! backend that stays keeps its `Arc<Backend>` (health, drain state, in-flight count), a new
//! backend in a health-checked pool starts unhealthy and is probed at once by the health
//! checker (which follows the live snapshot), and a removed backend simply is not carried:
//! requests already on it hold their lease and target and finish there. Everything is checked
//! before the swap, under `State::control`, so a change is applied whole or not at all and never
//! races a reload. Draining only flips the backend's `enabled` flag.
//!
//! Without `cluster.etcd` these changes live in memory: a reload from the file replaces them
//! (`"persisted": false`). With it they are written to etcd instead, and every node (this one
//! included) applies them from its watch (`crate::cluster`); the answer waits, bounded, until
//! this node has (`"persisted": true`, `"applied"`).

use std::net::IpAddr;
use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::web::{ApiError, ApiResult};
use crate::balance::{Backend, Pool, MAX_WEIGHT};
use crate::config::{Action, BackendConfig, Pos, Scheme};
use crate::snapshot::{self, Snapshot};
use crate::state::State;

/// A domain's (or route's) pool in one snapshot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolRef {
    pub(crate) pool: usize,
}

/// A domain by its name (first host) or any of its host patterns, case-insensitively.
pub(crate) fn find_domain(snapshot: &Snapshot, name: &str) -> Result<usize, ApiError> {
    let name = name.trim().to_ascii_lowercase();
    snapshot
        .config
        .domains
        .iter()
        .position(|d| d.hosts.iter().any(|h| h.text() == name))
        .ok_or_else(|| ApiError::not_found(format!("no domain {name:?}")))
}

/// The pool that `domain` (or its route with this name: its path pattern, then any matchers
/// and listeners) proxies to.
pub(crate) fn find_pool(
    snapshot: &Snapshot,
    domain: &str,
    route: Option<&str>,
) -> Result<PoolRef, ApiError> {
    // `@NAME`: a `tcp` listener's pool (`?listener=NAME` in the API).
    if let Some(name) = domain.strip_prefix('@') {
        let tcp = snapshot
            .config
            .listeners
            .iter()
            .find(|l| l.name.as_deref() == Some(name))
            .ok_or_else(|| ApiError::not_found(format!("no listener {name:?}")))?
            .tcp
            .as_ref()
            .ok_or_else(|| {
                ApiError::conflict(format!("listener {name:?} is not a tcp listener"))
            })?;
        return match tcp.pool < snapshot.pools.len() {
            true => Ok(PoolRef { pool: tcp.pool }),
            false => Err(ApiError::not_found(format!(
                "listener {name:?} has no pool"
            ))),
        };
    }
    let d = find_domain(snapshot, domain)?;
    let dc = &snapshot.config.domains[d];
    // A `pass` domain's pool is the one its TLS connections are relayed to.
    if let (None, Some(pass)) = (route, &dc.pass) {
        if pass.pool < snapshot.pools.len() {
            return Ok(PoolRef { pool: pass.pool });
        }
    }
    let action = match route {
        None => &dc.handling.action,
        Some(prefix) => {
            let r = dc
                .routes
                .iter()
                .position(|r| r.name == prefix)
                .ok_or_else(|| {
                    ApiError::not_found(format!("domain {domain:?} has no route {prefix:?}"))
                })?;
            &dc.routes[r].handling.action
        }
    };
    match action {
        Action::Proxy { pool, .. } if *pool < snapshot.pools.len() => Ok(PoolRef { pool: *pool }),
        Action::Respond(_) => Err(ApiError::conflict(
            "this route answers with a static response; it has no backends",
        )),
        Action::Serve(_) => Err(ApiError::conflict(
            "this route serves files (`serve`); it has no backends",
        )),
        _ => Err(ApiError::conflict(
            "no backend pool here (the config has no `backends` for it)",
        )),
    }
}

pub(crate) fn backend_json(b: &Backend) -> Value {
    json!({
        "addr": b.config.url,
        "resolved": b.addr.to_string(),
        "weight": b.weight(),
        "max_connections": b.config.max_connections,
        "healthy": b.is_healthy(),
        "enabled": b.is_enabled(),
        "active": b.active(),
        "requests": b.requests(),
        "failures": b.failures(),
        "passive": {
            "ejected": b.outlier.ejected_until_ms().is_some(),
            "ejected_for_ms": b
                .outlier
                .ejected_until_ms()
                .map(|until| until.saturating_sub(crate::balance::now_ms())),
            "on_probation": b.outlier.on_probation(),
            "consecutive_failures": b.outlier.consecutive_failures(),
            "ejections": b.outlier.total_ejections(),
        },
        "latency_ms": match b.latency_ns() {
            0 => None,
            ns => Some(ns as f64 / 1e6),
        },
    })
}

/// `scheme://host:port` (scheme optional) naming a backend in a query parameter.
struct Address {
    scheme: Option<Scheme>,
    host: String,
    port: u16,
}

fn parse_address(text: &str) -> Result<Address, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::bad_request("missing `addr`"));
    }
    if let Some(rest) = text.strip_prefix("tcp://") {
        let (host, port) = crate::config::parse_l4_addr(rest).map_err(ApiError::bad_request)?;
        return Ok(Address {
            scheme: Some(Scheme::Tcp),
            host,
            port,
        });
    }
    let (scheme, url) = if text.contains("://") {
        (true, text.to_string())
    } else {
        (false, format!("http://{text}"))
    };
    let (s, host, port) = crate::config::parse_backend_url(&url).map_err(ApiError::bad_request)?;
    Ok(Address {
        scheme: scheme.then_some(s),
        host,
        port,
    })
}

fn same_host(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.eq_ignore_ascii_case(b),
    }
}

impl Address {
    fn matches(&self, b: &BackendConfig) -> bool {
        self.scheme.is_none_or(|s| s == b.scheme)
            && self.port == b.port
            && same_host(&self.host, &b.host)
    }
}

/// The index in `pool` of the one backend `addr` names.
pub(crate) fn find_backend(pool: &Pool, addr: &str) -> Result<usize, ApiError> {
    let wanted = parse_address(addr)?;
    let found: Vec<usize> = pool
        .backends
        .iter()
        .enumerate()
        .filter(|(_, b)| wanted.matches(&b.config))
        .map(|(i, _)| i)
        .collect();
    match found[..] {
        [i] => Ok(i),
        [] => Err(ApiError::not_found(format!(
            "pool {} has no backend {addr:?}",
            pool.name
        ))),
        _ => Err(ApiError::conflict(format!(
            "{addr:?} names several backends of pool {}; give the scheme too",
            pool.name
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBackend {
    addr: String,
    #[serde(default = "one")]
    weight: u32,
    /// As the config's backend `max_connections`: absent means no cap.
    #[serde(default)]
    max_connections: Option<u32>,
}

/// The config decoder's bounds for `max_connections`.
const MAX_CONNECTIONS: std::ops::RangeInclusive<u32> = 1..=1_000_000;

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Enabled {
    enabled: bool,
}

pub(crate) fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("expected a JSON body"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("bad JSON: {e}")))
}

/// Whether pool `pool` is a `pass` domain's or a `tcp` listener's (connections relayed as
/// bytes, backends given as `host:port`).
fn is_relay_pool(snapshot: &Snapshot, pool: usize) -> bool {
    let c = &snapshot.config;
    c.domains
        .iter()
        .filter_map(|d| d.pass.as_ref())
        .chain(c.listeners.iter().filter_map(|l| l.tcp.as_ref()))
        .any(|r| r.pool == pool)
}

/// Builds and swaps in the next snapshot with pool `pool`'s backends replaced.
async fn apply(
    state: &State,
    current: &Snapshot,
    pool: usize,
    backends: Vec<BackendConfig>,
) -> Result<Arc<Snapshot>, ApiError> {
    let mut config = (*current.config).clone();
    let Some(pc) = config.pools.get_mut(pool) else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "pool vanished",
        ));
    };
    pc.backends = backends;
    let next = Snapshot::build(config, Some(current))
        .await
        .map_err(|errors| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot rebuild the routing table; nothing was changed",
            )
            .with_errors(&errors)
        })?;
    state.swap(next);
    Ok(state.snapshot())
}

/// Makes domain `domain`'s pool hold exactly `http://` each of `wanted` (discovery,
/// `crate::discovery`): a
/// backend already there stays as it is (health, drain state, in-flight requests), a new one
/// is added as `POST /backends` adds it (behind a good health check when the pool is
/// checked), a vanished one is removed as `DELETE /backends` removes it (requests in flight
/// on it finish there). `source` names the change in the new backends' config path. Returns
/// how many were (added, removed); (0, 0) changes nothing.
pub(crate) async fn set_pool(
    state: &State,
    domain: &str,
    wanted: &[std::net::SocketAddr],
    source: &str,
) -> Result<(usize, usize), ApiError> {
    let _serialised = state.control.lock().await;
    let current = state.snapshot();
    let at = find_pool(&current, domain, None)?;
    let pool = &current.pools[at.pool];
    let old = &current.config.pools[at.pool].backends;
    let is_wanted = |b: &Backend| b.config.scheme == Scheme::Http && wanted.contains(&b.addr);
    let mut backends: Vec<BackendConfig> = old
        .iter()
        .zip(pool.backends.iter())
        .filter(|(_, b)| is_wanted(b))
        .map(|(c, _)| c.clone())
        .collect();
    let removed = old.len() - backends.len();
    let mut added = 0;
    for &addr in wanted {
        if pool.backends.iter().any(|b| is_wanted(b) && b.addr == addr) {
            continue;
        }
        backends.push(BackendConfig {
            url: format!("http://{addr}"),
            scheme: Scheme::Http,
            host: addr.ip().to_string(),
            port: addr.port(),
            weight: 1,
            max_connections: None,
            pos: Pos::default(),
            path: source.to_string(),
        });
        added += 1;
    }
    if added > 0 || removed > 0 {
        apply(state, &current, at.pool, backends).await?;
    }
    Ok((added, removed))
}

/// `POST /backends?domain=D[&route=/p/]` with `{"addr": "...", "weight": N,
/// "max_connections": M}` (weight and max_connections optional).
pub(crate) async fn add(
    state: &State,
    domain: &str,
    route: Option<&str>,
    body: &[u8],
) -> ApiResult {
    let new: NewBackend = parse_json(body)?;
    if !(1..=MAX_WEIGHT).contains(&new.weight) {
        return Err(ApiError::bad_request(format!(
            "weight must be 1-{MAX_WEIGHT}, found {}",
            new.weight
        )));
    }
    if let Some(n) = new.max_connections.filter(|n| !MAX_CONNECTIONS.contains(n)) {
        return Err(ApiError::bad_request(format!(
            "max_connections must be {}-{}, found {n}",
            MAX_CONNECTIONS.start(),
            MAX_CONNECTIONS.end()
        )));
    }
    let url = new.addr.trim().to_string();
    // A `pass` pool's backends are `host:port` (or tcp://host:port), the others' URLs.
    let relay = {
        let current = state.snapshot();
        let at = find_pool(&current, domain, route)?;
        is_relay_pool(&current, at.pool)
    };
    let (scheme, host, port) = if relay {
        let (host, port) = crate::config::parse_l4_addr(&url).map_err(ApiError::bad_request)?;
        (Scheme::Tcp, host, port)
    } else {
        if !url.contains("://") {
            return Err(ApiError::bad_request(format!(
                "expected a URL like http://127.0.0.1:3000, found {url:?}"
            )));
        }
        crate::config::parse_backend_url(&url).map_err(ApiError::bad_request)?
    };
    // Resolve before taking the lock: a slow name must not hold up other changes.
    let addr = snapshot::resolve(&host, port)
        .await
        .map_err(ApiError::bad_request)?;

    let serialised = state.control.lock().await;
    let current = state.snapshot();
    let at = find_pool(&current, domain, route)?;
    let pool = &current.pools[at.pool];
    let wanted = Address {
        scheme: Some(scheme),
        host: host.clone(),
        port,
    };
    if let Some(b) = pool
        .backends
        .iter()
        .find(|b| wanted.matches(&b.config) || (b.config.scheme == scheme && b.addr == addr))
    {
        return Err(ApiError::conflict(format!(
            "pool {} already has backend {} ({})",
            pool.name, b.config.url, b.addr
        )));
    }
    let mut backends: Vec<BackendConfig> = current.config.pools[at.pool].backends.clone();
    backends.push(BackendConfig {
        url: url.clone(),
        scheme,
        host,
        port,
        weight: new.weight,
        max_connections: new.max_connections,
        pos: Pos::default(),
        path: format!("admin API: pool {}", pool.name),
    });
    let checked = pool.health_check.is_some();
    let pool_name = pool.name.clone();
    if let Some(cluster) = state.cluster() {
        // The watch applies it, under the same lock.
        drop(serialised);
        let applied = cluster
            .add_backend(&pool_name, &url, new.weight, new.max_connections)
            .await
            .map_err(unavailable)?;
        log::info!("admin API: added backend {url} to pool {pool_name} (through etcd)");
        let next = state.snapshot();
        let added = next
            .pools
            .get(at.pool)
            .and_then(|p| p.backends.iter().find(|b| b.config.url == url));
        return Ok((
            StatusCode::CREATED,
            json!({
                "pool": pool_name,
                "backend": added.map(|b| backend_json(b)),
                "health_checked": checked,
                "persisted": true,
                "applied": applied,
            }),
        ));
    }
    let next = apply(state, &current, at.pool, backends).await?;
    let added = next
        .pools
        .get(at.pool)
        .and_then(|p| p.backends.iter().find(|b| b.config.url == url));
    log::info!("admin API: added backend {url} to pool {pool_name}");
    Ok((
        StatusCode::CREATED,
        json!({
            "pool": pool_name,
            "backend": added.map(|b| backend_json(b)),
            "health_checked": checked,
            "note": if checked {
                "gets traffic after its first good health check"
            } else {
                "no health check: takes traffic now"
            },
            "persisted": false,
        }),
    ))
}

/// `DELETE /backends?domain=D[&route=/p/]&addr=A`.
pub(crate) async fn remove(
    state: &State,
    domain: &str,
    route: Option<&str>,
    addr: &str,
) -> ApiResult {
    let serialised = state.control.lock().await;
    let current = state.snapshot();
    let at = find_pool(&current, domain, route)?;
    let pool = &current.pools[at.pool];
    let index = find_backend(pool, addr)?;
    let removed = pool.backends[index].clone();
    if let Some(cluster) = state.cluster() {
        drop(serialised);
        let pool_name = pool.name.clone();
        let applied = cluster
            .remove_backend(&pool_name, &removed.config.url)
            .await
            .map_err(unavailable)?;
        log::info!(
            "admin API: removed backend {} from pool {pool_name} (through etcd)",
            removed.config.url
        );
        return Ok((
            StatusCode::OK,
            json!({
                "pool": pool_name,
                "removed": backend_json(&removed),
                "persisted": true,
                "applied": applied,
            }),
        ));
    }
    let mut backends = current.config.pools[at.pool].backends.clone();
    // The config list and the runtime pool are built from each other, index for index.
    let Some(pos) = backends
        .iter()
        .position(|b| b.url == removed.config.url && b.weight == removed.config.weight)
    else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "backend not in the config model",
        ));
    };
    backends.remove(pos);
    let pool_name = pool.name.clone();
    apply(state, &current, at.pool, backends).await?;
    log::info!(
        "admin API: removed backend {} from pool {pool_name} ({} request(s) still in flight on it)",
        removed.config.url,
        removed.active()
    );
    Ok((
        StatusCode::OK,
        json!({
            "pool": pool_name,
            "removed": backend_json(&removed),
            "persisted": false,
        }),
    ))
}

fn unavailable(message: String) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
}

/// `PUT /backends/enabled?domain=D[&route=/p/]&addr=A` with `{"enabled": bool}`.
pub(crate) async fn set_enabled(
    state: &State,
    domain: &str,
    route: Option<&str>,
    addr: &str,
    body: &[u8],
) -> ApiResult {
    let wanted: Enabled = parse_json(body)?;
    let current = state.snapshot();
    let at = find_pool(&current, domain, route)?;
    let pool = &current.pools[at.pool];
    let backend = &pool.backends[find_backend(pool, addr)?];
    if let Some(cluster) = state.cluster() {
        let was = backend.is_enabled();
        let applied = cluster
            .set_enabled(&pool.name, &backend.config.url, wanted.enabled)
            .await
            .map_err(unavailable)?;
        return Ok((
            StatusCode::OK,
            json!({
                "pool": pool.name,
                "backend": backend_json(backend),
                "changed": was != wanted.enabled,
                "persisted": true,
                "applied": applied,
            }),
        ));
    }
    let changed = backend.set_enabled(wanted.enabled);
    if changed {
        log::info!(
            "admin API: backend {} of pool {} {}",
            backend.config.url,
            pool.name,
            if wanted.enabled { "enabled" } else { "drained" }
        );
    }
    Ok((
        StatusCode::OK,
        json!({
            "pool": pool.name,
            "backend": backend_json(backend),
            "changed": changed,
            "persisted": false,
        }),
    ))
}
