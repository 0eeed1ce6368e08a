//! ACME (docs/tls.md, "Automatic certificates") against a real ACME server on loopback:
//! Debian's pebble with pebble-challtestsrv as its DNS (support/pebble.rs). strait gets
//! certificates by HTTP-01 and by TLS-ALPN-01, serves a chain that verifies against pebble's
//! root, reuses stored certificates after a restart, renews, and keeps serving when pebble is
//! gone.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use serde_json::Value;

use crate::support::client;
use crate::support::pebble::Pebble;
use crate::support::pki;
use crate::support::strait::{free_port, temp_dir, Strait};
use crate::support::wait::{eventually_msg, try_eventually};

const HOST: &str = "a.strait.test";
/// Pebble answers an order in well under a second with PEBBLE_VA_NOSLEEP; a first attempt
/// that fails (HTTP-01 then TLS-ALPN-01) retries after 5 s (±25%) of backoff.
const ISSUE_WITHIN: Duration = Duration::from_secs(30);

struct Setup {
    http: Option<u16>,
    tls: u16,
    probe: u16,
    storage: PathBuf,
}

impl Setup {
    fn new(http: bool) -> Setup {
        Setup {
            http: http.then(free_port),
            tls: free_port(),
            probe: free_port(),
            storage: temp_dir("acme-storage").join("acme"),
        }
    }

    fn tls_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.tls))
    }

    fn yaml(&self, pebble: &Pebble, renew_before: &str) -> String {
        self.yaml_with(pebble, renew_before, "")
    }

    fn yaml_with(&self, pebble: &Pebble, renew_before: &str, server: &str) -> String {
        let plain = self
            .http
            .map(|p| format!("  - addr: 127.0.0.1:{p}\n"))
            .unwrap_or_default();
        format!(
            "{server}acme:\n  directory: {}\n  email: ops@strait.test\n  storage: {}\n  ca_roots: {}\n  renew_before: {renew_before}\n\
             listeners:\n{plain}  - addr: 127.0.0.1:{}\n    tls: {{ acme: [{HOST}] }}\n\
             admin: {{ addr: \"{{listen}}\" }}\nprobe: {{ addr: 127.0.0.1:{} }}\n\
             domains:\n  - hosts: [{HOST}]\n    respond: {{ status: 200, body: \"hello from a\\n\" }}\n",
            pebble.directory,
            self.storage.display(),
            pebble.api_ca.display(),
            self.tls,
            self.probe,
        )
    }

    /// Starts strait and waits until its listeners accept: `Strait::start` waits for the
    /// admin listener only, and the proxy's listeners bind in another service a moment later
    /// (a restart on the same storage was refused its first TLS connection in CI).
    fn start(&self, pebble: &Pebble, renew_before: &str) -> Strait {
        let s = Strait::start(&self.yaml(pebble, renew_before));
        self.wait_listening();
        s
    }

    fn wait_listening(&self) {
        for port in self.http.iter().chain([&self.tls]) {
            let addr = SocketAddr::from(([127, 0, 0, 1], *port));
            eventually_msg(Duration::from_secs(10), "strait's listeners accept", || {
                std::net::TcpStream::connect(addr).is_ok()
            });
        }
    }

    fn metric(&self, name_and_labels: &str) -> f64 {
        let probe = SocketAddr::from(([127, 0, 0, 1], self.probe));
        // The probe listener may still be starting when the admin one already accepts.
        let mut text = None;
        try_eventually(Duration::from_secs(10), || {
            text = client::get(probe, "probe", "/metrics")
                .ok()
                .map(|r| r.text());
            text.is_some()
        });
        text.expect("GET /metrics answered within 10 s")
            .lines()
            .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

/// `GET /certificates`, the entry of `host`.
fn certificate(s: &Strait, host: &str) -> Value {
    let r = client::get(s.addr(), "admin", "/certificates").expect("GET /certificates");
    assert_eq!(r.status, 200, "{}", r.text());
    let all: Value = serde_json::from_str(&r.text()).expect("JSON");
    all["certificates"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["host"] == host).cloned())
        .unwrap_or(Value::Null)
}

fn wait_issued(s: &Strait, pebble: &Pebble) -> Value {
    let mut last = Value::Null;
    let ok = try_eventually(ISSUE_WITHIN, || {
        last = certificate(s, HOST);
        last["status"] == "issued"
    });
    assert!(
        ok,
        "not issued: {last}\n--- strait ---\n{}\n{}",
        s.stderr(),
        pebble.logs()
    );
    last
}

/// The leaf certificate served for `sni`, and whether its chain verified against `root`
/// with the host name checked (no verification when `root` is `None`).
fn served(addr: SocketAddr, sni: &str, root: Option<&X509>) -> Result<X509, String> {
    let mut b = SslConnector::builder(SslMethod::tls()).map_err(|e| e.to_string())?;
    match root {
        Some(root) => {
            let mut store = X509StoreBuilder::new().map_err(|e| e.to_string())?;
            store.add_cert(root.clone()).map_err(|e| e.to_string())?;
            b.set_verify_cert_store(store.build())
                .map_err(|e| e.to_string())?;
            b.set_verify(SslVerifyMode::PEER);
        }
        None => b.set_verify(SslVerifyMode::NONE),
    }
    let tcp = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut cfg = b.build().configure().map_err(|e| e.to_string())?;
    cfg.set_verify_hostname(root.is_some());
    let mut tls = cfg
        .connect(sni, tcp)
        .map_err(|e| format!("handshake: {e}"))?;
    let leaf = tls
        .ssl()
        .peer_certificate()
        .ok_or("no certificate served")?;
    let (status, _, body) = pki::send_get(&mut tls, sni, "/")?;
    if status != 200 || body != b"hello from a\n" {
        return Err(format!(
            "GET / answered {status} {:?}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(leaf)
}

fn serial(cert: &X509) -> String {
    cert.serial_number()
        .to_bn()
        .and_then(|b| b.to_hex_str().map(|s| s.to_string()))
        .expect("serial")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn http01_issues_a_certificate_that_verifies_and_a_restart_reuses_it() {
    let setup = Setup::new(true);
    let pebble = Pebble::start(setup.http.expect("plain port"), free_port(), None);
    let root = pebble.root();
    let s = setup.start(&pebble, "30d");
    let entry = wait_issued(&s, &pebble);
    assert_eq!(entry["source"], "acme", "{entry}");
    assert!(entry["last_error"].is_null(), "{entry}");
    assert!(
        entry["issuer"]
            .as_str()
            .is_some_and(|i| i.contains("Pebble")),
        "{entry}"
    );

    let leaf = served(setup.tls_addr(), HOST, Some(&root)).expect("a chain that verifies");
    assert_eq!(
        setup.metric("strait_acme_orders_total{outcome=\"issued\"}"),
        1.0
    );
    let expiry = setup.metric(&format!(
        "strait_certificate_expiry_seconds{{host=\"{HOST}\"}}"
    ));
    assert_eq!(
        expiry as i64,
        entry["not_after_unix"].as_i64().expect("not_after_unix")
    );
    assert!(
        s.stderr_contains(
            &format!("acme: {HOST}: certificate issued by http-01"),
            Duration::from_secs(10)
        ),
        "{}",
        s.stderr()
    );
    for file in [
        format!("{HOST}.crt"),
        format!("{HOST}.key"),
        "account.json".into(),
    ] {
        assert_eq!(mode(&setup.storage.join(&file)), 0o600, "{file}");
    }

    // A new process on the same storage serves the stored certificate and orders nothing.
    drop(s);
    let s = setup.start(&pebble, "30d");
    let again = served(setup.tls_addr(), HOST, Some(&root)).expect("the stored chain");
    assert_eq!(serial(&again), serial(&leaf));
    assert_eq!(certificate(&s, HOST)["status"], "issued");
    // Give a wrongly due order the time it would take, then check none happened.
    let ordered = try_eventually(Duration::from_secs(3), || {
        setup.metric("strait_acme_orders_total{outcome=\"issued\"}") > 0.0
            || setup.metric("strait_acme_orders_total{outcome=\"renewed\"}") > 0.0
    });
    assert!(!ordered, "the restart ordered again: {}", s.stderr());
}

#[test]
fn tls_alpn01_issues_without_a_plain_listener() {
    let setup = Setup::new(false);
    let pebble = Pebble::start(free_port(), setup.tls, None);
    let root = pebble.root();
    let s = setup.start(&pebble, "30d");
    // Before the certificate: a self-signed placeholder for the host.
    let placeholder = served(setup.tls_addr(), HOST, None);
    wait_issued(&s, &pebble);
    let leaf = served(setup.tls_addr(), HOST, Some(&root)).expect("a chain that verifies");
    if let Ok(p) = placeholder {
        assert_ne!(serial(&p), serial(&leaf));
    }
    assert!(
        s.stderr_contains(
            &format!("acme: {HOST}: certificate issued by tls-alpn-01"),
            Duration::from_secs(10)
        ),
        "{}",
        s.stderr()
    );
}

#[test]
fn renewal_then_pebble_stopped_keeps_serving_and_counts_failures() {
    let setup = Setup::new(true);
    // Certificates for an hour, renewed an hour before expiry: every one is due at once.
    let mut pebble = Pebble::start(setup.http.expect("plain port"), free_port(), Some(3600));
    let root = pebble.root();
    let s = setup.start(&pebble, "1h");
    wait_issued(&s, &pebble);
    let first = served(setup.tls_addr(), HOST, Some(&root)).expect("first certificate");
    eventually_msg(ISSUE_WITHIN, "a renewal", || {
        setup.metric("strait_acme_orders_total{outcome=\"renewed\"}") >= 1.0
    });
    eventually_msg(ISSUE_WITHIN, "the renewed certificate served", || {
        served(setup.tls_addr(), HOST, Some(&root)).is_ok_and(|c| serial(&c) != serial(&first))
    });

    pebble.stop();
    let failed_before = setup.metric("strait_acme_orders_total{outcome=\"failed\"}");
    eventually_msg(ISSUE_WITHIN, "a failed order counted", || {
        setup.metric("strait_acme_orders_total{outcome=\"failed\"}") > failed_before
    });
    let entry = certificate(&s, HOST);
    assert_eq!(entry["status"], "issued", "{entry}");
    assert!(
        entry["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{entry}"
    );
    // The previous certificate still answers, and still verifies.
    served(setup.tls_addr(), HOST, Some(&root)).expect("still served without the ACME server");
    assert!(
        s.stderr_contains("serving the previous certificate", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
}

#[test]
fn an_unreachable_directory_leaves_the_host_pending_on_a_placeholder() {
    let setup = Setup::new(true);
    let dead = free_port();
    let yaml = format!(
        "acme:\n  directory: https://127.0.0.1:{dead}/dir\n  storage: {}\n\
         listeners:\n  - addr: 127.0.0.1:{}\n  - addr: 127.0.0.1:{}\n    tls: {{ acme: [{HOST}] }}\n\
         admin: {{ addr: \"{{listen}}\" }}\nprobe: {{ addr: 127.0.0.1:{} }}\n\
         domains:\n  - hosts: [{HOST}]\n    respond: {{ status: 200, body: \"hello from a\\n\" }}\n",
        setup.storage.display(),
        setup.http.expect("plain port"),
        setup.tls,
        setup.probe,
    );
    let s = Strait::start(&yaml);
    setup.wait_listening();
    eventually_msg(ISSUE_WITHIN, "a failed order counted", || {
        setup.metric("strait_acme_orders_total{outcome=\"failed\"}") >= 1.0
    });
    let entry = certificate(&s, HOST);
    assert_eq!(entry["status"], "pending", "{entry}");
    assert!(
        entry["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot connect")),
        "{entry}"
    );
    // The placeholder answers handshakes (self-signed, naming the host).
    let leaf = served(setup.tls_addr(), HOST, None).expect("the placeholder answers");
    assert_eq!(pki::cn_of(&leaf), HOST);
}

#[test]
fn check_reports_unwritable_storage_and_acme_hosts_without_an_account() {
    let dir = temp_dir("acme-check");
    let file = dir.join("a-file");
    std::fs::write(&file, "not a folder").expect("write");
    let yaml = format!(
        "acme:\n  directory: https://acme.example/dir\n  storage: {}/acme\n\
         listeners:\n  - addr: {{listen}}\n    tls: {{ acme: [{HOST}] }}\n\
         domains:\n  - hosts: [{HOST}]\n    respond: {{ body: ok }}\n",
        file.display()
    );
    let check = Strait::check(&yaml);
    check.assert_error(3, 12, "acme.storage", &["cannot create"]);

    let yaml = format!(
        "listeners:\n  - addr: {{listen}}\n    tls: {{ acme: [{HOST}] }}\n\
         domains:\n  - hosts: [{HOST}]\n    respond: {{ body: ok }}\n"
    );
    let check = Strait::check(&yaml);
    check.assert_error(
        3,
        10,
        "listeners[0].tls.acme",
        &["top-level `acme` section"],
    );
}

/// Sequential verified HTTPS GETs on fresh connections until stopped (at most 40 s).
struct TlsLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<Result<(), String>>>>,
    done: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl TlsLoad {
    fn start(addr: SocketAddr, root: X509) -> TlsLoad {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let done = std::sync::Arc::new(AtomicUsize::new(0));
        let (s, d) = (stop.clone(), done.clone());
        let handle = std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(40);
            let mut results = Vec::new();
            while !s.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                results.push(served(addr, HOST, Some(&root)).map(|_| ()));
                d.fetch_add(1, Ordering::Relaxed);
            }
            results
        });
        TlsLoad {
            stop,
            handle: Some(handle),
            done,
        }
    }

    fn wait_for_more(&self, n: usize, what: &str) {
        use std::sync::atomic::Ordering;
        let target = self.done.load(Ordering::Relaxed) + n;
        eventually_msg(Duration::from_secs(20), what, || {
            self.done.load(Ordering::Relaxed) >= target
        });
    }

    fn finish(mut self) -> Vec<Result<(), String>> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

#[test]
fn binary_upgrade_under_https_load_fails_nothing_and_orders_once() {
    let setup = Setup::new(true);
    let pebble = Pebble::start(setup.http.expect("plain port"), free_port(), None);
    let root = pebble.root();
    let server = "server:\n  upgrade_sock: \"{dir}/upgrade.sock\"\n  pid_file: \"{dir}/strait.pid\"\n  grace_period: 10s\n  drain_delay: 1s\n";
    let mut old = Strait::start(&setup.yaml_with(&pebble, "30d", server));
    setup.wait_listening();
    wait_issued(&old, &pebble);
    let load = TlsLoad::start(setup.tls_addr(), root);
    load.wait_for_more(20, "HTTPS load through the old instance");

    let log = old.dir().join("new.log");
    let out = std::fs::File::create(&log).expect("create new.log");
    let err = out.try_clone().expect("clone");
    let mut new = std::process::Command::new(crate::support::strait::bin())
        .args(["-u", "-c"])
        .arg(old.config_path())
        .current_dir(old.dir())
        .env_remove("STRAIT_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn the new strait");
    let new_log = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually_msg(
        Duration::from_secs(10),
        "the new instance waiting for the sockets",
        || new_log().contains("waiting for the running instance to hand over"),
    );
    // SAFETY: kill(2) with a pid this test spawned.
    assert_eq!(unsafe { libc::kill(old.pid() as i32, libc::SIGQUIT) }, 0);
    eventually_msg(Duration::from_secs(20), "the old instance exits", || {
        !old.is_running()
    });
    load.wait_for_more(20, "HTTPS load through the new instance");
    let results = load.finish();
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} HTTPS requests failed: {:?}\n--- new ---\n{}",
        failed.len(),
        results.len(),
        &failed[..failed.len().min(5)],
        new_log()
    );
    // The new process serves the stored certificate: it ordered nothing.
    assert_eq!(
        setup.metric("strait_acme_orders_total{outcome=\"issued\"}"),
        0.0
    );
    assert_eq!(certificate(&old, HOST)["status"], "issued");
    assert!(
        !new_log().contains("acme: a.strait.test: certificate issued"),
        "{}",
        new_log()
    );
    let _ = new.kill();
    let _ = new.wait();
}

#[test]
fn two_processes_sharing_storage_order_once_and_both_serve_it() {
    let a = Setup::new(true);
    let b = Setup {
        storage: a.storage.clone(),
        ..Setup::new(true)
    };
    let pebble = Pebble::start(a.http.expect("plain port"), free_port(), None);
    let root = pebble.root();
    let first = a.start(&pebble, "30d");
    let second = b.start(&pebble, "30d");
    wait_issued(&first, &pebble);
    wait_issued(&second, &pebble);
    let issued = |s: &Setup| s.metric("strait_acme_orders_total{outcome=\"issued\"}");
    assert_eq!(
        issued(&a) + issued(&b),
        1.0,
        "{}\n{}",
        first.stderr(),
        second.stderr()
    );
    // The one that did not order never tried (its challenges would not reach it).
    assert_eq!(
        b.metric("strait_acme_orders_total{outcome=\"failed\"}"),
        0.0
    );
    let served_a = served(a.tls_addr(), HOST, Some(&root)).expect("first serves");
    let served_b = served(b.tls_addr(), HOST, Some(&root)).expect("second serves");
    assert_eq!(serial(&served_a), serial(&served_b));
}

#[test]
fn a_reload_that_adds_a_host_orders_its_certificate() {
    let setup = Setup::new(true);
    let pebble = Pebble::start(setup.http.expect("plain port"), free_port(), None);
    let root = pebble.root();
    let s = setup.start(&pebble, "30d");
    wait_issued(&s, &pebble);
    let text = std::fs::read_to_string(s.config_path()).expect("read the config");
    let text = text.replace(
        &format!("acme: [{HOST}]"),
        &format!("acme: [{HOST}, b.strait.test]"),
    );
    let text = text.replace(
        &format!("hosts: [{HOST}]"),
        &format!("hosts: [{HOST}, b.strait.test]"),
    );
    pki::replace_file(s.config_path(), text.as_bytes());
    let r = client::request(s.addr(), "POST", "/reload", &[("Host", "admin")], b"")
        .expect("POST /reload");
    assert_eq!(r.status, 200, "{}", r.text());
    let mut last = Value::Null;
    let ok = try_eventually(ISSUE_WITHIN, || {
        last = certificate(&s, "b.strait.test");
        last["status"] == "issued"
    });
    assert!(ok, "b not issued: {last}\n{}", s.stderr());
    served(setup.tls_addr(), "b.strait.test", Some(&root)).expect("b's chain verifies");
    served(setup.tls_addr(), HOST, Some(&root)).expect("a still verifies");
    assert_eq!(
        setup.metric("strait_acme_orders_total{outcome=\"issued\"}"),
        2.0
    );
}
