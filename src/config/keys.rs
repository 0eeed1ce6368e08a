//! The one table of config keys: for each mapping of the file (a [`Section`]), the keys it
//! may hold, what each takes, its default and one line of documentation. The decoder takes
//! the allowed keys (and so its `unknown field` messages), integer bounds and defaults from
//! here; `docs/config-reference.md` is generated from it (a unit test keeps the two in step),
//! and so will be the JSON Schema.
//!
//! A new key is one row here plus its decoding in `decode/`.

use std::time::Duration;

/// A mapping in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Top,
    /// A file named by `include`.
    Included,
    Server,
    Listener,
    Tls,
    Cert,
    ClientAuth,
    UpstreamTls,
    Admin,
    Probe,
    Logging,
    Cache,
    Precompress,
    Compress,
    CacheRule,
    Domain,
    Route,
    Backend,
    HealthCheck,
    Headers,
    HeaderEdits,
    Respond,
    Redirect,
    RateLimit,
    PassiveHealth,
    HashKey,
    Sticky,
    RetryBudget,
    Serve,
    Tracing,
    Plugin,
    PluginCache,
    L4,
    Acme,
    Cluster,
    Redis,
    Etcd,
    EtcdTls,
    Discovery,
    DnsDiscovery,
    EtcdDiscovery,
}

impl Section {
    /// Every section, in the order the reference lists them.
    pub(crate) const ALL: [Section; 41] = [
        Section::Top,
        Section::Included,
        Section::Server,
        Section::Listener,
        Section::Tls,
        Section::Cert,
        Section::ClientAuth,
        Section::UpstreamTls,
        Section::Admin,
        Section::Probe,
        Section::Logging,
        Section::Cache,
        Section::Precompress,
        Section::Compress,
        Section::CacheRule,
        Section::Domain,
        Section::Route,
        Section::Backend,
        Section::HealthCheck,
        Section::Headers,
        Section::HeaderEdits,
        Section::Respond,
        Section::Redirect,
        Section::RateLimit,
        Section::PassiveHealth,
        Section::HashKey,
        Section::Sticky,
        Section::RetryBudget,
        Section::Serve,
        Section::Tracing,
        Section::Plugin,
        Section::PluginCache,
        Section::L4,
        Section::Acme,
        Section::Cluster,
        Section::Redis,
        Section::Etcd,
        Section::EtcdTls,
        Section::Discovery,
        Section::DnsDiscovery,
        Section::EtcdDiscovery,
    ];

    /// Where the section is found in a file.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Section::Top => "(top level)",
            Section::Included => "a file named by `include`",
            Section::Server => "server",
            Section::Listener => "listeners[]",
            Section::Tls => "listeners[].tls",
            Section::Cert => "listeners[].tls.certs[]",
            Section::ClientAuth => "listeners[].tls.client_auth",
            Section::UpstreamTls => "upstream_tls (on a domain or route)",
            Section::Admin => "admin",
            Section::Probe => "probe",
            Section::Logging => "logging",
            Section::Cache => "cache (also a domain's or route's cache map)",
            Section::Precompress => "cache.precompress",
            Section::Compress => "compress (on a domain or route)",
            Section::CacheRule => "cache.rules[]",
            Section::Domain => "domains[]",
            Section::Route => "domains[].routes[]",
            Section::Backend => "backends[] (a map; a bare URL is also accepted)",
            Section::HealthCheck => "health_check",
            Section::Headers => "headers",
            Section::HeaderEdits => "headers.request / headers.response",
            Section::Respond => "respond",
            Section::Redirect => "redirect",
            Section::RateLimit => "rate_limit",
            Section::PassiveHealth => "passive_health",
            Section::HashKey => "hash_key",
            Section::Sticky => "sticky",
            Section::RetryBudget => "retry_budget",
            Section::Serve => "serve",
            Section::Tracing => "tracing",
            Section::Plugin => "plugins.NAME",
            Section::PluginCache => "plugins.NAME.cache",
            Section::L4 => "listeners[].tcp / domains[].pass",
            Section::Acme => "acme",
            Section::Cluster => "cluster",
            Section::Redis => "cluster.redis",
            Section::Discovery => "domains[].discovery",
            Section::DnsDiscovery => "domains[].discovery.dns",
            Section::Etcd => "cluster.etcd",
            Section::EtcdTls => "cluster.etcd.tls",
            Section::EtcdDiscovery => "domains[].discovery.etcd",
        }
    }
}

/// What a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `250ms`, `10s`, `1h30m`; zero allowed.
    Duration,
    /// A duration above zero.
    PositiveDuration,
    /// `512`, `64KiB`, `4MiB`.
    Size,
    Bool,
    Int {
        min: u64,
        max: u64,
    },
    String,
    /// One of the listed words.
    OneOf(&'static [&'static str]),
    /// `host:port` or `ip:port`.
    Address,
    /// A file or folder path.
    Path,
    /// A list of these items.
    List(Item),
    /// A mapping with the keys of this section.
    Map(Section),
    /// Header names to values (`set`, `add`, a `respond`'s headers).
    TextMap,
    /// A mapping with the keys of this section, or `true`/`false`.
    MapOrBool(Section),
    /// A number from 0.0 to 1.0.
    Ratio,
    /// A mapping of names (chosen in the file) to mappings of this section (`plugins`).
    Named(Section),
}

/// What a list holds; the JSON Schema (`schema.rs`) needs it, the decoder knows it by code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Item {
    /// Mappings of this section.
    Of(Section),
    /// Mappings of this section, or a bare string as shorthand (a backend's URL).
    OfOrText(Section),
    /// Strings (hosts, networks, methods, header names).
    Text,
    /// HTTP statuses.
    Status,
}

/// A key's default, typed so the decoder uses the very value the reference shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DefaultValue {
    /// Required.
    Required,
    /// Unset unless written (the text says what that means).
    Unset(&'static str),
    Duration(Duration),
    Size(u64),
    Int(u64),
    Bool(bool),
    Text(&'static str),
    /// A number, as written in the file (`1.0`).
    Number(&'static str),
}

/// One key of one or more sections.
#[derive(Debug)]
pub(crate) struct Key {
    pub(crate) name: &'static str,
    pub(crate) sections: &'static [Section],
    pub(crate) kind: Kind,
    pub(crate) default: DefaultValue,
    pub(crate) doc: &'static str,
}

use DefaultValue as D;
use Item as I;
use Kind as K;
use Section as S;

const fn secs(n: u64) -> DefaultValue {
    D::Duration(Duration::from_secs(n))
}

const DOMAIN_AND_ROUTE: &[Section] = &[S::Domain, S::Route];
const LB_NAMES: &[&str] = &[
    "round_robin",
    "weighted_round_robin",
    "least_connections",
    "ip_hash",
    "random",
    "consistent_hash",
    "least_latency",
];

/// Every key, grouped by section in file order. The order within a section is the order of
/// the `expected one of` list in errors.
#[rustfmt::skip]
pub(crate) const KEYS: &[Key] = &[
    // --- top level ---
    key("server", &[S::Top], K::Map(S::Server), D::Unset("every server default"), "process settings"),
    key("listeners", &[S::Top], K::List(I::Of(S::Listener)), D::Required, "the addresses the proxy accepts on (at least one)"),
    key("admin", &[S::Top], K::Map(S::Admin), D::Unset("no admin API"), "the admin API listener"),
    key("probe", &[S::Top], K::Map(S::Probe), D::Unset("no probe listener"), "the /live /ready /metrics listener"),
    key("logging", &[S::Top], K::Map(S::Logging), D::Unset("level info, no access or error log"), "console level, the access log and the error log"),
    key("acme", &[S::Top], K::Map(S::Acme), D::Unset("no automatic certificates"), "the ACME account that obtains and renews the certificates of `tls.acme` hosts (docs/tls.md)"),
    key("tracing", &[S::Top], K::Map(S::Tracing), D::Unset("traceparent propagated, nothing exported"), "W3C trace context on upstream requests and an optional OTLP/HTTP exporter (docs/tracing.md)"),
    key("cache", &[S::Top], K::Map(S::Cache), D::Unset("cache settings' defaults"), "the response cache's global settings (a domain still opts in with `cache: true`)"),
    key("include", &[S::Top], K::List(I::Text), D::Unset("none"), "more files of domains: paths or patterns like conf.d/*.yaml (wildcards in the file name), relative to this file; each holds a `domains` list"),
    key("plugins", &[S::Top], K::Named(S::Plugin), D::Unset("none"), "external programs and services that see requests: name -> settings; domains and routes list the ones they use (docs/plugins.md)"),
    key("cluster", &[S::Top], K::Map(S::Cluster), D::Unset("one node on its own"), "what several strait nodes share: runtime state and discovery in etcd, `scope: cluster` rate limits in Redis (docs/cluster.md)"),
    key("domains", &[S::Top, S::Included], K::List(I::Of(S::Domain)), D::Unset("required, unless an included file has domains"), "host names and what answers them (at least one, here or in included files)"),
    // --- server ---
    key("threads", &[S::Server], K::Int { min: 1, max: 1024 }, D::Unset("the number of CPUs"), "proxy worker threads"),
    key("pid_file", &[S::Server], K::Path, D::Text("/tmp/strait.pid"), "written with -d"),
    key("upgrade_sock", &[S::Server], K::Path, D::Text("/tmp/strait_upgrade.sock"), "where -u takes the listening sockets over"),
    key("grace_period", &[S::Server], K::Duration, secs(30), "in-flight requests may finish this long after SIGTERM/SIGQUIT"),
    key("shutdown_timeout", &[S::Server], K::Duration, secs(10), "then the process exits whatever is left"),
    key("drain_delay", &[S::Server], K::Duration, secs(1), "after SIGTERM: /ready says 503, listeners still accept this long"),
    key("keepalive_timeout", &[S::Server], K::Duration, secs(60), "idle client keep-alive connections are closed after this"),
    key("user", &[S::Server], K::String, D::Unset("the starting user"), "with -d: the user the daemon runs as"),
    key("group", &[S::Server], K::String, D::Unset("the starting group"), "with -d: the group the daemon runs as"),
    key("trusted_proxies", &[S::Server], K::List(I::Text), D::Unset("none"), "CIDRs whose X-Forwarded-For is believed"),
    key("request_header_timeout", &[S::Server], K::PositiveDuration, secs(10), "a request head not complete this long after its first byte: 408"),
    key("max_header_bytes", &[S::Server], K::Size, D::Size(64 << 10), "a larger request head: 431 (1KiB to 512KiB)"),
    key("max_buffered_bytes", &[S::Server], K::Size, D::Size(256 << 20), "request bodies held by buffer_request_body, at most, over all requests; past it, requests stream"),
    key("max_connections", &[S::Server], K::Int { min: 1, max: 10_000_000 }, D::Int(100_000), "client connections served at once; more wait, unread, until one closes"),
    key("watch", &[S::Server], K::Bool, D::Bool(false), "reload when the config file changes (as SIGHUP does; also `--watch`)"),
    // --- listeners ---
    key("addr", &[S::Listener, S::Admin, S::Probe], K::Address, D::Required, "the address to listen on"),
    key("name", &[S::Listener], K::String, D::Unset("unnamed"), "what domains' `listeners` lists name it by (unique)"),
    key("tls", &[S::Listener], K::Map(S::Tls), D::Unset("plain HTTP"), "terminate TLS on this listener"),
    key("http2", &[S::Listener], K::Bool, D::Bool(false), "a plain listener: also accept HTTP/2 with prior knowledge (h2c) beside HTTP/1.1 (TLS listeners: tls.http2)"),
    key("tcp", &[S::Listener], K::Map(S::L4), D::Unset("HTTP"), "relay every connection's bytes to a pool of TCP backends instead of serving HTTP (docs/l4.md)"),
    key("plugins", &[S::Listener], K::List(I::Text), D::Unset("none"), "names of `plugins` asked about each new connection (POST /v1/connection: allow or deny), in order (docs/plugins.md)"),
    key("certs", &[S::Tls], K::List(I::Of(S::Cert)), D::Unset("none"), "certificate and key pairs; the first is the default, the others are picked by SNI"),
    key("cert_dir", &[S::Tls], K::Path, D::Unset("none"), "every NAME.crt|NAME.pem + NAME.key pair in a folder"),
    key("http2", &[S::Tls], K::Bool, D::Bool(false), "offer h2 by ALPN"),
    key("min_version", &[S::Tls], K::OneOf(&["1.2", "1.3"]), D::Text("1.2"), "the oldest TLS version clients may use: 1.2 or 1.3"),
    key("acme", &[S::Tls], K::List(I::Text), D::Unset("none"), "host names whose certificates strait obtains and renews by ACME (the `acme` section); static certs still answer other names"),
    key("client_auth", &[S::Tls], K::Map(S::ClientAuth), D::Unset("no client certificates asked for"), "ask clients for certificates signed by a CA (docs/tls.md)"),
    key("cert", &[S::Cert], K::Path, D::Required, "PEM certificate chain"),
    key("key", &[S::Cert], K::Path, D::Required, "PEM private key"),
    key("ca", &[S::ClientAuth], K::Path, D::Required, "PEM file of the CA certificates client certificates must chain to"),
    key("mode", &[S::ClientAuth], K::OneOf(&["require", "optional"]), D::Text("require"), "require: no valid certificate, no handshake; optional: verified when presented"),
    // --- admin, logging ---
    key("token", &[S::Admin], K::String, D::Unset("no token; only allowed on loopback"), "bearer token the admin API requires"),
    key("level", &[S::Logging], K::OneOf(&["off", "error", "warn", "info", "debug", "trace"]), D::Text("info"), "console log level"),
    key("access_log", &[S::Logging], K::Path, D::Unset("no access log"), "JSON access log file; `-` is stdout"),
    key("access_log_format", &[S::Logging], K::OneOf(&["json", "combined"]), D::Text("json"), "json: one JSON object per line; combined: Apache's combined format"),
    key("error_log", &[S::Logging], K::Path, D::Unset("no error log"), "log lines at error_log_level and above go to this file too (with -d: every console line); reopened on SIGUSR1"),
    key("error_log_level", &[S::Logging], K::OneOf(&["off", "error", "warn", "info", "debug", "trace"]), D::Text("warn"), "the error log's level"),
    // --- cache ---
    key("max_bytes", &[S::Cache], K::Size, D::Size(256 << 20), "memory for stored responses"),
    key("max_entries", &[S::Cache], K::Int { min: 1, max: u32::MAX as u64, }, D::Int(10_000), "stored responses at most"),
    key("max_entry_bytes", &[S::Cache, S::CacheRule], K::Size, D::Size(4 << 20), "larger responses stream through uncached"),
    key("default_ttl", &[S::Cache], K::Duration, D::Unset("responses without freshness information are not stored"), "freshness for responses that give none"),
    key("max_ttl", &[S::Cache], K::Duration, secs(24 * 3600), "caps every freshness lifetime"),
    key("stale_while_revalidate", &[S::Cache], K::Duration, secs(0), "serve stale while one background refresh runs"),
    key("stale_if_error", &[S::Cache], K::Duration, secs(0), "serve stale when every backend fails"),
    key("precompress", &[S::Cache], K::Map(S::Precompress), D::Unset("off"), "store a gzip copy for clients that accept it"),
    key("rules", &[S::Cache], K::List(I::Of(S::CacheRule)), D::Unset("none"), "per path prefix overrides; the first match wins"),
    key("forward_targeted_cache_control", &[S::Cache], K::Bool, D::Bool(false), "pass CDN-Cache-Control and Strait-Cache-Control (which strait's cache obeys over Cache-Control) on to clients"),
    key("enabled", &[S::Precompress], K::Bool, D::Bool(false), "store the gzip copy"),
    key("level", &[S::Precompress], K::Int { min: 1, max: 9 }, D::Int(6), "gzip level"),
    key("min_bytes", &[S::Precompress], K::Size, D::Size(256), "smaller responses are not compressed"),
    // --- compress (docs/compression.md) ---
    key("algorithms", &[S::Compress], K::List(I::Text), D::Unset("[zstd, br, gzip]"), "the codings offered (zstd, br, gzip), preferred first: the client's highest q-value wins, ties go to the earlier"),
    key("min_bytes", &[S::Compress], K::Size, D::Size(256), "responses whose Content-Length is smaller are sent as they are (at most 1GiB)"),
    key("types", &[S::Compress], K::List(I::Text), D::Unset("text/*, JSON, JavaScript, XML, WebAssembly, SVG, icons, TTF/OTF fonts"), "media types compressed: type/subtype, type/*, type/*+suffix or */* (text/event-stream never)"),
    key("path_prefix", &[S::CacheRule], K::String, D::Required, "the paths the rule covers"),
    key("ttl", &[S::CacheRule], K::Duration, D::Unset("RFC 9111 freshness"), "freshness for the rule's responses"),
    key("methods", &[S::CacheRule], K::List(I::Text), D::Unset("GET and HEAD"), "methods the rule applies to"),
    key("statuses", &[S::CacheRule], K::List(I::Status), D::Unset("every cacheable status"), "statuses the rule stores"),
    key("cache", &[S::CacheRule], K::Bool, D::Bool(true), "`false` keeps the rule's paths out of the cache"),
    // --- domains and routes ---
    key("listeners", DOMAIN_AND_ROUTE, K::List(I::Text), D::Unset("every listener (a route: its domain's)"), "the named listeners this domain or route answers on"),
    key("hosts", &[S::Domain], K::List(I::Text), D::Required, "exact names, `*.suffix`, `cdn-*.example.com`, `api.**.example.com`, or `*` for the default domain; the most specific wins"),
    key("path_prefix", &[S::Route], K::String, D::Unset("one of path_prefix and path is required"), "a path prefix; written with a trailing `/` it also matches the path without it"),
    key("path", &[S::Route], K::String, D::Unset("one of path_prefix and path is required"), "an exact path, or a glob: `*` within a segment, `**` across segments, captured as $1..$9"),
    key("methods", &[S::Route], K::List(I::Text), D::Unset("every method"), "the route matches these methods only; 405 with Allow when only the method failed"),
    key("query", &[S::Route], K::TextMap, D::Unset("any query"), "query parameters the request must have: NAME: VALUE, or a list of names that must be present"),
    key("strip_prefix", &[S::Route], K::Bool, D::Bool(false), "remove the path_prefix from the path sent upstream (the query is kept)"),
    key("rewrite", &[S::Route], K::String, D::Unset("the request's path"), "the path sent upstream, a template ($1..$9, $path, ...); the query is kept"),
    key("load_balancer", DOMAIN_AND_ROUTE, K::OneOf(LB_NAMES), D::Text("round_robin"), "how a backend is picked"),
    key("backends", DOMAIN_AND_ROUTE, K::List(I::OfOrText(S::Backend)), D::Unset("a route shares its domain's pool"), "http:// https:// h2c:// URLs"),
    key("connect_timeout", DOMAIN_AND_ROUTE, K::PositiveDuration, secs(5), "connecting to a backend"),
    key("read_timeout", DOMAIN_AND_ROUTE, K::PositiveDuration, secs(60), "waiting for a backend's next bytes"),
    key("write_timeout", DOMAIN_AND_ROUTE, K::PositiveDuration, secs(60), "writing to a backend"),
    key("max_retries", DOMAIN_AND_ROUTE, K::Int { min: 0, max: 10 }, D::Int(2), "extra attempts, each on a different backend"),
    key("max_idle_conns", DOMAIN_AND_ROUTE, K::Int { min: 0, max: 10_000, }, D::Int(32), "keep-alive connections kept per backend (0: no pooling)"),
    key("idle_timeout", DOMAIN_AND_ROUTE, K::Duration, secs(60), "an idle pooled backend connection is closed after this"),
    key("preserve_host", DOMAIN_AND_ROUTE, K::Bool, D::Bool(false), "forward the client's Host"),
    key("host_header", DOMAIN_AND_ROUTE, K::String, D::Unset("the backend's host:port"), "the Host sent to backends"),
    key("websocket_idle_timeout", DOMAIN_AND_ROUTE, K::PositiveDuration, secs(3600), "how long an upgraded tunnel may stay silent"),
    key("buffer_request_body", DOMAIN_AND_ROUTE, K::Size, D::Unset("bodies stream"), "read a request body up to this size (at most 64KiB) before choosing a backend"),
    key("health_check", DOMAIN_AND_ROUTE, K::Map(S::HealthCheck), D::Unset("no active checks"), "active health checks of the pool"),
    key("passive_health", DOMAIN_AND_ROUTE, K::MapOrBool(S::PassiveHealth), D::Bool(true), "eject a backend after consecutive failures seen in real traffic (`false` turns it off)"),
    key("hash_key", DOMAIN_AND_ROUTE, K::Map(S::HashKey), D::Unset("the client address"), "what `consistent_hash` hashes"),
    key("sticky", DOMAIN_AND_ROUTE, K::Map(S::Sticky), D::Unset("off"), "a cookie that keeps a client on the backend that served it"),
    key("retry_budget", DOMAIN_AND_ROUTE, K::MapOrBool(S::RetryBudget), D::Bool(true), "retries may add at most this much load (`false` turns it off)"),
    key("discovery", &[S::Domain], K::Map(S::Discovery), D::Unset("the backends are `backends`"), "backends found at run time, from one source: `dns` fills the pool (instead of `backends`), `etcd` adds to `backends` (docs/cluster.md)"),
    key("cache", DOMAIN_AND_ROUTE, K::MapOrBool(S::Cache), D::Bool(false), "use the response cache (a map overrides the global settings)"),
    key("compress", DOMAIN_AND_ROUTE, K::MapOrBool(S::Compress), D::Bool(false), "compress responses on the fly by Accept-Encoding (`true`: on, with the defaults or, on a route, its domain's settings; docs/compression.md)"),
    key("rate_limit", DOMAIN_AND_ROUTE, K::Map(S::RateLimit), D::Unset("none"), "requests per period per key; 429 over it"),
    key("headers", DOMAIN_AND_ROUTE, K::Map(S::Headers), D::Unset("none"), "request and response header edits; on a route, any other name is a header the request must have (NAME: VALUE or NAME: { present: true })"),
    key("deny", DOMAIN_AND_ROUTE, K::List(I::Text), D::Unset("none"), "client CIDRs answered 403"),
    key("max_body_bytes", DOMAIN_AND_ROUTE, K::Size, D::Unset("no limit"), "larger request bodies are answered 413"),
    key("respond", DOMAIN_AND_ROUTE, K::Map(S::Respond), D::Unset("none"), "answer with a fixed response"),
    key("redirect", DOMAIN_AND_ROUTE, K::Map(S::Redirect), D::Unset("none"), "answer with a redirect"),
    key("drop", DOMAIN_AND_ROUTE, K::Bool, D::Bool(false), "close the connection without a response"),
    key("serve", DOMAIN_AND_ROUTE, K::Map(S::Serve), D::Unset("none"), "answer with files from a folder (docs/routing.md)"),
    key("access_log", DOMAIN_AND_ROUTE, K::Path, D::Unset("only the global access log"), "also log this domain's or route's requests to this file (logging.access_log_format; reopened on SIGUSR1)"),
    key("access_log_format", DOMAIN_AND_ROUTE, K::OneOf(&["json", "combined"]), D::Unset("logging.access_log_format"), "the format of this domain's or route's own access_log (a file shared by several must be written in one format)"),
    key("access_log_global", DOMAIN_AND_ROUTE, K::Bool, D::Bool(true), "false: with `access_log`, leave these requests out of the global access log"),
    key("upstream_tls", DOMAIN_AND_ROUTE, K::Map(S::UpstreamTls), D::Unset("verify against the system bundle (SSL_CERT_FILE as a fallback)"), "TLS towards https:// backends: CA, verification, SNI, client certificate (a route's keys override its domain's)"),
    key("plugins", DOMAIN_AND_ROUTE, K::List(I::Text), D::Unset("none (a route: its domain's)"), "names of `plugins`, called in this order on each request; a route's list replaces its domain's (`[]`: none)"),
    key("routes", &[S::Domain], K::List(I::Of(S::Route)), D::Unset("none"), "path-prefix routes inside the domain"),
    key("pass", &[S::Domain], K::Map(S::L4), D::Unset("TLS is terminated"), "on TLS listeners: relay connections whose SNI names this domain to a pool, still encrypted (docs/tls.md)"),
    // --- tcp (listeners) and pass (domains) (docs/l4.md) ---
    key("backends", &[S::L4], K::List(I::OfOrText(S::Backend)), D::Required, "host:port (or tcp://host:port) of each backend"),
    key("load_balancer", &[S::L4], K::OneOf(LB_NAMES), D::Text("round_robin"), "how a backend is picked for each connection (consistent_hash and ip_hash hash the client address)"),
    key("health_check", &[S::L4], K::Map(S::HealthCheck), D::Unset("no active checks"), "active checks of the pool: type tcp (the default here) only"),
    key("connect_timeout", &[S::L4], K::PositiveDuration, secs(5), "connecting to a backend; then the next one is tried"),
    key("idle_timeout", &[S::L4], K::PositiveDuration, secs(600), "a connection with no bytes either way for this long is closed"),
    key("max_retries", &[S::L4], K::Int { min: 0, max: 10 }, D::Int(2), "extra connect attempts, each on another backend"),
    key("proxy_protocol", &[S::L4], K::OneOf(&["v2"]), D::Unset("none"), "v2: send a PROXY protocol v2 header (the client's address) to the backend first"),
    // --- upstream_tls (docs/tls.md) ---
    key("ca", &[S::UpstreamTls], K::Path, D::Unset("the system bundle"), "PEM file of the CAs that backends' certificates must chain to (replaces the system bundle)"),
    key("verify", &[S::UpstreamTls], K::Bool, D::Bool(true), "verify backends' certificates and names; false accepts any (logged as a warning at load)"),
    key("sni", &[S::UpstreamTls], K::String, D::Unset("the backend URL's host"), "the name sent by SNI and checked against the certificate"),
    key("client_cert", &[S::UpstreamTls], K::Path, D::Unset("none"), "PEM certificate chain presented to backends that ask (needs client_key)"),
    key("client_key", &[S::UpstreamTls], K::Path, D::Unset("none"), "PEM private key of client_cert"),
    // --- backends, health checks ---
    key("addr", &[S::Backend], K::String, D::Required, "http://, https:// or h2c:// URL of the backend"),
    key("weight", &[S::Backend], K::Int { min: 1, max: 100 }, D::Int(1), "share of traffic for weighted strategies"),
    key("max_connections", &[S::Backend], K::Int { min: 1, max: 1_000_000, }, D::Unset("no cap"), "concurrent requests at most; more wait up to connect_timeout, then 503"),
    key("type", &[S::HealthCheck], K::OneOf(&["http", "tcp"]), D::Text("http"), "an HTTP GET or a TCP connect"),
    key("path", &[S::HealthCheck], K::String, D::Text("/"), "the path an http check requests"),
    key("interval", &[S::HealthCheck], K::PositiveDuration, secs(5), "time between checks"),
    key("timeout", &[S::HealthCheck], K::PositiveDuration, secs(2), "a check slower than this failed (at most interval)"),
    key("fail_threshold", &[S::HealthCheck], K::Int { min: 1, max: 100 }, D::Int(3), "consecutive failures that take a backend out"),
    key("success_threshold", &[S::HealthCheck], K::Int { min: 1, max: 100 }, D::Int(2), "consecutive successes that bring it back"),
    // --- headers, answers, limits ---
    key("request", &[S::Headers], K::Map(S::HeaderEdits), D::Unset("none"), "edits to the upstream request"),
    key("response", &[S::Headers], K::Map(S::HeaderEdits), D::Unset("none"), "edits to the response"),
    key("set", &[S::HeaderEdits], K::TextMap, D::Unset("none"), "replace these headers"),
    key("add", &[S::HeaderEdits], K::TextMap, D::Unset("none"), "add these values"),
    key("remove", &[S::HeaderEdits], K::List(I::Text), D::Unset("none"), "remove these headers"),
    key("status", &[S::Respond], K::Int { min: 100, max: 599 }, D::Int(200), "the response status"),
    key("body", &[S::Respond], K::String, D::Text(""), "the response body, a template (as redirect's location)"),
    key("headers", &[S::Respond], K::TextMap, D::Unset("none"), "response headers; values are templates"),
    key("status", &[S::Redirect], K::OneOf(&["301", "302", "303", "307", "308"]), D::Int(302), "the redirect status"),
    key("location", &[S::Redirect], K::String, D::Required, "target, a template: $scheme $host $port $uri $path $query $remote_addr $request_id $1..$9"),
    key("requests", &[S::RateLimit], K::Int { min: 1, max: u32::MAX as u64, }, D::Required, "requests allowed per period"),
    key("per", &[S::RateLimit], K::PositiveDuration, D::Required, "the period"),
    key("key", &[S::RateLimit], K::String, D::Text("client_ip"), "client_ip, route, or header:NAME"),
    key("scope", &[S::RateLimit], K::OneOf(&["local", "cluster"]), D::Text("local"), "local: each node counts alone; cluster: all nodes count together in cluster.redis (docs/cluster.md)"),
    // --- resilience ---
    key("consecutive_failures", &[S::PassiveHealth], K::Int { min: 1, max: 1000 }, D::Int(5), "connect errors, resets before a response, 502/503/504 and timeouts in a row that eject a backend"),
    key("ejection_time", &[S::PassiveHealth], K::PositiveDuration, secs(30), "how long an ejection lasts; doubles with each consecutive ejection"),
    key("max_ejection_time", &[S::PassiveHealth], K::PositiveDuration, secs(300), "the longest an ejection lasts"),
    key("max_ejected_percent", &[S::PassiveHealth], K::Int { min: 0, max: 100 }, D::Int(50), "never eject more than this share of a pool"),
    key("header", &[S::HashKey], K::String, D::Unset("-"), "hash this request header"),
    key("cookie", &[S::HashKey], K::String, D::Unset("-"), "hash this cookie"),
    key("query", &[S::HashKey], K::String, D::Unset("-"), "hash this query parameter"),
    key("path", &[S::HashKey], K::Bool, D::Bool(false), "hash the path"),
    key("client_ip", &[S::HashKey], K::Bool, D::Bool(false), "hash the client address"),
    key("cookie", &[S::Sticky], K::String, D::Text("strait_srv"), "the cookie's name"),
    key("ttl", &[S::Sticky], K::PositiveDuration, D::Unset("a session cookie"), "the cookie's Max-Age"),
    key("secure", &[S::Sticky], K::Bool, D::Bool(false), "add Secure"),
    key("http_only", &[S::Sticky], K::Bool, D::Bool(true), "add HttpOnly"),
    key("same_site", &[S::Sticky], K::OneOf(&["lax", "strict", "none"]), D::Unset("no SameSite"), "add SameSite"),
    key("percent", &[S::RetryBudget], K::Int { min: 0, max: 1000 }, D::Int(20), "retries per second at most this share of requests per second"),
    key("min_per_second", &[S::RetryBudget], K::Int { min: 0, max: 1_000_000 }, D::Int(10), "retries per second always allowed"),
    // --- serve ---
    key("root", &[S::Serve], K::Path, D::Required, "an existing folder; the request's whole path is appended to it (as nginx's `root`)"),
    key("index", &[S::Serve], K::List(I::Text), D::Unset("[index.html]"), "file names tried in order for a directory (not empty)"),
    key("spa", &[S::Serve], K::Bool, D::Bool(false), "unknown paths get the root's index file with 200 (single-page apps)"),
    key("browse", &[S::Serve], K::Bool, D::Bool(false), "a directory without an index file gets an HTML listing (else 403)"),
    key("precompressed", &[S::Serve], K::List(I::Text), D::Unset("none"), "br, gzip, zstd: serve x.br / x.gz / x.zst to clients that accept it, preferred in this order"),
    key("cache_control", &[S::Serve], K::String, D::Unset("no Cache-Control"), "the Cache-Control of files, listings and 304s"),
    // --- tracing (docs/tracing.md) ---
    key("otlp_endpoint", &[S::Tracing], K::String, D::Unset("no export"), "an http:// URL of an OTLP/HTTP collector (JSON encoding), e.g. http://127.0.0.1:4318/v1/traces; without a path, /v1/traces"),
    key("sample_ratio", &[S::Tracing], K::Ratio, D::Number("1.0"), "the share of new traces sampled (0.0 to 1.0); a client's traceparent decides for its own trace"),
    key("service_name", &[S::Tracing], K::String, D::Text("strait"), "the service.name of exported spans"),
    // --- plugins (docs/plugins.md) ---
    key("url", &[S::Plugin], K::String, D::Unset("one of url and command is required"), "http://HOST:PORT[/PATH] of a running plugin service (the strait protocol's /v1/... paths go under PATH; forward_auth GETs the URL itself)"),
    key("command", &[S::Plugin], K::List(I::Text), D::Unset("one of url and command is required"), "a program and its arguments strait starts, restarts and stops; it listens on the Unix socket in STRAIT_PLUGIN_SOCKET (relative paths: from the config file's folder)"),
    key("autostart", &[S::Plugin], K::Bool, D::Bool(false), "command plugins: run even when no domain or route lists the plugin (background work)"),
    key("protocol", &[S::Plugin], K::OneOf(&["strait", "forward_auth"]), D::Text("strait"), "strait: the JSON protocol of docs/plugins.md; forward_auth: a GET with X-Forwarded-*, 2xx allows (as nginx auth_request, Traefik forwardAuth)"),
    key("timeout", &[S::Plugin], K::PositiveDuration, secs(1), "each call (connect, request and answer) at most this long, then on_error applies"),
    key("on_error", &[S::Plugin], K::OneOf(&["deny", "allow"]), D::Text("deny"), "when the plugin fails, times out or answers nonsense: deny (503, X-Strait-Error: plugin-unavailable) or allow (go on without it)"),
    key("copy_headers", &[S::Plugin], K::List(I::Text), D::Unset("none"), "forward_auth: headers of the 2xx answer set on the upstream request (the client's own values of them are removed)"),
    key("cache", &[S::Plugin], K::Map(S::PluginCache), D::Unset("every request asks the plugin"), "remember `continue` decisions per request header value"),
    key("key", &[S::PluginCache], K::String, D::Required, "header:NAME: the request header whose value a decision is remembered by (requests without it always ask)"),
    key("ttl", &[S::PluginCache], K::PositiveDuration, D::Required, "how long a decision is remembered"),
    key("max_entries", &[S::PluginCache], K::Int { min: 1, max: 1_000_000 }, D::Int(10_000), "decisions remembered at most (the oldest go first)"),
    // --- acme (docs/tls.md, "Automatic certificates") ---
    key("directory", &[S::Acme], K::String, D::Required, "the ACME server's directory URL (RFC 8555), https://"),
    key("email", &[S::Acme], K::String, D::Unset("no contact"), "the account's contact address (mailto:)"),
    key("storage", &[S::Acme], K::Path, D::Text("/var/lib/strait/acme"), "the account key, certificates and keys (files 0600); processes sharing it order once, under a lock file"),
    key("ca_roots", &[S::Acme], K::Path, D::Unset("the system CA bundle"), "PEM CA certificates the directory's HTTPS is verified against (a private ACME server)"),
    key("renew_before", &[S::Acme], K::PositiveDuration, D::Duration(Duration::from_secs(30 * 86_400)), "renew a certificate this long before it expires (`30d`)"),
    // --- cluster (docs/cluster.md): Redis rate limits ---
    key("redis", &[S::Cluster], K::Map(S::Redis), D::Unset("no cluster-wide counting"), "the Redis that `scope: cluster` rate limits count in"),
    key("nodes", &[S::Cluster], K::Int { min: 1, max: 10_000 }, D::Int(1), "how many nodes share the cluster's limits: while Redis is slow or down, each node allows a cluster limit divided by this (with `cluster.etcd`, the live nodes in its registry instead)"),
    key("url", &[S::Redis], K::String, D::Required, "redis://[USER:PASSWORD@]HOST:PORT[/DB] (plain TCP: rediss:// is refused)"),
    key("timeout", &[S::Redis], K::PositiveDuration, D::Duration(Duration::from_millis(20)), "a rate-limit decision waits for Redis at most this long, then the node's local share decides"),
    // --- discovery (docs/cluster.md): the domain's backends from DNS ---
    key("dns", &[S::Discovery], K::Map(S::DnsDiscovery), D::Unset("-"), "the backends are the A/AAAA addresses of a name, re-resolved"),
    key("name", &[S::DnsDiscovery], K::String, D::Required, "the DNS name whose A and AAAA records are the backends"),
    key("port", &[S::DnsDiscovery], K::Int { min: 1, max: 65535 }, D::Required, "the backends' port"),
    key("interval", &[S::DnsDiscovery], K::PositiveDuration, secs(10), "re-resolve this often, or sooner when the records' TTL is shorter (at least 1s apart)"),
    key("resolver", &[S::DnsDiscovery], K::Address, D::Unset("the system's nameservers (/etc/resolv.conf)"), "ip:port of the nameserver to ask over UDP (tests, split-horizon DNS)"),
    // --- cluster.etcd, discovery.etcd (docs/cluster.md) ---
    key("etcd", &[S::Cluster], K::Map(S::Etcd), D::Unset("no shared state: admin API changes stay on the node that got them"), "an etcd v3 cluster holding the runtime state every node applies (admin API changes, cache purges) and the node registry"),
    key("endpoints", &[S::Etcd], K::List(I::Text), D::Required, "etcd client URLs, http://HOST:PORT (https:// with `tls`); at least one"),
    key("prefix", &[S::Etcd], K::String, D::Text("/strait/"), "every key strait writes starts with this; nodes with the same prefix share their state"),
    key("username", &[S::Etcd], K::String, D::Unset("no authentication"), "etcd user (with `password`)"),
    key("password", &[S::Etcd], K::String, D::Unset("no authentication"), "that user's password; an environment variable reference keeps it out of the file"),
    key("node_name", &[S::Etcd], K::String, D::Unset("HOSTNAME-PORT: the host name and the first listener's port"), "this node's name in the registry (GET /cluster); unique per node"),
    key("tls", &[S::Etcd], K::Map(S::EtcdTls), D::Unset("plain http:// endpoints"), "TLS to etcd (https:// endpoints)"),
    key("ca", &[S::EtcdTls], K::Path, D::Unset("the system's CAs"), "PEM CA certificate(s) that etcd's certificate must chain to"),
    key("cert", &[S::EtcdTls], K::Path, D::Unset("no client certificate"), "PEM client certificate (with `key`)"),
    key("key", &[S::EtcdTls], K::Path, D::Unset("no client certificate"), "PEM private key of `cert`"),
    key("etcd", &[S::Discovery], K::Map(S::EtcdDiscovery), D::Unset("no etcd discovery"), "backends registered in etcd (`cluster.etcd` holds the connection): watched, applied within a second"),
    key("prefix", &[S::EtcdDiscovery], K::String, D::Required, "keys under it are backend addresses (http://HOST:PORT or HOST:PORT), values JSON {\"weight\": N, \"max_connections\": M} (both optional)"),
];

const fn key(
    name: &'static str,
    sections: &'static [Section],
    kind: Kind,
    default: DefaultValue,
    doc: &'static str,
) -> Key {
    Key {
        name,
        sections,
        kind,
        default,
        doc,
    }
}

/// The keys `section` may hold, in table order.
pub(crate) fn keys_of(section: Section) -> impl Iterator<Item = &'static Key> {
    KEYS.iter().filter(move |k| k.sections.contains(&section))
}

/// The key `name` of `section`.
pub(crate) fn find(section: Section, name: &str) -> Option<&'static Key> {
    keys_of(section).find(|k| k.name == name)
}

/// The bounds of an integer key (programming errors fall back to everything, and the unit
/// test below catches them).
pub(crate) fn int_bounds(section: Section, name: &str) -> (u64, u64) {
    match find(section, name).map(|k| k.kind) {
        Some(Kind::Int { min, max }) => (min, max),
        _ => {
            debug_assert!(false, "{section:?}.{name} is not an integer key");
            (0, u64::MAX)
        }
    }
}

/// The default of a duration key.
pub(crate) fn default_duration(section: Section, name: &str) -> Duration {
    match find(section, name).map(|k| k.default) {
        Some(DefaultValue::Duration(d)) => d,
        _ => {
            debug_assert!(false, "{section:?}.{name} has no duration default");
            Duration::ZERO
        }
    }
}

/// The default of an integer key.
pub(crate) fn default_int(section: Section, name: &str) -> u64 {
    match find(section, name).map(|k| k.default) {
        Some(DefaultValue::Int(n)) => n,
        _ => {
            debug_assert!(false, "{section:?}.{name} has no integer default");
            0
        }
    }
}

/// The default of a size key.
pub(crate) fn default_size(section: Section, name: &str) -> u64 {
    match find(section, name).map(|k| k.default) {
        Some(DefaultValue::Size(n)) => n,
        _ => {
            debug_assert!(false, "{section:?}.{name} has no size default");
            0
        }
    }
}

/// The default of a boolean key.
pub(crate) fn default_bool(section: Section, name: &str) -> bool {
    match find(section, name).map(|k| k.default) {
        Some(DefaultValue::Bool(b)) => b,
        _ => {
            debug_assert!(false, "{section:?}.{name} has no boolean default");
            false
        }
    }
}

/// The default of a text or path key.
pub(crate) fn default_text(section: Section, name: &str) -> &'static str {
    match find(section, name).map(|k| k.default) {
        Some(DefaultValue::Text(t)) => t,
        _ => {
            debug_assert!(false, "{section:?}.{name} has no text default");
            ""
        }
    }
}

fn kind_text(kind: Kind) -> String {
    match kind {
        Kind::Duration => "duration".into(),
        Kind::PositiveDuration => "duration > 0".into(),
        Kind::Size => "size".into(),
        Kind::Bool => "true / false".into(),
        Kind::Int { min, max } => format!("integer {min}–{max}"),
        Kind::String => "string".into(),
        Kind::OneOf(words) => words.join(" \\| "),
        Kind::Address => "host:port".into(),
        Kind::Path => "path".into(),
        Kind::List(_) => "list".into(),
        Kind::Map(_) | Kind::TextMap => "map".into(),
        Kind::MapOrBool(_) => "map or true / false".into(),
        Kind::Ratio => "number 0.0–1.0".into(),
        Kind::Named(_) => "map of name -> map".into(),
    }
}

fn default_text_of(default: DefaultValue) -> String {
    match default {
        DefaultValue::Required => "**required**".into(),
        DefaultValue::Unset(what) => format!("unset ({what})"),
        DefaultValue::Duration(d) => format!("`{}`", super::units::fmt_duration(d)),
        DefaultValue::Size(n) => format!("`{}`", super::units::fmt_size(n)),
        DefaultValue::Int(n) => format!("`{n}`"),
        DefaultValue::Bool(b) => format!("`{b}`"),
        DefaultValue::Text(t) => format!("`{t:?}`"),
        DefaultValue::Number(n) => format!("`{n}`"),
    }
}

/// `docs/config-reference.md`, generated from [`KEYS`].
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Config reference\n\n\
         Generated from the key table in `src/config/keys.rs` (a unit test keeps this file in \
         step with it: run `STRAIT_BLESS=1 cargo test --lib config::keys` after changing a key). \
         Durations are written `250ms`, `10s`, `5m`, `24h`, `30d` or `1h30m`; sizes `512`, `64KiB`, \
         `4MiB` (`KB`/`MB` are powers of 1000). Unknown keys are errors.\n",
    );
    for section in Section::ALL {
        out.push_str(&format!(
            "\n## `{}`\n\n| key | takes | default | what it does |\n|---|---|---|---|\n",
            section.path()
        ));
        for k in keys_of(section) {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                k.name,
                kind_text(k.kind),
                default_text_of(k.default),
                k.doc
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_has_keys_and_no_key_is_listed_twice() {
        for section in Section::ALL {
            let names: Vec<_> = keys_of(section).map(|k| k.name).collect();
            assert!(!names.is_empty(), "{section:?}");
            let mut sorted = names.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "{section:?}: {names:?}");
        }
    }

    #[test]
    fn defaults_fit_their_kind() {
        for k in KEYS {
            let ok = match (k.kind, k.default) {
                (_, DefaultValue::Required | DefaultValue::Unset(_)) => true,
                (Kind::Duration, DefaultValue::Duration(_)) => true,
                (Kind::PositiveDuration, DefaultValue::Duration(d)) => !d.is_zero(),
                (Kind::Size, DefaultValue::Size(_)) => true,
                (Kind::Int { min, max }, DefaultValue::Int(n)) => (min..=max).contains(&n),
                (Kind::Bool | Kind::MapOrBool(_), DefaultValue::Bool(_)) => true,
                (Kind::OneOf(words), DefaultValue::Text(t)) => words.contains(&t),
                (Kind::OneOf(words), DefaultValue::Int(n)) => {
                    words.contains(&n.to_string().as_str())
                }
                (Kind::String | Kind::Path, DefaultValue::Text(_)) => true,
                (Kind::Ratio, DefaultValue::Number(n)) => {
                    n.parse::<f64>().is_ok_and(|r| (0.0..=1.0).contains(&r))
                }
                _ => false,
            };
            assert!(ok, "{}: {:?} does not fit {:?}", k.name, k.default, k.kind);
        }
    }

    /// `docs/config-reference.md` is the table's rendering; `STRAIT_BLESS=1` rewrites it.
    #[test]
    fn the_reference_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/config-reference.md");
        let want = reference_markdown();
        if std::env::var_os("STRAIT_BLESS").is_some() {
            std::fs::write(path, &want).expect("write docs/config-reference.md");
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/config-reference.md is out of date: run STRAIT_BLESS=1 cargo test --lib config::keys"
        );
    }
}
