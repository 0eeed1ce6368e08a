//! Zero-downtime operations with real signals: a binary upgrade and reloads under load, and
//! SIGTERM with requests in flight. Every load loop is bounded in time.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::support::strait::bin;
use crate::support::wait::exit_within;
use crate::support::{
    backends, client, config, eventually_msg, served_by, Behaviour, Origin, Strait,
};

/// The longest any load loop here may run, whatever happens to the test.
const LOAD_LIMIT: Duration = Duration::from_secs(40);

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid this test spawned; no memory is shared.
    let rc = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// Sequential GETs on fresh connections until stopped, recording every outcome.
struct Load {
    stop: Arc<AtomicBool>,
    results: Arc<Mutex<Vec<Result<String, String>>>>,
    handle: Option<JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, path: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let results = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (stop.clone(), results.clone());
        let handle = thread::spawn(move || {
            let deadline = Instant::now() + LOAD_LIMIT;
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                let outcome = match client::get(addr, "app.test", path) {
                    Ok(resp) if resp.status == 200 => Ok(served_by(&resp)),
                    Ok(resp) => Err(format!("status {}: {}", resp.status, resp.text())),
                    Err(e) => Err(format!("transport: {e}")),
                };
                r.lock().unwrap_or_else(|e| e.into_inner()).push(outcome);
            }
        });
        Load {
            stop,
            results,
            handle: Some(handle),
        }
    }

    fn count(&self) -> usize {
        self.results.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Waits until `n` more requests have completed than now.
    fn wait_for_more(&self, n: usize, what: &str) {
        let target = self.count() + n;
        eventually_msg(Duration::from_secs(20), what, || self.count() >= target);
    }

    fn finish(mut self) -> Vec<Result<String, String>> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        std::mem::take(&mut *self.results.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn failures(results: &[Result<String, String>]) -> Vec<&String> {
    results.iter().filter_map(|r| r.as_ref().err()).collect()
}

/// A strait process started by the test itself (the upgrade's new instance).
struct Spawned(Child);

impl Spawned {
    fn start(args: &[&str], config: &Path, dir: &Path, log: &str) -> Spawned {
        let out = File::create(dir.join(log)).expect("create log");
        let err = out.try_clone().expect("clone log handle");
        let child = Command::new(bin())
            .args(args)
            .arg("-c")
            .arg(config)
            .current_dir(dir)
            .env_remove("STRAIT_CONFIG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn strait");
        Spawned(child)
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        exit_within(&mut self.0, timeout).and_then(|status| status.code())
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lifecycle_config(origins: &[&Origin], extra_route: &str) -> String {
    config(&format!(
        "server:
  upgrade_sock: \"{{dir}}/upgrade.sock\"
  pid_file: \"{{dir}}/strait.pid\"
  grace_period: 10s
  drain_delay: 1s
domains:
  - hosts: [\"*\"]
    backends: {}
    routes:
      - {{ path_prefix: /ping, respond: {{ status: 200, body: pong }} }}
{extra_route}",
        backends(origins)
    ))
}

#[test]
fn binary_upgrade_under_load_loses_no_request() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let mut old = Strait::start(&lifecycle_config(&[&a, &b], ""));
    let load = Load::start(old.addr(), "/");
    load.wait_for_more(50, "load through the old instance");

    let mut new = Spawned::start(&["-u"], old.config_path(), old.dir(), "new.log");
    let new_log_path = old.dir().join("new.log");
    let new_log = || fs::read_to_string(&new_log_path).unwrap_or_default();
    // The new instance says it waits for the sockets (as INFO: it is the normal sequence).
    eventually_msg(
        Duration::from_secs(10),
        "the new instance waiting for the sockets",
        || new_log().contains("waiting for the running instance to hand over"),
    );
    signal(old.pid(), libc::SIGQUIT);
    eventually_msg(
        Duration::from_secs(20),
        "the old instance exits after handing over",
        || !old.is_running(),
    );
    load.wait_for_more(50, "load through the new instance after the old one exited");
    let errors: Vec<String> = new_log()
        .lines()
        .filter(|l| l.contains(" ERROR "))
        .map(str::to_string)
        .collect();
    assert!(
        errors.is_empty(),
        "a normal upgrade logged errors:\n{}",
        errors.join("\n")
    );
    let results = load.finish();

    let failed = failures(&results);
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the upgrade: {:?}\n--- old ---\n{}\n--- new ---\n{}",
        failed.len(),
        results.len(),
        &failed[..failed.len().min(5)],
        old.stderr(),
        fs::read_to_string(old.dir().join("new.log")).unwrap_or_default()
    );
    assert!(
        results.len() >= 100,
        "only {} requests were sent",
        results.len()
    );
    eprintln!("upgrade under load: {} requests, 0 failed", results.len());

    // Only the new process is left, and it serves.
    let resp = client::get(old.addr(), "app.test", "/ping").expect("GET after the upgrade");
    assert_eq!(resp.status, 200);
    signal(new.0.id(), libc::SIGTERM);
    assert_eq!(
        new.wait_exit(Duration::from_secs(10)),
        Some(0),
        "the new instance exits cleanly"
    );
}

/// A binary upgrade with a `command` plugin on every request: each process runs its own
/// instance, the new one starts its own before taking the sockets, and no request fails.
#[test]
fn binary_upgrade_with_a_command_plugin_loses_no_request() {
    let a = Origin::start("a", crate::support::Behaviour::default().echo());
    let scripts = crate::support::strait::temp_dir("allow-plugin");
    let script = scripts.join("allow.py");
    fs::write(&script, crate::support::plugin_script::allow_all(0.0)).expect("write the plugin");
    let mut old = Strait::start(&config(&format!(
        "server:
  upgrade_sock: \"{{dir}}/upgrade.sock\"
  pid_file: \"{{dir}}/strait.pid\"
  grace_period: 10s
  drain_delay: 1s
plugins:
  allow: {{ command: [python3, \"{}\"], timeout: 2s }}
domains:
  - hosts: [\"*\"]
    backends: {}
    plugins: [allow]
",
        script.display(),
        backends(&[&a])
    )));
    // The load starts once a request has gone through the plugin (the first one waits for
    // its program to start).
    eventually_msg(Duration::from_secs(10), "the plugin answering", || {
        client::get(old.addr(), "app.test", "/").is_ok_and(|r| r.status == 200)
    });
    let load = Load::start(old.addr(), "/");
    load.wait_for_more(50, "load through the old instance and its plugin");
    let plugin_of = |r: &crate::support::origin::Seen| r.header("x-plugin").map(str::to_string);
    let first = a
        .requests()
        .last()
        .and_then(plugin_of)
        .expect("the plugin's header");

    let mut new = Spawned::start(&["-u"], old.config_path(), old.dir(), "new.log");
    let new_log_path = old.dir().join("new.log");
    let new_log = || fs::read_to_string(&new_log_path).unwrap_or_default();
    eventually_msg(
        Duration::from_secs(10),
        "the new instance waiting for the sockets",
        || new_log().contains("waiting for the running instance to hand over"),
    );
    signal(old.pid(), libc::SIGQUIT);
    eventually_msg(
        Duration::from_secs(20),
        "the old instance exits after handing over",
        || !old.is_running(),
    );
    load.wait_for_more(50, "load through the new instance and its own plugin");
    let results = load.finish();
    let failed = failures(&results);
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}\n--- old ---\n{}\n--- new ---\n{}",
        failed.len(),
        results.len(),
        &failed[..failed.len().min(5)],
        old.stderr(),
        new_log()
    );
    let last = a
        .requests()
        .last()
        .and_then(plugin_of)
        .expect("the plugin's header");
    assert_ne!(first, last, "the new process asks its own plugin instance");
    signal(new.0.id(), libc::SIGTERM);
    assert_eq!(new.wait_exit(Duration::from_secs(10)), Some(0));
    let _ = fs::remove_dir_all(&scripts);
}

#[test]
fn sighup_reload_switches_backends_without_failures() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let c = Origin::plain("c");
    let s = Strait::start(&lifecycle_config(&[&a, &b], ""));
    let load = Load::start(s.addr(), "/");
    load.wait_for_more(30, "load before the reload");

    let text = fs::read_to_string(s.config_path()).expect("read config");
    let new_text = text.replace(&backends(&[&a, &b]), &backends(&[&b, &c]));
    assert_ne!(text, new_text, "the backend list must change");
    fs::write(s.config_path(), new_text).expect("write config");
    signal(s.pid(), libc::SIGHUP);
    assert!(
        s.stderr_contains("config reloaded", Duration::from_secs(10)),
        "no reload logged:\n{}",
        s.stderr()
    );
    let before_hits_a = a.hits();
    load.wait_for_more(40, "load after the reload");
    let results = load.finish();

    assert!(
        failures(&results).is_empty(),
        "failures: {:?}",
        failures(&results)
    );
    assert_eq!(
        a.hits(),
        before_hits_a,
        "a removed backend got requests after the reload"
    );
    assert!(c.hits() > 0, "the added backend got no requests");
    // b was kept: its state carried over, as the log reports.
    assert!(s.stderr_has("(1 kept their state)"), "{}", s.stderr());
}

#[test]
fn broken_reload_keeps_the_running_config_and_reports_the_error() {
    let a = Origin::plain("a");
    let s = Strait::start(&lifecycle_config(&[&a], ""));
    let text = fs::read_to_string(s.config_path()).expect("read config");
    let broken = text.replace(
        &backends(&[&a]),
        &format!("[{{ addr: {}, weight: 0 }}]", a.url()),
    );
    fs::write(s.config_path(), &broken).expect("write config");
    let line = broken
        .lines()
        .position(|l| l.contains("weight: 0"))
        .expect("the broken line")
        + 1;
    signal(s.pid(), libc::SIGHUP);
    assert!(
        s.stderr_contains("reload rejected", Duration::from_secs(10)),
        "no rejection logged:\n{}",
        s.stderr()
    );
    let expected = format!("{}:{line}:", s.config_path().display());
    assert!(
        s.stderr_has(&expected),
        "error lacks {expected}:\n{}",
        s.stderr()
    );
    assert!(s.stderr_has("weight"), "{}", s.stderr());
    for _ in 0..10 {
        let resp = s.get("app.test", "/");
        assert_eq!((resp.status, served_by(&resp)), (200, "a".to_string()));
    }
}

#[test]
fn sigterm_drains_then_finishes_in_flight_requests() {
    let slow = Origin::start(
        "slow",
        Behaviour::default().delay(Duration::from_millis(1500)),
    );
    let mut s = Strait::start(&lifecycle_config(&[&slow], ""));
    let addr = s.addr();
    let in_flight: Vec<JoinHandle<Result<u16, String>>> = (0..4)
        .map(|_| {
            thread::spawn(move || {
                client::get(addr, "app.test", "/slow")
                    .map(|r| r.status)
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    eventually_msg(
        Duration::from_secs(10),
        "4 requests in flight at the origin",
        || slow.in_flight() >= 4,
    );
    let sent_term = Instant::now();
    signal(s.pid(), libc::SIGTERM);
    // During drain_delay the listener still accepts.
    let during_drain = client::get(addr, "app.test", "/ping").expect("a request during the drain");
    assert_eq!(during_drain.status, 200);
    assert!(
        sent_term.elapsed() < Duration::from_secs(1),
        "the drain check came too late"
    );

    for h in in_flight {
        assert_eq!(
            h.join().expect("client thread"),
            Ok(200),
            "an in-flight request failed"
        );
    }
    eventually_msg(
        Duration::from_secs(8),
        "strait exits well before its 10 s grace period",
        || !s.is_running(),
    );
    assert!(
        s.stderr_has("all in-flight requests finished"),
        "{}",
        s.stderr()
    );
}

/// Reads a pid file written by a daemonized strait.
fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// Kills daemons the test started if it fails half-way.
struct Daemons(Vec<u32>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for pid in &self.0 {
            if alive(*pid) {
                // SAFETY: a pid this test's daemons wrote; SIGKILL ends it.
                unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
            }
        }
    }
}

/// The sequence systemd/strait.service runs: `-d` to start, then on reload `-u -d` and
/// `kill -QUIT $MAINPID`, with real daemons and a pid file handed from one to the other.
#[test]
fn systemd_sequence_daemon_start_and_upgrade() {
    let a = Origin::plain("a");
    let dir = crate::support::strait::temp_dir("systemd");
    let port = crate::support::strait::free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let yaml = lifecycle_config(&[&a], "")
        .replace("{listen}", &addr.to_string())
        .replace("{dir}", &dir.display().to_string());
    let conf = dir.join("strait.yaml");
    fs::write(&conf, yaml).expect("write config");
    let pid_file = dir.join("strait.pid");
    let mut daemons = Daemons(Vec::new());

    let mut start = Spawned::start(&["-d"], &conf, &dir, "start.log");
    assert_eq!(
        start.wait_exit(Duration::from_secs(20)),
        Some(0),
        "`strait -d` reports ready"
    );
    let old = read_pid(&pid_file).expect("pid file after start");
    daemons.0.push(old);
    assert!(alive(old));
    // `-d` returns once the daemon listens (src/daemon.rs), so it serves at once.
    let resp = client::get(addr, "app.test", "/ping").expect("the daemon serves at once");
    assert_eq!(resp.status, 200);

    let load = Load::start(addr, "/");
    load.wait_for_more(30, "load through the first daemon");
    let mut upgrade = Spawned::start(&["-u", "-d"], &conf, &dir, "upgrade.log");
    assert_eq!(
        upgrade.wait_exit(Duration::from_secs(20)),
        Some(0),
        "`strait -u -d` reports ready"
    );
    signal(old, libc::SIGQUIT);
    eventually_msg(Duration::from_secs(20), "the old daemon exits", || {
        !alive(old)
    });
    let new = read_pid(&pid_file).expect("pid file after upgrade");
    daemons.0.push(new);
    assert_ne!(new, old, "the pid file names the new daemon");
    load.wait_for_more(30, "load through the new daemon");
    let results = load.finish();
    assert!(
        failures(&results).is_empty(),
        "failures: {:?}",
        failures(&results)
    );

    signal(new, libc::SIGTERM);
    eventually_msg(
        Duration::from_secs(10),
        "the new daemon stops on SIGTERM",
        || !alive(new),
    );
}
