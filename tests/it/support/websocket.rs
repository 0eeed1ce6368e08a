//! A WebSocket echo origin and client, enough of RFC 6455 for tests: the opening handshake
//! (with `Sec-WebSocket-Accept` computed from SHA-1 and base64), unfragmented frames, client
//! masking, ping/pong and close.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::client::{read_head, Response};

/// Header fields as received, in order.
pub type Fields = Vec<(String, String)>;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let digest = openssl::sha::sha1(format!("{key}{GUID}").as_bytes());
    openssl::base64::encode_block(&digest)
}

/// One frame (never fragmented here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// Encodes a final frame; clients must pass a mask, servers must not.
pub fn encode(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n < 65536 => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// Reads one frame, unmasking it if masked.
pub fn decode<R: Read>(r: &mut R) -> io::Result<Frame> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head)?;
    let opcode = head[0] & 0x0F;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)?;
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b)?;
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut key = [0u8; 4];
    if masked {
        r.read_exact(&mut key)?;
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    Ok(Frame { opcode, payload })
}

/// An echo server: answers the handshake with 101 (plus `X-Origin: NAME`), then echoes text
/// and binary frames, answers pings, and closes on close. Other requests get 400.
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
                    let _ = serve(stream, &name, &upgrades, &seen);
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

fn serve(
    stream: TcpStream,
    name: &str,
    upgrades: &AtomicUsize,
    seen: &Mutex<Vec<Fields>>,
) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    let key = head.header("sec-websocket-key").map(str::to_string);
    let is_ws = head
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let Some(key) = key.filter(|_| is_ws) else {
        writer.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\nConnection: close\r\n\r\nnot a ws req",
        )?;
        return Ok(());
    };
    seen.lock().unwrap().push(head.headers.clone());
    upgrades.fetch_add(1, Ordering::SeqCst);
    write!(
        writer,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nX-Origin: {name}\r\n\r\n",
        accept_key(&key)
    )?;
    loop {
        let frame = decode(&mut reader)?;
        match frame.opcode {
            TEXT | BINARY => writer.write_all(&encode(frame.opcode, &frame.payload, None))?,
            PING => writer.write_all(&encode(PONG, &frame.payload, None))?,
            CLOSE => {
                writer.write_all(&encode(CLOSE, &frame.payload, None))?;
                return Ok(());
            }
            _ => {}
        }
    }
}

/// A client connection after a handshake.
pub struct WsClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The handshake's response (101, or whatever refused it).
    pub response: Response,
}

impl WsClient {
    /// Sends the opening handshake for `path` on `Host: host` with `extra` headers and reads
    /// the response head. Returns the client whatever the status; check `response.status`.
    pub fn connect(
        addr: SocketAddr,
        host: &str,
        path: &str,
        extra: &[(&str, &str)],
    ) -> io::Result<WsClient> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        let mut writer = stream.try_clone()?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        for (k, v) in extra {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        writer.write_all(request.as_bytes())?;
        let mut reader = BufReader::new(stream);
        // A 101 has no body; anything else is read whole.
        let head = read_head(&mut reader)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "closed before a response")
        })?;
        let status: u16 = head
            .start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = if status == 101 {
            Vec::new()
        } else {
            let len = head.content_length()?.unwrap_or(0);
            super::client::read_len(&mut reader, len)?
        };
        let response = Response {
            status,
            reason: String::new(),
            headers: head.headers,
            body,
        };
        Ok(WsClient {
            reader,
            writer,
            response,
        })
    }

    pub fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mask: [u8; 4] = rand_mask();
        self.writer.write_all(&encode(opcode, payload, Some(mask)))
    }

    pub fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.send(TEXT, text.as_bytes())
    }

    pub fn recv(&mut self) -> io::Result<Frame> {
        decode(&mut self.reader)
    }

    /// Sends `text` and returns the echo.
    pub fn echo(&mut self, text: &str) -> io::Result<String> {
        self.send_text(text)?;
        let frame = self.recv()?;
        Ok(frame.text())
    }

    pub fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        self.writer.set_read_timeout(Some(t))
    }
}

fn rand_mask() -> [u8; 4] {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x5a5a_5a5a, |d| d.subsec_nanos());
    n.to_le_bytes()
}

#[test]
fn accept_key_matches_rfc_6455() {
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn frames_round_trip() {
    for len in [0usize, 5, 125, 126, 300, 70_000] {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        for mask in [None, Some([1, 2, 3, 4])] {
            let bytes = encode(BINARY, &payload, mask);
            let frame = decode(&mut &bytes[..]).unwrap();
            assert_eq!(
                frame,
                Frame {
                    opcode: BINARY,
                    payload: payload.clone()
                }
            );
        }
    }
}
