//! `strait config defaults` and `strait config show -c FILE`: the documentation the code
//! prints, run as a user would.

use std::process::Command;
use std::time::Duration;

use crate::support::strait::{bin, temp_dir};
use crate::support::wait::output_within;

fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("STRAIT_CONFIG")
        .env_remove("CONFIG_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Bounded: a command that should print and exit must not hang the suite.
    output_within(&mut cmd, Duration::from_secs(20))
}

#[test]
fn config_defaults_prints_every_default() {
    let (code, out, err) = run(&["config", "defaults"], &[]);
    assert_eq!(code, Some(0), "{err}");
    for line in [
        "  drain_delay: 1s",
        "    connect_timeout: 5s",
        "    read_timeout: 1m",
        "  pid_file: /tmp/strait.pid",
        "  stale_if_error: 0s",
        "  error_log_level: warn",
        "    enabled: false",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
    assert!(out.contains("# user:"), "server.user is listed:\n{out}");
}

#[test]
fn config_show_prints_the_effective_config() {
    let dir = temp_dir("config-show");
    let conf = dir.join("strait.yaml");
    std::fs::write(
        &conf,
        "listeners: [{ addr: \"127.0.0.1:${PORT}\" }]\n\
         domains:\n  - hosts: [a.test]\n    backends: [http://127.0.0.1:9]\n    read_timeout: 7s\n\
         \x20   routes: [{ path_prefix: /r/, max_retries: 0 }]\n",
    )
    .expect("write");
    let conf_arg = conf.display().to_string();
    let (code, out, err) = run(&["config", "show", "-c", &conf_arg], &[("PORT", "8123")]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("- addr: 127.0.0.1:8123"),
        "${{PORT}} expanded:\n{out}"
    );
    assert!(
        out.contains("drain_delay: 1s"),
        "defaults filled in:\n{out}"
    );
    let route = out.split("path_prefix: \"/r/\"").nth(1).unwrap_or_default();
    assert!(
        route.contains("read_timeout: 7s") && route.contains("max_retries: 0"),
        "the route inherits the domain's read_timeout:\n{out}"
    );
    // A broken file: the usual file:line:col errors, exit 1.
    std::fs::write(&conf, "listeners: [{ addr: nowhere }]\ndomains: []\n").expect("write");
    let (code, _, err) = run(&["config", "show", "-c", &conf_arg], &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains(&format!("{conf_arg}:1:")), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
