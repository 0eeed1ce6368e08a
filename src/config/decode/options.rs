//! Upstream options (`connect_timeout` … `host_header`) shared by domains and routes.

use std::time::Duration;

use super::fields::{Errors, Fields};
use crate::config::keys::{self, Section};
use crate::config::model::{Pos, ProxyOptions, UpstreamTls};

/// The defaults, from the key table.
pub(super) fn defaults() -> ProxyOptions {
    let d = |name| keys::default_duration(Section::Domain, name);
    ProxyOptions {
        connect_timeout: d("connect_timeout"),
        read_timeout: d("read_timeout"),
        write_timeout: d("write_timeout"),
        max_retries: keys::default_int(Section::Domain, "max_retries") as u32,
        max_idle_conns: keys::default_int(Section::Domain, "max_idle_conns") as u32,
        idle_timeout: d("idle_timeout"),
        preserve_host: keys::default_bool(Section::Domain, "preserve_host"),
        host_header: None,
        websocket_idle_timeout: d("websocket_idle_timeout"),
        buffer_request_body: None,
        upstream_tls: None,
    }
}

/// Pingora 0.9.1 replays a request body on retry from a buffer of this size, which is where
/// a buffered body lives: a larger one would be cut.
pub(crate) const MAX_BUFFERED_BODY: u64 = 64 << 10;

/// The option fields one mapping wrote; unset ones inherit.
#[derive(Default)]
pub(super) struct Overrides {
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    max_retries: Option<u32>,
    max_idle_conns: Option<u32>,
    idle_timeout: Option<Duration>,
    preserve_host: Option<bool>,
    host_header: Option<String>,
    websocket_idle_timeout: Option<Duration>,
    buffer_request_body: Option<u64>,
    upstream_tls: Option<TlsOverrides>,
}

/// The `upstream_tls` keys one mapping wrote; unset ones inherit from the domain's.
struct TlsOverrides {
    ca: Option<std::path::PathBuf>,
    verify: Option<bool>,
    sni: Option<String>,
    /// `client_cert` and `client_key`, which are only written together.
    client: Option<(std::path::PathBuf, std::path::PathBuf)>,
    pos: Pos,
    path: String,
}

fn upstream_tls(e: &mut Errors, f: &Fields) -> Option<TlsOverrides> {
    let node = f.get("upstream_tls")?;
    let path = f.path("upstream_tls");
    let t = Fields::new(e, node, &path, Section::UpstreamTls)?;
    let sni = t.string(e, "sni").filter(|name| {
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !ok {
            let at = t.get("sni").map_or(node.pos, |n| n.pos);
            e.push(
                at,
                &t.path("sni"),
                format!("expected a host name like api.internal, found {name:?}"),
            );
        }
        ok
    });
    let cert = t.file_path(e, "client_cert");
    let key = t.file_path(e, "client_key");
    let client = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (Some(_), None) => {
            let at = t.get("client_cert").map_or(node.pos, |n| n.pos);
            e.push(
                at,
                &t.path("client_cert"),
                "client_cert needs client_key (its private key) in the same upstream_tls",
            );
            None
        }
        (None, Some(_)) => {
            let at = t.get("client_key").map_or(node.pos, |n| n.pos);
            e.push(
                at,
                &t.path("client_key"),
                "client_key needs client_cert (the certificate it belongs to) in the same upstream_tls",
            );
            None
        }
        (None, None) => None,
    };
    Some(TlsOverrides {
        ca: t.file_path(e, "ca"),
        verify: t.boolean(e, "verify"),
        sni,
        client,
        pos: node.pos,
        path,
    })
}

pub(super) fn read(e: &mut Errors, f: &Fields) -> Overrides {
    let host_header = f.string(e, "host_header").filter(|h| {
        let ok = !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            let at = f.get("host_header").map_or(f.node.pos, |n| n.pos);
            e.push(
                at,
                &f.path("host_header"),
                format!("expected a host name like backend.internal, found {h:?}"),
            );
        }
        ok
    });
    let preserve_host = f.boolean(e, "preserve_host");
    if preserve_host == Some(true) && host_header.is_some() {
        if let Some(node) = f.get("host_header") {
            e.push(
                node.pos,
                &f.path("host_header"),
                "host_header cannot be combined with preserve_host: true",
            );
        }
    }
    let buffer_request_body = f.size(e, "buffer_request_body").filter(|&n| {
        let ok = n <= MAX_BUFFERED_BODY;
        if !ok {
            let at = f.get("buffer_request_body").map_or(f.node.pos, |n| n.pos);
            e.push(
                at,
                &f.path("buffer_request_body"),
                format!(
                    "buffer_request_body must be at most 64KiB (the request body Pingora can replay), found {}",
                    crate::config::units::fmt_size(n)
                ),
            );
        }
        ok
    });
    Overrides {
        upstream_tls: upstream_tls(e, f),
        buffer_request_body,
        connect_timeout: f.positive_duration(e, "connect_timeout"),
        read_timeout: f.positive_duration(e, "read_timeout"),
        write_timeout: f.positive_duration(e, "write_timeout"),
        max_retries: f.int(e, "max_retries").map(|v| v as u32),
        max_idle_conns: f.int(e, "max_idle_conns").map(|v| v as u32),
        idle_timeout: f.duration(e, "idle_timeout"),
        preserve_host,
        host_header,
        websocket_idle_timeout: f.positive_duration(e, "websocket_idle_timeout"),
    }
}

impl Overrides {
    pub(super) fn apply(&self, base: &ProxyOptions) -> ProxyOptions {
        let mut out = base.clone();
        out.connect_timeout = self.connect_timeout.unwrap_or(out.connect_timeout);
        out.read_timeout = self.read_timeout.unwrap_or(out.read_timeout);
        out.write_timeout = self.write_timeout.unwrap_or(out.write_timeout);
        out.max_retries = self.max_retries.unwrap_or(out.max_retries);
        out.max_idle_conns = self.max_idle_conns.unwrap_or(out.max_idle_conns);
        out.idle_timeout = self.idle_timeout.unwrap_or(out.idle_timeout);
        out.websocket_idle_timeout = self
            .websocket_idle_timeout
            .unwrap_or(out.websocket_idle_timeout);
        out.buffer_request_body = self.buffer_request_body.or(out.buffer_request_body);
        // The two ways of choosing the upstream Host exclude each other, so setting one
        // here cancels the other inherited from the domain.
        if let Some(preserve) = self.preserve_host {
            out.preserve_host = preserve;
            if preserve {
                out.host_header = None;
            }
        }
        if let Some(host) = &self.host_header {
            out.host_header = Some(host.clone());
            out.preserve_host = false;
        }
        if let Some(own) = &self.upstream_tls {
            let mut tls = out.upstream_tls.take().unwrap_or_else(|| {
                Box::new(UpstreamTls {
                    ca: None,
                    verify: true,
                    sni: None,
                    client_cert: None,
                    client_key: None,
                    pos: own.pos,
                    path: own.path.clone(),
                })
            });
            tls.ca = own.ca.clone().or(tls.ca);
            tls.verify = own.verify.unwrap_or(tls.verify);
            tls.sni = own.sni.clone().or(tls.sni);
            if let Some((cert, key)) = &own.client {
                tls.client_cert = Some(cert.clone());
                tls.client_key = Some(key.clone());
            }
            tls.pos = own.pos;
            tls.path = own.path.clone();
            out.upstream_tls = Some(tls);
        }
        out
    }
}
