//! A tiny HTTP/1.1 origin for `strait demo`: it names itself in every answer so the
//! alternation between backends is visible. Thread per connection; demo traffic only.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

/// Requests larger than this are answered with 431 and the connection is closed.
const MAX_HEAD: usize = 64 * 1024;

/// A tiny HTTP origin for the demo that answers with its own name.
pub struct DemoOrigin {
    /// The name it answers with.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl DemoOrigin {
    /// Starts the origin on a free loopback port.
    pub fn start(name: &str) -> io::Result<DemoOrigin> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let name = name.to_string();
        let counter = Arc::new(AtomicU64::new(0));
        let thread_name = name.clone();
        thread::Builder::new()
            .name(format!("demo-{name}"))
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    let name = thread_name.clone();
                    let counter = counter.clone();
                    let _ = thread::Builder::new().spawn(move || {
                        let _ = serve(stream, &name, &counter);
                    });
                }
            })?;
        Ok(DemoOrigin { name, addr })
    }
}

fn serve(stream: TcpStream, name: &str, counter: &AtomicU64) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        let mut lines = head.lines();
        let request_line = lines.next().unwrap_or_default();
        let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
        let mut body_len = 0usize;
        let mut close = request_line.ends_with("HTTP/1.0");
        for line in lines {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("content-length") {
                body_len = v.parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("connection") {
                close = v.eq_ignore_ascii_case("close");
            }
        }
        io::copy(&mut (&mut reader).take(body_len as u64), &mut io::sink())?;
        let body = if path == "/health" {
            "ok\n".to_string()
        } else {
            let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
            format!("Hello from {name} (request #{n} to this origin, path {path})\n")
        };
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nX-Origin: {name}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" },
        )?;
        if close {
            return Ok(());
        }
    }
}

/// The request head up to the blank line, or `None` at a clean end of stream.
fn read_head(reader: &mut BufReader<TcpStream>) -> io::Result<Option<String>> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if line == "\r\n" || line == "\n" {
            return Ok(Some(head));
        }
        head.push_str(&line);
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
    }
}
