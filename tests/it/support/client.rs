//! A minimal HTTP/1.1 client on `std::net::TcpStream`, plus the message parsing shared with
//! the test origins. Every socket gets a read and a write timeout so no test can hang on it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// Read/write timeout on every client socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect timeout (loopback: anything slower than this is a failure).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound on a message head, to fail fast on garbage.
const MAX_HEAD: usize = 64 * 1024;

/// An HTTP response as received.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// In received order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the server announced it will close the connection.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("close"))
    }
}

/// First value of header `name` in `headers` (case-insensitive).
pub fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A message head: the start line, the header fields, and the raw text as received.
#[derive(Debug, Clone)]
pub struct Head {
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub raw: String,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Whether the body is chunked (`Transfer-Encoding` ends in `chunked`).
    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding").is_some_and(|v| {
            v.rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
        })
    }

    /// `Content-Length`, if present and valid.
    pub fn content_length(&self) -> io::Result<Option<usize>> {
        match self.header("content-length") {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| bad(format!("bad Content-Length {v:?}"))),
        }
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads one message head. `Ok(None)` on a clean EOF before the first byte.
/// Leading empty lines (allowed between pipelined messages) are skipped.
pub fn read_head<R: BufRead>(r: &mut R) -> io::Result<Option<Head>> {
    let mut raw = Vec::new();
    let mut start = String::new();
    let mut headers = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 {
            if raw.is_empty() && start.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a message head",
            ));
        }
        if !line.ends_with(b"\n") {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a message head",
            ));
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let trimmed = text.trim_end_matches(['\r', '\n']);
        if start.is_empty() {
            if trimmed.is_empty() {
                continue;
            }
            start = trimmed.to_string();
            raw.extend_from_slice(&line);
            continue;
        }
        raw.extend_from_slice(&line);
        if raw.len() > MAX_HEAD {
            return Err(bad("message head too large"));
        }
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line {trimmed:?}")))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(Some(Head {
        start,
        headers,
        raw: String::from_utf8_lossy(&raw).into_owned(),
    }))
}

/// Reads a chunked body (trailers are read and dropped).
pub fn read_chunked<R: BufRead>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a chunked body",
            ));
        }
        let size_text = line.trim().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| bad(format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            // Trailer fields, then the final empty line.
            loop {
                let mut t = String::new();
                if r.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let at = body.len();
        body.resize(at + size, 0);
        r.read_exact(&mut body[at..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(bad("chunk not followed by CRLF"));
        }
    }
}

/// Reads exactly `len` body bytes.
pub fn read_len<R: Read>(r: &mut R, len: usize) -> io::Result<Vec<u8>> {
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Reads one response for a request made with `method`. Interim 1xx responses are skipped.
/// Returns the response and whether the body was delimited by EOF (connection now unusable).
pub fn read_response<R: BufRead>(r: &mut R, method: &str) -> io::Result<(Response, bool)> {
    loop {
        let head = read_head(r)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before any response byte",
            )
        })?;
        let mut parts = head.start.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !version.starts_with("HTTP/1.") {
            return Err(bad(format!("bad status line {:?}", head.start)));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {:?}", head.start)))?;
        let reason = parts.next().unwrap_or("").to_string();
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let no_body = method.eq_ignore_ascii_case("HEAD")
            || status == 204
            || status == 304
            || (100..200).contains(&status);
        let mut to_eof = false;
        let body = if no_body {
            Vec::new()
        } else if head.is_chunked() {
            read_chunked(r)?
        } else if let Some(len) = head.content_length()? {
            read_len(r, len)?
        } else {
            to_eof = true;
            let mut b = Vec::new();
            r.read_to_end(&mut b)?;
            b
        };
        let response = Response {
            status,
            reason,
            headers: head.headers,
            body,
        };
        return Ok((response, to_eof));
    }
}

/// Serialises a request. Adds `Content-Length` when there is a body (or the method usually
/// carries one) and the caller set neither `Content-Length` nor `Transfer-Encoding`.
pub fn encode_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\n");
    let mut framed = false;
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding") {
            framed = true;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    let wants_length = !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH");
    if !framed && wants_length {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn prepare(stream: &TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(())
}

/// Connects from a chosen local address (e.g. 127.0.0.2: on Linux all of 127.0.0.0/8 is
/// loopback). std cannot bind before connect, so this goes through tokio's `TcpSocket`
/// (already a dependency of strait) on a throwaway current-thread runtime.
pub fn connect_from(local: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    // Loopback connects complete or fail at once, so no connect timeout is needed here.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let stream = rt.block_on(async {
        let socket = match local {
            IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(local, 0))?;
        socket.connect(addr).await
    })?;
    let std_stream = stream.into_std()?;
    std_stream.set_nonblocking(false)?;
    Ok(std_stream)
}

/// A client connection that can carry several requests (keep-alive).
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    closed: bool,
    /// Responses read so far on this connection.
    answered: usize,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> io::Result<Conn> {
        Conn::wrap(TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?)
    }

    /// Connects with the given local (source) IP.
    pub fn connect_from(local: IpAddr, addr: SocketAddr) -> io::Result<Conn> {
        Conn::wrap(connect_from(local, addr)?)
    }

    fn wrap(stream: TcpStream) -> io::Result<Conn> {
        prepare(&stream)?;
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            closed: false,
            answered: 0,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.writer.local_addr()
    }

    /// Whether the server ended the connection (by `Connection: close` or an EOF body).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// How many responses this connection has carried (0: fresh).
    pub fn answered(&self) -> usize {
        self.answered
    }

    /// Sends one request and reads its response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        if self.closed {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the server closed this connection",
            ));
        }
        self.writer
            .write_all(&encode_request(method, path, headers, body))?;
        self.read_response(method)
    }

    /// `GET path` with `Host: host`, keeping the connection open.
    pub fn get(&mut self, host: &str, path: &str) -> io::Result<Response> {
        self.request("GET", path, &[("Host", host)], b"")
    }

    /// Writes raw bytes on this connection.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Reads one response (after `send_raw`).
    pub fn read_response(&mut self, method: &str) -> io::Result<Response> {
        let (response, to_eof) = read_response(&mut self.reader, method)?;
        self.answered += 1;
        if to_eof || response.closes() {
            self.closed = true;
        }
        Ok(response)
    }
}

/// Whether `e` is how a server closing an idle keep-alive connection shows up on the next
/// request: nothing was answered, the connection is just gone.
pub fn is_stale_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// One-shot `GET` with `Connection: close`.
pub fn get(addr: SocketAddr, host: &str, path: &str) -> io::Result<Response> {
    request(addr, "GET", path, &[("Host", host)], b"")
}

/// One-shot request on a fresh connection; adds `Connection: close` unless the caller set a
/// `Connection` header. The caller supplies `Host`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("connection"))
    {
        all.push(("Connection", "close"));
    }
    Conn::connect(addr)?.request(method, path, &all, body)
}

/// One-shot `GET` from a chosen source IP.
pub fn get_from(local: IpAddr, addr: SocketAddr, host: &str, path: &str) -> io::Result<Response> {
    Conn::connect_from(local, addr)?.request(
        "GET",
        path,
        &[("Host", host), ("Connection", "close")],
        b"",
    )
}

/// Raw mode: sends `bytes`, half-closes the write side, and returns everything the server
/// sends until it closes the connection (or the read timeout passes).
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    prepare(&stream)?;
    stream.write_all(bytes)?;
    stream.shutdown(Shutdown::Write)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::ConnectionReset
                ) =>
            {
                break
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Raw mode, parsed: sends `bytes` and reads one response.
pub fn raw_response(addr: SocketAddr, bytes: &[u8]) -> io::Result<Response> {
    let mut conn = Conn::connect(addr)?;
    conn.send_raw(bytes)?;
    conn.read_response("GET")
}

/// The request head an echo origin sent back: (request line, header fields).
pub fn parse_echo(body: &[u8]) -> (String, Vec<(String, String)>) {
    let mut reader = BufReader::new(body);
    match read_head(&mut reader) {
        Ok(Some(head)) => (head.start, head.headers),
        other => panic!(
            "echo body is not a request head ({other:?}): {:?}",
            String::from_utf8_lossy(body)
        ),
    }
}
