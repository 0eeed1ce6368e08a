//! A WebSocket echo origin and client for tests, on the `tungstenite` crate's blocking API over
//! `std::net::TcpStream`: it does the opening handshakes (and checks `Sec-WebSocket-Accept`),
//! framing, client masking, ping/pong and the closing handshake.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tungstenite::handshake::client::Request;
use tungstenite::handshake::server;
use tungstenite::http::{HeaderMap, HeaderValue};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{HandshakeError, Message, WebSocket};

use super::client::Response;

/// Header fields as received, in order (names in lower case).
pub type Fields = Vec<(String, String)>;

/// The sample `Sec-WebSocket-Key` of RFC 6455 §1.3, sent by every [`WsClient`] so tests can
/// check the `Sec-WebSocket-Accept` that comes back.
pub const CLIENT_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    tungstenite::handshake::derive_accept_key(key.as_bytes())
}

/// One received message, as its opcode and payload (a close frame's payload is its code and
/// reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    fn from_message(message: Message) -> Frame {
        let (opcode, payload) = match message {
            Message::Text(text) => (TEXT, text.into_bytes()),
            Message::Binary(data) => (BINARY, data),
            Message::Ping(data) => (PING, data),
            Message::Pong(data) => (PONG, data),
            Message::Close(frame) => (
                CLOSE,
                frame.map_or_else(Vec::new, |f| {
                    let mut payload = u16::from(f.code).to_be_bytes().to_vec();
                    payload.extend_from_slice(f.reason.as_bytes());
                    payload
                }),
            ),
            // Only produced when reading raw frames, which this client never does.
            Message::Frame(frame) => (frame.header().opcode.into(), frame.into_data()),
        };
        Frame { opcode, payload }
    }
}

/// The message for `opcode` with `payload` (a close payload is a code and a reason).
fn message(opcode: u8, payload: &[u8]) -> io::Result<Message> {
    Ok(match opcode {
        TEXT => Message::Text(
            String::from_utf8(payload.to_vec())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        ),
        BINARY => Message::Binary(payload.to_vec()),
        PING => Message::Ping(payload.to_vec()),
        PONG => Message::Pong(payload.to_vec()),
        CLOSE => Message::Close(match payload {
            [] => None,
            [hi, lo, reason @ ..] => Some(CloseFrame {
                code: CloseCode::from(u16::from_be_bytes([*hi, *lo])),
                reason: String::from_utf8_lossy(reason).into_owned().into(),
            }),
            [_] => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a close payload starts with a two-byte code",
                ))
            }
        }),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no message for opcode {other:#x}"),
            ))
        }
    })
}

/// A tungstenite error as an I/O error (the I/O error itself where there is one).
fn io_error(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        e => io::Error::other(e),
    }
}

fn fields(headers: &HeaderMap) -> Fields {
    headers
        .iter()
        .map(|(k, v)| {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_string(), v)
        })
        .collect()
}

/// An echo server: answers the handshake with 101 (plus `X-Origin: NAME`), then echoes text
/// and binary messages, answers pings, and closes on close. Other requests get 400.
pub struct WsOrigin {
    addr: SocketAddr,
    name: String,
    stopping: Arc<AtomicBool>,
    upgrades: Arc<AtomicUsize>,
    /// Request heads of the handshakes received.
    seen: Arc<Mutex<Vec<Fields>>>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl WsOrigin {
    pub fn start(name: &str) -> WsOrigin {
        WsOrigin::start_with_delay(name, HANDSHAKE_DELAY)
    }

    /// An origin that waits `delay` before each 101 (`Duration::ZERO`: answers at once).
    pub fn start_with_delay(name: &str, delay: Duration) -> WsOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a WebSocket origin");
        let origin = WsOrigin {
            addr: listener.local_addr().expect("local_addr"),
            name: name.to_string(),
            stopping: Arc::new(AtomicBool::new(false)),
            upgrades: Arc::new(AtomicUsize::new(0)),
            seen: Arc::new(Mutex::new(Vec::new())),
            conns: Arc::new(Mutex::new(Vec::new())),
        };
        let (stopping, upgrades, seen, conns, name) = (
            origin.stopping.clone(),
            origin.upgrades.clone(),
            origin.seen.clone(),
            origin.conns.clone(),
            origin.name.clone(),
        );
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(c) = stream.try_clone() {
                    conns.lock().unwrap().push(c);
                }
                let (upgrades, seen, name) = (upgrades.clone(), seen.clone(), name.clone());
                thread::spawn(move || {
                    let _ = serve(stream, &name, &upgrades, &seen, delay);
                });
            }
        });
        origin
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Handshakes answered with 101.
    pub fn upgrades(&self) -> usize {
        self.upgrades.load(Ordering::SeqCst)
    }

    /// The header fields of every handshake received, oldest first.
    pub fn handshakes(&self) -> Vec<Fields> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for WsOrigin {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

/// How long the origin waits before its 101 (see `Handshake::on_request`).
pub const HANDSHAKE_DELAY: Duration = Duration::from_millis(30);

/// Records a handshake the origin accepts and adds `X-Origin` to its 101.
struct Handshake<'a> {
    name: &'a str,
    upgrades: &'a AtomicUsize,
    seen: &'a Mutex<Vec<Fields>>,
    delay: Duration,
}

impl server::Callback for Handshake<'_> {
    fn on_request(
        self,
        request: &server::Request,
        mut response: server::Response,
    ) -> Result<server::Response, server::ErrorResponse> {
        self.seen.lock().unwrap().push(fields(request.headers()));
        self.upgrades.fetch_add(1, Ordering::SeqCst);
        // Pingora 0.9.1 tears an upgrade down when the backend's 101 is read before the
        // upgrade request's own (empty) body end has gone through its pipe
        // (cloudflare/pingora#946, fixes open upstream): a loopback origin answering at once
        // hits that race now and then. Answering a moment later keeps these tests about
        // strait's tunnels; `websocket::upgrade_race_with_an_instant_101` tracks the bug.
        thread::sleep(self.delay);
        if let Ok(v) = HeaderValue::from_str(self.name) {
            response.headers_mut().insert("x-origin", v);
        }
        Ok(response)
    }
}

fn serve(
    stream: TcpStream,
    name: &str,
    upgrades: &AtomicUsize,
    seen: &Mutex<Vec<Fields>>,
    delay: Duration,
) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    // tungstenite writes nothing when it refuses a request; the 400 goes out on this clone.
    let mut refusal = stream.try_clone()?;
    let on_request = Handshake {
        name,
        upgrades,
        seen,
        delay,
    };
    let mut ws = match tungstenite::accept_hdr(stream, on_request) {
        Ok(ws) => ws,
        Err(_) => {
            refusal.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\nConnection: close\r\n\r\nnot a ws req",
            )?;
            return Ok(());
        }
    };
    // Pings are answered and a close is returned by tungstenite itself (flushed on the next
    // read, which then reports the connection closed).
    loop {
        if let m @ (Message::Text(_) | Message::Binary(_)) = ws.read().map_err(io_error)? {
            ws.send(m).map_err(io_error)?;
        }
    }
}

/// A client connection after a handshake.
pub struct WsClient {
    /// `None` when the handshake was refused.
    ws: Option<WebSocket<TcpStream>>,
    /// The socket, for timeouts whatever became of the handshake.
    stream: TcpStream,
    /// The handshake's response (101, or whatever refused it).
    pub response: Response,
}

impl WsClient {
    /// Sends the opening handshake for `path` on `Host: host` with `extra` headers (and the key
    /// [`CLIENT_KEY`]) and reads the response head. Returns the client whatever the status;
    /// check `response.status`. A 101 must carry the right `Sec-WebSocket-Accept`.
    pub fn connect(
        addr: SocketAddr,
        host: &str,
        path: &str,
        extra: &[(&str, &str)],
    ) -> io::Result<WsClient> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        // tungstenite wants a `ws:` URI; only its path goes out (`Host` is the header below).
        let mut request = Request::builder()
            .uri(format!("ws://{addr}{path}"))
            .header("Host", host)
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Key", CLIENT_KEY)
            .header("Sec-WebSocket-Version", "13");
        for (k, v) in extra {
            request = request.header(*k, *v);
        }
        let request = request
            .body(())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let handle = stream.try_clone()?;
        match tungstenite::client(request, stream) {
            Ok((ws, response)) => Ok(WsClient {
                ws: Some(ws),
                stream: handle,
                response: Response {
                    status: response.status().as_u16(),
                    reason: String::new(),
                    headers: fields(response.headers()),
                    body: Vec::new(),
                },
            }),
            // Not a 101: the body is what came after the head, plus the rest of a
            // Content-Length body.
            Err(HandshakeError::Failure(tungstenite::Error::Http(refused))) => {
                let mut response = Response {
                    status: refused.status().as_u16(),
                    reason: String::new(),
                    headers: fields(refused.headers()),
                    body: refused.body().clone().unwrap_or_default(),
                };
                let len = response
                    .header("content-length")
                    .map(|v| v.trim().parse::<usize>());
                if let Some(len) = len {
                    let len = len.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    let mut rest = vec![0; len.saturating_sub(response.body.len())];
                    (&handle).read_exact(&mut rest)?;
                    response.body.extend_from_slice(&rest);
                }
                Ok(WsClient {
                    ws: None,
                    stream: handle,
                    response,
                })
            }
            Err(HandshakeError::Failure(e)) => Err(io_error(e)),
            // A blocking socket only "would block" when its read timeout expires.
            Err(HandshakeError::Interrupted(_)) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "timed out waiting for the handshake's response",
            )),
        }
    }

    fn ws(&mut self) -> io::Result<&mut WebSocket<TcpStream>> {
        let status = self.response.status;
        self.ws.as_mut().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotConnected,
                format!("the handshake was refused with {status}"),
            )
        })
    }

    pub fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let message = message(opcode, payload)?;
        self.ws()?.send(message).map_err(io_error)
    }

    pub fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.send(TEXT, text.as_bytes())
    }

    pub fn recv(&mut self) -> io::Result<Frame> {
        let message = self.ws()?.read().map_err(io_error)?;
        Ok(Frame::from_message(message))
    }

    /// Sends `text` and returns the echo.
    pub fn echo(&mut self, text: &str) -> io::Result<String> {
        self.send_text(text)?;
        let frame = self.recv()?;
        Ok(frame.text())
    }

    pub fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(t))
    }
}
