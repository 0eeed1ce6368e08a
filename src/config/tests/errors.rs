//! Files that do not load: each problem's exact line, column, path and message.

use super::*;

#[test]
fn unknown_fields() {
    assert_eq!(
        errors(&format!("{MINIMAL}extra: 1\n")),
        ["t.yaml:6:1: unknown field `extra`, expected one of: server, listeners, admin, probe, logging, acme, tracing, cache, include, plugins, cluster, domains"]
    );
    assert_eq!(
        errors(&format!("server:\n  threds: 2\n{MINIMAL}")),
        ["t.yaml:2:3: server: unknown field `threds`, expected one of: threads, pid_file, upgrade_sock, grace_period, shutdown_timeout, drain_delay, keepalive_timeout, user, group, trusted_proxies, request_header_timeout, max_header_bytes, max_buffered_bytes, max_connections, watch"]
    );
    let text = "\
listeners:
  - addr: 127.0.0.1:8080
    tls: { certs: [{ cert: a.pem, key: a.key, chain: c.pem }] }
domains:
  - hosts: [a.com]
    backends: [{ addr: http://127.0.0.1:3000, wieght: 2 }]
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:3:47: listeners[0].tls.certs[0]: unknown field `chain`, expected one of: cert, key",
            "t.yaml:6:47: domains[0].backends[0]: unknown field `wieght`, expected one of: addr, weight, max_connections",
        ]
    );
}

#[test]
fn bad_durations_and_sizes() {
    assert_eq!(
        errors(&format!(
            "server:\n  grace_period: 30\n  shutdown_timeout: abc\n{MINIMAL}"
        )),
        [
            r#"t.yaml:2:17: server.grace_period: expected a duration like 10s, found "30" (add a unit, e.g. 10s)"#,
            r#"t.yaml:3:21: server.shutdown_timeout: expected a duration like 10s, found "abc""#,
        ]
    );
    assert_eq!(
        errors(&format!("cache:\n  max_bytes: 12XB\n  max_entry_bytes: [1]\n  precompress: {{ min_bytes: -5 }}\n{MINIMAL}")),
        [
            r#"t.yaml:2:14: cache.max_bytes: expected a size like 64KiB, found "12XB" (units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"#,
            "t.yaml:3:20: cache.max_entry_bytes: expected a size like 64KiB, found a list",
            r#"t.yaml:4:29: cache.precompress.min_bytes: a size cannot be negative, found "-5""#,
        ]
    );
}

#[test]
fn backend_weights() {
    let text = "\
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    backends:
      - { addr: http://127.0.0.1:3000, weight: 0 }
      - { addr: http://127.0.0.1:3001, weight: 101 }
      - { addr: http://127.0.0.1:3002, weight: 100 }
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:6:48: domains[0].backends[0].weight: weight must be between 1 and 100, found 0",
            "t.yaml:7:48: domains[0].backends[1].weight: weight must be between 1 and 100, found 101",
        ]
    );
}

#[test]
fn duplicate_host_across_domains() {
    let text = "\
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com, '*.a.com']
    backends: [http://127.0.0.1:3000]
  - hosts: [b.com, A.com, '*.A.COM']
    backends: [http://127.0.0.1:3001]
";
    assert_eq!(
        errors(text),
        [
            r#"t.yaml:6:20: domains[1].hosts[1]: duplicate host "a.com" (first at line 4)"#,
            r#"t.yaml:6:27: domains[1].hosts[2]: duplicate host "*.a.com" (first at line 4)"#,
        ]
    );
}

#[test]
fn bad_backend_addresses() {
    let text = "\
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    backends:
      - http://127.0.0.1:3000
      - { addr: 'http://' }
      - { addr: ftp://files.internal }
      - 127.0.0.1:3001
      - http://127.0.0.1:3000/
";
    assert_eq!(
        errors(text),
        [
            r#"t.yaml:7:17: domains[0].backends[1].addr: missing host in "http://""#,
            r#"t.yaml:8:17: domains[0].backends[2].addr: unsupported scheme "ftp" in "ftp://files.internal", expected http, https or h2c"#,
            r#"t.yaml:9:9: domains[0].backends[3]: expected a URL like http://127.0.0.1:3000, found "127.0.0.1:3001" (missing http://, https:// or h2c://)"#,
            "t.yaml:10:9: domains[0].backends[4]: duplicate backend http://127.0.0.1:3000/ (first at line 6)",
        ]
    );
}

#[test]
fn environment_variables() {
    let text = "\
listeners:
  - addr: 127.0.0.1:${NOPE}
  - { addr: '127.0.0.1:${PORT}', bogus: 1 }  # ${ALSO_NOPE:-fine}
domains:
  - hosts: [a.com]
    backends: [http://127.0.0.1:3000]
";
    // Only the missing variable is reported: the rest of the line is not what was written.
    assert_eq!(
        errors(text),
        ["t.yaml:2:21: environment variable NOPE is not set"]
    );
    // With the variable set, the error after the expansion is still at its written column.
    let text = text.replace("${NOPE}", "${NOPE:-8080}");
    assert_eq!(
        errors(&text),
        ["t.yaml:3:34: listeners[1]: unknown field `bogus`, expected one of: addr, name, tls, http2, tcp, plugins"]
    );
    let text = text.replace(", bogus: 1", "");
    let c = ok(&text);
    assert_eq!(c.listeners[1].addr, "127.0.0.1:8081".parse().unwrap());
    assert_eq!(c.listeners[1].pos, Pos { line: 3, col: 13 });
}

#[test]
fn yaml_syntax_error() {
    let text = "listeners:\n  - addr: 127.0.0.1:8080\n   bad: 1\ndomains: []\n";
    assert_eq!(
        errors(text),
        ["t.yaml:3:7: invalid YAML: while parsing a block collection, did not find expected '-' indicator"]
    );
    assert_eq!(
        errors("listeners: [1, 2\n"),
        ["t.yaml:2:1: invalid YAML: while parsing a flow sequence, expected ',' or ']'"]
    );
}

#[test]
fn duplicate_yaml_keys() {
    let text = format!("{MINIMAL}listeners:\n  - addr: 127.0.0.1:9\n");
    assert_eq!(
        errors(&text),
        ["t.yaml:6:1: duplicate key `listeners` (first at line 1)"]
    );
}

#[test]
fn wrong_types() {
    let text = "\
server:
  threads: \"2\"
listeners: 127.0.0.1:8080
logging: { level: loud, access_log: [x] }
domains:
  - hosts: a.com
    preserve_host: yes
    backends: [http://127.0.0.1:3000]
";
    assert_eq!(
        errors(text),
        [
            r#"t.yaml:2:12: server.threads: expected an integer, found "2""#,
            r#"t.yaml:3:12: listeners: expected a list, found "127.0.0.1:8080""#,
            r#"t.yaml:4:19: logging.level: unknown value "loud", expected one of: off, error, warn, info, debug, trace"#,
            "t.yaml:4:37: logging.access_log: expected a string, found a list",
            r#"t.yaml:6:12: domains[0].hosts: expected a list, found "a.com""#,
            r#"t.yaml:7:20: domains[0].preserve_host: expected true or false, found "yes""#,
        ]
    );
    assert_eq!(
        errors("- a\n- b\n"),
        ["t.yaml:1:1: expected a mapping, found a list"]
    );
}

#[test]
fn missing_sections() {
    assert_eq!(
        errors("domains:\n  - hosts: [a.com]\n"),
        ["t.yaml:1:1: missing field `listeners`"]
    );
    assert_eq!(
        errors("# nothing yet\n"),
        [
            "t.yaml:1:1: missing field `listeners`",
            "t.yaml:1:1: missing field `domains`",
        ]
    );
    assert_eq!(
        errors("listeners: []\ndomains: []\n"),
        [
            "t.yaml:1:12: listeners: at least one listener is required",
            "t.yaml:2:10: domains: at least one domain is required",
        ]
    );
    assert_eq!(
        errors("listeners:\n  - tls: { http2: true }\ndomains:\n  - backends: []\n"),
        [
            "t.yaml:2:5: listeners[0]: missing field `addr`",
            "t.yaml:2:10: listeners[0].tls: tls needs `certs`, `cert_dir` or `acme`",
            "t.yaml:4:5: domains[0]: missing field `hosts`",
        ]
    );
}

#[test]
fn admin_token() {
    assert_eq!(
        errors(&format!("{MINIMAL}admin:\n  addr: 0.0.0.0:9900\n")),
        ["t.yaml:7:3: admin.token: required when admin.addr is not a loopback address"]
    );
    assert_eq!(
        errors(&format!(
            "{MINIMAL}admin:\n  addr: '[::]:9900'\n  token: ''\n"
        )),
        ["t.yaml:8:10: admin.token: required when admin.addr is not a loopback address"]
    );
    let c = ok(&format!(
        "{MINIMAL}admin:\n  addr: '[::1]:9900'\n  token: ${{NONE:-}}\n"
    ));
    let admin = c.admin.unwrap();
    assert_eq!(admin.token, None);
    assert_eq!(admin.pos, Pos { line: 7, col: 9 });
    let c = ok(&format!(
        "{MINIMAL}admin:\n  addr: 10.0.0.1:9900\n  token: 12345\n"
    ));
    assert_eq!(c.admin.unwrap().token.as_deref(), Some("12345"));
}

#[test]
fn addresses() {
    let text = "\
listeners:
  - addr: 0.0.0.0:8080
  - addr: 127.0.0.1:8080
  - addr: localhost:8081
  - addr: '[::]:8080'
  - addr: 10.0.0.1
admin: { addr: 127.0.0.1:9900 }
probe: { addr: 127.0.0.1:9900 }
domains:
  - hosts: ['*']
    backends: [http://127.0.0.1:3000]
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:3:11: listeners[1].addr: address 127.0.0.1:8080 overlaps 0.0.0.0:8080 (listeners[0].addr, line 2)",
            r#"t.yaml:4:11: listeners[2].addr: expected IP:port like 0.0.0.0:8080, found "localhost:8081" (use an IP address, not a host name)"#,
            r#"t.yaml:6:11: listeners[4].addr: expected IP:port like 0.0.0.0:8080, found "10.0.0.1" (missing :port)"#,
            "t.yaml:8:16: probe.addr: duplicate address 127.0.0.1:9900 (first at line 7, admin.addr)",
        ]
    );
}

#[test]
fn errors_are_all_reported_in_file_order() {
    let text = "\
server:
  threads: 0
listeners:
  - addr: 127.0.0.1:8080
admin: { addr: 0.0.0.0:9900 }
domains:
  - hosts: [a.com, 'a.com:8080']
    load_balancer: fastest
    backends:
      - { addr: http://127.0.0.1:3000, weight: 0 }
    health_check: { type: tcp, path: /health, interval: 1s, timeout: 2s }
    routes:
      - { path_prefix: api, respond: { status: 700 } }
      - { path_prefix: /x, respond: {}, backends: [http://127.0.0.1:1] }
  - hosts: [A.com]
    cache: true
  - hosts: [b.com]
    routes:
      - path_prefix: /
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:2:12: server.threads: threads must be between 1 and 1024, found 0",
            "t.yaml:5:8: admin.token: required when admin.addr is not a loopback address",
            r#"t.yaml:7:20: domains[0].hosts[1]: a host cannot have a port (hosts match on the name only), found "a.com:8080""#,
            r#"t.yaml:8:20: domains[0].load_balancer: unknown value "fastest", expected one of: round_robin, weighted_round_robin, least_connections, ip_hash, random, consistent_hash, least_latency"#,
            "t.yaml:10:48: domains[0].backends[0].weight: weight must be between 1 and 100, found 0",
            "t.yaml:11:38: domains[0].health_check.path: path is only used with type: http",
            "t.yaml:11:70: domains[0].health_check.timeout: timeout (2s) must not be longer than interval (1s)",
            r#"t.yaml:13:24: domains[0].routes[0].path_prefix: path_prefix must start with /, found "api""#,
            "t.yaml:13:48: domains[0].routes[0].respond.status: status must be between 100 and 599, found 700",
            "t.yaml:14:37: domains[0].routes[1].respond: respond cannot be combined with `backends`",
            r#"t.yaml:15:13: domains[1].hosts[0]: duplicate host "a.com" (first at line 7)"#,
            "t.yaml:19:9: domains[2].routes[0]: no backends (the domain has none)",
        ]
    );
}

#[test]
fn option_and_header_conflicts() {
    let text = "\
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    backends: []
    preserve_host: true
    host_header: b.internal
    max_retries: 11
    headers:
      request: { set: { 'Bad Name': x, X-Ok: \"a\\nb\" }, remove: [X-Ok, 'x:y'] }
    rate_limit: { requests: 0, per: 0s, key: cookie }
    routes:
      - { path_prefix: /a/ }
      - { path_prefix: /a/, connect_timeout: 0s }
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:7:18: domains[0].host_header: host_header cannot be combined with preserve_host: true",
            "t.yaml:8:18: domains[0].max_retries: max_retries must be between 0 and 10, found 11",
            r#"t.yaml:10:25: domains[0].headers.request.set: invalid header name "Bad Name": use letters, digits and !#$%&'*+-.^_`|~"#,
            "t.yaml:10:46: domains[0].headers.request.set.X-Ok: invalid header value: only visible ASCII characters, spaces and tabs are allowed",
            r#"t.yaml:10:71: domains[0].headers.request.remove[1]: invalid header name "x:y": use letters, digits and !#$%&'*+-.^_`|~"#,
            "t.yaml:11:29: domains[0].rate_limit.requests: requests must be between 1 and 4294967295, found 0",
            "t.yaml:11:37: domains[0].rate_limit.per: per must be longer than 0s",
            r#"t.yaml:11:46: domains[0].rate_limit.key: unknown value "cookie", expected one of: client_ip, route, header:NAME"#,
            r#"t.yaml:14:9: domains[0].routes[1]: duplicate route "/a/" (first at line 13): the second could never match"#,
            "t.yaml:14:46: domains[0].routes[1].connect_timeout: connect_timeout must be longer than 0s",
        ]
    );
}

#[test]
fn cache_settings_validation() {
    let text = "\
cache:
  max_bytes: 1MiB
  max_entry_bytes: 2MiB
  precompress: { level: 10 }
  rules:
    - { path_prefix: /a/, methods: [get, BREW], statuses: [99], max_entry_bytes: 4MiB }
    - { ttl: 1m }
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    backends: []
    cache: { max_bytes: 1KiB, enabled: true }
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:3:20: cache.max_entry_bytes: max_entry_bytes (2MiB) must not exceed max_bytes (1MiB)",
            "t.yaml:4:25: cache.precompress.level: level must be between 1 and 9, found 10",
            r#"t.yaml:6:42: cache.rules[0].methods[1]: unknown method "BREW", expected one of: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, CONNECT, TRACE"#,
            "t.yaml:6:60: cache.rules[0].statuses[0]: status must be between 100 and 599, found 99",
            "t.yaml:6:82: cache.rules[0].max_entry_bytes: max_entry_bytes (4MiB) must not exceed the cache's max_bytes (1MiB)",
            "t.yaml:7:7: cache.rules[1]: missing field `path_prefix`",
            "t.yaml:13:25: domains[0].cache.max_bytes: max_entry_bytes (2MiB) must not exceed max_bytes (1KiB)",
            "t.yaml:13:31: domains[0].cache: unknown field `enabled`, expected one of: max_bytes, max_entries, max_entry_bytes, default_ttl, max_ttl, stale_while_revalidate, stale_if_error, precompress, rules, forward_targeted_cache_control",
        ]
    );
    assert_eq!(
        errors(&format!(
            "cache:\n  forward_targeted_cache_control: yes\n{MINIMAL}"
        )),
        [
            r#"t.yaml:2:35: cache.forward_targeted_cache_control: expected true or false, found "yes""#
        ]
    );
}

#[test]
fn byte_order_mark_and_crlf_do_not_shift_positions() {
    let text = format!("\u{feff}{}", MINIMAL.replace('\n', "\r\n")) + "bogus: ${PORT}\r\n";
    assert_eq!(
        errors(&text),
        ["t.yaml:6:1: unknown field `bogus`, expected one of: server, listeners, admin, probe, logging, acme, tracing, cache, include, plugins, cluster, domains"]
    );
    assert_eq!(
        errors("~\n"),
        [
            "t.yaml:1:1: missing field `listeners`",
            "t.yaml:1:1: missing field `domains`",
        ]
    );
}

#[test]
fn host_and_health_check_details() {
    let text = "\
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: ['a**b.co', '', 'x y']
    backends: []
    health_check: { type: udp, path: health, interval: 1s }
";
    assert_eq!(
        errors(text),
        [
            r#"t.yaml:4:13: domains[0].hosts[0]: `**` must be a whole label (`api.**.example.com`), found "a**b.co""#,
            "t.yaml:4:24: domains[0].hosts[1]: a host cannot be empty",
            r#"t.yaml:4:28: domains[0].hosts[2]: a host cannot contain spaces, found "x y""#,
            r#"t.yaml:6:27: domains[0].health_check.type: unknown value "udp", expected one of: http, tcp"#,
            r#"t.yaml:6:38: domains[0].health_check.path: path must start with /, found "health""#,
            "t.yaml:6:56: domains[0].health_check.interval: timeout (2s) must not be longer than interval (1s)",
        ]
    );
}

#[test]
fn resilience_keys() {
    let text = "\
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    backends: [http://127.0.0.1:3000]
    load_balancer: round_robin
    passive_health: { consecutive_failures: 0, ejection_time: 1m, max_ejection_time: 10s, max_ejected_percent: 101 }
    hash_key: { header: X-User }
    sticky: { cookie: \"bad name\", same_site: sometimes }
    retry_budget: { percent: -1 }
  - hosts: [b.com]
    backends: [http://127.0.0.1:3000]
    load_balancer: consistent_hash
    hash_key: { header: X-User, cookie: sid }
    passive_health: maybe
    buffer_request_body: 1MiB
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:7:45: domains[0].passive_health.consecutive_failures: consecutive_failures must be between 1 and 1000, found 0",
            "t.yaml:7:86: domains[0].passive_health.max_ejection_time: max_ejection_time must not be shorter than ejection_time",
            "t.yaml:7:112: domains[0].passive_health.max_ejected_percent: max_ejected_percent must be between 0 and 100, found 101",
            "t.yaml:8:15: domains[0].hash_key: hash_key is only used with load_balancer: consistent_hash",
            r#"t.yaml:9:23: domains[0].sticky.cookie: expected a cookie name, found "bad name""#,
            r#"t.yaml:9:46: domains[0].sticky.same_site: unknown value "sometimes", expected one of: lax, strict, none"#,
            "t.yaml:10:30: domains[0].retry_budget.percent: percent must be between 0 and 1000, found -1",
            "t.yaml:14:15: domains[1].hash_key: hash_key needs exactly one of: header, cookie, query, path: true, client_ip: true",
            r#"t.yaml:15:21: domains[1].passive_health: expected true or false, found "maybe""#,
            "t.yaml:16:26: domains[1].buffer_request_body: buffer_request_body must be at most 64KiB (the request body Pingora can replay), found 1MiB",
        ]
    );
}

#[test]
fn drop_excludes_other_answers() {
    let text = "\
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    drop: true
    respond: { status: 200 }
  - hosts: [b.com]
    drop: maybe
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:5:11: domains[0].drop: drop cannot be combined with `respond`",
            r#"t.yaml:8:11: domains[1].drop: expected true or false, found "maybe""#,
        ]
    );
}

#[test]
fn listener_scopes() {
    let text = "\
listeners:
  - { name: web, addr: 127.0.0.1:8080 }
  - { name: web, addr: 127.0.0.1:8081 }
  - { name: \"bad name\", addr: 127.0.0.1:8082 }
domains:
  - hosts: [a.com]
    listeners: [web, nope]
    backends: []
  - hosts: [a.com]
    backends: []
";
    assert_eq!(
        errors(text),
        [
            r#"t.yaml:3:13: listeners[1].name: duplicate listener name "web""#,
            r#"t.yaml:4:13: listeners[2].name: a listener name is letters, digits, - and _, found "bad name""#,
            r#"t.yaml:7:22: domains[0].listeners[1]: unknown listener "nope", expected one of: web"#,
            r#"t.yaml:9:13: domains[1].hosts[0]: duplicate host "a.com" (first at line 6)"#,
        ]
    );
}

#[test]
fn error_log_values() {
    let text = format!("logging:\n  error_log: [a]\n  error_log_level: loud\n{MINIMAL}");
    assert_eq!(
        errors(&text),
        [
            "t.yaml:2:14: logging.error_log: expected a string, found a list",
            r#"t.yaml:3:20: logging.error_log_level: unknown value "loud", expected one of: off, error, warn, info, debug, trace"#,
        ]
    );
    assert_eq!(
        errors(&format!("logging:\n  error_log: \"\"\n{MINIMAL}")),
        ["t.yaml:2:14: logging.error_log: expected a file path, found an empty string"]
    );
    assert_eq!(
        errors(&format!("logging:\n  error_log: \"-\"\n{MINIMAL}")),
        ["t.yaml:2:14: logging.error_log: expected a file path; the console is already stderr (`-` is only for access_log)"]
    );
}

#[test]
fn watch_values() {
    assert_eq!(
        errors(&format!("server:\n  watch: yes\n{MINIMAL}")),
        [r#"t.yaml:2:10: server.watch: expected true or false, found "yes""#]
    );
}

#[test]
fn access_log_format_values() {
    assert_eq!(
        errors(&format!("logging:\n  access_log_format: apache\n{MINIMAL}")),
        [
            r#"t.yaml:2:22: logging.access_log_format: unknown value "apache", expected one of: json, combined"#
        ]
    );
}

#[test]
fn domain_access_log_values() {
    let text = "\
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    backends: [http://127.0.0.1:3000]
    access_log: [x]
    access_log_global: no
  - hosts: [b.com]
    backends: [http://127.0.0.1:3000]
    access_log_global: false
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:6:17: domains[0].access_log: expected a string, found a list",
            r#"t.yaml:7:24: domains[0].access_log_global: expected true or false, found "no""#,
            "t.yaml:10:24: domains[1].access_log_global: access_log_global: false needs an `access_log` (these requests would be logged nowhere)",
        ]
    );
}

#[test]
fn bad_compress_settings() {
    let text = "\
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    backends: [http://127.0.0.1:3000]
    compress: { algorithms: [br, deflate, br], min_bytes: 2GiB, types: [text, \"*/json\", text/*+] }
    routes:
      - { path_prefix: /a, compress: { algorithms: [], types: [] } }
      - { path_prefix: /b, compress: yes please }
      - { path_prefix: /c, compress: { level: 5 } }
";
    assert_eq!(
        errors(text),
        [
            r#"t.yaml:6:34: domains[0].compress.algorithms[1]: unknown algorithm "deflate", expected one of: zstd, br, gzip"#,
            r#"t.yaml:6:43: domains[0].compress.algorithms[2]: "br" is listed twice"#,
            "t.yaml:6:59: domains[0].compress.min_bytes: min_bytes (2GiB) must be at most 1GiB (`compress: false` turns compression off)",
            r#"t.yaml:6:73: domains[0].compress.types[0]: bad media type "text": expected type/subtype, type/* or */* (like text/*)"#,
            r#"t.yaml:6:79: domains[0].compress.types[1]: bad media type "*/json": a `*` type needs a `*` subtype (*/*)"#,
            r#"t.yaml:6:89: domains[0].compress.types[2]: bad media type "text/*+": "*+" is not a subtype, `*` or `*+suffix`"#,
            "t.yaml:8:52: domains[0].routes[0].compress.algorithms: expected at least one of zstd, br, gzip (`compress: false` turns compression off)",
            "t.yaml:8:63: domains[0].routes[0].compress.types: expected at least one media type (`compress: false` turns compression off)",
            r#"t.yaml:9:38: domains[0].routes[1].compress: expected true, false or a mapping, found "yes please""#,
            "t.yaml:10:40: domains[0].routes[2].compress: unknown field `level`, expected one of: algorithms, min_bytes, types",
        ]
    );
}

#[test]
fn bad_acme_settings() {
    let text = "\
acme:
  directory: ftp://acme.example/dir
  email: ops-at-example.com
  renew_before: 0s
  reneww: 1d
listeners:
  - addr: 127.0.0.1:8443
    tls: { acme: [a.example.com, \"*.example.com\", 10.0.0.1, A.example.com, localhost] }
domains:
  - hosts: [a.com]
    backends: [http://127.0.0.1:3000]
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:2:14: acme.directory: expected an https:// URL of an ACME directory, found \"ftp://acme.example/dir\"",
            "t.yaml:3:10: acme.email: expected an e-mail address like ops@example.com, found \"ops-at-example.com\"",
            "t.yaml:4:17: acme.renew_before: renew_before must be longer than 0s",
            "t.yaml:5:3: acme: unknown field `reneww`, expected one of: directory, email, storage, ca_roots, renew_before",
            "t.yaml:8:34: listeners[0].tls.acme[1]: expected a DNS name like example.com (no wildcards, no IP addresses), found \"*.example.com\"",
            "t.yaml:8:51: listeners[0].tls.acme[2]: expected a DNS name like example.com (no wildcards, no IP addresses), found \"10.0.0.1\"",
            "t.yaml:8:61: listeners[0].tls.acme[3]: a.example.com is listed twice",
            "t.yaml:8:76: listeners[0].tls.acme[4]: expected a DNS name like example.com (no wildcards, no IP addresses), found \"localhost\"",
        ]
    );
    // ACME hosts need the account section.
    let text = "\
listeners:
  - addr: 127.0.0.1:8443
    tls: { acme: [a.example.com] }
domains:
  - hosts: [a.com]
    backends: [http://127.0.0.1:3000]
";
    assert_eq!(
        errors(text),
        ["t.yaml:3:10: listeners[0].tls.acme: ACME hosts need the top-level `acme` section (directory, email, storage)"]
    );
}

#[test]
fn cluster_settings() {
    let text = "\
cluster:
  nodes: 0
  redis: { url: http://127.0.0.1:6379, timeout: 0s, pool: 4 }
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    rate_limit: { requests: 10, per: 1s, scope: global }
    routes: [{ path_prefix: /, respond: { status: 204 } }]
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:2:10: cluster.nodes: nodes must be between 1 and 10000, found 0",
            r#"t.yaml:3:17: cluster.redis.url: expected a URL like redis://127.0.0.1:6379/0, found "http://127.0.0.1:6379""#,
            "t.yaml:3:49: cluster.redis.timeout: timeout must be longer than 0s",
            "t.yaml:3:53: cluster.redis: unknown field `pool`, expected one of: url, timeout",
            r#"t.yaml:8:49: domains[0].rate_limit.scope: unknown value "global", expected one of: local, cluster"#,
        ]
    );
    // A cluster limit needs somewhere to count; TLS to Redis is not built in.
    let text = "\
cluster: { redis: { url: \"rediss://127.0.0.1:6379\" } }
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    rate_limit: { requests: 10, per: 1s, scope: cluster }
    routes: [{ path_prefix: /, respond: { status: 204 } }]
";
    assert_eq!(
        errors(text),
        [
            r#"t.yaml:1:26: cluster.redis.url: unsupported scheme "rediss", expected redis:// (no TLS to Redis)"#,
            "t.yaml:6:49: domains[0].rate_limit.scope: scope: cluster needs cluster.redis (where the nodes count together)",
        ]
    );
}

#[test]
fn dns_discovery_settings() {
    let text = "\
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    backends: [http://127.0.0.1:3000]
    discovery: { dns: { name: \"bad name!\", port: 0, interval: 0s, resolver: nowhere, ttl: 5 } }
  - hosts: [b.com]
    discovery: { consul: {} }
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:5:15: domains[0].backends: backends cannot be combined with discovery.dns, which fills the pool",
            r#"t.yaml:6:31: domains[0].discovery.dns.name: expected a DNS name like api.service.internal, found "bad name!""#,
            "t.yaml:6:50: domains[0].discovery.dns.port: port must be between 1 and 65535, found 0",
            "t.yaml:6:63: domains[0].discovery.dns.interval: interval must be longer than 0s",
            r#"t.yaml:6:77: domains[0].discovery.dns.resolver: expected IP:port like 0.0.0.0:8080, found "nowhere" (missing :port)"#,
            "t.yaml:6:86: domains[0].discovery.dns: unknown field `ttl`, expected one of: name, port, interval, resolver",
            "t.yaml:8:16: domains[1].discovery: expected `dns` or `etcd`: where the backends come from",
            "t.yaml:8:18: domains[1].discovery: unknown field `consul`, expected one of: dns, etcd",
        ]
    );
}

#[test]
fn cluster_etcd_and_discovery() {
    let text = "\
cluster:
  etcd:
    endpoints: [127.0.0.1:2379, \"http://e:1/v3\", https://e:2379]
    prefix: strait
    username: root
    node_name: a/b
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    discovery: { etcd: { prefix: \"/services/a b/\" } }
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:3:5: cluster.etcd: `username` and `password` go together: `password` is missing",
            r#"t.yaml:3:16: cluster.etcd.endpoints: "https://e:2379" is https://: add `tls` (at least `tls: {}`) to say how to trust etcd"#,
            r#"t.yaml:3:17: cluster.etcd.endpoints[0]: expected an etcd URL like http://127.0.0.1:2379, found "127.0.0.1:2379""#,
            r#"t.yaml:3:33: cluster.etcd.endpoints[1]: an etcd endpoint is a scheme, host and port only (like http://127.0.0.1:2379), found "http://e:1/v3""#,
            r#"t.yaml:4:13: cluster.etcd.prefix: expected a key prefix starting with `/`, like /strait/, found "strait""#,
            r#"t.yaml:6:16: cluster.etcd.node_name: expected a name without `/` or control characters, found "a/b""#,
            r#"t.yaml:11:34: domains[0].discovery.etcd.prefix: a key prefix cannot hold spaces or control characters, found "/services/a b/""#,
        ]
    );
    // Discovery through etcd needs the connection; tls needs both halves of an identity.
    let text = "\
cluster:
  etcd: { endpoints: [https://e:2379], tls: { cert: c.pem } }
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    discovery: { etcd: { prefxi: /s/ } }
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:2:45: cluster.etcd.tls: `cert` and `key` go together: `key` is missing",
            "t.yaml:7:24: domains[0].discovery.etcd: missing field `prefix`",
            "t.yaml:7:26: domains[0].discovery.etcd: unknown field `prefxi`, expected one of: prefix",
        ]
    );
    let text = "\
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    discovery: { etcd: { prefix: /s/ } }
";
    assert_eq!(
        errors(text),
        ["t.yaml:5:24: domains[0].discovery.etcd: etcd discovery needs `cluster.etcd` (the connection to etcd)"]
    );
    let text = "\
cluster: { etcd: { endpoints: [] } }
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    backends: []
";
    assert_eq!(
        errors(text),
        ["t.yaml:1:31: cluster.etcd.endpoints: at least one etcd endpoint is required"]
    );
}

#[test]
fn tcp_listeners_and_pass_domains() {
    // A `pass` domain needs a TLS listener; HTTP-only keys beside `tcp` and `pass`.
    let text = "\
listeners:
  - { name: web, addr: 127.0.0.1:8080 }
  - name: db
    addr: 127.0.0.1:5432
    http2: true
    tcp: { backends: [10.0.0.5:5432] }
domains:
  - hosts: [legacy.example.com]
    listeners: [web]
    pass: { backends: [10.0.0.9:443] }
  - hosts: [both.example.com]
    backends: [http://127.0.0.1:3000]
    pass: { backends: [10.0.0.9:443] }
  - hosts: [a.example.com]
    listeners: [db]
    respond: { body: x }
";
    assert_eq!(
        errors(text),
        [
            "t.yaml:5:12: listeners[1].http2: `http2` cannot be used with `tcp`: a tcp listener relays bytes and serves no HTTP",
            r#"t.yaml:10:11: domains[0].pass: listener "web" has no `tls`: pass relays TLS connections by their SNI, so it needs a TLS listener"#,
            "t.yaml:12:15: domains[1].backends: `backends` cannot be used with `pass`: strait relays this domain's TLS connections and never sees its requests",
            "t.yaml:13:11: domains[1].pass: no listener has `tls`: pass relays TLS connections by their SNI, so it needs a TLS listener",
            r#"t.yaml:15:17: domains[2].listeners[0]: listener "db" relays TCP (`tcp`): no domain answers on it"#,
        ]
    );
}

#[test]
fn bad_tcp_and_pass_values() {
    let text = "\
listeners:
  - addr: 127.0.0.1:5432
    tcp:
      backends: [10.0.0.5, \"http://10.0.0.6:80\", 10.0.0.7:0, 10.0.0.8:1, 10.0.0.8:1]
      load_balancer: fastest
      health_check: { type: http, interval: 5s }
      connect_timeout: 0s
      idle_timeout: soon
      max_retries: 11
      proxy_protocol: v1
      read_timeout: 5s
  - addr: 127.0.0.1:5433
    tcp: { backends: [] }
domains:
  - hosts: [a.com]
    respond: { body: x }
";
    assert_eq!(
        errors(text),
        [
            r#"t.yaml:4:18: listeners[0].tcp.backends[0]: missing port in "10.0.0.5", expected host:port"#,
            r#"t.yaml:4:28: listeners[0].tcp.backends[1]: a tcp or pass backend is host:port (or tcp://host:port), found http:// in "http://10.0.0.6:80""#,
            r#"t.yaml:4:50: listeners[0].tcp.backends[2]: invalid port "0" in "10.0.0.7:0", expected 1-65535"#,
            "t.yaml:4:74: listeners[0].tcp.backends[4]: duplicate backend 10.0.0.8:1 (first at line 4)",
            r#"t.yaml:5:22: listeners[0].tcp.load_balancer: unknown value "fastest", expected one of: round_robin, weighted_round_robin, least_connections, ip_hash, random, consistent_hash, least_latency"#,
            "t.yaml:6:21: listeners[0].tcp.health_check.type: a tcp or pass pool is checked by connecting: type must be tcp",
            "t.yaml:7:24: listeners[0].tcp.connect_timeout: connect_timeout must be longer than 0s",
            r#"t.yaml:8:21: listeners[0].tcp.idle_timeout: expected a duration like 10s, found "soon""#,
            "t.yaml:9:20: listeners[0].tcp.max_retries: max_retries must be between 0 and 10, found 11",
            r#"t.yaml:10:23: listeners[0].tcp.proxy_protocol: unknown value "v1", expected one of: v2"#,
            "t.yaml:11:7: listeners[0].tcp: unknown field `read_timeout`, expected one of: backends, load_balancer, health_check, connect_timeout, idle_timeout, max_retries, proxy_protocol",
            "t.yaml:13:22: listeners[1].tcp.backends: at least one backend is required",
        ]
    );
}
