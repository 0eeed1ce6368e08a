//! `strait config show -c FILE`: the config as strait runs it, after `${VAR}` expansion,
//! defaults and inheritance (each route with everything it took from its domain), as YAML
//! that loads back to the same thing. The admin token and the etcd password are not printed.

use std::fmt::Write;
use std::time::Duration;

use super::model::*;
use super::pattern::template;
use super::units;

/// The effective config as YAML.
pub fn show_yaml(c: &Config) -> String {
    let mut o = String::new();
    let s = &c.server;
    let _ = writeln!(o, "# strait: the effective config of {}", c.source);
    o.push_str("server:\n");
    let _ = writeln!(o, "  threads: {}", s.threads);
    let _ = writeln!(o, "  pid_file: {}", q(&s.pid_file.display().to_string()));
    let _ = writeln!(
        o,
        "  upgrade_sock: {}",
        q(&s.upgrade_sock.display().to_string())
    );
    for (k, d) in [
        ("grace_period", s.grace_period),
        ("shutdown_timeout", s.shutdown_timeout),
        ("drain_delay", s.drain_delay),
        ("keepalive_timeout", s.keepalive_timeout),
        ("request_header_timeout", s.request_header_timeout),
    ] {
        let _ = writeln!(o, "  {k}: {}", dur(d));
    }
    let _ = writeln!(
        o,
        "  max_header_bytes: {}",
        units::fmt_size(s.max_header_bytes as u64)
    );
    let _ = writeln!(
        o,
        "  max_buffered_bytes: {}",
        units::fmt_size(s.max_buffered_bytes)
    );
    let _ = writeln!(o, "  max_connections: {}", s.max_connections);
    opt(&mut o, 2, "user", s.user.as_deref().map(q));
    opt(&mut o, 2, "group", s.group.as_deref().map(q));
    let _ = writeln!(o, "  trusted_proxies: {}", list(&s.trusted_proxies));

    o.push_str("listeners:\n");
    for l in &c.listeners {
        let _ = writeln!(o, "  - addr: {}", l.addr);
        opt(&mut o, 4, "name", l.name.as_deref().map(q));
        if let Some(tls) = &l.tls {
            o.push_str("    tls:\n      certs:\n");
            for pair in &tls.certs {
                let _ = writeln!(
                    o,
                    "        - {{ cert: {}, key: {} }}",
                    q(&pair.cert.display().to_string()),
                    q(&pair.key.display().to_string())
                );
            }
            if tls.certs.is_empty() {
                o.push_str("        []\n");
            }
            opt(
                &mut o,
                6,
                "cert_dir",
                tls.cert_dir.as_ref().map(|p| q(&p.display().to_string())),
            );
            let _ = writeln!(o, "      http2: {}", tls.http2);
            let _ = writeln!(o, "      min_version: \"{}\"", tls.min_version.as_str());
            if !tls.acme.is_empty() {
                let hosts: Vec<String> = tls.acme.iter().map(|h| q(h)).collect();
                let _ = writeln!(o, "      acme: [{}]", hosts.join(", "));
            }
            if let Some(ca) = &tls.client_auth {
                let _ = writeln!(
                    o,
                    "      client_auth: {{ ca: {}, mode: {} }}",
                    q(&ca.ca.display().to_string()),
                    ca.mode.as_str()
                );
            }
        }
        if let Some(tcp) = &l.tcp {
            relay(&mut o, 4, "tcp", c, tcp);
        }
    }
    if let Some(a) = &c.admin {
        let token = if a.token.is_some() {
            ", token: \"<set, not shown>\""
        } else {
            ""
        };
        let _ = writeln!(o, "admin: {{ addr: {}{token} }}", a.addr);
    }
    if let Some(p) = &c.probe {
        let _ = writeln!(o, "probe: {{ addr: {} }}", p.addr);
    }
    if let Some(a) = &c.acme {
        o.push_str("acme:\n");
        let _ = writeln!(o, "  directory: {}", q(&a.directory));
        opt(&mut o, 2, "email", a.email.as_deref().map(q));
        let _ = writeln!(o, "  storage: {}", q(&a.storage.display().to_string()));
        opt(
            &mut o,
            2,
            "ca_roots",
            a.ca_roots.as_ref().map(|p| q(&p.display().to_string())),
        );
        let _ = writeln!(o, "  renew_before: {}", units::fmt_duration(a.renew_before));
    }
    let l = &c.logging;
    o.push_str("logging:\n");
    let _ = writeln!(o, "  level: {}", level(l.level));
    match &l.access_log {
        Some(AccessLog::Stdout) => o.push_str("  access_log: \"-\"\n"),
        Some(AccessLog::File(p)) => {
            let _ = writeln!(o, "  access_log: {}", q(&p.display().to_string()));
        }
        None => {}
    }
    opt(
        &mut o,
        2,
        "error_log",
        l.error_log.as_ref().map(|p| q(&p.display().to_string())),
    );
    let _ = writeln!(o, "  error_log_level: {}", level(l.error_log_level));
    let t = &c.tracing;
    o.push_str("tracing:\n");
    opt(
        &mut o,
        2,
        "otlp_endpoint",
        t.otlp_endpoint.as_ref().map(|e| q(&e.url)),
    );
    let _ = writeln!(o, "  sample_ratio: {:?}", t.sample_ratio);
    let _ = writeln!(o, "  service_name: {}", q(&t.service_name));
    if let Some(cache) = &c.cache {
        o.push_str("cache:\n");
        cache_settings(&mut o, 2, cache);
    }
    plugins(&mut o, &c.plugins);
    cluster(&mut o, &c.cluster);
    o.push_str("domains:\n");
    for d in &c.domains {
        let hosts: Vec<String> = d.hosts.iter().map(host).collect();
        let _ = writeln!(o, "  - hosts: [{}]", hosts.join(", "));
        if let Some(scope) = &d.listeners {
            let names: Vec<String> = scope
                .iter()
                .filter_map(|&i| c.listeners.get(i)?.name.as_deref().map(q))
                .collect();
            let _ = writeln!(o, "    listeners: [{}]", names.join(", "));
        }
        if let Some(dns) = d.discovery.as_ref().and_then(|x| x.dns.as_ref()) {
            let resolver = dns
                .resolver
                .map(|r| format!(", resolver: {}", q(&r.to_string())))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "    discovery: {{ dns: {{ name: {}, port: {}, interval: {}{resolver} }} }}",
                q(&dns.name),
                dns.port,
                dur(dns.interval)
            );
        }
        if let Some(prefix) = d.discovery.as_ref().and_then(|x| x.etcd.as_deref()) {
            let _ = writeln!(o, "    discovery: {{ etcd: {{ prefix: {} }} }}", q(prefix));
        }
        if let Some(pass) = &d.pass {
            relay(&mut o, 4, "pass", c, pass);
        } else {
            handling(&mut o, 4, c, &d.handling, &[]);
        }
        if !d.routes.is_empty() {
            o.push_str("    routes:\n");
            for r in &d.routes {
                route(&mut o, c, r);
            }
        }
    }
    o
}

/// `cluster.etcd`, the password left out (the output is for reading, not a secret's copy).
fn etcd(o: &mut String, e: &crate::config::Etcd) {
    o.push_str("  etcd:\n");
    let endpoints: Vec<String> = e.endpoints.iter().map(|u| q(u)).collect();
    let _ = writeln!(o, "    endpoints: [{}]", endpoints.join(", "));
    let _ = writeln!(o, "    prefix: {}", q(&e.prefix));
    if let Some((user, _)) = &e.user {
        let _ = writeln!(o, "    username: {}", q(user));
        o.push_str("    password: \"<set, not shown>\"\n");
    }
    opt(o, 4, "node_name", e.node_name.as_deref().map(q));
    if let Some(t) = &e.tls {
        if t.ca.is_none() && t.identity.is_none() {
            o.push_str("    tls: {}\n");
            return;
        }
        o.push_str("    tls:\n");
        opt(
            o,
            6,
            "ca",
            t.ca.as_ref().map(|p| q(&p.display().to_string())),
        );
        if let Some((cert, key)) = &t.identity {
            let _ = writeln!(o, "      cert: {}", q(&cert.display().to_string()));
            let _ = writeln!(o, "      key: {}", q(&key.display().to_string()));
        }
    }
}

/// A route's own keys (path, matchers, listeners, rewrite), then its handling.
fn route(o: &mut String, c: &Config, r: &Route) {
    let _ = writeln!(o, "      - {}: {}", r.path.key(), q(r.path.text()));
    let pad = " ".repeat(8);
    if !r.matchers.methods.is_empty() {
        let _ = writeln!(o, "{pad}methods: [{}]", r.matchers.methods.join(", "));
    }
    if !r.matchers.query.is_empty() {
        let _ = writeln!(o, "{pad}query: {{ {} }}", value_matches(&r.matchers.query));
    }
    if let Some(scope) = &r.listeners {
        let names: Vec<String> = scope
            .iter()
            .filter_map(|&i| c.listeners.get(i)?.name.as_deref().map(q))
            .collect();
        let _ = writeln!(o, "{pad}listeners: [{}]", names.join(", "));
    }
    match &r.rewrite {
        Some(Rewrite::StripPrefix(_)) => {
            let _ = writeln!(o, "{pad}strip_prefix: true");
        }
        Some(Rewrite::Path(t)) => {
            let _ = writeln!(o, "{pad}rewrite: {}", q(&template::text(t)));
        }
        None => {}
    }
    handling(o, 8, c, &r.handling, &r.matchers.headers);
}

fn value_matches(m: &[(String, ValueMatch)]) -> String {
    m.iter()
        .map(|(name, want)| match want {
            ValueMatch::Present => format!("{}: {{ present: true }}", q(name)),
            ValueMatch::Equals(v) => format!("{}: {}", q(name), q(v)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn handling(
    o: &mut String,
    n: usize,
    c: &Config,
    h: &Handling,
    header_matchers: &[(String, ValueMatch)],
) {
    let pad = " ".repeat(n);
    match &h.action {
        Action::Proxy { pool, options } => {
            if let Some(p) = c.pools.get(*pool) {
                let _ = writeln!(o, "{pad}load_balancer: {}", p.policy.strategy.name());
                // A discovered pool is filled at run time: its domain shows `discovery`.
                let discovered = c.domains.iter().any(|d| {
                    d.discovery.is_some()
                        && matches!(d.handling.action, Action::Proxy { pool: dp, .. } if dp == *pool)
                });
                if !discovered {
                    let _ = writeln!(o, "{pad}backends:");
                }
                for b in p.backends.iter().filter(|_| !discovered) {
                    backend(o, &pad, b);
                }
                pool_policy(o, n, &p.policy);
                if let Some(hc) = &p.policy.health_check {
                    let kind = match &hc.kind {
                        HealthKind::Http { path } => {
                            format!("type: http, path: {}", q(path.as_str()))
                        }
                        HealthKind::Tcp => "type: tcp".to_string(),
                    };
                    let _ = writeln!(
                        o,
                        "{pad}health_check: {{ {kind}, interval: {}, timeout: {}, fail_threshold: {}, success_threshold: {} }}",
                        dur(hc.interval),
                        dur(hc.timeout),
                        hc.fail_threshold,
                        hc.success_threshold
                    );
                }
            }
            for (k, d) in [
                ("connect_timeout", options.connect_timeout),
                ("read_timeout", options.read_timeout),
                ("write_timeout", options.write_timeout),
                ("idle_timeout", options.idle_timeout),
                ("websocket_idle_timeout", options.websocket_idle_timeout),
            ] {
                let _ = writeln!(o, "{pad}{k}: {}", dur(d));
            }
            let _ = writeln!(o, "{pad}max_retries: {}", options.max_retries);
            let _ = writeln!(o, "{pad}max_idle_conns: {}", options.max_idle_conns);
            let _ = writeln!(o, "{pad}preserve_host: {}", options.preserve_host);
            opt(o, n, "host_header", options.host_header.as_deref().map(q));
            opt(
                o,
                n,
                "buffer_request_body",
                options.buffer_request_body.map(units::fmt_size),
            );
            if let Some(t) = &options.upstream_tls {
                let path = |p: &Option<std::path::PathBuf>| {
                    p.as_ref().map(|p| q(&p.display().to_string()))
                };
                let mut fields = vec![format!("verify: {}", t.verify)];
                for (k, v) in [
                    ("ca", path(&t.ca)),
                    ("sni", t.sni.as_deref().map(q)),
                    ("client_cert", path(&t.client_cert)),
                    ("client_key", path(&t.client_key)),
                ] {
                    if let Some(v) = v {
                        fields.push(format!("{k}: {v}"));
                    }
                }
                let _ = writeln!(o, "{pad}upstream_tls: {{ {} }}", fields.join(", "));
            }
        }
        Action::Respond(r) => {
            let headers: Vec<String> = r
                .headers
                .iter()
                .map(|(k, v)| format!("{}: {}", q(k), q(&template::text(v))))
                .collect();
            let _ = writeln!(
                o,
                "{pad}respond: {{ status: {}, body: {}, headers: {{ {} }} }}",
                r.status,
                q(&template::text(&r.body)),
                headers.join(", ")
            );
        }
        Action::Redirect(r) => {
            let location = template::text(&r.location);
            let _ = writeln!(
                o,
                "{pad}redirect: {{ status: {}, location: {} }}",
                r.status,
                q(&location)
            );
        }
        Action::Drop => {
            let _ = writeln!(o, "{pad}drop: true");
        }
        Action::Serve(s) => {
            let list = |items: Vec<String>| items.join(", ");
            let cache_control = s
                .cache_control
                .as_deref()
                .map(|cc| format!(", cache_control: {}", q(cc)))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "{pad}serve: {{ root: {}, index: [{}], spa: {}, browse: {}, precompressed: [{}]{cache_control} }}",
                q(&s.root.display().to_string()),
                list(s.index.iter().map(|i| q(i)).collect()),
                s.spa,
                s.browse,
                list(s.precompressed.iter().map(|c| c.name().to_string()).collect()),
            );
        }
        Action::NotFound => {
            let _ = writeln!(
                o,
                "{pad}# no backends: requests no route matches get 404 no-route"
            );
        }
    }
    match &h.cache {
        DomainCache::Off => {
            let _ = writeln!(o, "{pad}cache: false");
        }
        DomainCache::Global => {
            let _ = writeln!(o, "{pad}cache: true");
        }
        DomainCache::Custom(s) => {
            let _ = writeln!(o, "{pad}cache:");
            cache_settings(o, n + 2, s);
        }
    }
    // Shown even when empty (a route's `[]` turns its domain's off).
    if !c.plugins.is_empty() {
        let _ = writeln!(o, "{pad}plugins: {}", list(&h.plugins));
    }
    match &h.compress {
        None => {
            let _ = writeln!(o, "{pad}compress: false");
        }
        Some(z) => {
            let algorithms: Vec<&str> = z.algorithms.iter().map(|a| a.as_str()).collect();
            let types: Vec<&str> = z.types.iter().map(|t| t.text.as_str()).collect();
            let _ = writeln!(
                o,
                "{pad}compress: {{ algorithms: [{}], min_bytes: {}, types: {} }}",
                algorithms.join(", "),
                units::fmt_size(z.min_bytes),
                list(&types)
            );
        }
    }
    if let Some(r) = &h.rate_limit {
        let key = match &r.key {
            RateKey::ClientIp => "client_ip".to_string(),
            RateKey::Route => "route".to_string(),
            RateKey::Header(name) => format!("header:{name}"),
        };
        let scope = match r.scope {
            RateScope::Local => "local",
            RateScope::Cluster => "cluster",
        };
        let _ = writeln!(
            o,
            "{pad}rate_limit: {{ requests: {}, per: {}, key: {}, scope: {scope} }}",
            r.requests,
            dur(r.per),
            q(&key)
        );
    }
    let edits = |e: &HeaderEdits| {
        let pairs = |v: &[(String, String)]| {
            v.iter()
                .map(|(k, v)| format!("{}: {}", q(k), q(v)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let remove: Vec<String> = e.remove.iter().map(|r| q(r)).collect();
        format!(
            "{{ set: {{ {} }}, add: {{ {} }}, remove: [{}] }}",
            pairs(&e.set),
            pairs(&e.add),
            remove.join(", ")
        )
    };
    if h.headers != HeaderRules::default() || !header_matchers.is_empty() {
        let _ = writeln!(o, "{pad}headers:");
        let _ = writeln!(o, "{pad}  request: {}", edits(&h.headers.request));
        let _ = writeln!(o, "{pad}  response: {}", edits(&h.headers.response));
        for (name, want) in header_matchers {
            let _ = match want {
                ValueMatch::Present => writeln!(o, "{pad}  {}: {{ present: true }}", q(name)),
                ValueMatch::Equals(v) => writeln!(o, "{pad}  {}: {}", q(name), q(v)),
            };
        }
    }
    if !h.deny.is_empty() {
        let _ = writeln!(o, "{pad}deny: {}", list(&h.deny));
    }
    opt(
        o,
        n,
        "max_body_bytes",
        h.max_body_bytes.map(units::fmt_size),
    );
}

/// One entry of a `backends:` list written at `pad`.
fn backend(o: &mut String, pad: &str, b: &BackendConfig) {
    let cap = b
        .max_connections
        .map(|m| format!(", max_connections: {m}"))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "{pad}  - {{ addr: {}, weight: {}{cap} }}",
        q(&b.url),
        b.weight
    );
}

/// A `tcp` listener's or a `pass` domain's relay (docs/l4.md) under `key`, at `n` spaces.
fn relay(o: &mut String, n: usize, key: &str, c: &Config, r: &L4) {
    let pad = " ".repeat(n);
    let _ = writeln!(o, "{pad}{key}:");
    if let Some(p) = c.pools.get(r.pool) {
        let _ = writeln!(o, "{pad}  load_balancer: {}", p.policy.strategy.name());
        let _ = writeln!(o, "{pad}  backends:");
        let inner = format!("{pad}  ");
        for b in &p.backends {
            backend(o, &inner, b);
        }
        if let Some(hc) = &p.policy.health_check {
            let _ = writeln!(
                o,
                "{pad}  health_check: {{ type: tcp, interval: {}, timeout: {}, fail_threshold: {}, success_threshold: {} }}",
                dur(hc.interval),
                dur(hc.timeout),
                hc.fail_threshold,
                hc.success_threshold
            );
        }
    }
    let _ = writeln!(o, "{pad}  connect_timeout: {}", dur(r.connect_timeout));
    let _ = writeln!(o, "{pad}  idle_timeout: {}", dur(r.idle_timeout));
    let _ = writeln!(o, "{pad}  max_retries: {}", r.max_retries);
    if r.proxy_protocol {
        let _ = writeln!(o, "{pad}  proxy_protocol: v2");
    }
}

/// `passive_health`, `hash_key`, `sticky`, `retry_budget` of a pool.
fn pool_policy(o: &mut String, n: usize, p: &PoolPolicy) {
    let pad = " ".repeat(n);
    match &p.passive_health {
        Some(ph) => {
            let _ = writeln!(
                o,
                "{pad}passive_health: {{ consecutive_failures: {}, ejection_time: {}, max_ejection_time: {}, max_ejected_percent: {} }}",
                ph.consecutive_failures,
                dur(ph.ejection_time),
                dur(ph.max_ejection_time),
                ph.max_ejected_percent
            );
        }
        None => {
            let _ = writeln!(o, "{pad}passive_health: false");
        }
    }
    if p.strategy == Strategy::ConsistentHash {
        let key = match &p.hash_key {
            HashKey::ClientIp => "client_ip: true".to_string(),
            HashKey::Header(h) => format!("header: {}", q(h)),
            HashKey::Cookie(c) => format!("cookie: {}", q(c)),
            HashKey::Query(k) => format!("query: {}", q(k)),
            HashKey::Path => "path: true".to_string(),
        };
        let _ = writeln!(o, "{pad}hash_key: {{ {key} }}");
    }
    if let Some(s) = &p.sticky {
        let mut parts = vec![
            format!("cookie: {}", q(&s.cookie)),
            format!("secure: {}", s.secure),
            format!("http_only: {}", s.http_only),
        ];
        if let Some(ttl) = s.ttl {
            parts.push(format!("ttl: {}", dur(ttl)));
        }
        if let Some(same_site) = &s.same_site {
            parts.push(format!("same_site: {}", same_site.to_ascii_lowercase()));
        }
        let _ = writeln!(o, "{pad}sticky: {{ {} }}", parts.join(", "));
    }
    match &p.retry_budget {
        Some(b) => {
            let _ = writeln!(
                o,
                "{pad}retry_budget: {{ percent: {}, min_per_second: {} }}",
                b.percent, b.min_per_second
            );
        }
        None => {
            let _ = writeln!(o, "{pad}retry_budget: false");
        }
    }
}

fn cache_settings(o: &mut String, n: usize, s: &CacheSettings) {
    let pad = " ".repeat(n);
    let _ = writeln!(o, "{pad}max_bytes: {}", units::fmt_size(s.max_bytes));
    let _ = writeln!(o, "{pad}max_entries: {}", s.max_entries);
    let _ = writeln!(
        o,
        "{pad}max_entry_bytes: {}",
        units::fmt_size(s.max_entry_bytes)
    );
    opt(o, n, "default_ttl", s.default_ttl.map(dur));
    let _ = writeln!(o, "{pad}max_ttl: {}", dur(s.max_ttl));
    let _ = writeln!(
        o,
        "{pad}stale_while_revalidate: {}",
        dur(s.stale_while_revalidate)
    );
    let _ = writeln!(o, "{pad}stale_if_error: {}", dur(s.stale_if_error));
    let p = &s.precompress;
    let _ = writeln!(
        o,
        "{pad}precompress: {{ enabled: {}, level: {}, min_bytes: {} }}",
        p.enabled,
        p.level,
        units::fmt_size(p.min_bytes)
    );
    let _ = writeln!(
        o,
        "{pad}forward_targeted_cache_control: {}",
        s.forward_targeted_cache_control
    );
    if !s.rules.is_empty() {
        let _ = writeln!(o, "{pad}rules:");
        for r in &s.rules {
            let mut fields = vec![format!("path_prefix: {}", q(&r.path_prefix))];
            if !r.enabled {
                fields.push("cache: false".into());
            }
            if let Some(t) = r.ttl {
                fields.push(format!("ttl: {}", dur(t)));
            }
            if !r.methods.is_empty() {
                fields.push(format!("methods: [{}]", r.methods.join(", ")));
            }
            if !r.statuses.is_empty() {
                let st: Vec<String> = r.statuses.iter().map(u16::to_string).collect();
                fields.push(format!("statuses: [{}]", st.join(", ")));
            }
            if let Some(m) = r.max_entry_bytes {
                fields.push(format!("max_entry_bytes: {}", units::fmt_size(m)));
            }
            let _ = writeln!(o, "{pad}  - {{ {} }}", fields.join(", "));
        }
    }
}

/// The `cluster` section (docs/cluster.md).
fn cluster(o: &mut String, c: &Cluster) {
    o.push_str("cluster:\n");
    let _ = writeln!(o, "  nodes: {}", c.nodes);
    if let Some(r) = &c.redis {
        let _ = writeln!(
            o,
            "  redis: {{ url: {}, timeout: {} }}",
            q(&r.url),
            dur(r.timeout)
        );
    }
    if let Some(e) = &c.etcd {
        etcd(o, e);
    }
}

/// The `plugins` map.
fn plugins(o: &mut String, plugins: &[Plugin]) {
    if plugins.is_empty() {
        return;
    }
    o.push_str("plugins:\n");
    for p in plugins {
        let on_error = match p.on_error {
            PluginOnError::Deny => "deny",
            PluginOnError::Allow => "allow",
        };
        let target = match &p.target {
            PluginTarget::Url(u) => format!("url: {}", q(&u.text)),
            PluginTarget::Command(argv) => {
                format!("command: {}, autostart: {}", list(argv), p.autostart)
            }
        };
        let _ = write!(
            o,
            "  {}: {{ {target}, protocol: {}, timeout: {}, on_error: {on_error}",
            q(&p.name),
            p.protocol.name(),
            dur(p.timeout)
        );
        if !p.copy_headers.is_empty() {
            let _ = write!(o, ", copy_headers: {}", list(&p.copy_headers));
        }
        if let Some(c) = &p.cache {
            let _ = write!(
                o,
                ", cache: {{ key: {}, ttl: {}, max_entries: {} }}",
                q(&format!("header:{}", c.header)),
                dur(c.ttl),
                c.max_entries
            );
        }
        o.push_str(" }\n");
    }
}

fn opt(o: &mut String, n: usize, key: &str, value: Option<String>) {
    if let Some(v) = value {
        let _ = writeln!(o, "{}{key}: {v}", " ".repeat(n));
    }
}

fn dur(d: Duration) -> String {
    units::fmt_duration(d)
}

fn level(l: log::LevelFilter) -> String {
    l.as_str().to_ascii_lowercase()
}

fn host(h: &HostPattern) -> String {
    match h {
        HostPattern::Exact(name) => q(name),
        other => q(&other.text()),
    }
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(|i| q(&i.to_string())).collect();
    format!("[{}]", items.join(", "))
}

/// A double-quoted YAML scalar (JSON string syntax is valid YAML).
fn q(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `show` prints loads back to the same effective config.
    #[test]
    fn shown_config_loads_back_the_same() {
        let text = "\
server: { drain_delay: 3s, trusted_proxies: [10.0.0.0/8] }
listeners:
  - addr: 127.0.0.1:8080
  - { addr: 127.0.0.1:8444, tls: { certs: [{ cert: /x.pem, key: /x.key }] } }
  - { name: db, addr: 127.0.0.1:5432, tcp: { backends: [10.0.0.5:5432], load_balancer: least_connections, health_check: { interval: 5s }, proxy_protocol: v2 } }
  - addr: 127.0.0.1:8443
    tls: { acme: [a.com, www.a.com] }
acme: { directory: \"https://acme.example/dir\", email: ops@a.com, storage: /tmp/acme, renew_before: 30d }
admin: { addr: 127.0.0.1:9900, token: ${TOKEN} }
logging: { level: debug, access_log: \"-\", error_log: /tmp/e.log }
plugins:
  auth: { url: http://127.0.0.1:9100/verify, protocol: forward_auth, copy_headers: [X-User], timeout: 50ms, cache: { key: header:Authorization, ttl: 30s } }
  geo: { url: http://127.0.0.1:9200, on_error: allow }
  sync: { command: [./sync, --every, 5s], autostart: true }
cache: { default_ttl: 1m, rules: [{ path_prefix: /x/, cache: false }] }
cluster: { nodes: 3, redis: { url: \"redis://127.0.0.1:6379/0\", timeout: 15ms } }
domains:
  - hosts: [a.com, \"*.b.com\"]
    backends: [{ addr: http://127.0.0.1:3000, weight: 3 }]
    health_check: { type: http, path: /h, interval: 2s, timeout: 1s }
    read_timeout: 7s
    cache: true
    compress: { algorithms: [br, gzip], min_bytes: 1KiB, types: [text/*, \"application/*+json\"] }
    headers: { response: { set: { X-A: b } } }
    rate_limit: { requests: 5, per: 1s, scope: cluster }
    plugins: [geo, auth]
    routes:
      - { path_prefix: /r/, host_header: r.internal, compress: false, plugins: [] }
      - { path_prefix: /go, redirect: { status: 301, location: \"https://$host/new$path$query\" } }
      - { path_prefix: /ping, respond: { body: \"pong\\n\", headers: { X-P: q } } }
  - hosts: [legacy.com]
    pass: { backends: [10.0.0.9:443], idle_timeout: 1h }
  - hosts: [\"*\"]
    deny: [192.0.2.0/24]
    max_body_bytes: 1MiB
    routes: [{ path_prefix: /, respond: { status: 204 } }]
  - hosts: [d.com]
    discovery: { dns: { name: api.service.internal, port: 8080, interval: 5s, resolver: \"127.0.0.1:5353\" } }
    health_check: { path: /h }
    routes: [{ path_prefix: /v1/, read_timeout: 3s }]
";
        let env = |name: &str| (name == "TOKEN").then(|| "s3cret".to_string());
        let first = super::super::load_str(text, "t.yaml", &env).expect("valid");
        let shown = show_yaml(&first);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("read_timeout: 7s"), "{shown}");
        assert!(
            shown.contains("    tcp:\n      load_balancer: least_connections"),
            "{shown}"
        );
        assert!(
            shown.contains("    pass:\n") && shown.contains("idle_timeout: 1h"),
            "{shown}"
        );
        assert!(
            shown.contains("acme: [\"a.com\", \"www.a.com\"]"),
            "{shown}"
        );
        assert!(shown.contains("renew_before: 720h"), "{shown}");
        let again =
            super::super::load_str(&shown.replace("<set, not shown>", "s3cret"), "shown", &env)
                .unwrap_or_else(|e| panic!("{e:?}\n{shown}"));
        assert_eq!(
            show_yaml(&again).lines().skip(1).collect::<Vec<_>>(),
            shown.lines().skip(1).collect::<Vec<_>>()
        );
        // The route inherited the domain's read timeout, and shows it.
        let route = shown
            .split("path_prefix: \"/r/\"")
            .nth(1)
            .unwrap_or_default();
        assert!(
            route.contains("read_timeout: 7s") && route.contains("host_header: \"r.internal\""),
            "{shown}"
        );
    }
}
