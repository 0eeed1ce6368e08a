//! Start-up: a listener that cannot bind makes strait say which address and why, and exit 1
//! (a bare Pingora server would retry for 30 s and then serve nothing, silently); and
//! `strait demo` serves at once, alternating between its two origins.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::client;
use crate::support::strait::{bin, free_port, temp_dir};
use crate::support::wait::exit_within;

/// Runs strait on `yaml` and waits (bounded) for it to exit; returns (code, stderr).
fn run_to_exit(yaml: &str) -> (Option<i32>, String) {
    let dir = temp_dir("startup");
    let conf = dir.join("strait.yaml");
    std::fs::write(&conf, yaml).expect("write config");
    let mut child = Command::new(bin())
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strait");
    let code = match exit_within(&mut child, Duration::from_secs(10)) {
        Some(status) => status.code(),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    (code, stderr)
}

fn minimal(addr: &str) -> String {
    format!(
        "listeners:\n  - addr: {addr}\ndomains:\n  - hosts: [\"*\"]\n    routes: [{{ path_prefix: /, respond: {{ body: ok }} }}]\n"
    )
}

#[test]
fn a_port_in_use_is_named_and_exits_1() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let (code, stderr) = run_to_exit(&minimal(&addr.to_string()));
    assert_eq!(code, Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("in use"), "{stderr}");
}

#[test]
fn an_address_not_on_this_host_is_named_and_exits_1() {
    // 192.0.2.0/24 is reserved for documentation: never a local address, and nothing is sent.
    let (code, stderr) = run_to_exit(&minimal("192.0.2.1:8080"));
    assert_eq!(code, Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains("cannot listen on 192.0.2.1:8080"),
        "{stderr}"
    );
}

/// One run of `strait demo` on `listen`: the request lines it printed, and a `/ping` of ours.
fn run_demo(listen: SocketAddr) -> (Vec<String>, std::io::Result<client::Response>) {
    let mut child = Command::new(bin())
        .args(["demo", "--listen", &listen.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn strait demo");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut answers = Vec::new();
    while answers.len() < 4 && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.starts_with("GET http://") {
                answers.push(line);
            }
        }
    }
    let pong = client::get(listen, "demo.local", "/ping");
    let _ = child.kill();
    let _ = child.wait();
    (answers, pong)
}

#[test]
fn demo_serves_at_once_and_alternates_between_its_origins() {
    // The demo binds the port it is given; another process can take a free port between our
    // check and its bind (see `free_port`), and the demo's own requests then all fail to
    // connect. That, and only that, is retried on a fresh port.
    let mut run = run_demo(SocketAddr::from(([127, 0, 0, 1], free_port())));
    for _ in 0..2 {
        let port_taken = !run.0.is_empty()
            && run
                .0
                .iter()
                .all(|l| l.contains("Connection refused") || l.contains("Connection reset"));
        if !port_taken {
            break;
        }
        run = run_demo(SocketAddr::from(([127, 0, 0, 1], free_port())));
    }
    let (answers, pong) = run;
    let origins: Vec<&str> = answers
        .iter()
        .map(|l| {
            if l.contains("origin-a") {
                "a"
            } else if l.contains("origin-b") {
                "b"
            } else {
                "?"
            }
        })
        .collect();
    assert_eq!(origins.len(), 4, "the demo printed {answers:?}");
    assert!(
        origins == ["a", "b", "a", "b"] || origins == ["b", "a", "b", "a"],
        "requests must alternate between the origins: {answers:?}"
    );
    let pong = pong.expect("GET /ping on the demo");
    assert_eq!((pong.status, pong.text()), (200, "pong\n".to_string()));
}
