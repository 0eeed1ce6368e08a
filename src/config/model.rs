//! The validated configuration model: what the rest of strait reads.
//!
//! Kept separate from the YAML text on purpose: every input path (file, reload, admin API)
//! renders into these types, and nothing downstream of `config` ever sees raw YAML.

// The fields mirror the YAML keys, documented once in the key table (`keys.rs`) and in
// docs/config-reference.md, which is generated from it.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// A position in the config file, 1-based, for error messages raised after decoding
/// (e.g. a backend name that does not resolve).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The file name used in error messages (`-` or `<demo>` when not from a file).
    pub source: String,
    pub server: Server,
    pub listeners: Vec<Listener>,
    pub admin: Option<Admin>,
    pub probe: Option<Probe>,
    pub logging: Logging,
    pub cache: Option<CacheSettings>,
    /// Every backend pool, referenced by index from domains and routes.
    pub pools: Vec<PoolConfig>,
    pub domains: Vec<Domain>,
}

#[derive(Debug, Clone)]
pub struct Server {
    /// Worker threads for the proxy service. Default: number of CPUs.
    pub threads: usize,
    pub pid_file: PathBuf,
    pub upgrade_sock: PathBuf,
    pub grace_period: Duration,
    pub shutdown_timeout: Duration,
    /// Extension: after SIGTERM, keep accepting this long with /ready = 503.
    pub drain_delay: Duration,
    /// Extension: how long an idle downstream keep-alive connection is kept.
    pub keepalive_timeout: Duration,
    pub user: Option<String>,
    pub group: Option<String>,
    /// Peers whose `X-Forwarded-For` names the client (the right-most address not in this
    /// list). Empty: the TCP peer is always the client.
    pub trusted_proxies: Vec<Cidr>,
    /// How long a client may take to send a complete request head once it has started (and,
    /// on a new connection, to start): 408 when it runs out.
    pub request_header_timeout: Duration,
    /// The largest request head (request line and header fields) accepted: 431 above it.
    pub max_header_bytes: usize,
    /// Request bodies held in memory by `buffer_request_body`, at most, over all requests;
    /// past it, requests stream.
    pub max_buffered_bytes: u64,
    /// Client connections served at once; more wait (unread) until one closes.
    pub max_connections: u32,
    /// Reload when the config file changes (`crate::lifecycle::watch`).
    pub watch: bool,
}

/// An IPv4 or IPv6 network, `addr/prefix`; the address has no bits set beyond the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(ipnet::IpNet);

impl Cidr {
    /// The network `addr/prefix`, when `addr` has no bits set beyond the prefix; the
    /// network it would mean otherwise (`Err`).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Result<Cidr, Cidr>> {
        let net = ipnet::IpNet::new(addr, prefix).ok()?;
        let exact = net.trunc();
        Some(if exact == net {
            Ok(Cidr(net))
        } else {
            Err(Cidr(exact))
        })
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.0.network()
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.0.prefix_len()
    }

    /// Whether `ip` is in this network. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) match
    /// IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone)]
pub struct Listener {
    /// Unique; what a domain's `listeners` names.
    pub name: Option<String>,
    pub addr: SocketAddr,
    pub tls: Option<Tls>,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub struct Tls {
    pub certs: Vec<CertPair>,
    pub cert_dir: Option<PathBuf>,
    pub http2: bool,
}

#[derive(Debug, Clone)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub addr: SocketAddr,
    pub token: Option<String>,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub struct Probe {
    pub addr: SocketAddr,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub struct Logging {
    pub level: log::LevelFilter,
    pub access_log: Option<AccessLog>,
    pub access_log_format: AccessLogFormat,
    /// `logging.error_log`: log lines at `error_log_level` and above (see `crate::logging`).
    pub error_log: Option<std::path::PathBuf>,
    pub error_log_level: log::LevelFilter,
}

/// How access-log lines are written (`crate::access_log`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AccessLogFormat {
    #[default]
    Json,
    /// Apache/NCSA combined.
    Combined,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub max_bytes: u64,
    pub max_entries: usize,
    pub max_entry_bytes: u64,
    /// Applies only where set: a response with no freshness information and no matching rule
    /// is not cached when this is `None`.
    pub default_ttl: Option<Duration>,
    pub max_ttl: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    pub precompress: Precompress,
    pub rules: Vec<CacheRule>,
    /// Pass `CDN-Cache-Control` and `Strait-Cache-Control` on to clients (RFC 9213 lets a
    /// cache that honoured them keep them for the next one).
    pub forward_targeted_cache_control: bool,
}

#[derive(Debug, Clone)]
pub struct Precompress {
    pub enabled: bool,
    pub level: u32,
    pub min_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct CacheRule {
    pub path_prefix: String,
    /// `cache: false` in the rule.
    pub enabled: bool,
    pub ttl: Option<Duration>,
    /// Upper-case method names; empty = GET and HEAD.
    pub methods: Vec<String>,
    /// Empty = the statuses RFC 9111 calls heuristically cacheable.
    pub statuses: Vec<u16>,
    pub max_entry_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    RoundRobin,
    WeightedRoundRobin,
    LeastConnections,
    /// `consistent_hash` on the client address.
    IpHash,
    Random,
    /// Consistent hashing on `hash_key`.
    ConsistentHash,
    /// Power of two choices over peak-EWMA latency × in-flight requests.
    LeastLatency,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::WeightedRoundRobin => "weighted_round_robin",
            Strategy::LeastConnections => "least_connections",
            Strategy::IpHash => "ip_hash",
            Strategy::Random => "random",
            Strategy::ConsistentHash => "consistent_hash",
            Strategy::LeastLatency => "least_latency",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
    H2c,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// As written, e.g. `http://app.internal:3000`.
    pub url: String,
    pub scheme: Scheme,
    /// Host part of the URL (a name or an IP literal, without brackets).
    pub host: String,
    pub port: u16,
    /// 1..=100.
    pub weight: u32,
    /// Most requests strait sends to this backend at once; `None`: no limit.
    pub max_connections: Option<u32>,
    pub pos: Pos,
    /// Field path for messages, e.g. `domains[0].backends[1].addr`.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthKind {
    Http { path: String },
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub kind: HealthKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub fail_threshold: u32,
    pub success_threshold: u32,
}

/// A set of backends with one policy. Routes that do not override `backends` or any of the
/// policy's keys share their domain's pool, so they share its health state and balancing
/// counters too.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// `host` of the domain's first entry, plus `path_prefix` for a route's own pool.
    pub name: String,
    pub backends: Vec<BackendConfig>,
    pub policy: PoolPolicy,
}

/// How a pool picks and judges its backends: the keys a route inherits from its domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPolicy {
    pub strategy: Strategy,
    pub health_check: Option<HealthCheck>,
    /// Outlier detection from real traffic; `None` with `passive_health: false`.
    pub passive_health: Option<PassiveHealth>,
    /// What `consistent_hash` hashes (`ip_hash`: the client address).
    pub hash_key: HashKey,
    pub sticky: Option<Sticky>,
    pub retry_budget: Option<RetryBudget>,
}

/// `passive_health`: eject a backend after consecutive failures seen in real traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassiveHealth {
    pub consecutive_failures: u32,
    pub ejection_time: Duration,
    pub max_ejection_time: Duration,
    pub max_ejected_percent: u32,
}

/// `hash_key` of `consistent_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    ClientIp,
    /// Lower-cased header name.
    Header(String),
    Cookie(String),
    Query(String),
    Path,
}

/// `sticky`: a cookie naming the backend that served a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sticky {
    pub cookie: String,
    /// `Max-Age`; `None`: a session cookie.
    pub ttl: Option<Duration>,
    pub secure: bool,
    pub http_only: bool,
    pub same_site: Option<String>,
}

/// `retry_budget`: retries may add at most `percent` of the pool's requests per second, or
/// `min_per_second`, whichever is more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryBudget {
    pub percent: u32,
    pub min_per_second: u32,
}

/// Per-request upstream behaviour; resolved with inheritance (route over domain over default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyOptions {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub max_retries: u32,
    pub max_idle_conns: u32,
    pub idle_timeout: Duration,
    pub preserve_host: bool,
    pub host_header: Option<String>,
    /// Replaces `read_timeout` (both directions) once a request is upgraded (WebSocket): how
    /// long a tunnel may stay silent.
    pub websocket_idle_timeout: Duration,
    /// Read a request body up to this size before choosing a backend.
    pub buffer_request_body: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Lower-cased, no port.
    Exact(String),
    /// `*.example.com` stored as the suffix `.example.com`.
    Wildcard(String),
    /// `*`
    Any,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    pub request: HeaderEdits,
    pub response: HeaderEdits,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Respond {
    pub status: u16,
    pub body: String,
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    ClientIp,
    Route,
    Header(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub requests: u64,
    pub per: Duration,
    pub key: RateKey,
}

/// `redirect: { status, location }`; `location` may use `$host`, `$path` and `$query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
    pub location: Vec<LocationPart>,
}

/// A piece of a redirect `location` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationPart {
    Text(String),
    /// The request host, without port.
    Host,
    /// The request path.
    Path,
    /// `?` and the query string, or nothing when the request has none.
    Query,
    /// `http` or `https`, as the client connected.
    Scheme,
    /// The port the client addressed (from `Host`), else the listener's.
    Port,
    /// The path and `?query`.
    Uri,
    /// The client's address.
    RemoteAddr,
    /// The request's `X-Request-Id`.
    RequestId,
}

/// `serve: { root, index, spa, browse, precompressed, cache_control }`: a static file server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serve {
    /// As written; an existing folder when the config was loaded.
    pub root: PathBuf,
    /// File names tried, in order, for a directory request. Never empty.
    pub index: Vec<String>,
    /// Unknown paths get the root's index file with 200 (single-page apps).
    pub spa: bool,
    /// A directory without an index file gets an HTML listing (else 403).
    pub browse: bool,
    /// Sibling files (`x.br`, `x.gz`, `x.zst`) served to clients that accept the encoding,
    /// in the order of preference written.
    pub precompressed: Vec<Encoding>,
    pub cache_control: Option<String>,
}

/// A content coding of `serve.precompressed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Br,
    Gzip,
    Zstd,
}

impl Encoding {
    /// Every coding, as written in the config.
    pub const ALL: [Encoding; 3] = [Encoding::Br, Encoding::Gzip, Encoding::Zstd];

    /// The config's and `Content-Encoding`'s name.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
            Encoding::Zstd => "zstd",
        }
    }

    /// The suffix of the sibling file holding this encoding.
    pub fn suffix(self) -> &'static str {
        match self {
            Encoding::Br => ".br",
            Encoding::Gzip => ".gz",
            Encoding::Zstd => ".zst",
        }
    }
}

/// What a domain or route does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Proxy to `pools[pool]`.
    Proxy { pool: usize, options: ProxyOptions },
    /// Answer directly.
    Respond(Respond),
    /// Answer with a redirect.
    Redirect(Redirect),
    /// `drop: true`: close the connection without a response.
    Drop,
    /// `serve`: answer with files from a folder (`crate::serve`).
    Serve(Serve),
    /// The domain has no backends and no route matched.
    NotFound,
}

/// `cache:` on a domain: `false`/absent, `true` (global settings), or a map overriding them.
#[derive(Debug, Clone)]
pub enum DomainCache {
    Off,
    Global,
    Custom(Box<CacheSettings>),
}

/// What a domain or a route does with the requests it matches: the keys the two share.
#[derive(Debug, Clone)]
pub struct Handling {
    pub action: Action,
    /// A route's rules are already merged over its domain's (route wins per header name).
    pub headers: HeaderRules,
    /// A route without its own inherits its domain's.
    pub rate_limit: Option<RateLimit>,
    pub cache: DomainCache,
    /// Client networks answered 403; a route's list adds to its domain's.
    pub deny: Vec<Cidr>,
    /// Larger request bodies are answered 413; inherited from the domain when unset.
    pub max_body_bytes: Option<u64>,
    /// `access_log`: this domain's or route's own access log; a route inherits its domain's.
    pub access_log: Option<PathBuf>,
    /// `access_log_global`: also write these requests to the global access log.
    pub access_log_global: bool,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub path_prefix: String,
    pub handling: Handling,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub struct Domain {
    pub hosts: Vec<HostPattern>,
    /// Indices into `Config::listeners` this domain answers on; `None`: every listener.
    pub listeners: Option<Vec<usize>>,
    /// For requests that match no route.
    pub handling: Handling,
    /// In file order; the router sorts by prefix length.
    pub routes: Vec<Route>,
    pub pos: Pos,
}

impl Domain {
    /// The domain's own handling, then each route's.
    pub fn handlings(&self) -> impl Iterator<Item = &Handling> {
        std::iter::once(&self.handling).chain(self.routes.iter().map(|r| &r.handling))
    }
}
