//! `include: [conf.d/*.yaml]`: domains from more files, errors in the file they are in, and
//! `server.watch` reloading when an included file is added.

use std::fs;
use std::time::Duration;

use crate::support::strait::temp_dir;
use crate::support::{backends, config, eventually_msg, Origin, Strait};

#[test]
fn included_files_add_domains_and_watch_sees_a_new_file() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let conf_d = temp_dir("conf-d");
    fs::write(
        conf_d.join("a.yaml"),
        format!(
            "domains:\n  - hosts: [a.test]\n    backends: {}\n",
            backends(&[&a])
        ),
    )
    .unwrap();
    // Not matched by the pattern: never read.
    fs::write(conf_d.join("notes.txt"), "not yaml: [").unwrap();
    let s = Strait::start(&config(&format!(
        "server: {{ watch: true }}
include: [\"{}/*.yaml\"]
domains:
  - hosts: [b.test]
    backends: {}
",
        conf_d.display(),
        backends(&[&b])
    )));
    assert_eq!(s.get("a.test", "/").text(), "a");
    assert_eq!(s.get("b.test", "/").text(), "b");
    assert!(
        s.stderr_contains("watching", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    let tmp = conf_d.join(".c.yaml.tmp");
    fs::write(
        &tmp,
        "domains:\n  - hosts: [c.test]\n    respond: { status: 200, body: c }\n",
    )
    .unwrap();
    fs::rename(&tmp, conf_d.join("c.yaml")).unwrap();
    eventually_msg(
        Duration::from_secs(10),
        "the reload after a new file",
        || s.stderr_has("config reloaded"),
    );
    let r = s.get("c.test", "/");
    assert_eq!((r.status, r.text().as_str()), (200, "c"));
    assert_eq!(
        s.get("a.test", "/").text(),
        "a",
        "the other file still counts"
    );
    let _ = fs::remove_dir_all(&conf_d);
}

#[test]
fn problems_in_an_included_file_are_reported_in_that_file() {
    let conf_d = temp_dir("conf-d-bad");
    fs::write(
        conf_d.join("one.yaml"),
        "domains:\n  - hosts: [dup.test]\n    respond: { status: 200 }\n",
    )
    .unwrap();
    fs::write(
        conf_d.join("two.yaml"),
        "domains:\n  - hosts: [dup.test]\n    respond: { status: 200 }\n  - hosts: [x.test]\n    respond: { status: 99 }\nlisteners: []\n",
    )
    .unwrap();
    let check = Strait::check(&format!(
        "listeners:
  - addr: 127.0.0.1:1
include: [\"{dir}/*.yaml\", \"{dir}/missing.yaml\", \"*/x.yaml\"]
",
        dir = conf_d.display()
    ));
    assert_eq!(check.code, Some(1), "{}", check.describe());
    let out = check.output();
    let two = conf_d.join("two.yaml").display().to_string();
    for want in [
        format!(
            "{two}:2:13: domains[0].hosts[0]: duplicate host \"dup.test\" (first at {}:2)",
            conf_d.join("one.yaml").display()
        ),
        format!("{two}:5:24: domains[1].respond.status: status must be between 100 and 599"),
        format!("{two}:6:1: unknown field `listeners`, expected one of: domains"),
        ":3:".to_string(),
    ] {
        assert!(out.contains(&want), "{want}\n{out}");
    }
    assert!(out.contains("missing.yaml does not exist"), "{out}");
    assert!(
        out.contains("wildcards are allowed in the file name only"),
        "{out}"
    );
    let _ = fs::remove_dir_all(&conf_d);
}

#[test]
fn an_include_that_finds_no_domains_is_an_error() {
    let empty = temp_dir("conf-d-empty");
    let check = Strait::check(&format!(
        "listeners:
  - addr: 127.0.0.1:1
include: [\"{}/*.yaml\"]
",
        empty.display()
    ));
    check.assert_error(3, 10, "include", &["no domains"]);
    let _ = fs::remove_dir_all(&empty);
}
