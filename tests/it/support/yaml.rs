//! Builds the `domains:` part of a test config, so each test says which fields its domain
//! has instead of formatting YAML by hand:
//!
//! ```text
//! Domain::new("lb.test")
//!     .strategy("round_robin")
//!     .origins(&[&a, &b])
//!     .health_check("{ type: tcp, interval: 200ms }")
//!     .config()
//! ```
//!
//! renders (after the `listeners:` section from [`super::config`])
//!
//! ```text
//! domains:
//!   - hosts: [lb.test]
//!     load_balancer: round_robin
//!     backends: [{ addr: http://127.0.0.1:P }, { addr: http://127.0.0.1:Q }]
//!     health_check: { type: tcp, interval: 200ms }
//! ```
//!
//! Fields come out in the order they were set, then the routes. Values are written as
//! given: a scalar or a YAML flow collection (`{ ... }`, `[ ... ]`).

use super::origin::Origin;

/// One entry of `domains:`.
#[derive(Debug, Clone)]
pub struct Domain {
    hosts: String,
    fields: Vec<(String, String)>,
    routes: Vec<String>,
}

impl Domain {
    /// A domain for `host`, written as is: quote a wildcard (`"\"*.w.test\""`).
    pub fn new(host: &str) -> Domain {
        Domain {
            hosts: host.to_string(),
            fields: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// `key: value` (value as YAML: a scalar or a flow collection).
    pub fn field(mut self, key: &str, value: impl Into<String>) -> Domain {
        self.fields.push((key.to_string(), value.into()));
        self
    }

    /// `backends: LIST`, a flow sequence such as [`super::backends`] or
    /// [`super::weighted_backends`] make.
    pub fn backends(self, list: impl Into<String>) -> Domain {
        self.field("backends", list)
    }

    /// `backends: [{ addr: http://127.0.0.1:P }, ...]` for these origins.
    pub fn origins(self, origins: &[&Origin]) -> Domain {
        self.backends(super::backends(origins))
    }

    /// `load_balancer: STRATEGY`
    pub fn strategy(self, strategy: &str) -> Domain {
        self.field("load_balancer", strategy)
    }

    /// `health_check: { ... }`
    pub fn health_check(self, flow: &str) -> Domain {
        self.field("health_check", flow)
    }

    /// `cache: true`
    pub fn cache(self) -> Domain {
        self.field("cache", "true")
    }

    /// One item of `routes:`, a flow mapping such as
    /// `{ path_prefix: /ping, respond: { status: 200, body: pong } }`.
    pub fn route(mut self, flow: &str) -> Domain {
        self.routes.push(flow.to_string());
        self
    }

    /// This domain as an item of `domains:` (indented by two, ends with a newline).
    pub fn render(&self) -> String {
        let mut out = format!("  - hosts: [{}]\n", self.hosts);
        for (key, value) in &self.fields {
            out.push_str(&format!("    {key}: {value}\n"));
        }
        if !self.routes.is_empty() {
            out.push_str("    routes:\n");
            for route in &self.routes {
                out.push_str(&format!("      - {route}\n"));
            }
        }
        out
    }

    /// A whole config with this domain alone: `super::config(&domains(&[self]))`.
    pub fn config(self) -> String {
        super::config(&domains(&[self]))
    }
}

/// The `domains:` section with these entries.
pub fn domains(list: &[Domain]) -> String {
    let mut out = String::from("domains:\n");
    for d in list {
        out.push_str(&d.render());
    }
    out
}
