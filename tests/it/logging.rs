//! Console levels: `LOG_LEVEL` > `STRAIT_LOG` > `RUST_LOG` > `--log-level` > `logging.level`,
//! per-module filters, Pingora's start-up chatter at DEBUG, strait's own INFO lines; and
//! `CONFIG_PATH` naming the config file.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::strait::bin;
use crate::support::wait::output_within;
use crate::support::{config, Strait};

/// The longest a command that should exit at once may take.
const LIMIT: Duration = Duration::from_secs(20);

fn yaml(level: &str) -> String {
    config(&format!(
        "logging: {{ level: {level} }}\n\
         domains:\n  - hosts: [\"*\"]\n    routes: [{{ path_prefix: /, respond: {{ body: ok }} }}]\n"
    ))
}

/// Starts strait with `args` before `-c FILE` and only `env` of the logging variables set.
fn start(level: &str, args: &'static [&'static str], env: &[(&str, &str)]) -> Strait {
    Strait::start_with(&yaml(level), env, &move |conf: &Path| {
        let mut cmd = Command::new(bin());
        for var in ["LOG_LEVEL", "STRAIT_LOG", "RUST_LOG", "CONFIG_PATH"] {
            cmd.env_remove(var);
        }
        cmd.args(args).arg("-c").arg(conf);
        cmd
    })
}

/// The levels of the console lines so far: "INFO", "DEBUG", ...
fn levels(s: &Strait) -> Vec<String> {
    s.stderr()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

/// Waits for the "ready" line at INFO, or (when INFO is filtered out) gives the process a
/// request so its start-up is surely over before the console is read.
fn settled(s: &Strait) {
    let _ = s.get("any.test", "/");
}

#[test]
fn default_console_shows_strait_lines_and_hides_pingora_chatter() {
    let s = start("info", &[], &[]);
    assert!(
        s.stderr_contains("] ready", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    let err = s.stderr();
    assert!(err.contains("strait listening on http://"), "{err}");
    assert!(err.contains("1 domains, 0 backends configured"), "{err}");
    for chatter in ["Bootstrap starting", "BG ", "pingora_core"] {
        assert!(!err.contains(chatter), "{chatter:?} at INFO:\n{err}");
    }
    let info = err.lines().filter(|l| l.contains(" INFO ")).count();
    assert_eq!(
        info, 3,
        "one line per listener, the domain count, ready:\n{err}"
    );
}

#[test]
fn flag_beats_config_and_shows_pingora_at_debug() {
    let s = start("error", &["--log-level", "debug"], &[]);
    assert!(
        s.stderr_contains("Bootstrap starting", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    assert!(levels(&s).iter().any(|l| l == "DEBUG"));
}

#[test]
fn environment_beats_the_flag_in_order() {
    // LOG_LEVEL=warn wins over STRAIT_LOG=debug and --log-level debug: no INFO or DEBUG line.
    let s = start(
        "info",
        &["--log-level", "debug"],
        &[("LOG_LEVEL", "warn"), ("STRAIT_LOG", "debug")],
    );
    settled(&s);
    let seen = levels(&s);
    assert!(
        seen.iter().all(|l| l == "WARN" || l == "ERROR"),
        "{seen:?}\n{}",
        s.stderr()
    );
    drop(s);
    // Without LOG_LEVEL, STRAIT_LOG wins over RUST_LOG and the flag.
    let s = start(
        "error",
        &["--log-level", "error"],
        &[("STRAIT_LOG", "debug"), ("RUST_LOG", "error")],
    );
    assert!(
        s.stderr_contains("Bootstrap starting", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    drop(s);
    // RUST_LOG still beats the flag.
    let s = start("error", &["--log-level", "error"], &[("RUST_LOG", "info")]);
    assert!(
        s.stderr_contains("] ready", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
}

#[test]
fn per_module_filters_apply() {
    // strait's own lines at INFO, everything else at WARN.
    let s = start("info", &["--log-level", "warn,strait=info"], &[]);
    assert!(
        s.stderr_contains("] ready", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    // Pingora named explicitly: its INFO lines keep their level.
    let s = start("info", &["--log-level", "info,pingora_core=info"], &[]);
    assert!(
        s.stderr_contains("Bootstrap starting", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
}

#[test]
fn a_bad_filter_is_named_and_exits_1() {
    let dir = crate::support::strait::temp_dir("bad-filter");
    let conf = dir.join("strait.yaml");
    let port = crate::support::strait::free_port();
    std::fs::write(
        &conf,
        yaml("info").replace("{listen}", &format!("127.0.0.1:{port}")),
    )
    .expect("write");
    let (code, _, err) = output_within(
        Command::new(bin())
            .arg("-c")
            .arg(&conf)
            .env_remove("STRAIT_LOG")
            .env_remove("RUST_LOG")
            .env("LOG_LEVEL", "verbose"),
        LIMIT,
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("LOG_LEVEL") && err.contains("verbose"),
        "{err}"
    );
    let (code, _, err) = output_within(
        Command::new(bin())
            .args(["--log-level", "loud", "-c"])
            .arg(&conf),
        LIMIT,
    );
    assert!(code.is_some_and(|c| c != 0), "{err}");
    assert!(err.contains("loud"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_path_names_the_file_when_strait_config_does_not() {
    let s = Strait::start_with(&yaml("info"), &[], &|conf: &Path| {
        let mut cmd = Command::new(bin());
        cmd.env("CONFIG_PATH", conf);
        cmd
    });
    assert_eq!(s.get("any.test", "/").status, 200);
    // STRAIT_CONFIG wins over CONFIG_PATH (so an existing setup keeps its file).
    let (code, _, err) = output_within(
        Command::new(bin())
            .arg("-t")
            .env("STRAIT_CONFIG", s.config_path())
            .env("CONFIG_PATH", "/nonexistent/strait.yaml"),
        LIMIT,
    );
    assert_eq!(code, Some(0), "{err}");
}
