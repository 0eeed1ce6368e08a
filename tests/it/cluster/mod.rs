//! Several strait nodes sharing one etcd (docs/cluster.md): runtime changes made on one node
//! reach the others (state.rs), backends registered under a discovery prefix (discovery.rs),
//! etcd killed and started again (outage.rs). Every test starts its own etcd and nodes.

mod discovery;
mod outage;
mod state;

use std::time::Duration;

use serde_json::Value;

use crate::admin::{json, Ports};
use crate::support::etcd::Etcd;
use crate::support::{config, eventually_msg, Domain, Origin, Strait};

/// The health check of the tests' pools: quick, one good probe lets a backend in.
const CHECK: &str = "{ type: http, path: /health, interval: 200ms, timeout: 200ms, fail_threshold: 1, success_threshold: 1 }";

/// The tests' `shop.test`: round robin over `origin`, health-checked with [`CHECK`].
pub fn shop(origin: &Origin) -> Domain {
    Domain::new("shop.test")
        .strategy("round_robin")
        .origins(&[origin])
        .health_check(CHECK)
}

/// [`shop`] with backends also registered under etcd's `/services/shop/`.
pub fn discovered_shop(origin: &Origin) -> Domain {
    shop(origin).field("discovery", "{ etcd: { prefix: /services/shop/ } }")
}

/// A strait node of a test cluster and its admin and probe listeners.
pub struct Node {
    pub strait: Strait,
    pub ports: Ports,
    pub name: String,
}

impl Node {
    /// Starts node `name` on `etcd` with `domains`, and waits until it has read etcd.
    pub fn start(etcd: &Etcd, name: &str, domains: &[Domain]) -> Node {
        Node::start_with(etcd, name, "", domains)
    }

    /// Like [`Node::start`], with more top-level sections (`extra`, YAML lines).
    pub fn start_with(etcd: &Etcd, name: &str, extra: &str, domains: &[Domain]) -> Node {
        let node = Node::launch(etcd, name, extra, "", domains);
        eventually_msg(
            Duration::from_secs(10),
            "the node's first read of etcd",
            || node.cluster()["etcd"]["status"]["synced"] == true,
        );
        node
    }

    /// Starts a node without waiting for it to read etcd; `etcd_extra` are more keys of
    /// `cluster.etcd`, each line indented four spaces.
    pub fn start_unsynced(etcd: &Etcd, name: &str, etcd_extra: &str, domains: &[Domain]) -> Node {
        Node::launch(etcd, name, "", etcd_extra, domains)
    }

    fn launch(etcd: &Etcd, name: &str, extra: &str, etcd_extra: &str, domains: &[Domain]) -> Node {
        let ports = Ports::new();
        let yaml = config(&format!(
            "{}{extra}cluster:\n  etcd:\n    endpoints: [{}]\n    prefix: /it/\n    node_name: {name}\n{etcd_extra}{}",
            ports.yaml(true),
            etcd.url(),
            crate::support::domains(domains),
        ));
        let strait = Strait::start(&yaml);
        ports.wait_up();
        Node {
            strait,
            ports,
            name: name.to_string(),
        }
    }

    /// `GET /cluster`.
    pub fn cluster(&self) -> Value {
        let r = self.ports.call("GET", "/cluster", "");
        assert_eq!(r.status, 200, "{}", r.text());
        json(&r)
    }

    /// The `addr` of each backend `GET /backends?domain=D` lists.
    pub fn backends(&self, domain: &str) -> Vec<String> {
        self.backend_list(domain)
            .iter()
            .map(|b| b["addr"].as_str().unwrap_or("").to_string())
            .collect()
    }

    pub fn backend_list(&self, domain: &str) -> Vec<Value> {
        let r = self
            .ports
            .call("GET", &format!("/backends?domain={domain}"), "");
        assert_eq!(r.status, 200, "{}", r.text());
        json(&r).as_array().cloned().unwrap_or_default()
    }

    /// Which origin served one `GET /` for `host` (`<STATUS>` when none did).
    pub fn served(&self, host: &str) -> String {
        crate::support::served_by(&self.strait.get(host, "/"))
    }
}

/// `addr=URL`, percent-encoded for a query string.
pub fn addr_query(url: &str) -> String {
    url.replace(':', "%3A").replace('/', "%2F")
}
