//! A tiny authoritative DNS server over UDP on loopback, for `discovery.dns`: it answers A and
//! AAAA queries for the names it was given (RFC 1035 wire format, one question per query),
//! NXDOMAIN for other names, and SERVFAIL for everything while [`Dns::set_failing`] is on.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

struct Shared {
    records: Mutex<HashMap<String, Vec<IpAddr>>>,
    ttl: u32,
    failing: AtomicBool,
    stop: AtomicBool,
    queries: AtomicUsize,
}

pub struct Dns {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Dns {
    /// Serves on 127.0.0.1 (an ephemeral port, kept for the server's life); answers carry `ttl`.
    pub fn start(ttl: u32) -> Dns {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the test DNS server");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let addr = socket.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            records: Mutex::new(HashMap::new()),
            ttl,
            failing: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            queries: AtomicUsize::new(0),
        });
        let s = shared.clone();
        let thread = thread::Builder::new()
            .name("test-dns".into())
            .spawn(move || serve(&socket, &s))
            .expect("spawn the test DNS server");
        Dns {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The addresses `name` resolves to from now on.
    pub fn set(&self, name: &str, ips: &[IpAddr]) {
        self.shared
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(normal(name), ips.to_vec());
    }

    /// While on, every query gets SERVFAIL.
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// Queries answered so far.
    pub fn queries(&self) -> usize {
        self.shared.queries.load(Ordering::SeqCst)
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn serve(socket: &UdpSocket, shared: &Shared) {
    let mut buf = [0u8; 1500];
    while !shared.stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        if let Some(reply) = answer(&buf[..n], shared) {
            shared.queries.fetch_add(1, Ordering::SeqCst);
            let _ = socket.send_to(&reply, from);
        }
    }
}

/// The reply to one query, or None for something that is not a query we can read.
fn answer(q: &[u8], shared: &Shared) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0x80 != 0 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_string());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let question_end = i + 4;
    q.get(..question_end)?;
    let name = normal(&labels.join("."));
    let records = shared
        .records
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&name)
        .cloned();
    let rcode: u8 = if shared.failing.load(Ordering::SeqCst) {
        2 // SERVFAIL
    } else if records.is_none() {
        3 // NXDOMAIN
    } else {
        0
    };
    let ips: Vec<IpAddr> = match (rcode, records) {
        (0, Some(list)) => list
            .into_iter()
            .filter(|ip| match qtype {
                TYPE_A => ip.is_ipv4(),
                TYPE_AAAA => ip.is_ipv6(),
                _ => false,
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut r = Vec::with_capacity(question_end + ips.len() * 28);
    r.extend_from_slice(&q[0..2]); // id
    r.push(0x84 | (q[2] & 0x01)); // QR, AA, RD copied
    r.push(rcode); // RA off, rcode
    r.extend_from_slice(&1u16.to_be_bytes()); // one question
    r.extend_from_slice(&(ips.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]); // no authority, no additional
    r.extend_from_slice(&q[12..question_end]);
    for ip in ips {
        r.extend_from_slice(&[0xc0, 0x0c]); // the question's name
        let (t, data): (u16, Vec<u8>) = match ip {
            IpAddr::V4(v4) => (TYPE_A, v4.octets().to_vec()),
            IpAddr::V6(v6) => (TYPE_AAAA, v6.octets().to_vec()),
        };
        r.extend_from_slice(&t.to_be_bytes());
        r.extend_from_slice(&1u16.to_be_bytes()); // IN
        r.extend_from_slice(&shared.ttl.to_be_bytes());
        r.extend_from_slice(&(data.len() as u16).to_be_bytes());
        r.extend_from_slice(&data);
    }
    Some(r)
}
