//! An HTTP/2 origin without TLS (prior knowledge, what `h2c://` backends speak), on the h2
//! crate Pingora itself uses. It answers every request with 200, `x-proto: h2`, and the body
//! `h2c:<path>`; it counts connections and requests per path.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[derive(Default)]
struct Counts {
    connections: AtomicUsize,
    paths: Mutex<HashMap<String, usize>>,
}

pub struct H2cOrigin {
    addr: SocketAddr,
    counts: Arc<Counts>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl H2cOrigin {
    pub fn start() -> H2cOrigin {
        let std_listener = StdListener::bind("127.0.0.1:0").expect("bind the h2c origin");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local addr");
        let counts = Arc::new(Counts::default());
        let (stop, mut stopped) = oneshot::channel();
        let shared = counts.clone();
        let thread = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the h2c origin");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("tokio listener");
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let Ok((socket, _)) = accepted else { continue };
                            shared.connections.fetch_add(1, Ordering::SeqCst);
                            tokio::spawn(serve(socket, shared.clone()));
                        }
                    }
                }
            });
        });
        H2cOrigin {
            addr,
            counts,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("h2c://{}", self.addr)
    }

    pub fn connections(&self) -> usize {
        self.counts.connections.load(Ordering::SeqCst)
    }

    pub fn hits(&self, path: &str) -> usize {
        let paths = self.counts.paths.lock().unwrap_or_else(|e| e.into_inner());
        paths.get(path).copied().unwrap_or(0)
    }
}

impl Drop for H2cOrigin {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(socket: tokio::net::TcpStream, counts: Arc<Counts>) {
    let Ok(mut conn) = h2::server::handshake(socket).await else {
        return;
    };
    while let Some(Ok((request, mut respond))) = conn.accept().await {
        let path = request.uri().path().to_string();
        *counts
            .paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(path.clone())
            .or_default() += 1;
        let response = http::Response::builder()
            .status(200)
            .header("x-proto", "h2")
            .header("content-type", "text/plain")
            .body(())
            .expect("a response head");
        let Ok(mut body) = respond.send_response(response, false) else {
            continue;
        };
        let _ = body.send_data(Bytes::from(format!("h2c:{path}")), true);
    }
}
