//! A small OTLP/HTTP receiver: a real HTTP/1.1 server on 127.0.0.1 (keep-alive, one thread
//! per connection) that answers `POST /v1/traces` with 200 and keeps each JSON body, as a
//! collector would. Other paths get 404.

use std::io::{BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;

use super::client::{read_head, read_len};

/// One POST as received.
#[derive(Debug, Clone)]
pub struct Export {
    pub path: String,
    pub content_type: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct Shared {
    exports: Mutex<Vec<Export>>,
    stopping: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
}

pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the OTLP receiver");
        let addr = listener.local_addr().expect("receiver address");
        let shared = Arc::new(Shared::default());
        let for_accept = shared.clone();
        thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if for_accept.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    if let Ok(copy) = stream.try_clone() {
                        for_accept.conns.lock().unwrap().push(copy);
                    }
                    let shared = for_accept.clone();
                    thread::spawn(move || serve(stream, &shared));
                }
            })
            .expect("spawn the receiver");
        Receiver { addr, shared }
    }

    /// `http://127.0.0.1:PORT/v1/traces`
    pub fn url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    pub fn exports(&self) -> Vec<Export> {
        self.shared.exports.lock().unwrap().clone()
    }

    /// Every span received so far, in arrival order, each with the resource's
    /// `service.name` added as `"service"`.
    pub fn spans(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for export in self.exports() {
            for rs in export.body["resourceSpans"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let service = rs["resource"]["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["key"] == "service.name")
                    .map(|a| a["value"]["stringValue"].clone())
                    .unwrap_or(Value::Null);
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for span in ss["spans"].as_array().into_iter().flatten() {
                        let mut span = span.clone();
                        span["service"] = service.clone();
                        out.push(span);
                    }
                }
            }
        }
        out
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor, then end every connection.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        for c in self.shared.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Ok(Some(head)) = read_head(&mut reader) {
        let len = head.content_length().ok().flatten().unwrap_or(0);
        let Ok(body) = read_len(&mut reader, len) else {
            return;
        };
        let mut parts = head.start.split(' ');
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let ok = method == "POST" && path == "/v1/traces";
        if ok {
            let body = serde_json::from_slice(&body).unwrap_or_else(|e| {
                Value::String(format!(
                    "not JSON ({e}): {}",
                    String::from_utf8_lossy(&body)
                ))
            });
            shared.exports.lock().unwrap().push(Export {
                path: path.to_string(),
                content_type: head.header("content-type").map(str::to_string),
                body,
            });
        }
        let reply: &[u8] = if ok {
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        } else {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        };
        if out.write_all(reply).is_err() {
            return;
        }
    }
}
