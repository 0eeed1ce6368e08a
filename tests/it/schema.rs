//! `strait config schema`: the JSON Schema validates every shipped config and rejects a wrong
//! key, judged by a standard validator (Python's `jsonschema`, Draft 2020-12; `.ci/run`
//! installs it) rather than by strait's own loader, so the schema is checked as editors use it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::strait::{bin, temp_dir};
use crate::support::wait::exit_within;

/// Validates each file against the schema; prints `ok` or `invalid: path: message` per file.
const VALIDATE: &str = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
for name in sys.argv[2:]:
    errors = list(validator.iter_errors(yaml.safe_load(open(name))))
    if errors:
        print(name, "invalid:", "; ".join("/".join(map(str, e.path)) + ": " + e.message for e in errors))
    else:
        print(name, "ok")
"#;

fn run(mut cmd: Command, what: &str) -> String {
    let dir = temp_dir("schema-run");
    let out_path = dir.join("out");
    let out = std::fs::File::create(&out_path).expect("create output file");
    let err = out.try_clone().expect("clone output file");
    let mut child = cmd
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let status = exit_within(&mut child, Duration::from_secs(60));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()),
        "{what} failed ({status:?}):\n{text}"
    );
    text
}

/// `strait config schema` into a temporary file.
fn schema_file() -> std::path::PathBuf {
    let mut cmd = Command::new(bin());
    cmd.args(["config", "schema"]);
    let text = run(cmd, "strait config schema");
    let path = temp_dir("schema").join("strait.schema.json");
    std::fs::write(&path, text).expect("write schema");
    path
}

fn validate(schema: &Path, files: &[&Path]) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(VALIDATE).arg(schema).args(files);
    run(
        cmd,
        "python3 jsonschema (apt-get install python3-jsonschema python3-yaml)",
    )
}

#[test]
fn every_shipped_config_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("conf/strait.yaml")];
    let mut examples: Vec<_> = std::fs::read_dir(root.join("conf/examples"))
        .expect("conf/examples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    examples.sort();
    assert!(!examples.is_empty());
    files.extend(examples);
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let out = validate(&schema_file(), &refs);
    assert_eq!(out.lines().count(), files.len(), "{out}");
    assert!(out.lines().all(|l| l.ends_with(" ok")), "{out}");
}

#[test]
fn wrong_keys_and_values_fail() {
    let dir = temp_dir("schema-bad");
    let cases = [
        // A misspelt key inside a domain.
        ("helth_check", "listeners: [{ addr: 127.0.0.1:8080 }]\ndomains:\n  - hosts: [a.test]\n    helth_check: { path: / }\n"),
        // An unknown strategy.
        ("load_balancer", "listeners: [{ addr: 127.0.0.1:8080 }]\ndomains:\n  - hosts: [a.test]\n    load_balancer: fastest\n"),
        // A weight over the table's bound.
        ("weight", "listeners: [{ addr: 127.0.0.1:8080 }]\ndomains:\n  - hosts: [a.test]\n    backends: [{ addr: http://127.0.0.1:1, weight: 101 }]\n"),
        // A duration without a unit, and a zero timeout.
        ("read_timeout", "listeners: [{ addr: 127.0.0.1:8080 }]\ndomains:\n  - hosts: [a.test]\n    read_timeout: 30\n"),
        ("connect_timeout", "listeners: [{ addr: 127.0.0.1:8080 }]\ndomains:\n  - hosts: [a.test]\n    connect_timeout: 0s\n"),
        // A required section missing.
        ("domains", "listeners: [{ addr: 127.0.0.1:8080 }]\n"),
    ];
    let mut files = Vec::new();
    for (name, yaml) in cases {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).expect("write case");
        files.push(path);
    }
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let out = validate(&schema_file(), &refs);
    for (name, _) in cases {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("{name}.yaml ")))
            .unwrap_or_else(|| panic!("no verdict for {name}\n{out}"));
        assert!(
            line.contains(" invalid:"),
            "{name} passed the schema: {line}"
        );
        assert!(
            line.contains(name),
            "{name}: the error does not name it: {line}"
        );
    }
}
