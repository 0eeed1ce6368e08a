//! Traffic-policy keys: `deny`, `trusted_proxies`, `redirect`, `respond` on a domain,
//! `max_body_bytes`, request-head limits, `max_connections`, `websocket_idle_timeout`.

use super::*;

#[test]
fn policy_keys_decode() {
    let text = r#"
server:
  trusted_proxies: [10.0.0.0/8, "2001:db8::/32", 127.0.0.1]
  request_header_timeout: 5s
  max_header_bytes: 16KiB
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    backends: [{ addr: http://127.0.0.1:3000, max_connections: 10 }, http://127.0.0.1:3001]
    deny: [192.0.2.0/24]
    max_body_bytes: 1MiB
    websocket_idle_timeout: 10m
    rate_limit: { requests: 5, per: 1m }
    routes:
      - { path_prefix: /old/, redirect: { status: 301, location: "https://b.com$path$query" } }
      - { path_prefix: /up/, max_body_bytes: 10MiB, deny: [198.51.100.7, 192.0.2.0/24] }
      - { path_prefix: /ws/, websocket_idle_timeout: 1h30m }
  - hosts: [old.com]
    redirect: { location: "https://a.com$path" }
  - hosts: [ping.com]
    respond: { status: 204 }
"#;
    let c = ok(text);
    let cidr = |t: &str| crate::config::decode::parse_cidr(t).unwrap();
    assert_eq!(
        c.server.trusted_proxies,
        vec![
            cidr("10.0.0.0/8"),
            cidr("2001:db8::/32"),
            cidr("127.0.0.1/32")
        ]
    );
    assert_eq!(c.server.request_header_timeout, secs(5));
    assert_eq!(c.server.max_header_bytes, 16 << 10);
    let pool = &c.pools[0];
    assert_eq!(pool.backends[0].max_connections, Some(10));
    assert_eq!(pool.backends[1].max_connections, None);

    let d = &c.domains[0];
    assert_eq!(d.handling.deny, vec![cidr("192.0.2.0/24")]);
    assert_eq!(d.handling.max_body_bytes, Some(1 << 20));
    let Action::Proxy { options, .. } = &d.handling.action else {
        panic!("{:?}", d.handling.action)
    };
    assert_eq!(options.websocket_idle_timeout, secs(600));
    assert_eq!(
        d.routes[0].handling.action,
        Action::Redirect(Redirect {
            status: 301,
            location: vec![
                TemplatePart::Text("https://b.com".into()),
                TemplatePart::Path,
                TemplatePart::Query
            ],
        })
    );
    // A redirect route still inherits the domain's limits.
    assert_eq!(d.routes[0].handling.deny, d.handling.deny);
    assert_eq!(d.routes[0].handling.max_body_bytes, Some(1 << 20));
    // A route's deny adds to its domain's; its max_body_bytes replaces it.
    assert_eq!(
        d.routes[1].handling.deny,
        vec![cidr("192.0.2.0/24"), cidr("198.51.100.7/32")]
    );
    assert_eq!(d.routes[1].handling.max_body_bytes, Some(10 << 20));
    let Action::Proxy { options, .. } = &d.routes[2].handling.action else {
        panic!("{:?}", d.routes[2].handling.action)
    };
    assert_eq!(options.websocket_idle_timeout, secs(5400));

    assert_eq!(
        c.domains[1].handling.action,
        Action::Redirect(Redirect {
            status: 302,
            location: vec![
                TemplatePart::Text("https://a.com".into()),
                TemplatePart::Path
            ],
        })
    );
    let Action::Respond(r) = &c.domains[2].handling.action else {
        panic!("{:?}", c.domains[2].handling.action)
    };
    assert_eq!(r.status, 204);
}

#[test]
fn policy_defaults() {
    let c = ok(MINIMAL);
    assert!(c.server.trusted_proxies.is_empty());
    assert_eq!(c.server.request_header_timeout, secs(10));
    assert_eq!(c.server.max_header_bytes, 64 << 10);
    let d = &c.domains[0];
    assert!(d.handling.deny.is_empty());
    assert_eq!(d.handling.max_body_bytes, None);
    assert_eq!(c.pools[0].backends[0].max_connections, None);
    let Action::Proxy { options, .. } = &d.handling.action else {
        panic!()
    };
    assert_eq!(options.websocket_idle_timeout, secs(3600));
}

#[test]
fn bad_networks() {
    let text = "\
server:
  trusted_proxies: [10.1.0.0/8, nope, 10.0.0.0/33, 10.0.0.0/8, 10.0.0.0/8]
  max_header_bytes: 100
  request_header_timeout: 0s
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    backends: [{ addr: http://127.0.0.1:3000, max_connections: 0 }]
    deny: [\"::1/200\"]
";
    assert_eq!(
        errors(text),
        [
            r#"t.yaml:2:21: server.trusted_proxies[0]: "10.1.0.0/8" has bits set beyond the /8 prefix; the network is 10.0.0.0/8"#,
            r#"t.yaml:2:33: server.trusted_proxies[1]: expected an IP network like 10.0.0.0/8 or 2001:db8::/32, found "nope""#,
            r#"t.yaml:2:39: server.trusted_proxies[2]: invalid prefix length "33" in "10.0.0.0/33", expected 0-32"#,
            r#"t.yaml:2:64: server.trusted_proxies[4]: duplicate network "10.0.0.0/8""#,
            "t.yaml:3:21: server.max_header_bytes: max_header_bytes must be between 1KiB and 512KiB, found 100",
            "t.yaml:4:27: server.request_header_timeout: request_header_timeout must be longer than 0s",
            "t.yaml:9:64: domains[0].backends[0].max_connections: max_connections must be between 1 and 1000000, found 0",
            r#"t.yaml:10:12: domains[0].deny[0]: invalid prefix length "200" in "::1/200", expected 0-128"#,
        ]
    );
}

#[test]
fn bad_redirects() {
    let text = r#"
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    backends: [http://127.0.0.1:3000]
    redirect: { location: /x }
    routes:
      - { path_prefix: /a/, redirect: { status: 200, location: "https://b.com$pth" } }
      - { path_prefix: /b/, respond: { status: 200 }, redirect: { location: /c } }
      - { path_prefix: /c/, redirect: { status: 308 } }
"#;
    assert_eq!(
        errors(text),
        [
            "t.yaml:7:15: domains[0].redirect: redirect cannot be combined with `backends`",
            r#"t.yaml:9:49: domains[0].routes[0].redirect.status: unknown value "200", expected one of: 301, 302, 303, 307, 308"#,
            r#"t.yaml:9:64: domains[0].routes[0].redirect.location: unknown variable $pth, expected $scheme, $host, $port, $uri, $path, $query, $remote_addr, $request_id, $ssl_client_s_dn, $ssl_client_fingerprint or $1..$9"#,
            "t.yaml:10:65: domains[0].routes[1].redirect: redirect cannot be combined with `respond`",
            "t.yaml:11:39: domains[0].routes[2].redirect: missing field `location`",
        ]
    );
}
