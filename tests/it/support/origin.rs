//! Test origins: real HTTP/1.1 servers on 127.0.0.1 (ephemeral port), one thread per
//! connection, keep-alive, with knobs for delay, status, health, echo and dropping requests.
//!
//! Every normal answer carries `X-Origin: NAME` and the body `NAME`, so a test can see which
//! origin served a request through the proxy.

use std::collections::HashMap;
use std::io::{self, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::client::{read_chunked, read_head, read_len};
use super::wait::sleep_unless;

/// How long an origin waits for the next request on an idle connection.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most request records kept per origin.
const MAX_RECORDS: usize = 10_000;

/// How an origin answers. Everything except the health path can also be changed at runtime.
#[derive(Debug, Clone)]
pub struct Behaviour {
    delay: Duration,
    status: u16,
    echo: bool,
    healthy: bool,
    health_path: String,
    drop_requests: bool,
    drop_reused: bool,
    responder: Option<Responder>,
}

/// A programmed answer (see [`Behaviour::respond_with`]). `X-Origin` and `Content-Length` are
/// added by the origin; `Content-Type` defaults to `text/plain` unless set here.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            ..Reply::default()
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }
}

/// Computes the answer to each request (health checks excluded).
#[derive(Clone)]
pub struct Responder(Arc<dyn Fn(&Seen) -> Reply + Send + Sync>);

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Responder(..)")
    }
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            delay: Duration::ZERO,
            status: 200,
            echo: false,
            healthy: true,
            health_path: "/health".to_string(),
            drop_requests: false,
            drop_reused: false,
            responder: None,
        }
    }
}

impl Behaviour {
    /// Answer every request with what `f` computes from it (status, headers, body), after
    /// the delay. Takes precedence over `status` and `echo`.
    pub fn respond_with(mut self, f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        self.responder = Some(Responder(Arc::new(f)));
        self
    }

    /// Wait this long before answering (not applied to the health path).
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    /// Answer with this status (not applied to the health path).
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Answer with the received request head as the body.
    pub fn echo(mut self) -> Self {
        self.echo = true;
        self
    }

    /// Start with the health path answering 503.
    pub fn unhealthy(mut self) -> Self {
        self.healthy = false;
        self
    }

    /// The path answered as the health check (default `/health`).
    pub fn health_path(mut self, path: &str) -> Self {
        self.health_path = path.to_string();
        self
    }

    /// Read each request, then close the connection without sending a byte.
    pub fn drop_requests(mut self) -> Self {
        self.drop_requests = true;
        self
    }

    /// Answer the first request on each connection and keep it alive, but close the
    /// connection without a byte on any later request: what a client sees when it reuses a
    /// pooled connection the server had already given up on. Such requests are counted by
    /// [`Origin::stale_drops`], not as hits.
    pub fn drop_reused(mut self) -> Self {
        self.drop_reused = true;
        self
    }
}

/// One request as the origin received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The request target as sent (path and query).
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
    pub at: Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        super::client::find_header(&self.headers, name)
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

struct Shared {
    name: String,
    addr: SocketAddr,
    health_path: String,
    stopping: AtomicBool,
    healthy: AtomicBool,
    echo: AtomicBool,
    drop_requests: AtomicBool,
    drop_reused: bool,
    stale_drops: AtomicUsize,
    delay_ms: AtomicU64,
    status: AtomicU16,
    hits: AtomicUsize,
    health_ok: AtomicUsize,
    health_fail: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    accepted: AtomicUsize,
    per_path: Mutex<HashMap<String, usize>>,
    seen: Mutex<Vec<Seen>>,
    responder: Mutex<Option<Responder>>,
    /// Open connections, so `stop` can shut each one down.
    conns: Mutex<HashMap<u64, TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// Locks, ignoring poisoning (a panicking test thread must not cascade into the origin).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running test origin. Stops (and joins its threads, bounded) on drop.
pub struct Origin {
    shared: Arc<Shared>,
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

impl Origin {
    /// Starts an origin named `name` on 127.0.0.1 with an ephemeral port.
    pub fn start(name: &str, behaviour: Behaviour) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an origin on 127.0.0.1:0");
        Origin::serve(name, listener, behaviour)
    }

    /// Starts an origin on `addr` (e.g. another loopback address with the port of an origin
    /// on 127.0.0.1, for DNS discovery, where every address shares one port).
    pub fn start_on(name: &str, addr: SocketAddr, behaviour: Behaviour) -> std::io::Result<Origin> {
        Ok(Origin::serve(name, TcpListener::bind(addr)?, behaviour))
    }

    fn serve(name: &str, listener: TcpListener, behaviour: Behaviour) -> Origin {
        let addr = listener.local_addr().expect("origin local_addr");
        let shared = Arc::new(Shared {
            name: name.to_string(),
            addr,
            health_path: behaviour.health_path,
            stopping: AtomicBool::new(false),
            healthy: AtomicBool::new(behaviour.healthy),
            echo: AtomicBool::new(behaviour.echo),
            drop_requests: AtomicBool::new(behaviour.drop_requests),
            drop_reused: behaviour.drop_reused,
            stale_drops: AtomicUsize::new(0),
            delay_ms: AtomicU64::new(behaviour.delay.as_millis() as u64),
            status: AtomicU16::new(behaviour.status),
            hits: AtomicUsize::new(0),
            health_ok: AtomicUsize::new(0),
            health_fail: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            per_path: Mutex::new(HashMap::new()),
            seen: Mutex::new(Vec::new()),
            responder: Mutex::new(behaviour.responder),
            conns: Mutex::new(HashMap::new()),
            workers: Mutex::new(Vec::new()),
        });
        let for_acceptor = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name(format!("origin-{name}-accept"))
            .spawn(move || accept_loop(listener, for_acceptor))
            .expect("spawn origin acceptor");
        Origin {
            shared,
            acceptor: Mutex::new(Some(acceptor)),
        }
    }

    /// Starts an origin with the default behaviour.
    pub fn plain(name: &str) -> Origin {
        Origin::start(name, Behaviour::default())
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    pub fn port(&self) -> u16 {
        self.shared.addr.port()
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Makes the health path answer 200 (true) or 503 (false) from now on.
    pub fn set_healthy(&self, healthy: bool) {
        self.shared.healthy.store(healthy, Ordering::SeqCst);
    }

    pub fn set_delay(&self, d: Duration) {
        self.shared
            .delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Requests dropped by [`Behaviour::drop_reused`].
    pub fn stale_drops(&self) -> usize {
        self.shared.stale_drops.load(Ordering::SeqCst)
    }

    pub fn set_drop_requests(&self, drop: bool) {
        self.shared.drop_requests.store(drop, Ordering::SeqCst);
    }

    /// Replaces the programmed answer (see [`Behaviour::respond_with`]).
    pub fn set_responder(&self, f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) {
        *lock(&self.shared.responder) = Some(Responder(Arc::new(f)));
    }

    /// Requests received, health checks excluded.
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// Requests received for `path` (query string ignored), health checks included.
    pub fn hits_path(&self, path: &str) -> usize {
        lock(&self.shared.per_path).get(path).copied().unwrap_or(0)
    }

    /// Health checks answered 200.
    pub fn health_ok(&self) -> usize {
        self.shared.health_ok.load(Ordering::SeqCst)
    }

    /// Health checks answered 503.
    pub fn health_fail(&self) -> usize {
        self.shared.health_fail.load(Ordering::SeqCst)
    }

    /// All health checks received.
    pub fn health_checks(&self) -> usize {
        self.health_ok() + self.health_fail()
    }

    /// Requests currently being answered (health checks excluded).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Highest `in_flight` seen.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections currently open.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.conns).len()
    }

    /// The requests received so far (health checks excluded), oldest first.
    pub fn requests(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// The most recent request received (health checks excluded).
    pub fn last_request(&self) -> Option<Seen> {
        lock(&self.shared.seen).last().cloned()
    }

    pub fn is_stopped(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }

    /// Kills the origin: closes the listening socket (new connections are refused once this
    /// returns) and shuts down every open connection, including ones mid-request.
    pub fn stop(&self) {
        let acceptor = lock(&self.acceptor).take();
        let Some(acceptor) = acceptor else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept(); the loop sees `stopping` and drops the listener.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !acceptor.is_finished() && Instant::now() < deadline {
            let _ = TcpStream::connect_timeout(&self.shared.addr, Duration::from_millis(200));
            let wait_until = Instant::now() + Duration::from_millis(200);
            while !acceptor.is_finished() && Instant::now() < wait_until {
                thread::sleep(Duration::from_millis(1));
            }
        }
        if !acceptor.is_finished() {
            if !thread::panicking() {
                panic!("origin {} did not close its listener", self.shared.name);
            }
            return;
        }
        let _ = acceptor.join();
        for (_, conn) in lock(&self.shared.conns).drain() {
            let _ = conn.shutdown(Shutdown::Both);
        }
        // Workers leave promptly: reads see EOF, delays are interruptible. Bounded anyway.
        let workers: Vec<_> = lock(&self.shared.workers).drain(..).collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        for w in workers {
            while !w.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(2));
            }
            if w.is_finished() {
                let _ = w.join();
            }
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id: u64 = 0;
    for incoming in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let stream = match incoming {
            Ok(s) => s,
            Err(_) => {
                // E.g. EMFILE under load: back off briefly instead of spinning.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        next_id += 1;
        let id = next_id;
        let Ok(registered) = stream.try_clone() else {
            continue;
        };
        lock(&shared.conns).insert(id, registered);
        let for_worker = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(format!("origin-{}-conn", shared.name))
            .spawn(move || {
                let peer = stream
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                let _ = serve(&for_worker, stream, peer);
                if let Some(conn) = lock(&for_worker.conns).remove(&id) {
                    let _ = conn.shutdown(Shutdown::Both);
                }
            });
        let mut workers = lock(&shared.workers);
        workers.retain(|w| !w.is_finished());
        match spawned {
            Ok(handle) => workers.push(handle),
            Err(_) => {
                if let Some(conn) = lock(&shared.conns).remove(&id) {
                    let _ = conn.shutdown(Shutdown::Both);
                }
            }
        }
    }
    // The listener is dropped here: from now on connects are refused.
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        418 => "I'm a teapot",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Serves requests on one connection until it closes, errors, or the origin stops.
fn serve(shared: &Shared, stream: TcpStream, peer: SocketAddr) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut answered_here = 0usize;
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        answered_here += 1;
        let mut parts = head.start.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let version = parts.next().unwrap_or("HTTP/1.1").to_string();
        let body = if head.is_chunked() {
            read_chunked(&mut reader)?
        } else {
            match head.content_length()? {
                Some(len) => read_len(&mut reader, len)?,
                None => Vec::new(),
            }
        };
        if shared.stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        let connection = head
            .header("connection")
            .map(|v| v.to_ascii_lowercase())
            .unwrap_or_default();
        let keep_alive = if version == "HTTP/1.0" {
            connection.contains("keep-alive")
        } else {
            !connection.contains("close")
        };
        let path = target.split('?').next().unwrap_or("").to_string();
        *lock(&shared.per_path).entry(path.clone()).or_insert(0) += 1;

        let mut extra: Vec<(String, String)> = Vec::new();
        let (status, payload) = if path == shared.health_path {
            if shared.healthy.load(Ordering::SeqCst) {
                shared.health_ok.fetch_add(1, Ordering::SeqCst);
                (200, b"ok\n".to_vec())
            } else {
                shared.health_fail.fetch_add(1, Ordering::SeqCst);
                (503, b"unhealthy\n".to_vec())
            }
        } else {
            if shared.drop_reused && answered_here > 1 {
                shared.stale_drops.fetch_add(1, Ordering::SeqCst);
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            shared.hits.fetch_add(1, Ordering::SeqCst);
            let this = Seen {
                method: method.clone(),
                target: target.clone(),
                headers: head.headers.clone(),
                body: body.clone(),
                peer,
                at: Instant::now(),
            };
            {
                let mut seen = lock(&shared.seen);
                if seen.len() < MAX_RECORDS {
                    seen.push(this.clone());
                }
            }
            let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let _guard = InFlight(&shared.in_flight);
            if shared.drop_requests.load(Ordering::SeqCst) {
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            let delay = Duration::from_millis(shared.delay_ms.load(Ordering::SeqCst));
            if !delay.is_zero() && !sleep_unless(delay, || shared.stopping.load(Ordering::SeqCst)) {
                return Ok(());
            }
            let responder = lock(&shared.responder).clone();
            if let Some(Responder(respond)) = responder {
                let reply = respond(&this);
                extra = reply.headers;
                (reply.status, reply.body)
            } else {
                let payload = if shared.echo.load(Ordering::SeqCst) {
                    head.raw.clone().into_bytes()
                } else {
                    shared.name.clone().into_bytes()
                };
                (shared.status.load(Ordering::SeqCst), payload)
            }
        };

        let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        if !extra
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            out.push_str("Content-Type: text/plain\r\n");
        }
        out.push_str(&format!("X-Origin: {}\r\n", shared.name));
        for (k, v) in &extra {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if !keep_alive {
            out.push_str("Connection: close\r\n");
        }
        let send_body = method != "HEAD" && status != 204 && status != 304;
        out.push_str(&format!("Content-Length: {}\r\n\r\n", payload.len()));
        let mut bytes = out.into_bytes();
        if send_body {
            bytes.extend_from_slice(&payload);
        }
        writer.write_all(&bytes)?;
        writer.flush()?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// A loopback port that refuses connections for as long as this lives: a socket bound to
/// 127.0.0.1:0 that never listens. Every connect to it gets a RST (connection refused), and
/// since the port stays bound no other socket (an origin of a concurrent test, say) can take
/// it, as it could a port that was merely picked and released. For dead backend addresses.
pub struct Refusing {
    addr: SocketAddr,
    _socket: tokio::net::TcpSocket,
}

impl Refusing {
    pub fn new() -> Refusing {
        // tokio's TcpSocket (plain socket2 underneath; no runtime needed) can bind without
        // listening, which std's TcpListener cannot.
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind 127.0.0.1:0");
        let addr = socket.local_addr().expect("local_addr of a bound socket");
        Refusing {
            addr,
            _socket: socket,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Decrements the in-flight counter however the request ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
