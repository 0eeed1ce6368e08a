//! `plugins` and the `plugins` lists of domains and routes.

use super::*;

const BASE: &str = "\
listeners:
  - addr: 127.0.0.1:8080
plugins:
  auth: { url: http://127.0.0.1:9200/verify, protocol: forward_auth, copy_headers: [X-User], timeout: 50ms }
  geo: { url: http://127.0.0.1:9100, on_error: allow, cache: { key: header:Authorization, ttl: 30s } }
";

#[test]
fn plugins_decode_with_defaults_and_a_route_replaces_its_domains_list() {
    let c = ok(&format!(
        "{BASE}domains:
  - hosts: [a.com]
    backends: [http://127.0.0.1:3000]
    plugins: [geo, auth]
    routes:
      - {{ path_prefix: /open, plugins: [] }}
      - {{ path_prefix: /geo, plugins: [geo] }}
      - {{ path_prefix: /same }}
"
    ));
    assert_eq!(c.plugins.len(), 2);
    let auth = &c.plugins[0];
    assert_eq!(auth.name, "auth");
    assert_eq!(auth.protocol, PluginProtocol::ForwardAuth);
    assert_eq!(auth.timeout, Duration::from_millis(50));
    assert_eq!(auth.on_error, PluginOnError::Deny);
    assert_eq!(auth.copy_headers, ["x-user"]);
    assert_eq!(auth.target.path(), "/verify");
    let geo = &c.plugins[1];
    assert_eq!(geo.protocol, PluginProtocol::Strait);
    assert_eq!(geo.timeout, Duration::from_secs(1));
    assert_eq!(geo.on_error, PluginOnError::Allow);
    let cache = geo.cache.as_ref().expect("cache");
    assert_eq!(
        (cache.header.as_str(), cache.ttl, cache.max_entries),
        ("authorization", Duration::from_secs(30), 10_000)
    );
    let d = &c.domains[0];
    assert_eq!(d.handling.plugins, ["geo", "auth"]);
    assert!(d.routes[0].handling.plugins.is_empty());
    assert_eq!(d.routes[1].handling.plugins, ["geo"]);
    assert_eq!(d.routes[2].handling.plugins, ["geo", "auth"]);
}

#[test]
fn plugin_errors_are_positioned() {
    let text = format!(
        "{BASE}  both: {{ url: http://127.0.0.1:1, command: [x] }}
  neither: {{ timeout: 1s }}
  cmd: {{ command: [], autostart: yes }}
  bad: {{ url: https://x:1, cache: {{ key: cookie:a, ttl: 0s }} }}
domains:
  - hosts: [a.com]
    backends: [http://127.0.0.1:3000]
    plugins: [geo, nope]
    routes:
      - {{ path_prefix: /x, plugins: [auth, auth] }}
"
    );
    assert_eq!(
        errors(&text),
        [
            "t.yaml:6:45: plugins.both.command: url and command cannot both be set: a plugin is either a running service (url) or a program strait starts (command)",
            "t.yaml:7:12: plugins.neither: missing field `url` or `command`",
            "t.yaml:8:19: plugins.cmd.command: expected the program to run, then its arguments",
            "t.yaml:8:34: plugins.cmd.autostart: expected true or false, found \"yes\"",
            "t.yaml:9:15: plugins.bad.url: unsupported scheme \"https\" in \"https://x:1\": plugins are reached over http://",
            "t.yaml:9:42: plugins.bad.cache.key: expected header:NAME (e.g. header:Authorization), found \"cookie:a\"",
            "t.yaml:9:57: plugins.bad.cache.ttl: ttl must be longer than 0s",
            "t.yaml:13:20: domains[0].plugins[1]: unknown plugin \"nope\", expected one of: auth, geo, both, neither, cmd, bad",
            "t.yaml:15:44: domains[0].routes[0].plugins[1]: plugin \"auth\" is listed twice",
        ]
    );
    assert_eq!(
        errors(
            "listeners: [{ addr: 127.0.0.1:8080 }]
domains:
  - hosts: [a.com]
    backends: [http://127.0.0.1:3000]
    plugins: [auth]
"
        ),
        ["t.yaml:5:15: domains[0].plugins[0]: unknown plugin \"auth\": the file has no `plugins`"]
    );
}
