//! The floor under strait's figures in `benches/run.sh`: Pingora 0.9.1 itself as a bare
//! round-robin HTTP/1 proxy, with the same allocator and runtime layout as strait and nothing
//! else: no routing, no header rewriting beyond `Host`, no timeouts, no metrics, no logging.
//! What strait costs above this is strait's; what this costs is Pingora's.
//!
//! `cargo build --release --example bare_pingora`
//! `target/release/examples/bare_pingora LISTEN THREADS UPSTREAM...`, for example
//! `bare_pingora 127.0.0.1:18103 1 127.0.0.1:18081 127.0.0.1:18082`

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::{http_proxy_service, ProxyHttp, Session};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::upstreams::peer::HttpPeer;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    peers: Vec<HttpPeer>,
    hosts: Vec<String>,
    next: AtomicUsize,
}

#[async_trait]
impl ProxyHttp for Bare {
    /// The index of the chosen upstream.
    type CTX = usize;

    fn new_ctx(&self) -> usize {
        0
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut usize,
    ) -> Result<Box<HttpPeer>> {
        *ctx = self.next.fetch_add(1, Ordering::Relaxed) % self.peers.len();
        Ok(Box::new(self.peers[*ctx].clone()))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut usize,
    ) -> Result<()> {
        req.insert_header("Host", self.hosts[*ctx].as_str())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bare_pingora LISTEN THREADS UPSTREAM...";
    let (Some(listen), Some(threads)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let threads: usize = threads.parse().expect(usage);
    let upstreams: Vec<SocketAddr> = args[2..].iter().map(|a| a.parse().expect(usage)).collect();
    assert!(!upstreams.is_empty(), "{usage}");

    let conf = ServerConf {
        threads,
        upstream_keepalive_pool_size: 4096,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: false,
        daemon: false,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    let proxy = Bare {
        peers: upstreams
            .iter()
            .map(|a| HttpPeer::new(*a, false, String::new()))
            .collect(),
        hosts: upstreams.iter().map(|a| a.to_string()).collect(),
        next: AtomicUsize::new(0),
    };
    let mut service = http_proxy_service(&server.configuration, proxy);
    service.add_tcp(listen);
    server.add_service(service);
    server.run_forever();
}
