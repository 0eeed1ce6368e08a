//! "Why would this request go there?": what strait would do with a request, step by step,
//! against one config snapshot, without sending anything anywhere. `POST /explain` asks the
//! live snapshot (its health, in-flight counts, balancer cursors, rate counters and cache);
//! `strait explain -c FILE` asks a snapshot built from a file (every backend healthy, idle,
//! nothing counted or cached).
//!
//! Each step reads the same structures the request path reads (the router, the handler's
//! limits, the cache policy, the pool's balancer), and where the request path would change
//! state it peeks instead: the rate budget is read, not spent; the balancer's next pick is
//! computed on a copy of its cursor or scores; the cache is looked at without promoting.

use std::net::IpAddr;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::balance::Pool;
use crate::config::pattern::request::Verdict;
use crate::config::{Config, ConfigError, Strategy};
use crate::hooks::Hooks;
use crate::limits::rate::RateKeyValue;
use crate::router::{Hit, Request, Router};
use crate::snapshot::{Handler, RouteAction, Snapshot, Target};

/// The request to explain.
#[derive(Debug, Clone, Default)]
pub struct Question {
    /// `GET` when empty.
    pub method: String,
    /// The Host header (a port and any letter case are fine).
    pub host: String,
    /// Path and optional query string.
    pub path: String,
    /// Request headers, in order (names in any case).
    pub headers: Vec<(String, String)>,
    /// The TCP peer's address: the client, or the proxy in front of it when
    /// `server.trusted_proxies` applies (then `X-Forwarded-For` in `headers` names the client).
    pub client_ip: Option<IpAddr>,
    /// `http` or `https`: the listener's scheme, part of the cache key. `http` when empty,
    /// or the scheme of `listener` when that is given.
    pub scheme: String,
    /// The listener the request arrives on (its configured `addr`), when it matters: every
    /// listener routes by the same domains, and a TLS listener makes the scheme `https`.
    pub listener: Option<std::net::SocketAddr>,
}

/// `POST /explain`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(default)]
    method: String,
    host: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    client_ip: Option<String>,
    #[serde(default)]
    scheme: String,
    #[serde(default)]
    listener: Option<String>,
}

impl Question {
    /// Reads `{method, host, path, headers, client_ip, scheme}`; the message says what is wrong.
    pub fn from_json(body: &[u8]) -> Result<Question, String> {
        let wire: Wire = serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
        let client_ip = match wire.client_ip.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(
                text.parse::<IpAddr>()
                    .map_err(|_| format!("client_ip: not an IP address: {text:?}"))?,
            ),
        };
        if !matches!(wire.scheme.as_str(), "" | "http" | "https") {
            return Err(format!(
                "scheme: expected http or https, found {:?}",
                wire.scheme
            ));
        }
        let listener = match wire.listener.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(
                text.parse::<std::net::SocketAddr>()
                    .map_err(|_| format!("listener: expected IP:port, found {text:?}"))?,
            ),
        };
        Ok(Question {
            listener,
            method: wire.method,
            host: wire.host,
            path: wire.path,
            headers: wire.headers.into_iter().collect(),
            client_ip,
            scheme: wire.scheme,
        })
    }

    fn method(&self) -> String {
        if self.method.is_empty() {
            "GET".to_string()
        } else {
            self.method.to_ascii_uppercase()
        }
    }

    /// Path and query as the request line carries them (`/` when empty).
    fn target(&self) -> &str {
        if self.path.is_empty() {
            "/"
        } else {
            &self.path
        }
    }

    fn path_only(&self) -> &str {
        let t = self.target();
        t.split_once('?').map_or(t, |(p, _)| p)
    }

    /// The question's headers as a request would carry them (invalid ones left out).
    fn header_map(&self) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in &self.headers {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                map.append(n, v);
            }
        }
        map
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Explains `question` against a snapshot built from `config` (offline: `strait explain`).
/// Backend names are resolved as at start-up; errors are the loader's.
pub fn explain_config(config: Config, question: &Question) -> Result<Value, Vec<ConfigError>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            vec![ConfigError {
                file: config.source.clone(),
                line: 0,
                col: 0,
                path: String::new(),
                message: format!("cannot start a runtime to resolve backends: {e}"),
            }]
        })?;
    let snapshot = runtime.block_on(Snapshot::build(config, None))?;
    Ok(explain(&snapshot, &Hooks::default(), question))
}

/// The explanation, as JSON (documented in docs/admin.md, `POST /explain`).
pub(crate) fn explain(snapshot: &Snapshot, hooks: &Hooks, question: &Question) -> Value {
    let (listener, scheme) = listener(snapshot, question);
    let with_scheme;
    let q = if question.scheme.is_empty() {
        with_scheme = Question {
            scheme,
            ..question.clone()
        };
        &with_scheme
    } else {
        question
    };
    let method = q.method();
    let client = client(snapshot, q);
    let mut out = json!({
        "request": {
            "method": method,
            "host": q.host,
            "path": q.target(),
            "scheme": if q.scheme.is_empty() { "http" } else { q.scheme.as_str() },
        },
        "listener": listener,
        "client": client.0,
    });
    let client_ip = client.1;
    let matches = snapshot.router.host_matches(&q.host);
    let domain_name = |d: usize| snapshot.domains.get(d).map_or("", |d| d.name.as_str());
    let headers = q.header_map();
    let route_req = Request {
        host: &q.host,
        path: q.path_only(),
        method: &method,
        headers: &headers,
        query: q.target().split_once('?').map(|(_, query)| query),
    };
    let listener_index = q.listener.and_then(|addr| {
        snapshot
            .config
            .listeners
            .iter()
            .position(|l| l.addr == addr)
    });
    let router = snapshot.router_on(listener_index);
    let Some((hit, handler)) = snapshot.lookup_on(listener_index, &route_req) else {
        out["domain"] =
            json!({ "matched": null, "why": "no host pattern matches and there is no `*` domain" });
        out["outcome"] = json!("404 unknown-host");
        return out;
    };
    let winner = matches.first();
    let beaten: Vec<Value> = matches
        .iter()
        .skip(1)
        .map(|m| {
            json!({
                "domain": domain_name(m.domain),
                "pattern": m.pattern,
                "why": lost_because(winner.map_or("", |w| w.kind), m.kind),
            })
        })
        .collect();
    out["domain"] = json!({
        "matched": domain_name(hit.domain),
        "pattern": winner.map(|w| w.pattern.as_str()),
        "why": match winner.map(|w| w.kind) {
            Some("exact") => "the exact host name",
            Some("wildcard") => "the most specific host pattern matching the host (most literal characters)",
            _ => "no exact name or wildcard matches: the `*` default domain",
        },
        "beaten": beaten,
    });
    out["route"] = route(snapshot, router, hit, &route_req);
    if hit.wrong_method {
        let allow = router.allowed(hit.domain, &route_req).join(", ");
        out["outcome"] = json!(format!(
            "405 method-not-allowed (Allow: {allow}): a route matches all but the method"
        ));
        return out;
    }
    let captures = handler
        .captures
        .as_ref()
        .and_then(|glob| glob.capture(q.path_only()))
        .unwrap_or_default();
    out["action"] = action(&handler.action, q, &captures);
    out["hooks"] = json!({
        "on_request": hooks.request.len(),
        "on_response": hooks.response.len(),
        "on_error": hooks.error.len(),
        "note": "on_request runs for every routed request that passes the limits, on_response for every response, on_error once per failed upstream attempt",
    });
    let route_prefix = snapshot.names(hit).and_then(|(_, r)| r).unwrap_or("");
    let (limits, refusal) = limits(handler, client_ip, q, route_prefix);
    out["limits"] = limits;
    out["cache"] = cache(handler, q, &method);
    let (backend, pick) = match &handler.action {
        RouteAction::Proxy(target) => backend(target, client_ip, q, &method),
        _ => (Value::Null, None),
    };
    out["backend"] = backend;
    out["outcome"] = json!(match (&handler.action, refusal) {
        (RouteAction::NotFound, _) => "404 no-route".to_string(),
        (RouteAction::Drop, _) => "dropped: the connection closes without a response".to_string(),
        (_, Some(refusal)) => refusal,
        (RouteAction::Respond(r), None) =>
            format!("{} from the static `respond`", r.header.status.as_u16()),
        (RouteAction::Redirect(r), None) => format!("{} redirect", r.status),
        (RouteAction::Serve(site), None) =>
            format!("served from the files under {}", site.config.root.display()),
        (RouteAction::Proxy(t), None) => match pick {
            Some(url) => format!("proxied to {url}"),
            None if t.pool.strategy == Strategy::Random && t.pool.has_usable() => {
                "proxied to a backend drawn at random".to_string()
            }
            None => "503 no-healthy-backend".to_string(),
        },
    });
    out
}

/// The listener named in the question, and the scheme it implies (empty: none named).
fn listener(snapshot: &Snapshot, q: &Question) -> (Value, String) {
    let Some(addr) = q.listener else {
        return (Value::Null, String::new());
    };
    match snapshot.config.listeners.iter().find(|l| l.addr == addr) {
        Some(l) => {
            let scheme = if l.tls.is_some() { "https" } else { "http" };
            let why = "every listener routes by the same domains; this one sets the scheme (cache key, X-Forwarded-Proto)";
            (
                json!({ "addr": addr, "tls": l.tls.is_some(), "why": why }),
                scheme.to_string(),
            )
        }
        None => (
            json!({ "addr": addr, "found": false, "why": "no listener has this address" }),
            String::new(),
        ),
    }
}

/// Who the client is: the peer, or the address `X-Forwarded-For` gives behind a trusted proxy.
fn client(snapshot: &Snapshot, q: &Question) -> (Value, Option<IpAddr>) {
    let trusted = &snapshot.config.server.trusted_proxies;
    let peer = q.client_ip;
    if trusted.is_empty() {
        return (
            json!({ "peer": peer, "client_ip": peer, "why": "no trusted_proxies: the peer is the client" }),
            peer,
        );
    }
    let forwarded: Vec<&[u8]> = q
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|(_, v)| v.as_bytes())
        .collect();
    let ip = crate::limits::client_ip(peer, &forwarded, trusted);
    let why = if ip == peer {
        "the peer is not a trusted proxy (or sent no X-Forwarded-For): the peer is the client"
    } else {
        "the peer is a trusted proxy: the right-most untrusted X-Forwarded-For address"
    };
    (json!({ "peer": peer, "client_ip": ip, "why": why }), ip)
}

fn lost_because(winner: &str, loser: &str) -> &'static str {
    match (winner, loser) {
        ("exact", _) => "an exact host name wins over every pattern",
        ("wildcard", "wildcard") => "a longer (more specific) wildcard wins",
        (_, "default") => "`*` applies only when nothing else matches",
        _ => "ranked lower",
    }
}

fn route(snapshot: &Snapshot, router: &Router, hit: Hit, req: &Request<'_>) -> Value {
    let name_of = |i: usize| {
        snapshot
            .domains
            .get(hit.domain)
            .and_then(|d| d.routes.get(i))
            .map(|r| r.name.as_str())
    };
    let winner = hit.route.and_then(name_of);
    let mut passed_winner = false;
    let others: Vec<Value> = router
        .route_order(hit.domain)
        .iter()
        .filter(|r| {
            let is_winner = Some(r.index) == hit.route;
            passed_winner |= is_winner;
            !is_winner
        })
        .map(|r| {
            let verdict = r
                .matchers
                .as_ref()
                .map(|m| m.check(req.method, req.headers, req.query));
            let why = if !r.path.matches(req.path) {
                "does not match the path"
            } else if verdict == Some(Verdict::WrongMethod) {
                "matches the path but not the method"
            } else if verdict == Some(Verdict::NoMatch) {
                "matches the path but not its headers or query"
            } else {
                "matches, but a longer prefix or a more specific route is tried first"
            };
            json!({ "route": name_of(r.index), "path_prefix": name_of(r.index), "why": why })
        })
        .collect();
    json!({
        "matched": winner,
        "why": match winner {
            Some(_) => "the first route, in rank order (exact path, longest literal start, more literal characters, file order), whose path and matchers all match",
            None => "no route matches: the domain's own settings answer",
        },
        "beaten": others,
    })
}

fn action(action: &RouteAction, q: &Question, captures: &[String]) -> Value {
    match action {
        RouteAction::Proxy(t) => json!({ "kind": "proxy", "pool": t.pool.name }),
        RouteAction::Respond(r) => json!({ "kind": "respond", "status": r.header.status.as_u16() }),
        RouteAction::Redirect(r) => {
            let location = pingora::http::RequestHeader::build(
                q.method().as_str(),
                q.target().as_bytes(),
                None,
            )
            .ok()
            .map(|mut req| {
                let _ = req.insert_header(http::header::HOST, q.host.as_str());
                let vars = crate::proxy::TemplateVars {
                    scheme: if q.scheme.is_empty() {
                        "http"
                    } else {
                        q.scheme.as_str()
                    },
                    local_port: q.listener.map(|l| l.port()),
                    remote: q.client_ip,
                    request_id: "(the request's id)",
                    client_cert: None,
                    captures,
                };
                crate::proxy::render_template(&r.location, &req, &vars)
            });
            json!({ "kind": "redirect", "status": r.status, "location": location })
        }
        RouteAction::NotFound => json!({ "kind": "not_found" }),
        RouteAction::Drop => json!({ "kind": "drop" }),
        RouteAction::Serve(site) => json!({ "kind": "serve", "root": site.config.root }),
    }
}

/// The limits' verdicts, and the refusal (an outcome line) if one applies.
fn limits(
    handler: &Handler,
    client_ip: Option<IpAddr>,
    q: &Question,
    route_prefix: &str,
) -> (Value, Option<String>) {
    let l = &handler.limits;
    let denied = l.denies(client_ip);
    let mut refusal = denied.then(|| "403 denied".to_string());
    let rate = l.rate.as_ref().map(|limiter| {
        let key = limiter.key(
            client_ip,
            |name| q.header(name).map(str::as_bytes),
            route_prefix,
        );
        let state = limiter.peek(&key);
        if refusal.is_none() && !state.allowed {
            refusal = Some("429 rate-limited".to_string());
        }
        json!({
            "key": rate_key_text(&key),
            "limit": state.limit,
            "per": format!("{:?}", limiter.limit.per),
            "remaining": state.remaining,
            "reset_secs": state.reset_secs,
            "allowed": state.allowed,
        })
    });
    let declared = q
        .header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let too_large = l
        .max_body_bytes
        .zip(declared)
        .is_some_and(|(max, n)| n > max);
    if refusal.is_none() && too_large {
        refusal = Some("413 body-too-large".to_string());
    }
    let value = json!({
        "deny": { "networks": l.deny.len(), "denied": denied },
        "rate_limit": rate,
        "max_body_bytes": l.max_body_bytes,
    });
    (value, refusal)
}

fn rate_key_text(key: &RateKeyValue<'_>) -> String {
    match key {
        RateKeyValue::Ip(ip) => format!("client_ip {ip}"),
        RateKeyValue::Header(v) => format!("header value {:?}", String::from_utf8_lossy(v)),
        RateKeyValue::Route(r) => format!("route {r:?}"),
        RateKeyValue::Unknown => "no client address (shared by all such requests)".to_string(),
    }
}

fn cache(handler: &Handler, q: &Question, method: &str) -> Value {
    let Some(policy) = &handler.cache else {
        return json!({ "enabled": false, "decision": "BYPASS: this domain or route does not cache" });
    };
    if q.header("upgrade").is_some() {
        return json!({ "enabled": true, "cacheable": false, "reason": "upgrade" });
    }
    let plan = match policy.plan(method, q.path_only()) {
        Ok(plan) => plan,
        Err(reason) => {
            return json!({ "enabled": true, "cacheable": false, "reason": reason });
        }
    };
    let rule = policy.rule(plan.rule).map(|r| r.path_prefix.as_str());
    let scheme = if q.scheme.is_empty() {
        "http"
    } else {
        q.scheme.as_str()
    };
    let host = crate::cache::key::normalize_host(&q.host);
    let primary = crate::cache::key::primary(scheme, &host, "GET", q.target());
    let now = SystemTime::now();
    let stored = crate::cache::store().peek_primary(&primary);
    // Only the variant this request would be served: the one whose `Vary` secondary key its
    // headers reproduce. A request that cannot be built (odd header bytes) matches none.
    let req = request_header(q, method);
    let entries: Vec<Value> = stored
        .iter()
        .filter(|e| {
            req.as_ref().is_some_and(|r| {
                crate::cache::vary::serves(e.response_header(), e.variance(), r)
            })
        })
        .map(|e| {
            let (state, ttl) = match e.freshness(now) {
                Some((until, swr, sie)) => match until.duration_since(now) {
                    Ok(left) => ("fresh", Some(left.as_secs())),
                    Err(_) => {
                        let state = if swr {
                            "stale (served while one refresh runs)"
                        } else if sie {
                            "stale (served only if every backend fails)"
                        } else {
                            "stale (revalidated or refetched)"
                        };
                        (state, None)
                    }
                },
                None => ("stale (revalidated or refetched)", None),
            };
            let vary: Vec<String> =
                crate::cache::policy::list_items(&e.response_header().headers, http::header::VARY)
                    .map(str::to_ascii_lowercase)
                    .collect();
            json!({ "state": state, "fresh_for_secs": ttl, "vary_variant": e.is_variant(), "vary": vary })
        })
        .collect();
    let entry = if entries.is_empty() {
        "absent"
    } else if entries.iter().any(|e| e["state"] == "fresh") {
        "fresh"
    } else {
        "stale"
    };
    json!({
        "enabled": true,
        "cacheable": true,
        "reason": "the rules admit this method and path; the response's headers (RFC 9111) decide whether it is stored",
        "rule": rule,
        "max_entry_bytes": plan.max_entry_bytes,
        "key": format!("{scheme}://{host}{} (GET and HEAD share it)", q.target()),
        "authorization": q.header("authorization").is_some(),
        "entry": entry,
        "entries": entries,
        "variants_stored": stored.len(),
    })
}

/// The request as the cache sees it, for the `Vary` secondary key; `None` when a header name or
/// value could not be sent at all.
fn request_header(q: &Question, method: &str) -> Option<pingora::http::RequestHeader> {
    let mut req = pingora::http::RequestHeader::build(method, q.target().as_bytes(), None).ok()?;
    for (name, value) in &q.headers {
        req.append_header(name.to_ascii_lowercase(), value.as_str())
            .ok()?;
    }
    Some(req)
}

/// The pool's candidates and the backend the balancer would pick now, with its URL.
/// The request's affinity key as the proxy computes it (`Pool::key`).
fn affinity(target: &Target, client_ip: Option<IpAddr>, q: &Question, method: &str) -> Option<u64> {
    let mut req = pingora::http::RequestHeader::build(method, q.path.as_bytes(), None).ok()?;
    for (name, value) in &q.headers {
        let _ = req.append_header(name.clone(), value.as_str());
    }
    target.pool.key(&req, client_ip)
}

fn backend(
    target: &Target,
    client_ip: Option<IpAddr>,
    q: &Question,
    method: &str,
) -> (Value, Option<String>) {
    let key = affinity(target, client_ip, q, method);
    let pool: &Pool = &target.pool;
    let candidates: Vec<Value> = pool
        .backends
        .iter()
        .map(|b| {
            let full = b
                .max_connections()
                .is_some_and(|m| b.active() >= u64::from(m));
            json!({
                "addr": b.config.url,
                "resolved": b.addr.to_string(),
                "weight": b.weight(),
                "healthy": b.is_healthy(),
                "enabled": b.is_enabled(),
                "usable": b.is_usable(),
                "ejected": b.outlier.ejected_until_ms().is_some(),
                "active": b.active(),
                "max_connections": b.max_connections(),
                "full": full,
            })
        })
        .collect();
    let pick = pool.sticky_pick_for(&q.headers).or_else(|| pool.peek(key));
    let picked = pick.and_then(|i| pool.backends.get(i));
    let url = picked.map(|b| b.config.url.clone());
    let usable = pool.backends.iter().filter(|b| b.is_usable()).count();
    let mut reason = match pool.strategy {
        Strategy::RoundRobin => "round_robin: the next usable backend in turn".to_string(),
        Strategy::WeightedRoundRobin => {
            "weighted_round_robin: the highest running score once every usable backend adds its weight (smooth WRR)".to_string()
        }
        Strategy::LeastConnections => {
            "least_connections: the fewest in-flight requests per unit of weight; ties go in turn".to_string()
        }
        Strategy::IpHash => "ip_hash: the owner of the first ring point at or after the client address's hash; a down owner passes to the next point's".to_string(),
        Strategy::ConsistentHash => "consistent_hash: the owner of the first ring point at or after the hash_key's hash (round robin without the key); a down owner passes to the next point's".to_string(),
        Strategy::LeastLatency => "least_latency: two random candidates, the lower peak-EWMA latency x (in-flight + 1); the pick shown is one draw".to_string(),
        Strategy::Random => "random: drawn at request time, each usable backend with probability weight / total".to_string(),
    };
    if usable == 0 {
        reason = "no usable backend (healthy and not drained): 503 no-healthy-backend".to_string();
    }
    if let Some(b) = picked.filter(|b| {
        b.max_connections()
            .is_some_and(|m| b.active() >= u64::from(m))
    }) {
        reason.push_str(&format!(
            "; {} is at max_connections, so the request tries the others, then queues up to connect_timeout",
            b.config.url
        ));
    }
    let mut out = json!({
        "pool": pool.name,
        "strategy": pool.strategy.name(),
        "pick": url,
        "reason": reason,
        "candidates": candidates,
    });
    if matches!(pool.strategy, Strategy::IpHash | Strategy::ConsistentHash) {
        out["ip_hash"] = match key.and_then(|k| pool.ring_spot(k)) {
            Some(spot) => {
                let owner = pool.backends.get(spot.owner);
                json!({
                    "key": client_ip.filter(|_| pool.strategy == Strategy::IpHash),
                    "hash": format!("{:#018x}", spot.hash),
                    "position": spot.hash as f64 / 2f64.powi(64),
                    "point": spot.point,
                    "points": spot.points,
                    "owner": owner.map(|b| b.config.url.as_str()),
                    "owner_usable": owner.is_some_and(|b| b.is_usable()),
                })
            }
            None => {
                json!({ "key": null, "note": "no key (client address or hash_key): round robin decides" })
            }
        };
    }
    if pool.strategy == Strategy::Random {
        let total: u64 = pool
            .backends
            .iter()
            .filter(|b| b.is_usable())
            .map(|b| u64::from(b.weight()))
            .sum();
        let odds: Vec<Value> = pool
            .backends
            .iter()
            .filter(|b| b.is_usable())
            .map(|b| json!({ "addr": b.config.url, "probability": f64::from(b.weight()) / total.max(1) as f64 }))
            .collect();
        out["odds"] = Value::Array(odds);
    }
    (out, url)
}
