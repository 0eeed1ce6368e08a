//! Process-level sections: `server`, `listeners`, `admin`, `probe`, `logging`.

use crate::config::keys::{self, Section};
use std::net::SocketAddr;
use std::path::PathBuf;

use super::fields::{item_path, list, Errors, Fields};
use crate::config::model::{
    AccessLog, AccessLogFormat, Acme, Admin, CertPair, ClientAuth, ClientAuthMode, Listener,
    Logging, PoolConfig, Pos, Probe, Server, Tls, TlsVersion,
};
use crate::config::units;
use crate::config::yaml::Node;

const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
/// `LEVELS` as filters, index for index.
const LEVEL_FILTERS: [log::LevelFilter; 6] = [
    log::LevelFilter::Off,
    log::LevelFilter::Error,
    log::LevelFilter::Warn,
    log::LevelFilter::Info,
    log::LevelFilter::Debug,
    log::LevelFilter::Trace,
];

/// A level word from the key table's defaults.
fn level_at(word: &str) -> log::LevelFilter {
    LEVELS
        .iter()
        .position(|l| *l == word)
        .map_or(log::LevelFilter::Info, |i| LEVEL_FILTERS[i])
}
/// Below this, ordinary browser requests (cookies, user agents) would not fit.
const MIN_HEADER_BYTES: u64 = 1 << 10;
/// Pingora's own parser refuses request heads above about 1 MiB; this leaves room for the
/// body bytes that arrive with the head.
const MAX_HEADER_BYTES: u64 = 512 << 10;

pub(super) fn server(e: &mut Errors, node: Option<&Node>) -> Server {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let d = |name| keys::default_duration(Section::Server, name);
    let mut server = Server {
        threads: cpus.min(keys::int_bounds(Section::Server, "threads").1 as usize),
        pid_file: PathBuf::from(keys::default_text(Section::Server, "pid_file")),
        upgrade_sock: PathBuf::from(keys::default_text(Section::Server, "upgrade_sock")),
        grace_period: d("grace_period"),
        shutdown_timeout: d("shutdown_timeout"),
        drain_delay: d("drain_delay"),
        keepalive_timeout: d("keepalive_timeout"),
        user: None,
        group: None,
        trusted_proxies: Vec::new(),
        request_header_timeout: d("request_header_timeout"),
        max_header_bytes: keys::default_size(Section::Server, "max_header_bytes") as usize,
        max_buffered_bytes: keys::default_size(Section::Server, "max_buffered_bytes"),
        max_connections: keys::default_int(Section::Server, "max_connections") as u32,
        watch: keys::default_bool(Section::Server, "watch"),
    };
    let Some(f) = node.and_then(|n| Fields::new(e, n, "server", Section::Server)) else {
        return server;
    };
    if let Some(threads) = f.int(e, "threads") {
        server.threads = threads as usize;
    }
    if let Some(path) = f.file_path(e, "pid_file") {
        server.pid_file = path;
    }
    if let Some(path) = f.file_path(e, "upgrade_sock") {
        server.upgrade_sock = path;
    }
    let durations = [
        ("grace_period", &mut server.grace_period),
        ("shutdown_timeout", &mut server.shutdown_timeout),
        ("drain_delay", &mut server.drain_delay),
        ("keepalive_timeout", &mut server.keepalive_timeout),
    ];
    for (key, slot) in durations {
        if let Some(value) = f.duration(e, key) {
            *slot = value;
        }
    }
    if let Some(n) = f.get("trusted_proxies") {
        server.trusted_proxies = super::limits::cidr_list(e, n, &f.path("trusted_proxies"));
    }
    if let Some(t) = f.positive_duration(e, "request_header_timeout") {
        server.request_header_timeout = t;
    }
    if let (Some(n), Some(bytes)) = (f.get("max_header_bytes"), f.size(e, "max_header_bytes")) {
        if (MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&bytes) {
            server.max_header_bytes = bytes as usize;
        } else {
            e.push(
                n.pos,
                &f.path("max_header_bytes"),
                format!(
                    "max_header_bytes must be between 1KiB and 512KiB, found {}",
                    units::fmt_size(bytes)
                ),
            );
        }
    }
    if let Some(n) = f.size(e, "max_buffered_bytes") {
        server.max_buffered_bytes = n;
    }
    if let Some(n) = f.int(e, "max_connections") {
        server.max_connections = n as u32;
    }
    if let Some(watch) = f.boolean(e, "watch") {
        server.watch = watch;
    }
    server.user = f.string(e, "user").filter(|s| !s.is_empty());
    server.group = f.string(e, "group").filter(|s| !s.is_empty());
    server
}

/// `listeners` must be present and non-empty; the caller checks it is present.
/// `known_plugins`: the names a listener's `plugins` may use.
/// Also returns the pools of `tcp` listeners, by listener index: the caller adds them after
/// the domains' pools and sets each listener's `tcp.pool`.
pub(super) fn listeners(
    e: &mut Errors,
    node: &Node,
    known_plugins: &[String],
) -> (Vec<Listener>, Vec<(usize, PoolConfig)>) {
    let mut pools = Vec::new();
    let Some(items) = list(e, node, "listeners") else {
        return (Vec::new(), pools);
    };
    if items.is_empty() {
        e.push(node.pos, "listeners", "at least one listener is required");
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = item_path("listeners", i);
        let Some(f) = Fields::new(e, item, &path, Section::Listener) else {
            continue;
        };
        f.require(e, "addr");
        let name = f.string(e, "name").filter(|name| {
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            let at = f.get("name").map_or(item.pos, |n| n.pos);
            if !ok {
                e.push(
                    at,
                    &f.path("name"),
                    format!("a listener name is letters, digits, - and _, found {name:?}"),
                );
            } else if out
                .iter()
                .any(|l: &Listener| l.name.as_deref() == Some(name))
            {
                e.push(
                    at,
                    &f.path("name"),
                    format!("duplicate listener name {name:?}"),
                );
            }
            ok
        });
        let tls = f.get("tls").and_then(|n| tls(e, n, &f.path("tls")));
        let plugins = f
            .get("plugins")
            .map(|n| super::handling::plugin_names(e, n, &f.path("plugins"), known_plugins))
            .unwrap_or_default();
        let h2c = f.boolean(e, "http2").unwrap_or(false);
        if let (true, Some(_), Some(at)) = (h2c, &tls, f.get("http2")) {
            e.push(
                at.pos,
                &f.path("http2"),
                "on a TLS listener HTTP/2 is offered by ALPN: write `http2: true` under `tls`",
            );
        }
        let pool_name = name.clone().unwrap_or_else(|| path.clone());
        let tcp = f
            .get("tcp")
            .and_then(|n| super::l4::read(e, n, &f.path("tcp"), pool_name));
        if tcp.is_some() {
            super::l4::exclusive(
                e,
                &f,
                "tcp",
                super::l4::NOT_WITH_TCP,
                "a tcp listener relays bytes and serves no HTTP",
            );
        }
        if let Some((addr, pos)) = f.addr(e, "addr") {
            let tcp = tcp.map(|(pool, l4)| {
                pools.push((out.len(), pool));
                l4
            });
            out.push(Listener {
                name,
                addr,
                tls,
                plugins,
                h2c,
                tcp,
                pos,
            });
        }
    }
    (out, pools)
}

fn tls(e: &mut Errors, node: &Node, path: &str) -> Option<Tls> {
    let f = Fields::new(e, node, path, Section::Tls)?;
    let items = f.list(e, "certs");
    let mut certs = Vec::new();
    for (i, item) in items.unwrap_or_default().iter().enumerate() {
        let path = item_path(&f.path("certs"), i);
        let Some(c) = Fields::new(e, item, &path, Section::Cert) else {
            continue;
        };
        c.require(e, "cert");
        c.require(e, "key");
        if let (Some(cert), Some(key)) = (c.file_path(e, "cert"), c.file_path(e, "key")) {
            certs.push(CertPair {
                cert,
                key,
                pos: item.pos,
            });
        }
    }
    let cert_dir = f.file_path(e, "cert_dir");
    let acme = acme_hosts(e, &f);
    if !f.has("certs") && !f.has("cert_dir") && !f.has("acme") {
        e.push(node.pos, path, "tls needs `certs`, `cert_dir` or `acme`");
    } else if items.is_some_and(<[Node]>::is_empty) && !f.has("cert_dir") && !f.has("acme") {
        let at = f.get("certs").map_or(node.pos, |n| n.pos);
        e.push(
            at,
            &f.path("certs"),
            "at least one certificate is required when there is no `cert_dir`",
        );
    }
    let min_version = match f.one_of(e, "min_version", &["1.2", "1.3"]) {
        Some(1) => TlsVersion::V1_3,
        _ => TlsVersion::V1_2,
    };
    let client_auth = f
        .get("client_auth")
        .and_then(|n| client_auth(e, n, &f.path("client_auth")));
    Some(Tls {
        certs,
        cert_dir,
        cert_dir_pos: f.get("cert_dir").map_or(node.pos, |n| n.pos),
        http2: f.boolean(e, "http2").unwrap_or(false),
        min_version,
        client_auth,
        acme,
        pos: node.pos,
    })
}

/// `tls.acme`: exact host names (a certificate per name; ACME wildcards need DNS-01, which
/// strait does not answer).
fn acme_hosts(e: &mut Errors, f: &Fields) -> Vec<String> {
    let mut hosts = Vec::new();
    for (i, item) in f.list(e, "acme").unwrap_or_default().iter().enumerate() {
        let path = item_path(&f.path("acme"), i);
        let Some(host) = super::fields::string(e, item, &path) else {
            continue;
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let valid = !host.is_empty()
            && host.len() <= 253
            && host.contains('.')
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            && host.parse::<std::net::IpAddr>().is_err();
        if !valid {
            e.push(
                item.pos,
                &path,
                format!("expected a DNS name like example.com (no wildcards, no IP addresses), found {host:?}"),
            );
        } else if hosts.contains(&host) {
            e.push(item.pos, &path, format!("{host} is listed twice"));
        } else {
            hosts.push(host);
        }
    }
    hosts
}

/// `acme`: the account; `hosts` says whether any listener lists `tls.acme` names.
pub(super) fn acme(e: &mut Errors, node: &Node) -> Option<Acme> {
    let f = Fields::new(e, node, "acme", Section::Acme)?;
    f.require(e, "directory");
    let directory = f.string(e, "directory").filter(|url| {
        let ok = (url.starts_with("https://") || url.starts_with("http://"))
            && url.split("://").nth(1).is_some_and(|rest| {
                !rest.is_empty() && !rest.starts_with('/') && !rest.contains(char::is_whitespace)
            });
        if !ok {
            let at = f.get("directory").map_or(node.pos, |n| n.pos);
            e.push(
                at,
                &f.path("directory"),
                format!("expected an https:// URL of an ACME directory, found {url:?}"),
            );
        }
        ok
    });
    let email = f.string(e, "email").filter(|email| {
        let ok = email.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.contains(|c: char| c.is_whitespace() || c == ',' || c == ':')
                && domain.matches('@').count() == 0
        });
        if !ok {
            let at = f.get("email").map_or(node.pos, |n| n.pos);
            e.push(
                at,
                &f.path("email"),
                format!("expected an e-mail address like ops@example.com, found {email:?}"),
            );
        }
        ok
    });
    let storage = f
        .file_path(e, "storage")
        .unwrap_or_else(|| keys::default_text(Section::Acme, "storage").into());
    let ca_roots = f.file_path(e, "ca_roots");
    let renew_before = f
        .positive_duration(e, "renew_before")
        .unwrap_or_else(|| keys::default_duration(Section::Acme, "renew_before"));
    Some(Acme {
        directory: directory?,
        email,
        storage,
        ca_roots,
        renew_before,
        storage_pos: f.get("storage").map_or(node.pos, |n| n.pos),
        pos: node.pos,
    })
}

fn client_auth(e: &mut Errors, node: &Node, path: &str) -> Option<ClientAuth> {
    let f = Fields::new(e, node, path, Section::ClientAuth)?;
    f.require(e, "ca");
    let mode = match f.one_of(e, "mode", &["require", "optional"]) {
        Some(1) => ClientAuthMode::Optional,
        _ => ClientAuthMode::Require,
    };
    Some(ClientAuth {
        ca: f.file_path(e, "ca")?,
        mode,
        pos: f.get("ca").map_or(node.pos, |n| n.pos),
    })
}

pub(super) fn admin(e: &mut Errors, node: &Node) -> Option<Admin> {
    let f = Fields::new(e, node, "admin", Section::Admin)?;
    f.require(e, "addr");
    let token = f.string(e, "token").filter(|t| !t.is_empty());
    let (addr, pos) = f.addr(e, "addr")?;
    if token.is_none() && !addr.ip().is_loopback() {
        // Point at the empty token if there is one, else at the section that lacks it.
        let at = f.get("token").map_or(node.pos, |n| n.pos);
        e.push(
            at,
            "admin.token",
            "required when admin.addr is not a loopback address",
        );
    }
    Some(Admin { addr, token, pos })
}

pub(super) fn probe(e: &mut Errors, node: &Node) -> Option<Probe> {
    let f = Fields::new(e, node, "probe", Section::Probe)?;
    f.require(e, "addr");
    let (addr, pos) = f.addr(e, "addr")?;
    Some(Probe { addr, pos })
}

pub(super) fn logging(e: &mut Errors, node: Option<&Node>) -> Logging {
    let level_of = |name| level_at(keys::default_text(Section::Logging, name));
    let mut logging = Logging {
        level: level_of("level"),
        access_log: None,
        access_log_format: AccessLogFormat::Json,
        error_log: None,
        error_log_level: level_of("error_log_level"),
    };
    let Some(f) = node.and_then(|n| Fields::new(e, n, "logging", Section::Logging)) else {
        return logging;
    };
    if let Some(i) = f.one_of(e, "level", LEVELS) {
        logging.level = LEVEL_FILTERS[i];
    }
    if let Some(i) = f.one_of(e, "access_log_format", &["json", "combined"]) {
        logging.access_log_format = [AccessLogFormat::Json, AccessLogFormat::Combined][i];
    }
    if let Some(i) = f.one_of(e, "error_log_level", LEVELS) {
        logging.error_log_level = LEVEL_FILTERS[i];
    }
    logging.error_log = f.file_path(e, "error_log").filter(|path| {
        let stdout = path.as_os_str() == "-";
        if let (true, Some(n)) = (stdout, f.get("error_log")) {
            e.push(
                n.pos,
                &f.path("error_log"),
                "expected a file path; the console is already stderr (`-` is only for access_log)",
            );
        }
        !stdout
    });
    logging.access_log = f.file_path(e, "access_log").map(|path| {
        if path.as_os_str() == "-" {
            AccessLog::Stdout
        } else {
            AccessLog::File(path)
        }
    });
    logging
}

/// Every socket strait binds must be distinct; two binds of one port on overlapping IPs fail
/// at startup, so they are reported here with both places.
pub(super) fn check_addresses(e: &mut Errors, binds: &[(SocketAddr, Pos, String)]) {
    for (i, (addr, pos, path)) in binds.iter().enumerate() {
        let clash = binds[..i]
            .iter()
            .find(|(other, _, _)| overlaps(*addr, *other));
        if let Some((other, other_pos, other_path)) = clash {
            let message = if other == addr {
                format!(
                    "duplicate address {addr} (first at line {}, {other_path})",
                    other_pos.line
                )
            } else {
                format!(
                    "address {addr} overlaps {other} ({other_path}, line {})",
                    other_pos.line
                )
            };
            e.push(*pos, path, message);
        }
    }
}

fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
