//! The admin listener (design §4): JSON in and out, `Authorization: Bearer TOKEN` when a token
//! is configured.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};

use super::cache_api::{self, Purge};
use super::changes::{self, backend_json, find_pool};
use super::web::{authorized, json_response, query_params, read_body, ApiError, ApiResult};
use crate::config::{Action, HostPattern};
use crate::snapshot::Snapshot;
use crate::state::State;

pub(crate) struct AdminApp {
    pub state: Arc<State>,
    pub token: Option<String>,
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        // The dashboard page carries no data (it asks for the token itself), so it is the one
        // thing served without the token.
        let req = session.req_header();
        if req.method == Method::GET && req.uri.path() == "/" {
            return super::dashboard::response();
        }
        if let Some(token) = &self.token {
            if !authorized(session, token) {
                let mut r = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong `Authorization: Bearer` token",
                )
                .into_response();
                r.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer realm=\"strait admin\""),
                );
                return r;
            }
        }
        match self.handle(session).await {
            Ok((status, body)) => json_response(status, &body),
            Err(e) => e.into_response(),
        }
    }
}

fn required<'a>(
    params: &'a std::collections::HashMap<String, String>,
    name: &str,
) -> Result<&'a str, ApiError> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("missing query parameter `{name}`")))
}

/// Whose pool a `/backends` call is about: `domain=D`, or `listener=NAME` for a `tcp`
/// listener's pool, passed on as `@NAME` (no host pattern starts with `@`; see
/// `changes::find_pool`).
fn pool_owner(params: &std::collections::HashMap<String, String>) -> Result<String, ApiError> {
    match params.get("listener").filter(|l| !l.is_empty()) {
        Some(listener) => Ok(format!("@{listener}")),
        None => required(params, "domain").map(str::to_string),
    }
}

fn method_not_allowed(allow: &'static str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed here; use {allow}"),
    )
}

impl AdminApp {
    async fn handle(&self, session: &mut ServerSession) -> ApiResult {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        let params = query_params(session.req_header().uri.query());
        let path = path.trim_end_matches('/');
        let route = params
            .get("route")
            .map(String::as_str)
            .filter(|r| !r.is_empty());
        match (path, &method) {
            ("/domains", &Method::GET) => Ok((StatusCode::OK, domains(&self.state.snapshot()))),
            ("/domains", _) => Err(method_not_allowed("GET")),
            ("/backends", &Method::GET) => {
                let snapshot = self.state.snapshot();
                let at = find_pool(&snapshot, &pool_owner(&params)?, route)?;
                let pool = &snapshot.pools[at.pool];
                // `addr` asks for one backend: its object alone, 404 when the pool lacks it.
                if let Some(addr) = params.get("addr") {
                    let index = changes::find_backend(pool, addr)?;
                    return Ok((StatusCode::OK, backend_json(&pool.backends[index])));
                }
                let list: Vec<Value> = pool.backends.iter().map(|b| backend_json(b)).collect();
                Ok((StatusCode::OK, Value::Array(list)))
            }
            ("/backends", &Method::POST) => {
                let domain = pool_owner(&params)?;
                let body = read_body(session).await?;
                changes::add(&self.state, &domain, route, &body).await
            }
            ("/backends", &Method::DELETE) => {
                let domain = pool_owner(&params)?;
                let addr = required(&params, "addr")?;
                changes::remove(&self.state, &domain, route, addr).await
            }
            ("/backends", _) => Err(method_not_allowed("GET, POST or DELETE")),
            ("/backends/enabled", &Method::PUT) => {
                let domain = pool_owner(&params)?;
                let addr = required(&params, "addr")?.to_string();
                let body = read_body(session).await?;
                changes::set_enabled(&self.state, &domain, route, &addr, &body).await
            }
            ("/backends/enabled", _) => Err(method_not_allowed("PUT")),
            ("/cache/stats", &Method::GET) => Ok((StatusCode::OK, cache_api::stats()?)),
            ("/cache/stats", _) => Err(method_not_allowed("GET")),
            ("/cache", &Method::DELETE) => {
                let snapshot = self.state.snapshot();
                let purge = match (params.get("domain"), params.get("path")) {
                    (None, None) => Purge::All,
                    (Some(d), None) => Purge::Domain(d),
                    (Some(d), Some(p)) => Purge::Object {
                        domain: d,
                        path: p,
                        method: params.get("method").map_or("GET", String::as_str),
                    },
                    (None, Some(_)) => {
                        return Err(ApiError::bad_request("`path` needs `domain` too"))
                    }
                };
                let purged = cache_api::purge(&snapshot, purge)?;
                // With etcd, every other node purges the same (this one just did).
                let Some(cluster) = self.state.cluster() else {
                    return Ok((StatusCode::OK, json!({ "purged": purged })));
                };
                let text = |k: &str| params.get(k).map(String::as_str);
                match cluster
                    .broadcast_purge(text("domain"), text("path"), text("method"))
                    .await
                {
                    Ok(()) => Ok((StatusCode::OK, json!({ "purged": purged, "cluster": true }))),
                    Err(e) => Ok((
                        StatusCode::OK,
                        json!({ "purged": purged, "cluster": false, "cluster_error": e }),
                    )),
                }
            }
            ("/cache", _) => Err(method_not_allowed("DELETE")),
            ("/stats", &Method::GET) => Ok((StatusCode::OK, stats(&self.state))),
            ("/certificates", &Method::GET) => Ok((StatusCode::OK, certificates(&self.state))),
            ("/certificates", _) => Err(method_not_allowed("GET")),
            ("/cluster", &Method::GET) => Ok((StatusCode::OK, crate::cluster::json(&self.state))),
            ("/cluster", _) => Err(method_not_allowed("GET")),
            ("/info", &Method::GET) => Ok((StatusCode::OK, info(&self.state))),
            ("/cluster/redis", &Method::GET) => Ok((StatusCode::OK, cluster_redis(&self.state))),
            ("/cluster/redis", _) => Err(method_not_allowed("GET")),
            ("/info", _) => Err(method_not_allowed("GET")),
            ("/stats", _) => Err(method_not_allowed("GET")),
            ("/explain", &Method::POST) => {
                let body = read_body(session).await?;
                let question =
                    crate::explain::Question::from_json(&body).map_err(ApiError::bad_request)?;
                let snapshot = self.state.snapshot();
                let answer = crate::explain::explain(&snapshot, self.state.hooks(), &question);
                Ok((StatusCode::OK, answer))
            }
            ("/explain", _) => Err(method_not_allowed("POST")),
            ("/reload", &Method::POST)
                if params
                    .get("dry_run")
                    .is_some_and(|v| v == "true" || v == "1") =>
            {
                dry_run(&self.state).await
            }
            ("/reload", &Method::POST) => reload(&self.state).await,
            ("/reload", _) => Err(method_not_allowed("POST")),
            _ => Err(ApiError::not_found(format!(
                "no admin endpoint {path}; see GET /domains, /backends, /stats, /cache/stats"
            ))),
        }
    }
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::Proxy { .. } => "proxy",
        Action::Respond(_) => "respond",
        Action::Redirect(_) => "redirect",
        Action::Drop => "drop",
        Action::Serve(_) => "serve",
        Action::NotFound => "not_found",
    }
}

fn pool_summary(snapshot: &Snapshot, a: &Action) -> Value {
    let Action::Proxy { pool, .. } = a else {
        return Value::Null;
    };
    let Some(p) = snapshot.pools.get(*pool) else {
        return Value::Null;
    };
    pool_json(p)
}

fn pool_json(p: &crate::balance::Pool) -> Value {
    json!({
        "name": p.name,
        "load_balancer": p.strategy.name(),
        "health_check": p.health_check.is_some(),
        "backends": p.backends.len(),
        "healthy": p.backends.iter().filter(|b| b.is_healthy()).count(),
        "enabled": p.backends.iter().filter(|b| b.is_enabled()).count(),
        "usable": p.backends.iter().filter(|b| b.is_usable()).count(),
    })
}

fn domains(snapshot: &Snapshot) -> Value {
    let list: Vec<Value> = snapshot
        .config
        .domains
        .iter()
        .zip(&snapshot.domains)
        .map(|(d, runtime)| {
            let routes: Vec<Value> = d
                .routes
                .iter()
                .map(|r| {
                    json!({
                        "path_prefix": r.name,
                        "action": action_name(&r.handling.action),
                        "pool": pool_summary(snapshot, &r.handling.action),
                    })
                })
                .collect();
            json!({
                "name": runtime.name,
                "hosts": d.hosts.iter().map(HostPattern::text).collect::<Vec<_>>(),
                "action": if d.pass.is_some() { "pass" } else { action_name(&d.handling.action) },
                "pool": pool_summary(snapshot, &d.handling.action),
                "pass": d.pass.as_ref().and_then(|p| snapshot.pools.get(p.pool)).map(|p| pool_json(p)),
                "routes": routes,
            })
        })
        .collect();
    json!({ "domains": list })
}

/// The node: version, uptime, config source and size, and the last reload's outcome.
fn info(state: &State) -> Value {
    let snapshot = state.snapshot();
    let last_reload = state
        .last_reload
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .map(|r| {
            let at =
                r.at.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
            json!({ "at_unix": at, "ok": r.ok, "summary": r.summary })
        });
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs_f64(),
        "config": snapshot.config.source,
        "config_hash": config_hash(&snapshot.config),
        "domains": snapshot.domains.len(),
        "backends": snapshot.pools.iter().map(|p| p.backends.len()).sum::<usize>(),
        "last_reload": last_reload,
    })
}

/// `GET /cluster/redis`: the Redis that `scope: cluster` rate limits count in, and how it
/// has been answering (docs/cluster.md).
fn cluster_redis(state: &State) -> Value {
    let snapshot = state.snapshot();
    match snapshot.cluster_counter() {
        Some(c) => c.json(),
        None => json!({
            "state": if snapshot.config.cluster.redis.is_some() { "unused" } else { "not configured" },
            "nodes": snapshot.config.cluster.nodes,
        }),
    }
}

/// A short digest of the running config (its parsed form, so comments and layout do not
/// count): two nodes showing the same hash run the same config.
pub(crate) fn config_hash(config: &crate::config::Config) -> String {
    use blake2::{Blake2s256, Digest};
    // Positions and the file name say where things were written, not what they are.
    let mut config = config.clone();
    config.source.clear();
    let text = format!("{config:?}");
    let text = strip_positions(&text);
    let digest = Blake2s256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// `Pos { line: 3, col: 5 }` (in the Debug text) → `Pos`.
fn strip_positions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("Pos { line: ") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i..];
        rest = rest.find('}').map_or("", |j| &rest[j + 1..]);
    }
    out.push_str(rest);
    out
}

fn stats(state: &State) -> Value {
    let snapshot = state.snapshot();
    let mut names: Vec<String> = snapshot.domains.iter().map(|d| d.name.clone()).collect();
    for (name, _) in state.domain_stats.all() {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let domains: Vec<Value> = names
        .iter()
        .map(|name| {
            let s = state.domain_stats.get(name);
            let load =
                |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            let configured = snapshot
                .config
                .domains
                .iter()
                .zip(&snapshot.domains)
                .find(|(_, d)| &d.name == name)
                .map(|(c, _)| c);
            let mut out = serde_json::Map::new();
            out.insert("domain".into(), name.as_str().into());
            out.insert("configured".into(), configured.is_some().into());
            s.traffic.json_fields(&mut out);
            out.insert("ratelimited".into(), load(&s.ratelimited).into());
            out.insert(
                "cache".into(),
                crate::metrics::CACHE_RESULTS
                    .iter()
                    .zip(&s.cache)
                    .map(|(name, n)| (name.to_string(), Value::from(load(n))))
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
            );
            out.insert(
                "cache_miss_reasons".into(),
                s.top_miss_reasons()
                    .into_iter()
                    .map(|(reason, n)| json!({ "reason": reason, "count": n }))
                    .collect::<Vec<_>>()
                    .into(),
            );
            out.insert("routes".into(), route_stats(&s, configured).into());
            Value::Object(out)
        })
        .collect();
    json!({
        "domains": domains,
        "access_log_dropped": state.access_log.dropped(),
        "plugins": snapshot.plugins.stats_json(),
    })
}

/// The `routes` list of one domain in `/stats`: every route of the running config (zeros until
/// it sees traffic, so the dashboard can show it), then any route only an earlier config had,
/// then `(none)` (requests the domain handled itself). Prefixes come from configs, never from
/// clients, so the list stays bounded.
/// `GET /certificates`: ACME hosts (issued or pending, last error) and static certificates.
fn certificates(state: &State) -> Value {
    let statics: Vec<Value> = state
        .tls_listeners()
        .iter()
        .flat_map(|l| l.static_report())
        .collect();
    match state.acme() {
        Some(acme) => acme.report(statics),
        None => json!({ "certificates": statics }),
    }
}

fn route_stats(
    s: &crate::metrics::DomainStats,
    config: Option<&crate::config::Domain>,
) -> Vec<Value> {
    let seen = s.routes();
    let prefixes: Vec<&str> = config
        .map(|c| c.routes.iter().map(|r| r.name.as_str()).collect())
        .unwrap_or_default();
    let mut order: Vec<(String, bool)> = prefixes.iter().map(|p| (p.to_string(), true)).collect();
    for (p, _) in &seen {
        if p != crate::metrics::NO_ROUTE && !prefixes.contains(&p.as_str()) {
            order.push((p.clone(), false));
        }
    }
    order.push((crate::metrics::NO_ROUTE.to_string(), config.is_some()));
    order
        .into_iter()
        .map(|(prefix, configured)| {
            let mut out = serde_json::Map::new();
            out.insert("path_prefix".into(), prefix.as_str().into());
            out.insert("configured".into(), configured.into());
            match seen.iter().find(|(p, _)| *p == prefix) {
                Some((_, t)) => t.json_fields(&mut out),
                None => crate::metrics::Traffic::default().json_fields(&mut out),
            }
            Value::Object(out)
        })
        .collect()
}

/// `POST /reload?dry_run=true`: the reload plan for the config file, against the running
/// config; nothing is swapped.
async fn dry_run(state: &State) -> ApiResult {
    match crate::lifecycle::reload_plan(state).await {
        Ok(plan) => Ok((
            StatusCode::OK,
            json!({ "dry_run": true, "valid": true, "plan": plan }),
        )),
        Err(errors) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the config has errors; a reload would keep the running config",
        )
        .with_errors(&errors)),
    }
}

async fn reload(state: &State) -> ApiResult {
    match crate::lifecycle::reload(state).await {
        Ok(report) => Ok((
            StatusCode::OK,
            json!({
                "reloaded": true,
                "domains": report.domains,
                "backends": report.backends,
                "kept": report.kept,
                "not_applied": report.not_applied,
            }),
        )),
        Err(errors) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the config has errors; the running config is unchanged",
        )
        .with_errors(&errors)),
    }
}
