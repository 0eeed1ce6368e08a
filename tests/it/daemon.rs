//! `-d` lets go of its caller: the command returns (its stdout and stderr reach EOF) once the
//! daemon listens, the daemon's standard streams are /dev/null or the error log, and a daemon
//! that cannot start has its reason printed by the parent. Also the error log itself: level,
//! SIGUSR1 reopen, and every console line under `-d`.

use std::fs;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::strait::{bin, free_port, temp_dir};
use crate::support::wait::exit_within;
use crate::support::{client, config, eventually_msg, Strait};

/// What the issue asks of `strait -d`: back to the caller within this.
const RETURN_WITHIN: Duration = Duration::from_secs(5);

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid this test started (directly or as a daemon).
    unsafe { libc::kill(pid as i32, sig) };
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// Kills the daemon a test started, whatever happens to the test.
struct Daemon(Option<u32>);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = self.0.filter(|p| alive(*p)) {
            signal(pid, libc::SIGKILL);
        }
    }
}

/// A config for a daemon in `dir` listening on `addr`; `extra` goes under `server:`/`logging:`.
fn daemon_config(dir: &Path, addr: SocketAddr, server_extra: &str, logging: &str) -> PathBuf {
    let yaml = format!(
        "server:\n  pid_file: {dir}/strait.pid\n  upgrade_sock: {dir}/upgrade.sock\n{server_extra}\
         listeners:\n  - addr: {addr}\n{logging}\
         domains:\n  - hosts: [\"*\"]\n    routes: [{{ path_prefix: /, respond: {{ body: \"ok\\n\" }} }}]\n",
        dir = dir.display()
    );
    let path = dir.join("strait.yaml");
    fs::write(&path, yaml).expect("write config");
    path
}

/// Runs `strait -d -c FILE` with stdout and stderr as pipes, reading both to EOF the way
/// `out=$(strait -d ...)` does. Returns (exit code, stdout + stderr, time to EOF), or panics
/// if EOF does not come within [`RETURN_WITHIN`].
fn run_daemon_command(conf: &Path, dir: &Path) -> (Option<i32>, String, Duration) {
    run_with_pipes(&["-d"], conf, dir)
}

/// `strait ARGS -c FILE` with stdout and stderr as pipes read to EOF (see above).
fn run_with_pipes(args: &[&str], conf: &Path, dir: &Path) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(bin())
        .args(args)
        .arg("-c")
        .arg(conf)
        .current_dir(dir)
        .env_remove("STRAIT_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strait -d");
    let (tx, rx) = mpsc::channel();
    for mut stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            let _ = tx.send(text);
        });
    }
    let mut output = String::new();
    for _ in 0..2 {
        let left = RETURN_WITHIN.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(text) => output.push_str(&text),
            Err(_) => {
                let _ = child.kill();
                // Whatever daemon did start must not outlive the test.
                drop(Daemon(read_pid(&dir.join("strait.pid"))));
                panic!(
                    "`strait -d` held its caller's pipes for more than {RETURN_WITHIN:?}; output so far:\n{output}"
                );
            }
        }
    }
    let eof = started.elapsed();
    let code = exit_within(&mut child, Duration::from_secs(2)).and_then(|s| s.code());
    (code, output, eof)
}

fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Where descriptor `fd` of process `pid` points.
fn fd_target(pid: u32, fd: u32) -> String {
    fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("<{e}>"))
}

#[test]
fn daemon_returns_to_a_capturing_caller_once_listening() {
    let dir = temp_dir("daemon");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let error_log = dir.join("error.log");
    let conf = daemon_config(
        &dir,
        addr,
        "",
        &format!("logging:\n  error_log: {}\n", error_log.display()),
    );
    let (code, output, eof) = run_daemon_command(&conf, &dir);
    let mut daemon = Daemon(read_pid(&dir.join("strait.pid")));
    assert_eq!(code, Some(0), "output:\n{output}");
    let pid = daemon.0.expect("the pid file names the daemon");
    assert!(
        !output.contains(" INFO "),
        "the daemon's log lines go to its error log, not the caller:\n{output}"
    );
    // Returned means listening: the first request succeeds without waiting.
    let resp = client::get(addr, "any.test", "/").expect("the daemon serves at once");
    assert_eq!((resp.status, resp.text()), (200, "ok\n".to_string()));
    eprintln!("`strait -d` returned (pipes at EOF) after {eof:?}");

    let targets: Vec<String> = (0..3).map(|fd| fd_target(pid, fd)).collect();
    assert_eq!(targets[0], "/dev/null", "stdin: {targets:?}");
    assert_eq!(targets[1], "/dev/null", "stdout: {targets:?}");
    assert_eq!(
        targets[2],
        error_log.display().to_string(),
        "stderr is the error log: {targets:?}"
    );
    // Every console line goes to the error log under -d, INFO included.
    eventually_msg(Duration::from_secs(5), "\"ready\" in the error log", || {
        fs::read_to_string(&error_log).is_ok_and(|t| t.contains(" INFO ") && t.contains("ready"))
    });

    // SIGUSR1 reopens it: after logrotate's rename, lines go to a fresh file.
    let rotated = dir.join("error.log.1");
    fs::rename(&error_log, &rotated).expect("rotate");
    signal(pid, libc::SIGUSR1);
    eventually_msg(Duration::from_secs(5), "a fresh error log", || {
        fs::read_to_string(&error_log).is_ok_and(|t| t.contains("error log reopened"))
    });
    assert_eq!(fd_target(pid, 2), error_log.display().to_string());

    signal(pid, libc::SIGTERM);
    eventually_msg(Duration::from_secs(10), "the daemon stops", || !alive(pid));
    daemon.0 = None;
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn daemon_without_error_log_points_its_streams_at_dev_null() {
    let dir = temp_dir("daemon-null");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let conf = daemon_config(&dir, addr, "", "");
    let (code, output, _) = run_daemon_command(&conf, &dir);
    let daemon = Daemon(read_pid(&dir.join("strait.pid")));
    assert_eq!(code, Some(0), "output:\n{output}");
    let pid = daemon.0.expect("pid file");
    for fd in 0..3 {
        assert_eq!(fd_target(pid, fd), "/dev/null", "fd {fd}");
    }
    assert!(client::get(addr, "any.test", "/").is_ok_and(|r| r.status == 200));
    let _ = fs::remove_dir_all(&dir);
}

/// A daemon that fails after the fork (here: the user to switch to does not exist) has its
/// reason printed by the parent, which exits 1, still within the bound.
#[test]
fn a_daemon_that_cannot_start_is_explained_by_the_parent() {
    let dir = temp_dir("daemon-fail");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let conf = daemon_config(&dir, addr, "  user: strait-no-such-user\n", "");
    let (code, output, _) = run_daemon_command(&conf, &dir);
    let _daemon = Daemon(read_pid(&dir.join("strait.pid")));
    assert_eq!(code, Some(1), "output:\n{output}");
    assert!(
        output.contains("strait: ") && output.to_lowercase().contains("user"),
        "the reason is printed:\n{output}"
    );

    let conf = daemon_config(&dir, addr, "", "");
    let text = fs::read_to_string(&conf).expect("read").replace(
        &format!("{}/strait.pid", dir.display()),
        "/nonexistent-dir/strait.pid",
    );
    fs::write(&conf, text).expect("write");
    let (code, output, _) = run_daemon_command(&conf, &dir);
    assert_eq!(code, Some(1), "output:\n{output}");
    assert!(
        output.contains("cannot write the pid file /nonexistent-dir/strait.pid"),
        "{output}"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// In the foreground the error log gets WARN and above (or its own level), the console keeps
/// its level, and SIGUSR1 reopens the file.
#[test]
fn foreground_error_log_takes_warnings_and_reopens_on_sigusr1() {
    let yaml = config(
        "logging:\n  error_log: \"{dir}/error.log\"\n\
         domains:\n  - hosts: [\"*\"]\n    routes: [{ path_prefix: /, respond: { body: ok } }]\n",
    );
    let s = Strait::start(&yaml);
    let error_log = s.dir().join("error.log");
    assert!(
        s.stderr_contains("ready", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    // A rejected reload logs ERROR lines.
    let good = fs::read_to_string(s.config_path()).expect("read config");
    fs::write(s.config_path(), good.replace("respond:", "respnd:")).expect("break config");
    signal(s.pid(), libc::SIGHUP);
    eventually_msg(
        Duration::from_secs(10),
        "the rejection in the error log",
        || fs::read_to_string(&error_log).is_ok_and(|t| t.contains("reload rejected")),
    );
    let text = fs::read_to_string(&error_log).unwrap_or_default();
    assert!(
        !text.contains(" INFO "),
        "INFO lines stay out of a warn-level error log:\n{text}"
    );
    assert!(s.stderr_has(" INFO "), "the console keeps its level");

    fs::rename(&error_log, s.dir().join("error.log.1")).expect("rotate");
    signal(s.pid(), libc::SIGUSR1);
    eventually_msg(Duration::from_secs(10), "a fresh error log", || {
        error_log.exists()
    });
    signal(s.pid(), libc::SIGHUP);
    eventually_msg(
        Duration::from_secs(10),
        "the next error in the fresh file",
        || fs::read_to_string(&error_log).is_ok_and(|t| t.contains("reload rejected")),
    );
}

/// The error log rotated under load loses no line: failing requests (one ERROR line each)
/// run without pause while the file is renamed and SIGUSR1 sent; the two files together hold
/// one line per request.
#[test]
fn error_log_rotation_under_load_loses_no_line() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dead = free_port();
    let yaml = config(&format!(
        "logging:\n  error_log: \"{{dir}}/error.log\"\n\
         domains:\n  - hosts: [\"*\"]\n    backends: [http://127.0.0.1:{dead}]\n    max_retries: 0\n    passive_health: false\n"
    ));
    let s = Strait::start(&yaml);
    let error_log = s.dir().join("error.log");
    let rotated = s.dir().join("error.log.1");
    let failures = |path: &Path| {
        fs::read_to_string(path)
            .map(|t| t.lines().filter(|l| l.contains("Fail to proxy")).count())
            .unwrap_or(0)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let addr = s.addr();
    let load = thread::spawn({
        let stop = stop.clone();
        move || {
            let mut answered = 0;
            // Bounded: the test stops it long before, or it ends on its own.
            for i in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let r = client::get(addr, "el.test", &format!("/{i}")).expect("a 502");
                assert_eq!(r.status, 502);
                answered += 1;
            }
            answered
        }
    });
    eventually_msg(Duration::from_secs(20), "lines before the rotation", || {
        failures(&error_log) >= 100
    });
    fs::rename(&error_log, &rotated).expect("rotate");
    signal(s.pid(), libc::SIGUSR1);
    eventually_msg(
        Duration::from_secs(20),
        "lines in the reopened file",
        || failures(&error_log) >= 100,
    );
    stop.store(true, Ordering::Relaxed);
    let answered = load.join().expect("the load thread");
    eventually_msg(Duration::from_secs(20), "every line written", || {
        failures(&rotated) + failures(&error_log) >= answered
    });
    let (before, after) = (failures(&rotated), failures(&error_log));
    assert_eq!(
        before + after,
        answered,
        "{answered} requests; lines: {before} before the rotation, {after} after"
    );
}

/// `-u -d` lets go of its caller too: it returns once its daemon runs (the old process is
/// only told to hand over afterwards), and after SIGQUIT the new daemon serves with its
/// standard streams away from the caller.
#[test]
fn upgrade_daemon_returns_to_a_capturing_caller() {
    let dir = temp_dir("daemon-upgrade");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let conf = daemon_config(&dir, addr, "", "");
    let pid_file = dir.join("strait.pid");
    let (code, output, _) = run_daemon_command(&conf, &dir);
    let mut old = Daemon(read_pid(&pid_file));
    assert_eq!(code, Some(0), "output:\n{output}");
    let old_pid = old.0.expect("pid file");

    let (code, output, eof) = run_with_pipes(&["-u", "-d"], &conf, &dir);
    let new = Daemon(read_pid(&pid_file).filter(|p| *p != old_pid));
    assert_eq!(code, Some(0), "output:\n{output}");
    eprintln!("`strait -u -d` returned (pipes at EOF) after {eof:?}");
    let new_pid = new.0.expect("the pid file names the new daemon");
    signal(old_pid, libc::SIGQUIT);
    eventually_msg(Duration::from_secs(20), "the old daemon exits", || {
        !alive(old_pid)
    });
    old.0 = None;
    let resp = client::get(addr, "any.test", "/").expect("the new daemon serves");
    assert_eq!(resp.status, 200);
    for fd in 0..3 {
        assert_eq!(fd_target(new_pid, fd), "/dev/null", "fd {fd}");
    }
    let _ = fs::remove_dir_all(&dir);
}
