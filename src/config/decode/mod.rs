//! From the YAML tree to the [`Config`] model.
//!
//! Split by section; every function reports into one [`Errors`] and substitutes a placeholder
//! for whatever it could not read, so one pass finds every problem in the file.

mod answer;
mod backend;
mod cache;
mod cluster;
mod compress;
mod discovery;
mod domain;
mod fields;
mod handling;
mod headers;
mod l4;
mod limits;
mod matchers;
mod options;
mod plugins;
mod pool;
mod route;
mod serve;
mod server;
mod tracing;

use crate::config::keys::Section;
pub use backend::parse_url;
use fields::{Errors, Fields};
pub(crate) use l4::parse_addr as parse_l4_addr;
#[cfg(test)]
pub(crate) use limits::parse_cidr;

use crate::config::model::Config;
use crate::config::yaml::Node;
use crate::config::ConfigError;

/// Decodes the main file's tree; `included` are the files its `include` named (name, tree).
pub(super) fn decode(
    root: &Node,
    source: &str,
    included: &[(String, Node)],
) -> Result<Config, Vec<ConfigError>> {
    let mut e = Errors::new(source);
    let Some(f) = Fields::new(&mut e, root, "", Section::Top) else {
        return Err(e.into_vec());
    };
    let server = server::server(&mut e, f.get("server"));
    let (plugins, plugin_names) = plugins::plugins(&mut e, f.get("plugins"));
    let (mut listeners, tcp_pools) = f
        .require(&mut e, "listeners")
        .map(|n| server::listeners(&mut e, n, &plugin_names))
        .unwrap_or_default();
    let admin = f.get("admin").and_then(|n| server::admin(&mut e, n));
    let probe = f.get("probe").and_then(|n| server::probe(&mut e, n));
    let acme = f.get("acme").and_then(|n| server::acme(&mut e, n));
    // ACME hosts need the account that obtains their certificates.
    if f.get("acme").is_none() {
        for (i, l) in listeners.iter().enumerate() {
            if let Some(tls) = l.tls.as_ref().filter(|t| !t.acme.is_empty()) {
                e.push(
                    tls.pos,
                    &format!("listeners[{i}].tls.acme"),
                    "ACME hosts need the top-level `acme` section (directory, email, storage)",
                );
            }
        }
    }
    let logging = server::logging(&mut e, f.get("logging"));
    let tracing = tracing::tracing(&mut e, f.get("tracing"));
    let cluster = cluster::cluster(&mut e, f.get("cluster"));
    let global_cache = f
        .get("cache")
        .map(|n| cache::settings(&mut e, n, "cache", &cache::defaults()));
    let mut parts: Vec<(Option<&str>, &Node)> = Vec::new();
    if f.get("include").is_none() {
        parts.extend(f.require(&mut e, "domains").map(|n| (None, n)));
    } else {
        parts.extend(f.get("domains").map(|n| (None, n)));
    }
    for (file, tree) in included {
        let main = e.set_file(file);
        if let Some(inc) = Fields::new(&mut e, tree, "", Section::Included) {
            if let Some(n) = inc.require(&mut e, "domains") {
                parts.push((Some(file.as_str()), n));
            }
        }
        e.set_file(&main);
    }
    let (mut pools, domains) = domain::domains(
        &mut e,
        &parts,
        global_cache.as_ref(),
        &listeners,
        &plugin_names,
        cluster.etcd.is_some(),
    );
    // `tcp` listeners' pools come after the domains' (indices of domains' pools stay).
    for (listener, pool) in tcp_pools {
        if let Some(tcp) = listeners.get_mut(listener).and_then(|l| l.tcp.as_mut()) {
            tcp.pool = pools.len();
            pools.push(pool);
        }
    }
    if domains.is_empty() && f.get("include").is_some() && e.is_empty() {
        let at = f.get("include").map_or(root.pos, |n| n.pos);
        e.push(
            at,
            "include",
            "no domains: neither this file nor the included files define one",
        );
    }

    let mut binds: Vec<_> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (l.addr, l.pos, format!("listeners[{i}].addr")))
        .collect();
    binds.extend(
        admin
            .iter()
            .map(|a| (a.addr, a.pos, "admin.addr".to_string())),
    );
    binds.extend(
        probe
            .iter()
            .map(|p| (p.addr, p.pos, "probe.addr".to_string())),
    );
    server::check_addresses(&mut e, &binds);
    if cluster.redis.is_none() {
        for (file, pos, path) in e.take_cluster_limits() {
            let main = e.set_file(&file);
            e.push(
                pos,
                &path,
                "scope: cluster needs cluster.redis (where the nodes count together)",
            );
            e.set_file(&main);
        }
    }

    if !e.is_empty() {
        return Err(e.into_vec());
    }
    Ok(Config {
        source: source.to_string(),
        server,
        listeners,
        admin,
        probe,
        logging,
        tracing,
        cache: global_cache,
        include: Vec::new(),
        pools,
        domains,
        plugins,
        acme,
        cluster,
    })
}
