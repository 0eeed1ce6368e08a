//! A realistic config shared by the micro-benchmarks: 60 domains of an edge proxy fronting many
//! sites, each with an exact host and a wildcard, 3 to 10 backends (IP literals, so loading
//! never waits on DNS), a handful of routes, header rules, a health check; plus a catch-all.

#![allow(dead_code)]

use std::fmt::Write;

pub const DOMAINS: usize = 60;

const STRATEGIES: [&str; 5] = [
    "round_robin",
    "weighted_round_robin",
    "least_connections",
    "ip_hash",
    "random",
];

/// The YAML text of the config.
pub fn config_yaml() -> String {
    let mut y = String::from(
        "server:\n  threads: 2\nlisteners:\n  - addr: 127.0.0.1:18080\nlogging:\n  level: warn\ndomains:\n",
    );
    for d in 0..DOMAINS {
        let backends = 3 + d % 8;
        writeln!(
            y,
            "  - hosts: [site{d}.example.com, \"*.site{d}.example.com\"]\n    load_balancer: {}",
            STRATEGIES[d % STRATEGIES.len()]
        )
        .unwrap();
        y.push_str("    backends:\n");
        for b in 0..backends {
            writeln!(
                y,
                "      - {{ addr: \"http://10.{}.{}.{}:8080\", weight: {} }}",
                d / 200,
                d % 200,
                b + 1,
                1 + b % 3
            )
            .unwrap();
        }
        y.push_str(
            "    connect_timeout: 2s\n    read_timeout: 30s\n    max_retries: 1\n    \
             health_check: { type: http, path: /healthz, interval: 5s, timeout: 1s }\n    \
             headers:\n      request: { set: { X-Site: edge }, remove: [X-Debug] }\n      \
             response: { set: { X-Proxy: strait } }\n    routes:\n      \
             - { path_prefix: /api/, read_timeout: 10s }\n      \
             - { path_prefix: /api/v2/, host_header: api.internal }\n      \
             - { path_prefix: /static/, max_retries: 2 }\n      \
             - { path_prefix: /assets/img/, max_retries: 2 }\n      \
             - { path_prefix: /ping, respond: { status: 200, body: \"pong\\n\" } }\n",
        );
    }
    y.push_str("  - hosts: [\"*\"]\n    respond: { status: 404, body: \"no such site\\n\" }\n");
    y
}

pub fn config() -> strait::config::Config {
    strait::config::load_str(&config_yaml(), "bench.yaml", &|_| None)
        .unwrap_or_else(|e| panic!("bench config does not load: {e:?}"))
}

pub fn snapshot() -> strait::bench::Snapshot {
    block_on(strait::bench::Snapshot::build(config(), None))
        .unwrap_or_else(|e| panic!("bench snapshot does not build: {e:?}"))
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

/// Requests as an edge proxy sees them: mostly exact hosts, some subdomains (wildcards), a few
/// with a port or capitals, some unknown hosts (the catch-all).
pub fn requests() -> Vec<(String, String)> {
    let paths = [
        "/",
        "/index.html",
        "/api/users/42",
        "/api/v2/orders?id=7",
        "/static/app.3f9a.js",
        "/assets/img/logo.png",
        "/ping",
        "/blog/2024/05/a-long-article-title",
    ];
    let mut out = Vec::new();
    for i in 0..64usize {
        let d = (i * 7) % DOMAINS;
        let host = match i % 8 {
            0..=3 => format!("site{d}.example.com"),
            4 => format!("www.site{d}.example.com"),
            5 => format!("site{d}.example.com:8080"),
            6 => format!("Site{d}.Example.com"),
            _ => format!("unknown{i}.example.org"),
        };
        out.push((host, paths[i % paths.len()].to_string()));
    }
    out
}
