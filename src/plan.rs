//! The reload plan: what replacing one config with another would change, before it is done.
//! `strait -t --plan -c NEW --against OLD` prints it; `POST /reload?dry_run=true` returns it
//! for the file a running instance would reload, against the config it runs.
//!
//! Things are matched by name, as a reload matches them: domains by their first host, routes
//! by `path_prefix`, pools by name, backends by URL. For every `ip_hash` pool in both configs
//! the plan gives the share of client addresses that would be served by another backend
//! afterwards (every backend healthy), computed exactly over the hash space from the two
//! rings (`balance::moved_share`).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::balance::{moved_share, Backend, ConsistentHash};
use crate::config::{
    Action, BackendConfig, Config, Domain, Handling, HostPattern, PoolConfig, Strategy,
};

/// What changes from `old` to `new`, as JSON (documented in docs/admin.md).
pub fn plan(old: &Config, new: &Config) -> Value {
    let (domains, changed_domains) = domains(old, new);
    let pools = pools(old, new);
    let hashed = hashed(old, new);
    let upgrade = needs_upgrade(old, new);
    let unchanged = !changed_domains && pools.1 == 0 && upgrade.is_empty();
    json!({
        "unchanged": unchanged,
        "domains": domains,
        "pools": pools.0,
        "ip_hash": hashed,
        "needs_upgrade": upgrade,
    })
}

/// `plan` as text for a terminal, one change a line.
pub fn plan_text(plan: &Value) -> String {
    let mut out = String::new();
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    for name in list(&plan["domains"]["added"]) {
        out.push_str(&format!("+ domain {name}\n"));
    }
    for name in list(&plan["domains"]["removed"]) {
        out.push_str(&format!("- domain {name}\n"));
    }
    // A changed aspect's old and new values, indented under its line.
    let values = |out: &mut String, v: &Value, aspect: &str| {
        if let Some(x) = v.as_array().into_iter().flatten().find(|x| {
            x["aspect"]
                .as_str()
                .is_some_and(|a| aspect == format!("{a} changed"))
        }) {
            out.push_str(&format!(
                "    old: {}\n    new: {}\n",
                x["old"].as_str().unwrap_or(""),
                x["new"].as_str().unwrap_or("")
            ));
        }
    };
    for d in plan["domains"]["changed"].as_array().into_iter().flatten() {
        let name = d["domain"].as_str().unwrap_or("");
        for c in list(&d["changes"]) {
            out.push_str(&format!("~ domain {name}: {c}\n"));
            values(&mut out, &d["values"], &c);
        }
        for r in list(&d["routes"]["added"]) {
            out.push_str(&format!("+ route {name} {r}\n"));
        }
        for r in list(&d["routes"]["removed"]) {
            out.push_str(&format!("- route {name} {r}\n"));
        }
        for r in d["routes"]["changed"].as_array().into_iter().flatten() {
            let prefix = r["path_prefix"].as_str().unwrap_or("");
            for c in list(&r["changes"]) {
                out.push_str(&format!("~ route {name} {prefix}: {c}\n"));
                values(&mut out, &r["values"], &c);
            }
        }
    }
    for name in list(&plan["pools"]["added"]) {
        out.push_str(&format!("+ pool {name}\n"));
    }
    for name in list(&plan["pools"]["removed"]) {
        out.push_str(&format!("- pool {name}\n"));
    }
    for p in plan["pools"]["changed"].as_array().into_iter().flatten() {
        let name = p["pool"].as_str().unwrap_or("");
        for c in list(&p["changes"]) {
            out.push_str(&format!("~ pool {name}: {c}\n"));
        }
        for b in list(&p["backends"]["added"]) {
            out.push_str(&format!("+ backend {name} {b}\n"));
        }
        for b in list(&p["backends"]["removed"]) {
            out.push_str(&format!("- backend {name} {b}\n"));
        }
        for b in p["backends"]["changed"].as_array().into_iter().flatten() {
            let addr = b["addr"].as_str().unwrap_or("");
            for c in list(&b["changes"]) {
                out.push_str(&format!("~ backend {name} {addr}: {c}\n"));
            }
        }
    }
    for h in plan["ip_hash"].as_array().into_iter().flatten() {
        let share = h["keys_moved"].as_f64().unwrap_or(0.0);
        out.push_str(&format!(
            "  ip_hash pool {}: {:.2} % of client addresses move to another backend\n",
            h["pool"].as_str().unwrap_or(""),
            share * 100.0
        ));
    }
    for u in list(&plan["needs_upgrade"]) {
        out.push_str(&format!("! needs a binary upgrade (strait -u): {u}\n"));
    }
    if plan["unchanged"] == true {
        out.push_str("no changes\n");
    }
    out
}

fn domain_name(d: &Domain) -> String {
    d.hosts.first().map(HostPattern::text).unwrap_or_default()
}

/// Domains added, removed and changed; whether anything changed.
fn domains(old: &Config, new: &Config) -> (Value, bool) {
    let before: BTreeMap<String, &Domain> =
        old.domains.iter().map(|d| (domain_name(d), d)).collect();
    let after: BTreeMap<String, &Domain> =
        new.domains.iter().map(|d| (domain_name(d), d)).collect();
    let added: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let removed: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let mut changed = Vec::new();
    for (name, a) in &before {
        let Some(b) = after.get(name) else { continue };
        let mut changes = Vec::new();
        let hosts = |d: &Domain| d.hosts.iter().map(HostPattern::text).collect::<Vec<_>>();
        if hosts(a) != hosts(b) {
            changes.push(format!("hosts {:?} -> {:?}", hosts(a), hosts(b)));
        }
        let own = handling_changes(old, &a.handling, new, &b.handling);
        changes.extend(own.iter().map(Aspect::line));
        let routes = |d: &'_ Domain| -> BTreeMap<String, Handling> {
            d.routes
                .iter()
                .map(|r| (r.name.clone(), r.handling.clone()))
                .collect()
        };
        let (ra, rb) = (routes(a), routes(b));
        let r_added: Vec<&String> = rb.keys().filter(|k| !ra.contains_key(*k)).collect();
        let r_removed: Vec<&String> = ra.keys().filter(|k| !rb.contains_key(*k)).collect();
        let r_changed: Vec<Value> = ra
            .iter()
            .filter_map(|(prefix, h)| {
                let c = handling_changes(old, h, new, rb.get(prefix)?);
                (!c.is_empty()).then(|| {
                    json!({
                        "path_prefix": prefix,
                        "changes": c.iter().map(Aspect::line).collect::<Vec<_>>(),
                        "values": c.iter().map(Aspect::json).collect::<Vec<_>>(),
                    })
                })
            })
            .collect();
        if !changes.is_empty()
            || !r_added.is_empty()
            || !r_removed.is_empty()
            || !r_changed.is_empty()
        {
            changed.push(json!({
                "domain": name,
                "changes": changes,
                "values": own.iter().map(Aspect::json).collect::<Vec<_>>(),
                "routes": { "added": r_added, "removed": r_removed, "changed": r_changed },
            }));
        }
    }
    let any = !added.is_empty() || !removed.is_empty() || !changed.is_empty();
    (
        json!({ "added": added, "removed": removed, "changed": changed }),
        any,
    )
}

/// One aspect of a handling that differs, with its value before and after (as the config
/// model prints it: a reviewer sees what the reload does, not only that something moved).
struct Aspect {
    name: &'static str,
    old: String,
    new: String,
}

impl Aspect {
    /// The `changes` line, kept as it was before values were added.
    fn line(&self) -> String {
        format!("{} changed", self.name)
    }

    fn json(&self) -> Value {
        json!({ "aspect": self.name, "old": self.old, "new": self.new })
    }
}

/// What differs between two handlings, one entry per aspect. Pools are compared by name
/// (their index may shift), everything else by value.
fn handling_changes(old: &Config, a: &Handling, new: &Config, b: &Handling) -> Vec<Aspect> {
    let action = |c: &Config, h: &Handling| match &h.action {
        Action::Proxy { pool, options } => format!(
            "proxy to pool {} with {options:?}",
            c.pools.get(*pool).map_or("?", |p| p.name.as_str())
        ),
        other => format!("{other:?}"),
    };
    let compress = |h: &Handling| match &h.compress {
        None => "off".to_string(),
        Some(z) => format!(
            "algorithms {:?}, min_bytes {}, types {:?}",
            z.algorithms.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            z.min_bytes,
            z.types.iter().map(|t| t.text.as_str()).collect::<Vec<_>>()
        ),
    };
    let mut out = Vec::new();
    let aspects = [
        ("action", action(old, a), action(new, b)),
        (
            "headers",
            format!("{:?}", a.headers),
            format!("{:?}", b.headers),
        ),
        (
            "rate_limit",
            format!("{:?}", a.rate_limit),
            format!("{:?}", b.rate_limit),
        ),
        ("cache", format!("{:?}", a.cache), format!("{:?}", b.cache)),
        ("compress", compress(a), compress(b)),
        ("deny", format!("{:?}", a.deny), format!("{:?}", b.deny)),
        (
            "max_body_bytes",
            format!("{:?}", a.max_body_bytes),
            format!("{:?}", b.max_body_bytes),
        ),
        ("plugins", a.plugins.join(", "), b.plugins.join(", ")),
    ];
    for (name, x, y) in aspects {
        if x != y {
            out.push(Aspect {
                name,
                old: x,
                new: y,
            });
        }
    }
    out
}

/// Pools added, removed and changed, and how many changed.
fn pools(old: &Config, new: &Config) -> (Value, usize) {
    let before: BTreeMap<&str, &PoolConfig> =
        old.pools.iter().map(|p| (p.name.as_str(), p)).collect();
    let after: BTreeMap<&str, &PoolConfig> =
        new.pools.iter().map(|p| (p.name.as_str(), p)).collect();
    let added: Vec<&&str> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let removed: Vec<&&str> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let mut changed = Vec::new();
    for (name, a) in &before {
        let Some(b) = after.get(name) else { continue };
        let mut changes = Vec::new();
        if a.policy.strategy != b.policy.strategy {
            changes.push(format!(
                "load_balancer {} -> {}",
                a.policy.strategy.name(),
                b.policy.strategy.name()
            ));
        }
        if a.policy.health_check != b.policy.health_check {
            changes.push("health_check changed".to_string());
        }
        if a.policy.passive_health != b.policy.passive_health {
            changes.push("passive_health changed".to_string());
        }
        if a.policy.hash_key != b.policy.hash_key {
            changes.push("hash_key changed".to_string());
        }
        if a.policy.sticky != b.policy.sticky {
            changes.push("sticky changed".to_string());
        }
        if a.policy.retry_budget != b.policy.retry_budget {
            changes.push("retry_budget changed".to_string());
        }
        let by_url = |p: &PoolConfig| -> BTreeMap<String, BackendConfig> {
            p.backends
                .iter()
                .map(|x| (x.url.clone(), x.clone()))
                .collect()
        };
        let (ba, bb) = (by_url(a), by_url(b));
        let b_added: Vec<&String> = bb.keys().filter(|k| !ba.contains_key(*k)).collect();
        let b_removed: Vec<&String> = ba.keys().filter(|k| !bb.contains_key(*k)).collect();
        let b_changed: Vec<Value> = ba
            .iter()
            .filter_map(|(url, x)| {
                let y = bb.get(url)?;
                let mut c = Vec::new();
                if x.weight != y.weight {
                    c.push(format!("weight {} -> {}", x.weight, y.weight));
                }
                if x.max_connections != y.max_connections {
                    c.push(format!(
                        "max_connections {:?} -> {:?}",
                        x.max_connections, y.max_connections
                    ));
                }
                (!c.is_empty()).then(|| json!({ "addr": url, "changes": c }))
            })
            .collect();
        if !changes.is_empty()
            || !b_added.is_empty()
            || !b_removed.is_empty()
            || !b_changed.is_empty()
        {
            changed.push(json!({
                "pool": name,
                "changes": changes,
                "backends": { "added": b_added, "removed": b_removed, "changed": b_changed },
            }));
        }
    }
    let count = added.len() + removed.len() + changed.len();
    (
        json!({ "added": added, "removed": removed, "changed": changed }),
        count,
    )
}

/// For each pool that hashes client addresses before and after: the share that moves.
fn hashed(old: &Config, new: &Config) -> Value {
    let ring = |p: &PoolConfig| {
        // The ring depends on each backend's URL parts and weight only, never on its
        // resolved address, so no name is resolved here.
        let backends: Vec<Arc<Backend>> = p
            .backends
            .iter()
            .map(|b| {
                let unresolved = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), b.port);
                Arc::new(Backend::new(b.clone(), unresolved, true))
            })
            .collect();
        let ids: Vec<String> = p.backends.iter().map(|b| b.url.clone()).collect();
        (ConsistentHash::new(&backends), ids)
    };
    let list: Vec<Value> = new
        .pools
        .iter()
        .filter(|p| on_a_ring(p.policy.strategy))
        .filter_map(|b| {
            let a = old
                .pools
                .iter()
                .find(|a| a.name == b.name && on_a_ring(a.policy.strategy))?;
            let (ra, ia) = ring(a);
            let (rb, ib) = ring(b);
            Some(json!({
                "pool": b.name,
                "backends_before": a.backends.len(),
                "backends_after": b.backends.len(),
                "keys_moved": moved_share(&ra, &ia, &rb, &ib),
            }))
        })
        .collect();
    Value::Array(list)
}

/// Changes a reload does not apply: Pingora owns the sockets, the runtimes and the process
/// settings from start-up on. Applied by a binary upgrade (`strait -u`).
pub(crate) fn needs_upgrade(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    // Certificates, min_version and client_auth apply on reload (crate::tls); whether a
    // listener speaks TLS at all does not.
    // What a listener speaks: its service and how it accepts are fixed at start.
    let listeners = |c: &Config| -> BTreeMap<SocketAddr, &'static str> {
        c.listeners
            .iter()
            .map(|l| {
                let kind = match (&l.tcp, &l.tls) {
                    (Some(_), _) => "tcp",
                    (None, Some(_)) => "TLS",
                    (None, None) => "plain HTTP",
                };
                (l.addr, kind)
            })
            .collect()
    };
    let (la, lb) = (listeners(old), listeners(new));
    for addr in lb.keys().filter(|k| !la.contains_key(*k)) {
        out.push(format!("listener {addr} added"));
    }
    for addr in la.keys().filter(|k| !lb.contains_key(*k)) {
        out.push(format!("listener {addr} removed"));
    }
    for (addr, kind) in &la {
        if let Some(now) = lb.get(addr).filter(|now| *now != kind) {
            out.push(format!("listener {addr}: now {now}"));
        }
    }
    let (s, t) = (&old.server, &new.server);
    let fixed = [
        (
            "threads",
            format!("{}", s.threads),
            format!("{}", t.threads),
        ),
        (
            "pid_file",
            s.pid_file.display().to_string(),
            t.pid_file.display().to_string(),
        ),
        (
            "upgrade_sock",
            s.upgrade_sock.display().to_string(),
            t.upgrade_sock.display().to_string(),
        ),
        ("user", format!("{:?}", s.user), format!("{:?}", t.user)),
        ("group", format!("{:?}", s.group), format!("{:?}", t.group)),
        (
            "grace_period",
            format!("{:?}", s.grace_period),
            format!("{:?}", t.grace_period),
        ),
        (
            "shutdown_timeout",
            format!("{:?}", s.shutdown_timeout),
            format!("{:?}", t.shutdown_timeout),
        ),
        (
            "drain_delay",
            format!("{:?}", s.drain_delay),
            format!("{:?}", t.drain_delay),
        ),
    ];
    for (key, x, y) in fixed {
        if x != y {
            out.push(format!("server.{key}: {x} -> {y}"));
        }
    }
    let admin = |c: &Config| c.admin.as_ref().map(|a| (a.addr, a.token.clone()));
    if admin(old) != admin(new) {
        out.push("admin (address or token)".to_string());
    }
    let probe = |c: &Config| c.probe.as_ref().map(|p| p.addr);
    if probe(old) != probe(new) {
        out.push("probe address".to_string());
    }
    if old.logging.access_log != new.logging.access_log {
        out.push("logging.access_log".to_string());
    }
    // The exporter is set up once; sample_ratio follows reloads.
    let export = |c: &Config| {
        (
            c.tracing.otlp_endpoint.clone(),
            c.tracing.service_name.clone(),
        )
    };
    if export(old) != export(new) {
        out.push("tracing (otlp_endpoint or service_name)".to_string());
    }
    out
}

/// Strategies that place keys on a ring (`moved_share` applies to them).
fn on_a_ring(strategy: Strategy) -> bool {
    matches!(strategy, Strategy::IpHash | Strategy::ConsistentHash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Config {
        crate::config::load_str(text, "t.yaml", &|_| None).expect("valid")
    }

    #[test]
    fn a_listener_turning_to_or_from_tcp_needs_an_upgrade() {
        let http = load("listeners: [{ addr: 127.0.0.1:5432 }]\ndomains: [{ hosts: [a.test], respond: { body: x } }]\n");
        let tcp = load("listeners: [{ addr: 127.0.0.1:5432, tcp: { backends: [10.0.0.5:5432] } }]\ndomains: [{ hosts: [a.test], respond: { body: x } }]\n");
        assert_eq!(
            needs_upgrade(&http, &tcp),
            ["listener 127.0.0.1:5432: now tcp"]
        );
        assert_eq!(
            needs_upgrade(&tcp, &http),
            ["listener 127.0.0.1:5432: now plain HTTP"]
        );
        assert!(needs_upgrade(&tcp, &tcp).is_empty());
    }

    #[test]
    fn changes_are_named_and_hashed_pools_measured() {
        let old = load(
            "listeners: [{ addr: 127.0.0.1:8080 }]
server: { threads: 2 }
domains:
  - hosts: [a.test]
    load_balancer: ip_hash
    backends: [http://10.0.0.1:80, http://10.0.0.2:80, http://10.0.0.3:80, http://10.0.0.4:80]
    routes:
      - { path_prefix: /x/, respond: { status: 200 } }
      - { path_prefix: /y/, respond: { status: 200 } }
  - hosts: [gone.test]
    backends: [http://10.0.0.9:80]
",
        );
        let new = load(
            "listeners: [{ addr: 127.0.0.1:8080 }, { addr: 127.0.0.1:8081 }]
server: { threads: 4 }
domains:
  - hosts: [a.test]
    load_balancer: ip_hash
    backends: [http://10.0.0.1:80, http://10.0.0.2:80, { addr: http://10.0.0.3:80, weight: 2 }]
    routes:
      - { path_prefix: /x/, respond: { status: 201 } }
      - { path_prefix: /z/, respond: { status: 200 } }
  - hosts: [new.test]
    backends: [http://10.0.0.9:80]
",
        );
        let p = plan(&old, &new);
        assert_eq!(p["domains"]["added"], json!(["new.test"]), "{p}");
        assert_eq!(p["domains"]["removed"], json!(["gone.test"]), "{p}");
        let a = &p["domains"]["changed"][0];
        assert_eq!(a["routes"]["added"], json!(["/z/"]), "{p}");
        assert_eq!(a["routes"]["removed"], json!(["/y/"]), "{p}");
        assert_eq!(a["routes"]["changed"][0]["path_prefix"], "/x/", "{p}");
        // The changed aspect with its old and new value.
        let v = &a["routes"]["changed"][0]["values"][0];
        assert_eq!(v["aspect"], "action", "{p}");
        let (was, now) = (v["old"].to_string(), v["new"].to_string());
        assert!(was.contains("200") && now.contains("201"), "{p}");
        let pool = &p["pools"]["changed"][0];
        assert_eq!(
            pool["backends"]["removed"],
            json!(["http://10.0.0.4:80"]),
            "{p}"
        );
        assert_eq!(
            pool["backends"]["changed"][0]["changes"],
            json!(["weight 1 -> 2"]),
            "{p}"
        );
        let moved = p["ip_hash"][0]["keys_moved"].as_f64().unwrap_or(-1.0);
        // 10.0.0.4's quarter goes elsewhere, and 10.0.0.3 takes a share from the other two.
        assert!((0.3..0.6).contains(&moved), "{p}");
        let upgrade = p["needs_upgrade"].to_string();
        assert!(upgrade.contains("listener 127.0.0.1:8081 added"), "{p}");
        assert!(upgrade.contains("server.threads: 2 -> 4"), "{p}");
        assert_eq!(p["unchanged"], false);
        let text = plan_text(&p);
        assert!(
            text.contains("~ route a.test /x/: action changed\n    old: ")
                && text.contains("+ domain new.test")
                && text.contains("- backend a.test http://10.0.0.4:80"),
            "{text}"
        );

        let same = plan(&old, &old);
        assert_eq!(same["unchanged"], true, "{same}");
        assert_eq!(same["ip_hash"][0]["keys_moved"], 0.0, "{same}");
    }
}
