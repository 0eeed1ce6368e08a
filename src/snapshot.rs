//! The runtime view of one config: resolved backends, pools, prebuilt upstream peers and the
//! router. A request reads exactly one `Snapshot` from start to end; a reload or an admin change
//! builds a new one and swaps it in atomically (see `state.rs`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;

use crate::balance::{Backend, Pool};
use crate::config::{
    Action, BackendConfig, Config, ConfigError, HeaderRules, PoolConfig, ProxyOptions, Respond,
    Scheme, UpstreamTls,
};
use crate::router::{Hit, Request, Router};

/// How long one backend name may take to resolve at load or reload.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The runtime view of one config (see the module docs).
pub struct Snapshot {
    /// The config it was built from.
    pub config: Arc<Config>,
    /// Host and path routing, every domain.
    pub router: Router,
    /// Per listener (by index), when domains are scoped to listeners: only the domains that
    /// answer on it. Empty when no domain is scoped.
    listener_routers: Vec<Router>,
    /// Every backend pool.
    pub pools: Vec<Arc<Pool>>,
    /// Per domain: its handler and routes.
    pub domains: Vec<DomainRuntime>,
    /// Every configured plugin (`crate::plugins`).
    pub(crate) plugins: Arc<crate::plugins::Registry>,
}

/// What answers the requests a domain (those matching none of its routes) or a route matched:
/// the runtime form of `config::Handling`.
pub struct Handler {
    pub action: RouteAction,
    pub headers: Arc<HeaderRules>,
    /// The response-cache settings; `None` when this domain or route does not cache.
    pub cache: Option<Arc<crate::cache::RouteCache>>,
    /// `deny`, `rate_limit`, `max_body_bytes` (see `crate::limits`).
    pub limits: Arc<crate::limits::Limits>,
    /// The domain's or route's own access log (`crate::access_log::files`).
    pub(crate) access_log: Option<Arc<crate::access_log::files::FileLog>>,
    /// Also write to the global access log.
    pub(crate) access_log_global: bool,
    /// The own access log's format (`None`: `logging.access_log_format`).
    pub(crate) access_log_format: Option<crate::config::AccessLogFormat>,
    /// The route's path rewrite.
    pub(crate) rewrite: Option<crate::config::Rewrite>,
    /// The route's path glob, when its templates use `$1`..`$9` (captured per request).
    pub(crate) captures: Option<crate::config::PathPattern>,
    /// On-the-fly compression (`crate::compress`); `None`: responses pass as they are.
    pub compress: Option<Arc<crate::config::Compress>>,
    /// The plugins called for each request, in order (`crate::plugins`).
    pub(crate) plugins: Arc<[Arc<crate::plugins::Plugin>]>,
}

pub struct DomainRuntime {
    pub name: String,
    pub handler: Handler,
    pub routes: Vec<RouteRuntime>,
}

pub struct RouteRuntime {
    /// `config::Route::name`.
    pub name: String,
    pub handler: Handler,
}

pub enum RouteAction {
    Proxy(Arc<Target>),
    Respond(Arc<StaticResponse>),
    Redirect(Arc<crate::config::Redirect>),
    /// `serve`: files from a folder.
    Serve(Arc<crate::serve::Site>),
    Drop,
    NotFound,
}

/// A pool plus the per-request options of the domain or route that sends to it.
pub struct Target {
    pub pool: Arc<Pool>,
    pub pool_index: usize,
    pub options: ProxyOptions,
    /// One prebuilt peer per backend of `pool`, cloned per attempt: no DNS, no option
    /// assembly on the request path.
    pub peers: Vec<HttpPeer>,
    /// The `Host` sent upstream for each backend when neither `preserve_host` nor
    /// `host_header` is set: the authority of the backend's URL.
    pub default_hosts: Vec<String>,
    /// The `Host` sent upstream for each backend unless `preserve_host` is set: `host_header`,
    /// else the backend's default host; prebuilt so a request only clones it.
    pub upstream_hosts: Vec<Option<HeaderValue>>,
}

pub struct StaticResponse {
    pub header: ResponseHeader,
    pub body: bytes::Bytes,
    /// The `respond` itself when its body or a header uses variables: rendered per request
    /// over `header` (whose Content-Length is then replaced).
    pub template: Option<Respond>,
}

impl Snapshot {
    /// Resolves backend names and assembles the runtime view. Backends of `previous` whose
    /// pool, address and weight are unchanged keep their `Arc<Backend>`, so health state and
    /// in-flight counts carry over a reload.
    pub async fn build(
        mut config: Config,
        previous: Option<&Snapshot>,
    ) -> Result<Snapshot, Vec<ConfigError>> {
        if let Some(prev) = previous {
            crate::discovery::carry_discovered(&mut config, &prev.config);
        }
        let resolved = resolve_all(&config).await?;
        let plugins = Arc::new(
            crate::plugins::Registry::build(&config, previous.map(|p| p.plugins.as_ref())).await?,
        );
        let mut carried: HashMap<(String, String, SocketAddr, u32), Arc<Backend>> = HashMap::new();
        if let Some(prev) = previous {
            for pool in &prev.pools {
                for b in &pool.backends {
                    carried.insert(
                        (pool.name.clone(), b.config.url.clone(), b.addr, b.weight()),
                        b.clone(),
                    );
                }
            }
        }
        // At first start a checked backend is trusted until its first probe says otherwise;
        // one added later waits for a good probe before it gets traffic.
        let first_start = previous.is_none();
        let pools: Vec<Arc<Pool>> = config
            .pools
            .iter()
            .map(|pc| {
                let backends = pc
                    .backends
                    .iter()
                    .map(|bc| {
                        // resolve_all succeeded, so every backend's name has an address.
                        let addr = resolved
                            .get(&(bc.host.clone(), bc.port))
                            .copied()
                            .unwrap_or_else(|| {
                                SocketAddr::new(IpAddr::from([0, 0, 0, 0]), bc.port)
                            });
                        let key = (pc.name.clone(), bc.url.clone(), addr, bc.weight);
                        if let Some(kept) = carried.get(&key) {
                            kept.set_max_connections(bc.max_connections);
                        }
                        carried.get(&key).cloned().unwrap_or_else(|| {
                            let healthy = first_start || pc.policy.health_check.is_none();
                            Arc::new(Backend::new(bc.clone(), addr, healthy))
                        })
                    })
                    .collect();
                Arc::new(pool_from(pc, backends))
            })
            .collect();

        let upstream_tls = load_upstream_tls(&config)?;
        let mut limiters = crate::limits::RateLimiters::carried(
            previous.into_iter().flat_map(Snapshot::rate_limiters),
            &config.cluster,
        );
        let mut domains = Vec::with_capacity(config.domains.len());
        let mut log_errors = Vec::new();
        let mut log_formats = HashMap::new();
        for (i, d) in config.domains.iter().enumerate() {
            let routes = d
                .routes
                .iter()
                .enumerate()
                .map(|(j, r)| {
                    let mut h = handler(
                        &config,
                        d,
                        Some(r),
                        &pools,
                        &upstream_tls,
                        &mut limiters,
                        &plugins,
                    );
                    let at = (r.pos, format!("domains[{i}].routes[{j}].access_log"));
                    h.access_log =
                        own_log(&config, &r.handling, at, &mut log_errors, &mut log_formats);
                    RouteRuntime {
                        name: r.name.clone(),
                        handler: h,
                    }
                })
                .collect();
            let mut h = handler(
                &config,
                d,
                None,
                &pools,
                &upstream_tls,
                &mut limiters,
                &plugins,
            );
            let at = (d.pos, format!("domains[{i}].access_log"));
            h.access_log = own_log(&config, &d.handling, at, &mut log_errors, &mut log_formats);
            domains.push(DomainRuntime {
                name: d
                    .hosts
                    .first()
                    .map(crate::config::HostPattern::text)
                    .unwrap_or_default(),
                handler: h,
                routes,
            });
        }
        if !log_errors.is_empty() {
            return Err(log_errors);
        }
        let router = Router::new(config.domains.iter().map(|d| route_spec(d, None)));
        // One router per listener when any domain or route is scoped to listeners: what does
        // not answer on a listener is left out of that listener's router (indices stay).
        let scoped = config
            .domains
            .iter()
            .any(|d| d.listeners.is_some() || d.routes.iter().any(|r| r.listeners.is_some()));
        let listener_routers = if scoped {
            (0..config.listeners.len())
                .map(|l| Router::new(config.domains.iter().map(|d| route_spec(d, Some(l)))))
                .collect()
        } else {
            Vec::new()
        };
        crate::cache::apply_budgets(&config);
        Ok(Snapshot {
            config: Arc::new(config),
            router,
            listener_routers,
            pools,
            domains,
            plugins,
        })
    }

    /// Starts the `command` plugins this config uses or marks `autostart` (after the server
    /// has daemonized, and after each reload; never for `strait -t` or `explain`).
    pub(crate) fn start_plugins(&self) {
        let used: Vec<&str> = self
            .config
            .domains
            .iter()
            .flat_map(|d| std::iter::once(&d.handling).chain(d.routes.iter().map(|r| &r.handling)))
            .flat_map(|h| h.plugins.iter().map(String::as_str))
            .chain(
                self.config
                    .listeners
                    .iter()
                    .flat_map(|l| l.plugins.iter().map(String::as_str)),
            )
            .collect();
        self.plugins.start(&used);
    }

    /// Where a request goes, or `None` for an unknown host.
    pub fn lookup(&self, req: &Request<'_>) -> Option<(Hit, &Handler)> {
        self.lookup_on(None, req)
    }

    /// Where a request that arrived on `listener` (an index of `config.listeners`) goes.
    pub(crate) fn lookup_on(
        &self,
        listener: Option<usize>,
        req: &Request<'_>,
    ) -> Option<(Hit, &Handler)> {
        let hit = self.router_on(listener).route(req)?;
        Some((hit, self.handler(hit)?))
    }

    /// The router of requests that arrived on `listener`.
    pub(crate) fn router_on(&self, listener: Option<usize>) -> &Router {
        listener
            .and_then(|l| self.listener_routers.get(l))
            .unwrap_or(&self.router)
    }

    /// Whether some domain answers on named listeners only.
    pub(crate) fn listener_scoped(&self) -> bool {
        !self.listener_routers.is_empty()
    }

    /// The listener (index) a connection arrived on, by its local address: an exact match,
    /// else one on the same port bound to the unspecified address.
    pub(crate) fn listener_of(&self, local: std::net::SocketAddr) -> Option<usize> {
        let listeners = &self.config.listeners;
        listeners.iter().position(|l| l.addr == local).or_else(|| {
            listeners.iter().position(|l| {
                l.addr.port() == local.port()
                    && l.addr.ip().is_unspecified()
                    && l.addr.is_ipv4() == local.is_ipv4()
            })
        })
    }

    /// Every rate limiter this snapshot's handlers hold.
    fn rate_limiters(&self) -> impl Iterator<Item = Arc<crate::limits::RateLimiter>> + '_ {
        self.domains
            .iter()
            .flat_map(|d| std::iter::once(&d.handler).chain(d.routes.iter().map(|r| &r.handler)))
            .filter_map(|h| h.limits.rate.clone())
    }

    /// The Redis connection `scope: cluster` rate limits count in, when any limit has that
    /// scope (`crate::limits::cluster_rate`).
    pub(crate) fn cluster_counter(
        &self,
    ) -> Option<Arc<crate::limits::cluster_rate::ClusterCounter>> {
        self.rate_limiters().find_map(|l| l.cluster().cloned())
    }

    /// The handler of a routing result of this snapshot.
    pub fn handler(&self, hit: Hit) -> Option<&Handler> {
        let domain = self.domains.get(hit.domain)?;
        Some(match hit.route.and_then(|r| domain.routes.get(r)) {
            Some(route) => &route.handler,
            None => &domain.handler,
        })
    }

    /// The configured names of a routing result: the domain (its first host) and the route's
    /// name (its path pattern, matchers and listeners).
    pub fn names(&self, hit: Hit) -> Option<(&str, Option<&str>)> {
        let domain = self.domains.get(hit.domain)?;
        let route = hit
            .route
            .and_then(|r| domain.routes.get(r))
            .map(|r| r.name.as_str());
        Some((domain.name.as_str(), route))
    }
}

/// Opens (or reuses) the writer of a domain's or route's `access_log`; a file that cannot be
/// opened, or that another domain or route writes in another format, is a config error at
/// the domain or route. `formats`: each file's format so far, and who set it.
fn own_log(
    config: &Config,
    h: &crate::config::Handling,
    (pos, path): (crate::config::Pos, String),
    errors: &mut Vec<ConfigError>,
    formats: &mut HashMap<std::path::PathBuf, (crate::config::AccessLogFormat, String)>,
) -> Option<Arc<crate::access_log::files::FileLog>> {
    let file = h.access_log.as_ref()?;
    let format = h
        .access_log_format
        .unwrap_or(config.logging.access_log_format);
    match formats.get(file) {
        Some((other, by)) if *other != format => {
            errors.push(ConfigError::new(
                &config.source,
                pos,
                &path,
                format!(
                    "{} is written as {} by {by}: one file takes one access_log_format",
                    file.display(),
                    format_name(*other)
                ),
            ));
            return None;
        }
        Some(_) => {}
        None => {
            formats.insert(file.clone(), (format, path.clone()));
        }
    }
    match crate::access_log::files::open(file, config.logging.access_log_format) {
        Ok(log) => Some(log),
        Err(e) => {
            errors.push(ConfigError::new(
                &config.source,
                pos,
                &path,
                format!("cannot open {}: {e}", file.display()),
            ));
            None
        }
    }
}

fn format_name(f: crate::config::AccessLogFormat) -> &'static str {
    match f {
        crate::config::AccessLogFormat::Json => "json",
        crate::config::AccessLogFormat::Combined => "combined",
    }
}

/// The files of every distinct `upstream_tls`, loaded once; errors point at the map.
type UpstreamTlsFiles = HashMap<UpstreamTls, crate::tls::UpstreamMaterial>;

fn load_upstream_tls(config: &Config) -> Result<UpstreamTlsFiles, Vec<ConfigError>> {
    let mut out = HashMap::new();
    let mut errors = Vec::new();
    for h in config.domains.iter().flat_map(|d| d.handlings()) {
        let Action::Proxy { options, .. } = &h.action else {
            continue;
        };
        let Some(t) = &options.upstream_tls else {
            continue;
        };
        let t: &UpstreamTls = t;
        if out.contains_key(t) || errors.iter().any(|e: &ConfigError| e.line == t.pos.line) {
            continue;
        }
        match crate::tls::load_upstream(t, &config.source) {
            Ok(m) => {
                out.insert(t.clone(), m);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The runtime handler of a domain (`route: None`) or one of its routes.
fn handler(
    config: &Config,
    d: &crate::config::Domain,
    route: Option<&crate::config::Route>,
    pools: &[Arc<Pool>],
    upstream_tls: &UpstreamTlsFiles,
    limiters: &mut crate::limits::RateLimiters,
    plugins: &crate::plugins::Registry,
) -> Handler {
    let h = route.map_or(&d.handling, |r| &r.handling);
    Handler {
        action: runtime_action(&h.action, pools, upstream_tls),
        headers: Arc::new(h.headers.clone()),
        cache: crate::cache::RouteCache::resolve(&h.cache, config.cache.as_ref()),
        limits: crate::limits::Limits::build(
            limiters,
            &host_list_name(d),
            route.map(|r| r.name.as_str()),
            &h.deny,
            h.rate_limit.as_ref(),
            d.handling.rate_limit.as_ref(),
            h.max_body_bytes,
        ),
        access_log: None,
        access_log_global: h.access_log_global,
        access_log_format: h.access_log_format,
        rewrite: route.and_then(|r| r.rewrite.clone()),
        captures: route.filter(|r| uses_captures(r)).map(|r| r.path.clone()),
        compress: h.compress.clone().map(Arc::new),
        // The decoder checked every name.
        plugins: h
            .plugins
            .iter()
            .filter_map(|name| plugins.get(name).cloned())
            .collect(),
    }
}

/// Whether a route's templates (rewrite, respond, redirect, header rules) use `$1`..`$9`.
fn uses_captures(r: &crate::config::Route) -> bool {
    use crate::config::pattern::template;
    if r.path.captures() == 0 {
        return false;
    }
    let header_values = r
        .handling
        .headers
        .request
        .set
        .iter()
        .chain(&r.handling.headers.request.add)
        .chain(&r.handling.headers.response.set)
        .chain(&r.handling.headers.response.add)
        .any(|(_, v)| template::parse(v, 9).is_ok_and(|t| template::uses_captures(&t)));
    let answer = match &r.handling.action {
        Action::Respond(resp) => {
            template::uses_captures(&resp.body)
                || resp.headers.values().any(|t| template::uses_captures(t))
        }
        Action::Redirect(red) => template::uses_captures(&red.location),
        _ => false,
    };
    let rewrite =
        matches!(&r.rewrite, Some(crate::config::Rewrite::Path(t)) if template::uses_captures(t));
    header_values || answer || rewrite
}

/// What the router needs of a domain; `listener`: leave out what does not answer there.
fn route_spec(d: &crate::config::Domain, listener: Option<usize>) -> crate::router::DomainSpec<'_> {
    let on = |scope: &Option<Vec<usize>>| {
        listener.is_none_or(|l| scope.as_ref().is_none_or(|ls| ls.contains(&l)))
    };
    let hosts = if on(&d.listeners) {
        &d.hosts[..]
    } else {
        &[][..]
    };
    let routes = d
        .routes
        .iter()
        .map(|r| on(&r.listeners).then_some((&r.path, &r.matchers)))
        .collect();
    (hosts, routes)
}

pub(crate) fn pool_from(pc: &PoolConfig, backends: Vec<Arc<Backend>>) -> Pool {
    Pool::with_policy(pc.name.clone(), backends, pc.policy.clone())
}

/// Every host of a domain: what its rate counters are kept under across reloads.
fn host_list_name(d: &crate::config::Domain) -> String {
    d.hosts
        .iter()
        .map(crate::config::HostPattern::text)
        .collect::<Vec<_>>()
        .join(" ")
}

fn runtime_action(
    action: &Action,
    pools: &[Arc<Pool>],
    upstream_tls: &UpstreamTlsFiles,
) -> RouteAction {
    match action {
        Action::Proxy { pool, options } => match pools.get(*pool) {
            Some(p) => {
                let tls = options
                    .upstream_tls
                    .as_deref()
                    .and_then(|t| upstream_tls.get(t));
                RouteAction::Proxy(Arc::new(target(p.clone(), *pool, options, tls)))
            }
            None => RouteAction::NotFound,
        },
        Action::Respond(r) => RouteAction::Respond(Arc::new(static_response(r))),
        Action::Redirect(r) => RouteAction::Redirect(Arc::new(r.clone())),
        Action::Serve(s) => RouteAction::Serve(Arc::new(crate::serve::Site::new(s))),
        Action::Drop => RouteAction::Drop,
        Action::NotFound => RouteAction::NotFound,
    }
}

pub(crate) fn target(
    pool: Arc<Pool>,
    pool_index: usize,
    options: &ProxyOptions,
    tls: Option<&crate::tls::UpstreamMaterial>,
) -> Target {
    let peers = pool
        .backends
        .iter()
        .map(|b| peer_for(b, options, tls))
        .collect();
    let default_hosts: Vec<String> = pool.backends.iter().map(|b| authority(&b.config)).collect();
    let upstream_hosts = default_hosts
        .iter()
        .map(|default| {
            let host = options.host_header.as_deref().unwrap_or(default);
            // Validated names and URL authorities always make a header value.
            (!host.is_empty())
                .then(|| HeaderValue::from_str(host).ok())
                .flatten()
        })
        .collect();
    Target {
        pool,
        pool_index,
        options: options.clone(),
        peers,
        default_hosts,
        upstream_hosts,
    }
}

/// The connection-reuse group of peers that must not share pooled connections.
const NO_REUSE_GROUP: u64 = 0x5354_5241_4954_0000; // "STRAIT"

fn peer_for(
    backend: &Backend,
    options: &ProxyOptions,
    material: Option<&crate::tls::UpstreamMaterial>,
) -> HttpPeer {
    let tls = backend.config.scheme == Scheme::Https;
    let upstream_tls = options.upstream_tls.as_deref().filter(|_| tls);
    let sni = match upstream_tls.and_then(|t| t.sni.clone()) {
        Some(name) => name,
        None if tls => backend.config.host.clone(),
        None => String::new(),
    };
    // A SocketAddr argument never triggers HttpPeer::new's blocking lookup.
    let mut peer = HttpPeer::new(backend.addr, tls, sni);
    let o = &mut peer.options;
    o.connection_timeout = Some(options.connect_timeout);
    o.total_connection_timeout = Some(options.connect_timeout);
    o.read_timeout = Some(options.read_timeout);
    o.write_timeout = Some(options.write_timeout);
    o.idle_timeout = Some(if options.max_idle_conns == 0 {
        // Pingora treats a zero idle timeout as "do not pool".
        Duration::ZERO
    } else {
        options.idle_timeout
    });
    if options.max_idle_conns == 0 {
        // Nor may such a request take a connection another domain or route pooled for the
        // same address: a group key of its own keeps it out of the shared pool entirely.
        peer.group_key = NO_REUSE_GROUP;
    }
    o.tcp_keepalive = None;
    if let Some(t) = upstream_tls {
        // `sni` (above) is also the name the certificate is checked against.
        o.verify_cert = t.verify;
        o.verify_hostname = t.verify;
        if let Some(m) = material {
            o.ca = m.ca.clone();
            peer.client_cert_key = m.client.clone();
            if m.group != 0 && peer.group_key != NO_REUSE_GROUP {
                // Pingora's pool key leaves the CA out: keep connections verified against
                // one CA away from peers that trust another.
                peer.group_key = m.group;
            }
        }
    }
    if backend.config.scheme == Scheme::H2c {
        o.alpn = ALPN::H2;
        o.max_h2_streams = 100;
    }
    peer
}

/// `host[:port]` as the backend's URL names it, with the default port left out.
fn authority(b: &BackendConfig) -> String {
    let default_port = match b.scheme {
        Scheme::Https => 443,
        Scheme::Http | Scheme::H2c => 80,
        // Never left out: raw TCP has no default port.
        Scheme::Tcp => 0,
    };
    let host = if b.host.contains(':') {
        format!("[{}]", b.host)
    } else {
        b.host.clone()
    };
    if b.port == default_port {
        host
    } else {
        format!("{host}:{}", b.port)
    }
}

fn static_response(r: &Respond) -> StaticResponse {
    use crate::config::pattern::template;
    let literal_body = template::literal(&r.body);
    let dynamic =
        literal_body.is_none() || r.headers.values().any(|t| template::literal(t).is_none());
    let body = bytes::Bytes::from(literal_body.unwrap_or_default());
    // The decoder only admits statuses 100..=599, which always build; 500 is the fallback.
    let mut header = ResponseHeader::build(r.status, Some(r.headers.len() + 2))
        .or_else(|_| ResponseHeader::build(500, None))
        .expect("500 is a valid status");
    let mut has_type = false;
    for (name, value) in &r.headers {
        has_type |= name.eq_ignore_ascii_case("content-type");
        // Names and values were validated by the decoder; a failure here only drops the header.
        // A templated value is filled in per request.
        if let Some(value) = template::literal(value) {
            let _ = header.append_header(name.clone(), value.as_str());
        }
    }
    if !has_type {
        let _ = header.insert_header("Content-Type", "text/plain; charset=utf-8");
    }
    let _ = header.insert_header("Content-Length", body.len().to_string());
    StaticResponse {
        header,
        body,
        template: dynamic.then(|| r.clone()),
    }
}

/// Resolves every distinct backend host name once, concurrently, without blocking a thread.
pub(crate) async fn resolve_all(
    config: &Config,
) -> Result<HashMap<(String, u16), SocketAddr>, Vec<ConfigError>> {
    let mut first_use: HashMap<(String, u16), &BackendConfig> = HashMap::new();
    for b in config.pools.iter().flat_map(|p| p.backends.iter()) {
        first_use.entry((b.host.clone(), b.port)).or_insert(b);
    }
    let mut lookups = tokio::task::JoinSet::new();
    for (host, port) in first_use.keys().cloned() {
        lookups.spawn(async move {
            let result = resolve(&host, port).await;
            ((host, port), result)
        });
    }
    let mut out = HashMap::new();
    let mut errors = Vec::new();
    while let Some(joined) = lookups.join_next().await {
        let Ok((key, result)) = joined else { continue };
        match result {
            Ok(addr) => {
                out.insert(key, addr);
            }
            Err(message) => {
                if let Some(b) = first_use.get(&key) {
                    errors.push(ConfigError {
                        file: config.source.clone(),
                        line: b.pos.line,
                        col: b.pos.col,
                        path: b.path.clone(),
                        message,
                    });
                }
            }
        }
    }
    if out.len() != first_use.len() && errors.is_empty() {
        errors.push(ConfigError {
            file: config.source.clone(),
            line: 0,
            col: 0,
            path: String::new(),
            message: "backend name resolution was interrupted".to_string(),
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        errors.sort_by_key(|e| (e.line, e.col));
        Err(errors)
    }
}

pub(crate) async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(format!(
            "cannot resolve `{host}`: no answer within {RESOLVE_TIMEOUT:?}"
        )),
        Ok(Err(e)) => Err(format!("cannot resolve `{host}`: {e}")),
        Ok(Ok(mut addrs)) => {
            let all: Vec<SocketAddr> = addrs.by_ref().collect();
            // Prefer IPv4 where both exist: loopback-only test hosts often lack IPv6 routes.
            all.iter()
                .find(|a| a.is_ipv4())
                .or_else(|| all.first())
                .copied()
                .ok_or_else(|| format!("cannot resolve `{host}`: no addresses"))
        }
    }
}
