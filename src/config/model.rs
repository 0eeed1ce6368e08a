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

pub use super::pattern::host::HostPattern;
pub use super::pattern::path::PathPattern;
pub use super::pattern::request::{RequestMatch, ValueMatch};
pub use super::pattern::template::{Template, TemplatePart};

/// A position in the config file, 1-based, for error messages raised after decoding
/// (e.g. a backend name that does not resolve).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
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
    /// `tracing`: trace context propagation and the OTLP exporter (`crate::trace`).
    pub tracing: Tracing,
    pub cache: Option<CacheSettings>,
    /// `include` patterns, joined to the config file's folder (what `server.watch` watches).
    pub include: Vec<PathBuf>,
    /// Every backend pool, referenced by index from domains and routes.
    pub pools: Vec<PoolConfig>,
    pub domains: Vec<Domain>,
    /// `plugins`, in file order; domains and routes name them (docs/plugins.md).
    pub plugins: Vec<Plugin>,
    /// `acme`: the account that obtains the certificates of `tls.acme` hosts (`crate::acme`).
    pub acme: Option<Acme>,
    /// `cluster`: what this node shares with the others (docs/cluster.md).
    pub cluster: Cluster,
}

/// `acme`: automatic certificates (RFC 8555; docs/tls.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acme {
    pub directory: String,
    pub email: Option<String>,
    pub storage: PathBuf,
    pub ca_roots: Option<PathBuf>,
    pub renew_before: Duration,
    /// Where `storage` is written (or the section, when it is left at its default).
    pub storage_pos: Pos,
    pub pos: Pos,
}

/// `cluster` (docs/cluster.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cluster {
    /// `cluster.etcd`: shared runtime state, etcd discovery and the node registry.
    pub etcd: Option<Etcd>,
    /// `cluster.redis`: where `scope: cluster` rate limits count.
    pub redis: Option<Redis>,
    /// `cluster.nodes`: a cluster limit divided by this is each node's share while Redis is
    /// slow or down.
    pub nodes: u64,
}

/// `cluster.redis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redis {
    pub url: String,
    /// A decision waits for Redis at most this long.
    pub timeout: Duration,
}

/// `cluster.etcd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Etcd {
    /// Client URLs as written (`http://127.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// Ends with `/`.
    pub prefix: String,
    /// `username` and `password`, both or neither.
    pub user: Option<(String, String)>,
    /// Set when written; otherwise made at start (host name and first listener port).
    pub node_name: Option<String>,
    pub tls: Option<EtcdTls>,
    pub pos: Pos,
}

/// `cluster.etcd.tls`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdTls {
    pub ca: Option<PathBuf>,
    /// A client certificate and its key.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// One entry of `plugins` (docs/plugins.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    pub name: String,
    /// A running service (`url`) or a program strait starts (`command`).
    pub target: PluginTarget,
    /// `autostart`: a `command` plugin runs even when no domain or route lists it.
    pub autostart: bool,
    pub protocol: PluginProtocol,
    pub timeout: Duration,
    pub on_error: PluginOnError,
    /// forward_auth: headers of the auth answer set on the upstream request.
    pub copy_headers: Vec<String>,
    pub cache: Option<PluginCache>,
    pub pos: Pos,
}

/// Where a plugin answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginTarget {
    Url(PluginUrl),
    /// A program and its arguments, started and supervised by strait; it listens on the Unix
    /// socket named by `STRAIT_PLUGIN_SOCKET`.
    Command(Vec<String>),
}

impl PluginTarget {
    /// The path requests go under: the URL's, `/` for a command.
    pub fn path(&self) -> &str {
        match self {
            PluginTarget::Url(u) => &u.path,
            PluginTarget::Command(_) => "/",
        }
    }
}

/// A plugin's `url`, split: `http://HOST:PORT` and the path under which it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginUrl {
    /// As written.
    pub text: String,
    pub host: String,
    pub port: u16,
    /// `/` when the URL has none.
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginProtocol {
    /// strait's JSON protocol (`/v1/hello`, `/v1/request`, `/v1/response`).
    Strait,
    /// nginx `auth_request` / Traefik `forwardAuth`.
    ForwardAuth,
}

impl PluginProtocol {
    pub fn name(self) -> &'static str {
        match self {
            PluginProtocol::Strait => "strait",
            PluginProtocol::ForwardAuth => "forward_auth",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginOnError {
    /// 503 with `X-Strait-Error: plugin-unavailable`.
    Deny,
    /// Go on as if the plugin had said `continue` with no edits.
    Allow,
}

/// A plugin's decision cache: `continue` answers remembered per value of a request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginCache {
    /// The header named by `key: header:NAME`, lower-cased.
    pub header: String,
    pub ttl: Duration,
    pub max_entries: usize,
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
    /// `plugins`: asked about each new connection (`POST /v1/connection`), in order.
    pub plugins: Vec<String>,
    /// `http2` on a plain listener: HTTP/2 with prior knowledge (h2c) beside HTTP/1.1.
    pub h2c: bool,
    /// `tcp`: relay every connection to a pool instead of serving HTTP (docs/l4.md).
    pub tcp: Option<L4>,
    pub pos: Pos,
}

/// A raw relay to a pool: a listener's `tcp`, or a domain's `pass` (TLS passed through by
/// SNI). The bytes go both ways untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L4 {
    /// Index into `Config::pools`.
    pub pool: usize,
    pub connect_timeout: Duration,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
    /// Extra connect attempts, each on another backend.
    pub max_retries: u32,
    /// `proxy_protocol: v2`: a PROXY protocol v2 header goes to the backend first.
    pub proxy_protocol: bool,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub certs: Vec<CertPair>,
    pub cert_dir: Option<PathBuf>,
    /// Where `cert_dir` is written (its pairs' errors point there).
    pub cert_dir_pos: Pos,
    pub http2: bool,
    /// The oldest TLS version a client may use.
    pub min_version: TlsVersion,
    /// Client certificates (mTLS).
    pub client_auth: Option<ClientAuth>,
    /// `acme`: names whose certificates strait obtains itself (lower case).
    pub acme: Vec<String>,
    /// Where the `tls` map is written.
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Where the pair is written (for `cert_dir` pairs: where `cert_dir` is).
    pub pos: Pos,
}

/// `listeners[].tls.min_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    #[default]
    V1_2,
    V1_3,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        }
    }
}

/// `listeners[].tls.client_auth`: client certificates checked against `ca`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    pub ca: PathBuf,
    pub mode: ClientAuthMode,
    pub pos: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMode {
    /// The handshake fails without a valid client certificate.
    Require,
    /// A certificate is verified when the client presents one.
    Optional,
}

impl ClientAuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMode::Require => "require",
            ClientAuthMode::Optional => "optional",
        }
    }
}

/// `upstream_tls` on a domain or route: how strait talks TLS to its `https://` backends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    /// Trust these CAs instead of the system bundle.
    pub ca: Option<PathBuf>,
    /// `false`: accept any certificate (a warning at load).
    pub verify: bool,
    /// The name sent by SNI and checked against the certificate (default: the backend's host).
    pub sni: Option<String>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Where the (innermost) `upstream_tls` map is written, and its key path.
    pub pos: Pos,
    pub path: String,
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

/// `tracing`: W3C trace context on upstream requests (always), spans exported to an OTLP/HTTP
/// collector when `otlp_endpoint` is set (docs/tracing.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Tracing {
    pub otlp_endpoint: Option<OtlpEndpoint>,
    /// The share of new traces sampled, 0.0 to 1.0.
    pub sample_ratio: f64,
    pub service_name: String,
}

/// An `http://` OTLP/HTTP endpoint, split for the exporter's client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpEndpoint {
    /// As written.
    pub url: String,
    pub host: String,
    pub port: u16,
    /// The request target, `/v1/traces` when the URL has no path.
    pub path: String,
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
    /// A `pass` or `tcp` backend: `host:port`, bytes relayed as they are.
    Tcp,
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
    /// TLS towards `https://` backends (`upstream_tls`).
    pub upstream_tls: Option<Box<UpstreamTls>>,
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
    pub body: Template,
    pub headers: BTreeMap<String, Template>,
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
    pub scope: RateScope,
}

/// `rate_limit.scope`: who counts requests against the limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RateScope {
    /// Each node on its own.
    #[default]
    Local,
    /// Every node together, in `cluster.redis`.
    Cluster,
}

/// `redirect: { status, location }`; `location` is a template (`$host`, `$path`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
    pub location: Template,
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
    /// `access_log_format` of the own access log; `None`: `logging.access_log_format`.
    pub access_log_format: Option<AccessLogFormat>,
    /// `compress`: on-the-fly response compression; a route inherits its domain's.
    pub compress: Option<Compress>,
    /// `plugins`: names of `Config::plugins`, called in order; a route's list replaces its
    /// domain's.
    pub plugins: Vec<String>,
}

/// `compress:` on a domain or route (docs/compression.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compress {
    /// The codings offered, in the operator's order of preference (ties in the client's
    /// quality values go to the earlier one). Never empty.
    pub algorithms: Vec<Coding>,
    /// Responses whose `Content-Length` is smaller are sent as they are.
    pub min_bytes: u64,
    /// The media types compressed. Never empty.
    pub types: Vec<TypePattern>,
}

/// A content coding strait compresses with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Zstd,
    Br,
    Gzip,
}

impl Coding {
    /// Every coding, in the default order of preference.
    pub const ALL: [Coding; 3] = [Coding::Zstd, Coding::Br, Coding::Gzip];

    /// The coding's name in `Accept-Encoding`, `Content-Encoding` and the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }
}

/// A media-type pattern of `compress.types`: `type/subtype`, `type/*`, `type/*+suffix` or
/// `*/*`, matched without regard to case or parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypePattern {
    /// As written, lower-cased.
    pub text: String,
    /// The top-level type; `None` for `*`.
    top: Option<String>,
    sub: SubtypePattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SubtypePattern {
    Any,
    /// `*+json`: any subtype with this structured-syntax suffix (stored with its `+`).
    Suffix(String),
    Exact(String),
}

impl TypePattern {
    /// Parses a pattern; `Err` says what is wrong with it.
    pub fn parse(text: &str) -> Result<TypePattern, String> {
        let lower = text.trim().to_ascii_lowercase();
        let token = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        let Some((top, sub)) = lower.split_once('/') else {
            return Err("expected type/subtype, type/* or */* (like text/*)".into());
        };
        let top = match top {
            "*" if sub == "*" => None,
            "*" => return Err("a `*` type needs a `*` subtype (*/*)".into()),
            t if token(t) => Some(t.to_string()),
            _ => return Err(format!("{top:?} is not a media type name")),
        };
        let sub = match sub {
            "*" => SubtypePattern::Any,
            s if s.starts_with("*+") && token(&s[2..]) && !s[2..].contains('+') => {
                SubtypePattern::Suffix(s[1..].to_string())
            }
            s if token(s) => SubtypePattern::Exact(s.to_string()),
            _ => return Err(format!("{sub:?} is not a subtype, `*` or `*+suffix`")),
        };
        Ok(TypePattern {
            text: lower,
            top,
            sub,
        })
    }

    /// Whether a `Content-Type` value (parameters allowed) matches.
    pub fn matches(&self, content_type: &str) -> bool {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let Some((top, sub)) = essence.split_once('/') else {
            return false;
        };
        if let Some(want) = &self.top {
            if !top.eq_ignore_ascii_case(want) {
                return false;
            }
        }
        match &self.sub {
            SubtypePattern::Any => !sub.is_empty(),
            SubtypePattern::Exact(want) => sub.eq_ignore_ascii_case(want),
            SubtypePattern::Suffix(suffix) => {
                sub.len() > suffix.len()
                    && sub.is_char_boundary(sub.len() - suffix.len())
                    && sub[sub.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    /// The route's name in metrics, logs, hooks and the admin API: its path pattern as
    /// written, then its matchers (`/api/v1/* GET,HEAD`) and listeners (`@web`) if any.
    pub name: String,
    pub path: PathPattern,
    pub matchers: RequestMatch,
    /// Indices into `Config::listeners`; `None`: wherever its domain answers.
    pub listeners: Option<Vec<usize>>,
    /// The path sent upstream (or served) instead of the request's.
    pub rewrite: Option<Rewrite>,
    pub handling: Handling,
    pub pos: Pos,
}

/// A route's `strip_prefix: true` or `rewrite: TEMPLATE`; the query string is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// Remove this `path_prefix` (the rest keeps a leading `/`).
    StripPrefix(String),
    /// The new path.
    Path(Template),
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
    /// `pass`: TLS connections whose SNI names this domain are relayed, not terminated.
    pub pass: Option<L4>,
    pub pos: Pos,
    /// `discovery`: backends found at run time: `dns` fills the pool (`crate::discovery`),
    /// `etcd` adds to it (`crate::cluster`).
    pub discovery: Option<Discovery>,
}

/// `discovery` on a domain (docs/cluster.md): one source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    pub dns: Option<DnsDiscovery>,
    /// `discovery.etcd.prefix`: keys under it are backend addresses.
    pub etcd: Option<String>,
}

/// `discovery.dns`: the backends are `http://ADDRESS:port` for each A/AAAA record of `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsDiscovery {
    pub name: String,
    pub port: u16,
    pub interval: Duration,
    /// The nameserver to ask; `None`: the system's.
    pub resolver: Option<SocketAddr>,
}

impl Domain {
    /// The domain's own handling, then each route's.
    pub fn handlings(&self) -> impl Iterator<Item = &Handling> {
        std::iter::once(&self.handling).chain(self.routes.iter().map(|r| &r.handling))
    }
}
