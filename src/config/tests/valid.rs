//! Files that load, and the model they decode to.

use super::*;

/// The example from design §3, verbatim.
const DESIGN_EXAMPLE: &str = r#"server:
  threads: 2                    # worker threads per listener service (default: CPU count)
  pid_file: /run/strait/strait.pid
  upgrade_sock: /run/strait/upgrade.sock
  grace_period: 30s             # in-flight requests may finish this long after SIGTERM/SIGQUIT
  shutdown_timeout: 10s
  user: strait                  # optional, after daemonizing
  group: strait

listeners:
  - addr: 0.0.0.0:8080
  - addr: 0.0.0.0:8443
    tls:
      certs:                    # SNI picks a cert; the first is the default
        - { cert: /etc/strait/tls/a.pem, key: /etc/strait/tls/a.key }
      cert_dir: /etc/strait/tls # or: every NAME.crt+NAME.key / NAME.pem+NAME.key pair
      http2: true

admin:
  addr: 127.0.0.1:9900
  token: ${STRAIT_ADMIN_TOKEN}  # bearer token; required when addr is not loopback

probe:
  addr: 0.0.0.0:8085            # /live /ready /metrics

logging:
  level: info                   # STRAIT_LOG / RUST_LOG override
  access_log: /var/log/strait/access.log   # JSON lines; "-" = stdout; omitted = off

cache:
  max_bytes: 256MiB             # memory budget
  max_entries: 10000
  max_entry_bytes: 4MiB
  default_ttl: 5m               # when the response has no explicit freshness
  max_ttl: 24h                  # cap on any freshness
  stale_while_revalidate: 30s
  stale_if_error: 5m
  precompress: { enabled: true, level: 6, min_bytes: 256 }
  rules:                        # first match wins; a rule can also disable caching
    - { path_prefix: /api/v1/, ttl: 10m, methods: [GET], statuses: [200] }
    - { path_prefix: /static/, ttl: 24h, max_entry_bytes: 10MiB }

domains:
  - hosts: [api.example.com, "*.api.example.com"]   # exact, leading-wildcard, or "*" (default)
    load_balancer: weighted_round_robin  # round_robin | weighted_round_robin | least_connections | ip_hash | random
    backends:
      - { addr: http://127.0.0.1:3001, weight: 3 }  # http:// https:// h2c:// ; weight 1-100
      - { addr: http://127.0.0.1:3002 }
    connect_timeout: 10s
    read_timeout: 30s
    write_timeout: 10s
    max_retries: 2              # extra attempts on another backend (connect errors; idempotent requests)
    max_idle_conns: 32          # pooled keep-alive connections per backend
    idle_timeout: 90s
    preserve_host: false        # forward the client's Host
    host_header: backend.internal  # or set this one
    health_check:
      type: http                # http | tcp
      path: /health
      interval: 10s
      timeout: 5s
      fail_threshold: 3
      success_threshold: 2
    cache: true                 # use the global cache settings (or a map overriding them)
    rate_limit: { requests: 100, per: 1s, key: client_ip }   # 429 + Retry-After
    headers:
      request:  { set: { X-Internal-Auth: secret }, remove: [X-Debug] }
      response: { set: { X-Proxy: strait }, remove: [Server] }
    routes:                     # longest path_prefix wins; unset fields inherit the domain's
      - { path_prefix: /auth/, backends: [{ addr: http://127.0.0.1:4000 }], host_header: auth.internal }
      - { path_prefix: /ping, respond: { status: 200, body: "pong\n" } }
"#;

#[test]
fn design_example_decodes_to_the_model() {
    let c = ok(DESIGN_EXAMPLE);
    assert_eq!(c.source, "t.yaml");

    assert_eq!(c.server.threads, 2);
    assert_eq!(
        c.server.pid_file,
        std::path::PathBuf::from("/run/strait/strait.pid")
    );
    assert_eq!(
        c.server.upgrade_sock,
        std::path::PathBuf::from("/run/strait/upgrade.sock")
    );
    assert_eq!(c.server.grace_period, secs(30));
    assert_eq!(c.server.shutdown_timeout, secs(10));
    assert_eq!(c.server.drain_delay, secs(1));
    assert_eq!(c.server.keepalive_timeout, secs(60));
    assert_eq!(c.server.user.as_deref(), Some("strait"));
    assert_eq!(c.server.group.as_deref(), Some("strait"));

    assert_eq!(c.listeners.len(), 2);
    assert_eq!(c.listeners[0].addr, "0.0.0.0:8080".parse().unwrap());
    assert!(c.listeners[0].tls.is_none());
    assert_eq!(c.listeners[0].pos, Pos { line: 11, col: 11 });
    let tls = c.listeners[1].tls.as_ref().unwrap();
    assert_eq!(tls.certs.len(), 1);
    assert_eq!(
        tls.certs[0].cert,
        std::path::PathBuf::from("/etc/strait/tls/a.pem")
    );
    assert_eq!(
        tls.certs[0].key,
        std::path::PathBuf::from("/etc/strait/tls/a.key")
    );
    assert_eq!(
        tls.cert_dir,
        Some(std::path::PathBuf::from("/etc/strait/tls"))
    );
    assert!(tls.http2);

    let admin = c.admin.as_ref().unwrap();
    assert_eq!(admin.addr, "127.0.0.1:9900".parse().unwrap());
    assert_eq!(admin.token.as_deref(), Some("s3cret"));
    assert_eq!(
        c.probe.as_ref().unwrap().addr,
        "0.0.0.0:8085".parse().unwrap()
    );

    assert_eq!(c.logging.level, log::LevelFilter::Info);
    assert_eq!(
        c.logging.access_log,
        Some(AccessLog::File("/var/log/strait/access.log".into()))
    );

    let cache = c.cache.as_ref().unwrap();
    assert_eq!(cache.max_bytes, 256 << 20);
    assert_eq!(cache.max_entries, 10_000);
    assert_eq!(cache.max_entry_bytes, 4 << 20);
    assert_eq!(cache.default_ttl, Some(secs(300)));
    assert_eq!(cache.max_ttl, secs(86_400));
    assert_eq!(cache.stale_while_revalidate, secs(30));
    assert_eq!(cache.stale_if_error, secs(300));
    assert!(cache.precompress.enabled);
    assert_eq!(cache.precompress.level, 6);
    assert_eq!(cache.precompress.min_bytes, 256);
    assert_eq!(cache.rules.len(), 2);
    assert_eq!(cache.rules[0].path_prefix, "/api/v1/");
    assert_eq!(cache.rules[0].ttl, Some(secs(600)));
    assert_eq!(cache.rules[0].methods, vec!["GET"]);
    assert_eq!(cache.rules[0].statuses, vec![200]);
    assert!(cache.rules[0].enabled);
    assert_eq!(cache.rules[1].max_entry_bytes, Some(10 << 20));
    assert!(cache.rules[1].methods.is_empty());

    assert_eq!(c.pools.len(), 2);
    let health = HealthCheck {
        kind: HealthKind::Http {
            path: "/health".into(),
        },
        interval: secs(10),
        timeout: secs(5),
        fail_threshold: 3,
        success_threshold: 2,
    };
    let main = &c.pools[0];
    assert_eq!(main.name, "api.example.com");
    assert_eq!(main.policy.strategy, Strategy::WeightedRoundRobin);
    assert_eq!(main.policy.health_check.as_ref(), Some(&health));
    assert_eq!(
        main.backends[0],
        BackendConfig {
            url: "http://127.0.0.1:3001".into(),
            scheme: Scheme::Http,
            host: "127.0.0.1".into(),
            port: 3001,
            weight: 3,
            max_connections: None,
            pos: Pos { line: 47, col: 17 },
            path: "domains[0].backends[0].addr".into(),
        }
    );
    assert_eq!(main.backends[1].weight, 1);
    assert_eq!(main.backends[1].path, "domains[0].backends[1].addr");
    let auth = &c.pools[1];
    assert_eq!(auth.name, "api.example.com/auth/");
    assert_eq!(auth.policy.strategy, Strategy::WeightedRoundRobin);
    assert_eq!(auth.policy.health_check.as_ref(), Some(&health));
    assert_eq!(auth.backends.len(), 1);
    assert_eq!(auth.backends[0].port, 4000);

    assert_eq!(c.domains.len(), 1);
    let d = &c.domains[0];
    assert_eq!(
        d.hosts,
        vec![
            HostPattern::Exact("api.example.com".into()),
            HostPattern::Wildcard(".api.example.com".into())
        ]
    );
    let options = ProxyOptions {
        connect_timeout: secs(10),
        read_timeout: secs(30),
        write_timeout: secs(10),
        max_retries: 2,
        max_idle_conns: 32,
        idle_timeout: secs(90),
        preserve_host: false,
        host_header: Some("backend.internal".into()),
        websocket_idle_timeout: secs(3600),
        buffer_request_body: None,
        upstream_tls: None,
    };
    assert_eq!(
        d.handling.action,
        Action::Proxy {
            pool: 0,
            options: options.clone()
        }
    );
    assert!(matches!(d.handling.cache, DomainCache::Global));
    assert_eq!(
        d.handling.rate_limit,
        Some(RateLimit {
            requests: 100,
            per: secs(1),
            key: RateKey::ClientIp,
            scope: RateScope::Local
        })
    );
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        d.handling.headers.request.set,
        pairs(&[("X-Internal-Auth", "secret")])
    );
    assert_eq!(d.handling.headers.request.remove, vec!["X-Debug"]);
    assert_eq!(
        d.handling.headers.response.set,
        pairs(&[("X-Proxy", "strait")])
    );
    assert_eq!(d.handling.headers.response.remove, vec!["Server"]);

    assert_eq!(d.routes.len(), 2);
    let r = &d.routes[0];
    assert_eq!(r.name, "/auth/");
    assert_eq!(
        r.handling.action,
        Action::Proxy {
            pool: 1,
            options: ProxyOptions {
                host_header: Some("auth.internal".into()),
                ..options.clone()
            }
        }
    );
    assert_eq!(r.handling.headers, d.handling.headers);
    assert_eq!(r.handling.rate_limit, d.handling.rate_limit);
    assert!(matches!(r.handling.cache, DomainCache::Global));
    let r = &d.routes[1];
    assert_eq!(r.name, "/ping");
    assert_eq!(
        r.handling.action,
        Action::Respond(Respond {
            status: 200,
            body: vec![TemplatePart::Text("pong\n".into())],
            headers: Default::default()
        })
    );
}

#[test]
fn defaults_fill_a_minimal_file() {
    let c = ok(MINIMAL);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(c.server.threads, cpus.min(1024));
    assert_eq!(
        c.server.pid_file,
        std::path::PathBuf::from("/tmp/strait.pid")
    );
    assert_eq!(
        c.server.upgrade_sock,
        std::path::PathBuf::from("/tmp/strait_upgrade.sock")
    );
    assert_eq!(c.server.grace_period, secs(30));
    assert_eq!(c.server.shutdown_timeout, secs(10));
    assert!(c.admin.is_none() && c.probe.is_none() && c.cache.is_none());
    assert_eq!(c.logging.level, log::LevelFilter::Info);
    assert_eq!(c.logging.access_log, None);
    let d = &c.domains[0];
    assert_eq!(
        d.handling.action,
        Action::Proxy {
            pool: 0,
            options: ProxyOptions {
                connect_timeout: secs(5),
                read_timeout: secs(60),
                write_timeout: secs(60),
                max_retries: 2,
                max_idle_conns: 32,
                idle_timeout: secs(60),
                preserve_host: false,
                host_header: None,
                websocket_idle_timeout: secs(3600),
                buffer_request_body: None,
                upstream_tls: None,
            }
        }
    );
    assert!(matches!(d.handling.cache, DomainCache::Off));
    assert_eq!(c.pools[0].policy.strategy, Strategy::RoundRobin);
    assert_eq!(c.pools[0].policy.health_check, None);
    assert_eq!(c.pools[0].backends[0].path, "domains[0].backends[0]");
}

#[test]
fn display_format() {
    let e = ConfigError {
        file: "f.yaml".into(),
        line: 3,
        col: 7,
        path: "server.threads".into(),
        message: "bad".into(),
    };
    assert_eq!(e.to_string(), "f.yaml:3:7: server.threads: bad");
    let e = ConfigError {
        path: String::new(),
        ..e
    };
    assert_eq!(e.to_string(), "f.yaml:3:7: bad");
    let e = ConfigError {
        line: 0,
        col: 0,
        ..e
    };
    assert_eq!(e.to_string(), "f.yaml: bad");
}

#[test]
fn unreadable_file() {
    let path = std::path::Path::new("/nonexistent/strait.yaml");
    let errs = load_file(path).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!((errs[0].line, errs[0].col), (0, 0));
    assert!(
        errs[0]
            .to_string()
            .starts_with("/nonexistent/strait.yaml: cannot read: "),
        "{}",
        errs[0]
    );
}

#[test]
fn load_file_reads_and_decodes() {
    let dir = std::env::temp_dir().join(format!("strait-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("strait.yaml");
    std::fs::write(&path, MINIMAL).unwrap();
    let c = load_file(&path).unwrap();
    assert_eq!(c.source, path.display().to_string());
    std::fs::remove_dir_all(&dir).unwrap();
}

const SHARING: &str = "\
listeners:
  - addr: 127.0.0.1:8080
cache:
  max_bytes: 64MiB
  default_ttl: 1m
domains:
  - hosts: [Shop.example.com, '*.shop.example.com']
    load_balancer: least_connections
    backends: [http://10.0.0.1:80, { addr: 'https://[::1]:8443', weight: 5 }]
    health_check: { path: /up }
    host_header: shop.internal
    read_timeout: 5s
    headers:
      request: { set: { X-A: domain, X-B: domain }, remove: [X-Debug] }
    rate_limit: { requests: 10, per: 1s }
    cache: { max_entries: 50 }
    routes:
      - path_prefix: /plain/
      - path_prefix: /same-lb/
        load_balancer: least_connections
        health_check: { path: /up }
      - path_prefix: /other-lb/
        load_balancer: random
        preserve_host: true
      - path_prefix: /own/
        backends: [h2c://grpc.internal:50051]
        read_timeout: 1s
        headers:
          request: { set: { x-a: route }, add: { X-Debug: '1' } }
        rate_limit: { requests: 5, per: 1m, key: 'header:X-Api-Key' }
        cache: { default_ttl: 10s }
      - { path_prefix: /off/, cache: false }
  - hosts: ['*']
    read_timeout: 7s
    routes:
      - { path_prefix: /hello, respond: { status: 201, body: hi, headers: { Content-Type: text/plain } } }
      - { path_prefix: /app/, backends: [http://127.0.0.1:3000] }
";

#[test]
fn routes_inherit_and_share_pools() {
    let c = ok(SHARING);
    let names: Vec<_> = c.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "shop.example.com",
            "shop.example.com/other-lb/",
            "shop.example.com/own/",
            "*/app/"
        ]
    );
    let shop = &c.pools[0];
    assert_eq!(shop.policy.strategy, Strategy::LeastConnections);
    assert_eq!(shop.backends[1].host, "::1");
    assert_eq!(shop.backends[1].scheme, Scheme::Https);
    assert_eq!(shop.backends[1].weight, 5);
    let health = shop.policy.health_check.clone().unwrap();
    assert_eq!(health.kind, HealthKind::Http { path: "/up".into() });
    assert_eq!((health.interval, health.timeout), (secs(5), secs(2)));
    assert_eq!((health.fail_threshold, health.success_threshold), (3, 2));

    let d = &c.domains[0];
    let Action::Proxy { pool: 0, options } = &d.handling.action else {
        panic!("{:?}", d.handling.action)
    };
    assert_eq!(options.read_timeout, secs(5));
    let DomainCache::Custom(domain_cache) = &d.handling.cache else {
        panic!()
    };
    assert_eq!(domain_cache.max_entries, 50);
    assert_eq!(domain_cache.max_bytes, 64 << 20);
    assert_eq!(domain_cache.default_ttl, Some(secs(60)));

    let pool_of = |i: usize| match &d.routes[i].handling.action {
        Action::Proxy { pool, .. } => *pool,
        other => panic!("{other:?}"),
    };
    let options_of = |i: usize| match &d.routes[i].handling.action {
        Action::Proxy { options, .. } => options.clone(),
        other => panic!("{other:?}"),
    };
    // Nothing overridden, or overridden with the same values: the domain's pool.
    assert_eq!(pool_of(0), 0);
    assert_eq!(pool_of(1), 0);
    assert_eq!(options_of(0), *options);
    assert_eq!(d.routes[0].handling.headers, d.handling.headers);
    assert_eq!(d.routes[0].handling.rate_limit, d.handling.rate_limit);
    assert!(matches!(&d.routes[0].handling.cache, DomainCache::Custom(s) if s.max_entries == 50));

    // A different strategy: same backends, new pool.
    assert_eq!(pool_of(2), 1);
    assert_eq!(c.pools[1].policy.strategy, Strategy::Random);
    assert_eq!(c.pools[1].backends, shop.backends);
    assert_eq!(c.pools[1].policy.health_check, shop.policy.health_check);
    let o = options_of(2);
    assert!(o.preserve_host);
    assert_eq!(o.host_header, None);

    // Own backends: own pool with the domain's strategy and checks.
    assert_eq!(pool_of(3), 2);
    let own = &c.pools[2];
    assert_eq!(own.policy.strategy, Strategy::LeastConnections);
    assert_eq!(own.policy.health_check, shop.policy.health_check);
    assert_eq!(own.backends[0].scheme, Scheme::H2c);
    assert_eq!(own.backends[0].port, 50051);
    let o = options_of(3);
    assert_eq!(o.read_timeout, secs(1));
    assert_eq!(o.host_header.as_deref(), Some("shop.internal"));
    let r = &d.routes[3];
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        r.handling.headers.request.set,
        pairs(&[("X-B", "domain"), ("x-a", "route")])
    );
    assert_eq!(r.handling.headers.request.add, pairs(&[("X-Debug", "1")]));
    assert!(r.handling.headers.request.remove.is_empty());
    assert_eq!(
        r.handling.rate_limit,
        Some(RateLimit {
            requests: 5,
            per: secs(60),
            key: RateKey::Header("X-Api-Key".into()),
            scope: RateScope::Local
        })
    );
    let DomainCache::Custom(route_cache) = &r.handling.cache else {
        panic!()
    };
    assert_eq!(route_cache.default_ttl, Some(secs(10)));
    assert_eq!(route_cache.max_entries, 50);
    assert!(matches!(d.routes[4].handling.cache, DomainCache::Off));

    let d = &c.domains[1];
    assert_eq!(d.hosts, vec![HostPattern::Any]);
    assert_eq!(d.handling.action, Action::NotFound);
    assert!(matches!(d.handling.cache, DomainCache::Off));
    let Action::Respond(respond) = &d.routes[0].handling.action else {
        panic!()
    };
    assert_eq!(respond.status, 201);
    assert_eq!(respond.body, vec![TemplatePart::Text("hi".into())]);
    assert_eq!(
        respond.headers.get("Content-Type"),
        Some(&vec![TemplatePart::Text("text/plain".into())])
    );
    let Action::Proxy { pool: 3, options } = &d.routes[1].handling.action else {
        panic!("{:?}", d.routes[1].handling.action)
    };
    assert_eq!(options.read_timeout, secs(7));
    assert_eq!(c.pools[3].policy.strategy, Strategy::RoundRobin);
    assert_eq!(c.pools[3].policy.health_check, None);
}

#[test]
fn anchors_and_merge_keys_work_in_configs() {
    let text = "\
listeners:
  - addr: 127.0.0.1:8080
domains:
  - &base
    hosts: [a.com]
    backends: [http://127.0.0.1:3000]
    read_timeout: 3s
  - <<: *base
    hosts: [b.com]
";
    let c = ok(text);
    assert_eq!(c.domains.len(), 2);
    assert_eq!(c.pools[1].name, "b.com");
    assert_eq!(c.pools[1].backends[0].url, c.pools[0].backends[0].url);
    // Aliased nodes keep the anchor's position but get the path they are used at.
    assert_eq!(c.pools[1].backends[0].pos, c.pools[0].backends[0].pos);
    assert_eq!(c.pools[1].backends[0].path, "domains[1].backends[0]");
    let Action::Proxy { options, .. } = &c.domains[1].handling.action else {
        panic!()
    };
    assert_eq!(options.read_timeout, secs(3));
}

/// `cache: true` with no top-level `cache:` section turns the cache on with its defaults
/// rather than failing (or, as it once did, silently caching nothing).
#[test]
fn cache_true_without_a_cache_section_uses_the_defaults() {
    let text = "\
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    backends: [http://127.0.0.1:3000]
    cache: true
";
    let c = ok(text);
    let DomainCache::Custom(s) = &c.domains[0].handling.cache else {
        panic!("expected the default cache settings")
    };
    assert_eq!(s.max_bytes, 256 << 20);
    assert_eq!(s.default_ttl, None);
}

#[test]
fn acme_section_and_hosts() {
    let config = ok("\
acme:
  directory: https://acme.example/dir
  email: ops@example.com
  storage: /var/lib/strait/acme
  renew_before: 30d
listeners:
  - addr: 127.0.0.1:80
  - addr: 127.0.0.1:443
    tls: { acme: [Example.COM., www.example.com] }
domains:
  - hosts: [example.com]
    backends: [http://127.0.0.1:3000]
");
    let acme = config.acme.expect("acme");
    assert_eq!(
        acme.renew_before,
        std::time::Duration::from_secs(30 * 86_400)
    );
    assert_eq!(acme.email.as_deref(), Some("ops@example.com"));
    let tls = config.listeners[1].tls.as_ref().expect("tls");
    assert_eq!(tls.acme, ["example.com", "www.example.com"]);
    assert!(tls.certs.is_empty());
}

#[test]
fn an_acme_host_no_domain_answers_is_a_warning() {
    let config = ok("\
acme: { directory: https://acme.example/dir }
listeners:
  - addr: 127.0.0.1:443
    tls: { acme: [example.com, typo.example.com] }
domains:
  - hosts: [example.com]
    backends: [http://127.0.0.1:3000]
");
    let warnings: Vec<String> = crate::config::warnings(&config)
        .iter()
        .map(|w| format!("{}:{}: {}: {}", w.line, w.col, w.path, w.message))
        .collect();
    assert_eq!(
        warnings,
        ["4:10: listeners[0].tls.acme: no domain answers typo.example.com on this listener: its certificate would front only 404s"]
    );
}
