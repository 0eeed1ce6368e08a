//! `strait demo`: two local origins and the proxy in one process, with a few requests sent
//! through it so the round-robin alternation shows on the terminal.

mod origin;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

pub use origin::DemoOrigin;

use crate::config;
use crate::server::{self, RunOptions};

/// The config the demo runs, shown to the user so they can start from it.
pub fn demo_yaml(listen: SocketAddr, a: SocketAddr, b: SocketAddr) -> String {
    format!(
        r#"listeners:
  - addr: {listen}
domains:
  - hosts: ["*"]
    load_balancer: round_robin
    backends:
      - {{ addr: http://{a} }}
      - {{ addr: http://{b} }}
    health_check: {{ type: http, path: /health, interval: 2s, timeout: 1s }}
    routes:
      - {{ path_prefix: /ping, respond: {{ status: 200, body: "pong\n" }} }}
"#
    )
}

/// Runs `strait demo`: two local origins behind the proxy on `listen`, until stopped.
pub fn run(listen: SocketAddr) -> Result<(), String> {
    let a = DemoOrigin::start("origin-a").map_err(|e| format!("cannot start origin-a: {e}"))?;
    let b = DemoOrigin::start("origin-b").map_err(|e| format!("cannot start origin-b: {e}"))?;
    let yaml = demo_yaml(listen, a.addr, b.addr);
    let config =
        config::load_str(&yaml, "<demo>", &|k| std::env::var(k).ok()).map_err(|errors| {
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })?;
    println!(
        "strait demo: two origins ({} on {}, {} on {}) behind the proxy.",
        a.name, a.addr, b.name, b.addr
    );
    println!("config:\n{yaml}");
    println!("try:  curl http://{listen}/   (repeat it: the origins alternate)");
    println!("      curl http://{listen}/ping");
    println!("stop: Ctrl-C\n");
    thread::spawn(move || show_alternation(listen));
    server::run(config, RunOptions::default()).map_err(|e| e.to_string())
}

/// Sends a few requests once the proxy accepts connections and prints who answered.
fn show_alternation(listen: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..4 {
        match get(listen) {
            Ok(body) => println!("GET http://{listen}/ -> {}", body.trim_end()),
            Err(e) => println!("GET http://{listen}/ failed: {e}"),
        }
    }
}

fn get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: demo.local\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    Ok(reply.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}
