//! Upstream options (`connect_timeout` … `host_header`) shared by domains and routes.

use std::time::Duration;

use super::fields::{Errors, Fields};
use crate::config::keys::{self, Section};
use crate::config::model::ProxyOptions;

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
        out
    }
}
