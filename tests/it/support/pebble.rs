//! A real ACME server on loopback: Debian's `pebble` (RFC 8555 test CA) with
//! `pebble-challtestsrv` as its DNS, answering 127.0.0.1 for every name, so pebble's checks
//! of HTTP-01 and TLS-ALPN-01 reach the strait under test on the ports it is given.
//! Pebble's own HTTPS certificate is made here; its CA (which signs what it issues) is
//! fetched from its management API.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use openssl::x509::X509;

use super::pki;
use super::strait::{free_port, temp_dir};
use super::wait::try_eventually;

pub struct Pebble {
    pebble: Option<Child>,
    dns: Child,
    pub dir: PathBuf,
    /// `https://localhost:PORT/dir`
    pub directory: String,
    /// The CA that signed pebble's HTTPS certificate (for `acme.ca_roots`).
    pub api_ca: PathBuf,
    management: SocketAddr,
}

/// Whether the pebble binaries are installed (scripts/setup.sh --test installs them).
pub fn available() -> bool {
    ["pebble", "pebble-challtestsrv"].iter().all(|b| {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(b).is_file()))
    })
}

impl Pebble {
    /// Pebble checking HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port` of 127.0.0.1;
    /// `validity`: the lifetime of what it issues, in seconds.
    pub fn start(http_port: u16, tls_port: u16, validity: Option<u64>) -> Pebble {
        assert!(
            available(),
            "pebble and pebble-challtestsrv are needed (scripts/setup.sh --test installs them)"
        );
        let dir = temp_dir("pebble");
        let ca = pki::ca("pebble API test CA");
        let api = pki::issue("localhost", None, &["localhost"], Some(&ca), false);
        let (cert, key) = api.write(&dir, "api");
        let api_ca = dir.join("api-ca.pem");
        fs::write(&api_ca, ca.cert.to_pem().expect("pem")).expect("write the API CA");
        let (listen, management, dns_port, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let mut config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": cert,
            "privateKey": key,
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        if let Some(v) = validity {
            config["pebble"]["certificateValidityPeriod"] = v.into();
        }
        let config_path = dir.join("pebble.json");
        fs::write(&config_path, config.to_string()).expect("write pebble.json");
        let log = |name: &str| fs::File::create(dir.join(name)).expect("log file");
        let dns = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdin(Stdio::null())
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("start pebble-challtestsrv");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .args(["-strict=false"])
            // Validate at once, never reject a nonce, never reuse an authorization: fast and
            // the same on every run.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("start pebble");
        let p = Pebble {
            pebble: Some(pebble),
            dns,
            dir,
            directory: format!("https://localhost:{listen}/dir"),
            api_ca,
            management: SocketAddr::from(([127, 0, 0, 1], management)),
        };
        let up = |port: u16| {
            try_eventually(Duration::from_secs(15), || {
                TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_ok()
            })
        };
        let ready = up(dns_management) && up(listen) && up(management);
        assert!(ready, "pebble did not start:\n{}", p.logs());
        p
    }

    /// The root that signs what pebble issues.
    pub fn root(&self) -> X509 {
        let (status, _, body) = pki::get(
            self.management,
            &pki::Client::default(),
            "localhost",
            "/roots/0",
        )
        .expect("GET /roots/0 from pebble's management API");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        X509::from_pem(&body).expect("pebble's root is PEM")
    }

    /// Stops pebble (its DNS stays): the ACME server is gone.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.pebble.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }

    pub fn logs(&self) -> String {
        ["pebble.log", "pebble.err", "challtestsrv.err"]
            .iter()
            .map(|f| {
                let text = fs::read_to_string(self.dir.join(f)).unwrap_or_default();
                let start = text.len().saturating_sub(4000);
                format!("--- {f} ---\n{}", &text[start..])
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        self.stop();
        let _ = self.dns.kill();
        let _ = self.dns.wait();
    }
}
