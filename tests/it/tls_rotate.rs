//! Certificates that rotate: while a client keeps opening fresh TLS connections and sending
//! requests, the certificate files are replaced (temporary file + rename) and strait reloads,
//! by SIGHUP or by watching the files. No request fails, new handshakes get the new
//! certificate, and a bad pair keeps the old one with the error reported.

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::support::pki::{self, Client, Pair};
use crate::support::strait::temp_dir;
use crate::support::{config, eventually_msg, Origin, Strait};

/// Fresh TLS connections with one request each, until stopped: the CN each handshake saw,
/// and every failure.
struct Loop {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    failures: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Loop {
    fn start(addr: std::net::SocketAddr) -> Loop {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (s, v, f) = (stop.clone(), seen.clone(), failures.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let client = Client {
                    sni: Some("rot.test"),
                    ..Client::default()
                };
                let outcome = pki::connect(addr, &client).and_then(|mut tls| {
                    let cn = tls
                        .ssl()
                        .peer_certificate()
                        .map(|c| pki::cn_of(&c))
                        .ok_or("no certificate")?;
                    let (status, _, body) = pki::send_get(&mut tls, "rot.test", "/")?;
                    if status != 200 {
                        return Err(format!(
                            "status {status}: {}",
                            String::from_utf8_lossy(&body)
                        ));
                    }
                    Ok(cn)
                });
                match outcome {
                    Ok(cn) => v.lock().unwrap().push(cn),
                    Err(e) => f.lock().unwrap().push(e),
                }
            }
        });
        Loop {
            stop,
            seen,
            failures,
            thread: Some(thread),
        }
    }

    fn count(&self, cn: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == cn)
            .count()
    }

    /// Waits until `n` more handshakes than now saw `cn`.
    #[track_caller]
    fn wait_for(&self, cn: &str, n: usize) {
        let target = self.count(cn) + n;
        eventually_msg(
            Duration::from_secs(20),
            &format!("{n} handshakes with {cn}"),
            || self.count(cn) >= target,
        );
    }

    /// Stops the loop; returns the failures.
    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("the request loop panicked");
        }
        self.failures.lock().unwrap().clone()
    }
}

fn signal_hup(s: &Strait) {
    // SAFETY: kill(2) with a pid this test spawned; no memory is shared.
    let rc = unsafe { libc::kill(s.pid() as i32, libc::SIGHUP) };
    assert_eq!(rc, 0, "kill(SIGHUP) failed");
}

fn rotation_config(dir: &std::path::Path, origin: &Origin, watch: bool) -> String {
    let server = if watch {
        "server:\n  watch: true\n"
    } else {
        ""
    };
    config(&format!(
        "    tls:\n      certs: [{{ cert: {d}/site.crt, key: {d}/site.key }}]\n\
         {server}domains:\n  - hosts: [\"*\"]\n    backends: [{{ addr: {url} }}]\n",
        d = dir.display(),
        url = origin.url()
    ))
}

/// Replaces site.crt and site.key by `pair`, each by temporary file + rename.
fn install(dir: &std::path::Path, pair: &Pair) {
    pki::replace_file(
        &dir.join("site.key"),
        &pair.key.private_key_to_pem_pkcs8().expect("key"),
    );
    pki::replace_file(&dir.join("site.crt"), &pair.cert.to_pem().expect("pem"));
}

#[test]
fn sighup_rotates_certificates_under_load_and_a_bad_pair_keeps_the_old() {
    let origin = Origin::plain("rot");
    let dir = temp_dir("rotate-hup");
    let v1 = pki::issue("v1.rot.test", None, &["rot.test"], None, false);
    let v2 = pki::issue("v2.rot.test", None, &["rot.test"], None, false);
    v1.write(&dir, "site");
    let s = Strait::start(&rotation_config(&dir, &origin, false));
    let load = Loop::start(s.addr());
    load.wait_for("v1.rot.test", 10);

    install(&dir, &v2);
    signal_hup(&s);
    assert!(
        s.stderr_contains("certificates reloaded", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    load.wait_for("v2.rot.test", 10);

    // A key that belongs to another certificate: the reload is rejected, v2 stays.
    let other = pki::issue("other", None, &["rot.test"], None, false);
    pki::replace_file(
        &dir.join("site.key"),
        &other.key.private_key_to_pem_pkcs8().expect("key"),
    );
    signal_hup(&s);
    assert!(
        s.stderr_contains("reload rejected", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    let rejected = s
        .stderr()
        .lines()
        .find(|l| l.contains("reload rejected:") && l.contains("does not match"))
        .map(str::to_string);
    let line = rejected.unwrap_or_else(|| panic!("no mismatch error logged:\n{}", s.stderr()));
    assert!(
        line.contains("strait.yaml:4:") && line.contains("listeners[0].tls.certs[0]"),
        "the error names the pair's file:line:col: {line}"
    );
    load.wait_for("v2.rot.test", 10);

    let failures = load.finish();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
}

#[test]
fn watched_certificate_files_rotate_without_a_signal() {
    let origin = Origin::plain("rot");
    let dir = temp_dir("rotate-watch");
    let v1 = pki::issue("v1.rot.test", None, &["rot.test"], None, false);
    let v2 = pki::issue("v2.rot.test", None, &["rot.test"], None, false);
    v1.write(&dir, "site");
    let s = Strait::start(&rotation_config(&dir, &origin, true));
    assert!(
        s.stderr_contains("watching", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    let load = Loop::start(s.addr());
    load.wait_for("v1.rot.test", 10);

    install(&dir, &v2);
    load.wait_for("v2.rot.test", 10);
    assert!(s.stderr_has("certificates reloaded"), "{}", s.stderr());

    let failures = load.finish();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    let config = fs::read_to_string(s.config_path()).expect("config");
    assert!(config.contains("site.crt"));
}
