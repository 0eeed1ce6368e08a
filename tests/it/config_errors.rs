//! `strait -t -c FILE`: exit 0 for a valid file; exit 1 and one `FILE:LINE:COL: field.path:
//! message` line per problem otherwise. Positions are 1-based; a value error points at the
//! value, an unknown or duplicate key at the key, a missing field at its mapping, an
//! environment problem at the `$` of the reference. The exact wording is not pinned, only
//! its key words.

use std::path::Path;

use crate::support::Strait;

/// Asserts the check ran to completion without a panic.
#[track_caller]
fn no_panic(check: &crate::support::Check) {
    assert!(!check.timed_out, "{}", check.describe());
    assert!(
        !check.output().contains("panicked"),
        "strait panicked\n{}",
        check.describe()
    );
}

#[test]
fn valid_config_exits_0() {
    let c = Strait::check(
        "listeners:
  - addr: \"{listen}\"
domains:
  - hosts: [a.test, \"*.a.test\"]
    load_balancer: weighted_round_robin
    backends:
      - { addr: http://127.0.0.1:9001, weight: 3 }
      - { addr: http://127.0.0.1:9002 }
    connect_timeout: 2s
    read_timeout: 30s
    max_retries: 1
    health_check: { type: http, path: /health, interval: 2s, timeout: 1s, fail_threshold: 2, success_threshold: 1 }
    routes:
      - { path_prefix: /ping, respond: { status: 200, body: pong } }
  - hosts: [\"*\"]
    routes:
      - { path_prefix: /, respond: { status: 404, body: nothing here } }
",
    );
    no_panic(&c);
    assert_eq!(c.code, Some(0), "{}", c.describe());
    assert!(c.error_lines().is_empty(), "{}", c.describe());
}

#[test]
fn weight_out_of_range() {
    let c = Strait::check(
        "listeners:
  - addr: \"{listen}\"
domains:
  - hosts: [a.test]
    backends:
      - addr: http://127.0.0.1:9001
      - addr: http://127.0.0.1:9002
        weight: 0
  - hosts: [b.test]
    backends: [{ addr: http://127.0.0.1:9003, weight: 101 }]
",
    );
    no_panic(&c);
    c.assert_error(
        8,
        17,
        "domains[0].backends[1].weight",
        &["weight", "between 1 and 100", "0"],
    );
    c.assert_error(
        10,
        55,
        "domains[1].backends[0].weight",
        &["weight", "between 1 and 100", "101"],
    );
    let lines = c.error_lines();
    assert_eq!(lines.len(), 2, "one line per problem\n{}", c.describe());
    assert!(
        lines[0].contains(":8:17:") && lines[1].contains(":10:55:"),
        "problems in file order: {lines:?}"
    );
}

#[test]
fn unknown_fields_at_every_level() {
    let c = Strait::check(
        "listeners:
  - addr: \"{listen}\"
lisener_typo: 1
domains:
  - hosts: [a.test]
    backend: [{ addr: http://127.0.0.1:9001 }]
    backends:
      - { addr: http://127.0.0.1:9001, wieght: 2 }
    health_check: { type: http, path: /health, intervl: 1s }
",
    );
    no_panic(&c);
    assert_eq!(c.code, Some(1), "{}", c.describe());
    // Top level: no field path, the message names the key and the allowed ones.
    let top = c
        .at(3, 1)
        .unwrap_or_else(|| panic!("no error at 3:1\n{}", c.describe()));
    for word in ["unknown field", "lisener_typo", "listeners", "domains"] {
        assert!(top.contains(word), "{word:?} missing from {top:?}");
    }
    c.assert_error(
        6,
        5,
        "domains[0]",
        &["unknown field", "`backend`", "backends", "expected one of"],
    );
    c.assert_error(
        8,
        40,
        "domains[0].backends[0]",
        &["unknown field", "`wieght`", "weight"],
    );
    c.assert_error(
        9,
        48,
        "domains[0].health_check",
        &["unknown field", "`intervl`", "interval"],
    );
    assert_eq!(c.error_lines().len(), 4, "{}", c.describe());
}

#[test]
fn duplicate_hosts_across_domains() {
    let c = Strait::check(
        "listeners:
  - addr: \"{listen}\"
domains:
  - hosts: [a.test, b.test]
    backends: [{ addr: http://127.0.0.1:9001 }]
  - hosts: [c.test, b.test]
    backends: [{ addr: http://127.0.0.1:9002 }]
  - hosts: [A.TEST]
    backends: [{ addr: http://127.0.0.1:9003 }]
",
    );
    no_panic(&c);
    c.assert_error(6, 21, "domains[1].hosts[1]", &["duplicate host", "b.test"]);
    // Host names are case-insensitive.
    c.assert_error(8, 13, "domains[2].hosts[0]", &["duplicate host", "a.test"]);
}

#[test]
fn missing_environment_variable() {
    let yaml = "listeners:
  - addr: \"{listen}\"
domains:
  - hosts: [a.test]
    backends: [{ addr: \"http://127.0.0.1:${STRAIT_IT_MISSING_PORT}\" }]
    max_retries: ${STRAIT_IT_RETRIES:-1}
";
    let c = Strait::check_env(yaml, &[], &["STRAIT_IT_MISSING_PORT", "STRAIT_IT_RETRIES"]);
    no_panic(&c);
    assert_eq!(c.code, Some(1), "{}", c.describe());
    let msg = c
        .at(5, 42)
        .unwrap_or_else(|| panic!("no error at 5:42 (the `$`)\n{}", c.describe()));
    let lower = msg.to_lowercase();
    assert!(
        lower.contains("environment variable") && msg.contains("STRAIT_IT_MISSING_PORT"),
        "{msg:?}"
    );
    assert_eq!(
        c.error_lines().len(),
        1,
        "a defaulted variable is no error\n{}",
        c.describe()
    );

    // Set, the same file is valid; the default covers the other reference.
    let c = Strait::check_env(
        yaml,
        &[("STRAIT_IT_MISSING_PORT", "9001")],
        &["STRAIT_IT_RETRIES"],
    );
    no_panic(&c);
    assert_eq!(c.code, Some(0), "{}", c.describe());
}

#[test]
fn invalid_values_point_at_the_value() {
    let c = Strait::check(
        "listeners:
  - addr: \"{listen}\"
domains:
  - hosts: [a.test]
    load_balancer: fastest
    backends: [{ addr: ftp://127.0.0.1:9001 }]
    read_timeout: 10 parsecs
    health_check: { type: http, path: /health, interval: soon }
",
    );
    no_panic(&c);
    c.assert_error(
        5,
        20,
        "domains[0].load_balancer",
        &["fastest", "round_robin", "least_connections"],
    );
    c.assert_error(6, 24, "domains[0].backends[0].addr", &["ftp"]);
    c.assert_error(
        7,
        19,
        "domains[0].read_timeout",
        &["duration", "10 parsecs"],
    );
    c.assert_error(
        8,
        58,
        "domains[0].health_check.interval",
        &["duration", "soon"],
    );
}

#[test]
fn missing_backend_addr_points_at_its_mapping() {
    let c = Strait::check(
        "listeners:
  - addr: \"{listen}\"
domains:
  - hosts: [a.test]
    backends: [{ addr: http://127.0.0.1:9001 }, { weight: 2 }]
",
    );
    no_panic(&c);
    c.assert_error(5, 49, "domains[0].backends[1]", &["missing field", "addr"]);
}

#[test]
fn duplicate_yaml_key() {
    let c = Strait::check(
        "listeners:
  - addr: \"{listen}\"
domains:
  - hosts: [a.test]
    backends: [{ addr: http://127.0.0.1:9001 }]
    hosts: [b.test]
",
    );
    no_panic(&c);
    c.assert_error(6, 5, "domains[0]", &["duplicate", "hosts"]);
}

#[test]
fn yaml_syntax_error() {
    let c = Strait::check(
        "listeners:
  - addr: \"{listen}\"
domains:
  - hosts: [a.test]
    load_balancer: round_robin: x
",
    );
    no_panic(&c);
    assert_eq!(c.code, Some(1), "{}", c.describe());
    let msg = c
        .at(5, 31)
        .unwrap_or_else(|| panic!("no error at 5:31 (the second `:`)\n{}", c.describe()));
    assert!(msg.to_lowercase().contains("yaml"), "{msg:?}");
}

#[test]
fn shipped_configs_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut files = vec![root.join("strait.yaml")];
    if let Ok(dir) = std::fs::read_dir(root.join("examples")) {
        let mut examples: Vec<_> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        examples.sort();
        files.extend(examples);
    }
    for file in files {
        let c = Strait::check_file(&file, Path::new(env!("CARGO_MANIFEST_DIR")));
        no_panic(&c);
        assert_eq!(
            c.code,
            Some(0),
            "{} does not validate\n{}",
            file.display(),
            c.describe()
        );
    }
}

#[test]
fn bad_compress_values_point_at_the_value() {
    let c = Strait::check(
        "listeners:
  - addr: \"{listen}\"
domains:
  - hosts: [a.test]
    backends: [{ addr: http://127.0.0.1:9001 }]
    compress: { algorithms: [lzma], types: [text] }
",
    );
    no_panic(&c);
    c.assert_error(
        6,
        30,
        "domains[0].compress.algorithms[0]",
        &["unknown algorithm", "lzma", "zstd, br, gzip"],
    );
    c.assert_error(
        6,
        45,
        "domains[0].compress.types[0]",
        &["bad media type", "text"],
    );
}
