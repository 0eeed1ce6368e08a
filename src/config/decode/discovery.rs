//! A domain's `discovery`: where its backends come from at run time (docs/cluster.md).

use super::fields::{Errors, Fields};
use crate::config::keys::{self, Section};
use crate::config::model::{Discovery, DnsDiscovery};
use crate::config::yaml::Node;

pub(super) fn discovery(e: &mut Errors, node: &Node, path: &str) -> Option<Discovery> {
    let f = Fields::new(e, node, path, Section::Discovery)?;
    let dns = f.require(e, "dns").and_then(|n| dns(e, n, &f.path("dns")));
    Some(Discovery { dns: Some(dns?) })
}

fn dns(e: &mut Errors, node: &Node, path: &str) -> Option<DnsDiscovery> {
    let f = Fields::new(e, node, path, Section::DnsDiscovery)?;
    f.require(e, "name");
    f.require(e, "port");
    let mut name = f.string(e, "name");
    if let (Some(n), Some(text)) = (f.get("name"), name.clone()) {
        let ok = !text.is_empty()
            && text.len() <= 253
            && text.trim_end_matches('.').split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !ok {
            e.push(
                n.pos,
                &f.path("name"),
                format!("expected a DNS name like api.service.internal, found {text:?}"),
            );
            name = None;
        }
    }
    let port = f.int(e, "port");
    let interval = f
        .positive_duration(e, "interval")
        .unwrap_or_else(|| keys::default_duration(Section::DnsDiscovery, "interval"));
    let resolver = f.addr(e, "resolver").map(|(a, _)| a);
    if f.has("resolver") && resolver.is_none() {
        return None;
    }
    Some(DnsDiscovery {
        name: name?,
        port: u16::try_from(port?).ok()?,
        interval,
        resolver,
    })
}
