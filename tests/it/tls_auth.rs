//! `min_version`, client certificates (`client_auth`) and `upstream_tls`, with certificates
//! made in the test, real TLS clients and real TLS origins; and their bad input.

use std::fs;
use std::time::Duration;

use openssl::ssl::SslVersion;

use crate::support::client::parse_echo;
use crate::support::pki::{self, Client, TlsOrigin};
use crate::support::strait::temp_dir;
use crate::support::{config, Behaviour, Origin, Strait};

fn tls_listener(dir: &std::path::Path, extra: &str) -> String {
    format!(
        "    tls:\n      certs: [{{ cert: {d}/site.crt, key: {d}/site.key }}]\n{extra}",
        d = dir.display()
    )
}

#[test]
fn min_version_1_3_refuses_a_tls_1_2_client() {
    let dir = temp_dir("minver");
    pki::issue("site.test", None, &["site.test"], None, false).write(&dir, "site");
    let yaml = config(&format!(
        "{}domains:\n  - hosts: [\"*\"]\n    respond: {{ body: ok }}\n",
        tls_listener(&dir, "      min_version: \"1.3\"\n")
    ));
    let s = Strait::start(&yaml);
    let old = Client {
        sni: Some("site.test"),
        max_version: Some(SslVersion::TLS1_2),
        ..Client::default()
    };
    let refused = pki::get(s.addr(), &old, "site.test", "/");
    assert!(refused.is_err(), "a TLS 1.2 client got {refused:?}");
    let current = Client {
        sni: Some("site.test"),
        ..Client::default()
    };
    let (status, _, _) = pki::get(s.addr(), &current, "site.test", "/").expect("TLS 1.3");
    assert_eq!(status, 200);
    let tls = pki::connect(s.addr(), &current).expect("handshake");
    assert_eq!(tls.ssl().version_str(), "TLSv1.3");
}

#[test]
fn client_auth_require_needs_a_certificate_from_the_ca() {
    let dir = temp_dir("mtls-require");
    pki::issue("site.test", None, &["site.test"], None, false).write(&dir, "site");
    let ca = pki::ca("clients");
    fs::write(dir.join("clients.pem"), ca.cert.to_pem().unwrap()).unwrap();
    let alice = pki::issue("alice", Some("Example"), &[], Some(&ca), false);
    let stranger_ca = pki::ca("elsewhere");
    let mallory = pki::issue("mallory", None, &[], Some(&stranger_ca), false);
    let origin = Origin::start("echo", Behaviour::default().echo());
    let yaml = config(&format!(
        "{}domains:\n  - hosts: [\"*\"]\n    backends: [{{ addr: {} }}]\n",
        tls_listener(
            &dir,
            &format!(
                "      client_auth: {{ ca: {}/clients.pem, mode: require }}\n",
                dir.display()
            )
        ),
        origin.url()
    ));
    let s = Strait::start(&yaml);
    let with = |cert| Client {
        sni: Some("site.test"),
        cert,
        ..Client::default()
    };
    let none = pki::get(s.addr(), &with(None), "site.test", "/");
    assert!(none.is_err(), "no certificate, yet {none:?}");
    let foreign = pki::get(s.addr(), &with(Some(&mallory)), "site.test", "/");
    assert!(
        foreign.is_err(),
        "a certificate of another CA, yet {foreign:?}"
    );
    let (status, _, _) = pki::get(s.addr(), &with(Some(&alice)), "site.test", "/")
        .expect("a certificate the CA signed");
    assert_eq!(status, 200);
}

#[test]
fn client_auth_optional_passes_the_verified_subject_and_fingerprint() {
    let dir = temp_dir("mtls-optional");
    pki::issue("site.test", None, &["site.test"], None, false).write(&dir, "site");
    let ca = pki::ca("clients");
    fs::write(dir.join("clients.pem"), ca.cert.to_pem().unwrap()).unwrap();
    let alice = pki::issue("alice", Some("Example"), &[], Some(&ca), false);
    let origin = Origin::start("echo", Behaviour::default().echo());
    let log = dir.join("access.log");
    let yaml = config(&format!(
        "{}logging: {{ access_log: {log} }}\n\
         domains:\n  - hosts: [\"*\"]\n    backends: [{{ addr: {url} }}]\n\
         \x20   headers:\n      request:\n        set: {{ X-Client: $ssl_client_s_dn, X-Client-Sha256: $ssl_client_fingerprint }}\n",
        tls_listener(
            &dir,
            &format!(
                "      client_auth: {{ ca: {}/clients.pem, mode: optional }}\n",
                dir.display()
            )
        ),
        log = log.display(),
        url = origin.url()
    ));
    let s = Strait::start(&yaml);
    let header = |body: &[u8], name: &str| {
        let (_, headers) = parse_echo(body);
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };

    let anonymous = Client {
        sni: Some("site.test"),
        ..Client::default()
    };
    let (status, _, body) = pki::get(s.addr(), &anonymous, "site.test", "/").expect("no cert");
    assert_eq!(status, 200);
    assert_eq!(
        header(&body, "x-client").unwrap_or_default(),
        "",
        "no certificate: the variable is empty"
    );

    let with_cert = Client {
        sni: Some("site.test"),
        cert: Some(&alice),
        ..Client::default()
    };
    let (status, _, body) = pki::get(s.addr(), &with_cert, "site.test", "/").expect("cert");
    assert_eq!(status, 200);
    assert_eq!(
        header(&body, "x-client").as_deref(),
        Some("CN=alice,O=Example")
    );
    assert_eq!(
        header(&body, "x-client-sha256"),
        Some(alice.fingerprint()),
        "the fingerprint is the SHA-256 of the certificate"
    );

    crate::support::eventually_msg(Duration::from_secs(10), "the access log line", || {
        fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 2)
    });
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines[0].contains("tls_client"), "{}", lines[0]);
    assert!(
        lines[1].contains(&format!(
            "\"tls_client\":{{\"subject\":\"CN=alice,O=Example\",\"fingerprint\":\"{}\"}}",
            alice.fingerprint()
        )),
        "{}",
        lines[1]
    );
}

#[test]
fn upstream_tls_verifies_with_its_ca_overrides_sni_and_presents_a_client_certificate() {
    let dir = temp_dir("upstream-tls");
    let ca = pki::ca("internal");
    let wrong_ca = pki::ca("not-internal");
    let server = pki::issue(
        "api.internal",
        None,
        &["api.internal", "localhost"],
        Some(&ca),
        false,
    );
    let client_ca = pki::ca("strait-clients");
    let strait_client = pki::issue("strait", None, &[], Some(&client_ca), false);
    fs::write(dir.join("ca.pem"), ca.cert.to_pem().unwrap()).unwrap();
    fs::write(dir.join("wrong.pem"), wrong_ca.cert.to_pem().unwrap()).unwrap();
    strait_client.write(&dir, "client");
    let open = TlsOrigin::start(&server, None);
    let mtls = TlsOrigin::start(&server, Some(&client_ca));
    let d = dir.display();
    let domain = |host: &str, origin: &TlsOrigin, tls: &str| {
        format!(
            "  - hosts: [{host}]\n    backends: [{{ addr: \"https://localhost:{}\" }}]\n    max_retries: 0\n    upstream_tls: {{ {tls} }}\n",
            origin.addr.port()
        )
    };
    let yaml = config(&format!(
        "domains:\n{}{}{}{}{}{}",
        domain("good.test", &open, &format!("ca: {d}/ca.pem")),
        domain("wrong.test", &open, &format!("ca: {d}/wrong.pem")),
        domain("noverify.test", &open, "verify: false"),
        domain(
            "sni.test",
            &open,
            &format!("ca: {d}/ca.pem, sni: api.internal")
        ),
        domain(
            "mtls.test",
            &mtls,
            &format!("ca: {d}/ca.pem, client_cert: {d}/client.crt, client_key: {d}/client.key")
        ),
        domain("nocert.test", &mtls, &format!("ca: {d}/ca.pem")),
    ));
    let s = Strait::start(&yaml);
    let status = |host: &str| {
        let r = s.get(host, "/");
        (r.status, r.text())
    };
    assert_eq!(
        status("good.test"),
        (200, "tls-origin".into()),
        "the right CA"
    );
    assert_eq!(
        status("wrong.test").0,
        502,
        "a CA that did not sign the origin"
    );
    assert_eq!(
        status("noverify.test"),
        (200, "tls-origin".into()),
        "verify: false"
    );
    assert!(
        s.stderr_contains(
            "verify is false for domain \"noverify.test\"",
            Duration::from_secs(5)
        ),
        "{}",
        s.stderr()
    );
    assert_eq!(
        status("sni.test"),
        (200, "tls-origin".into()),
        "sni override"
    );
    assert!(
        open.snis().iter().any(|n| n == "api.internal"),
        "the origin saw {:?}",
        open.snis()
    );
    assert_eq!(
        status("mtls.test"),
        (200, "tls-origin".into()),
        "client certificate presented"
    );
    assert_eq!(
        status("nocert.test").0,
        502,
        "no client certificate, no answer"
    );
}

#[test]
fn bad_tls_input_is_a_config_error_with_its_position() {
    let dir = temp_dir("tls-bad");
    let good = pki::issue("site.test", None, &["site.test"], None, false);
    good.write(&dir, "site");
    let other = pki::issue("other.test", None, &["other.test"], None, false);
    other.write(&dir, "other");
    fs::write(dir.join("broken.crt"), "not a certificate").unwrap();
    fs::write(
        dir.join("broken-ca.pem"),
        "-----BEGIN CERTIFICATE-----\nbroken\n",
    )
    .unwrap();
    let d = dir.display();
    let respond = "domains:\n  - hosts: [\"*\"]\n    respond: { body: ok }\n";

    // Line 4 holds the certs list; its first item starts at column 15.
    let check = Strait::check(&config(&format!(
        "    tls:\n      certs: [{{ cert: {d}/broken.crt, key: {d}/site.key }}]\n{respond}"
    )));
    check.assert_error(
        4,
        15,
        "listeners[0].tls.certs[0]",
        &["broken.crt", "not a PEM certificate"],
    );

    let check = Strait::check(&config(&format!(
        "    tls:\n      certs: [{{ cert: {d}/site.crt, key: {d}/other.key }}]\n{respond}"
    )));
    check.assert_error(
        4,
        15,
        "listeners[0].tls.certs[0]",
        &["other.key", "does not match", "site.crt"],
    );

    let check = Strait::check(&config(&format!(
        "{}      client_auth: {{ ca: {d}/missing.pem }}\n{respond}",
        tls_listener(&dir, "")
    )));
    check.assert_error(
        5,
        26,
        "listeners[0].tls.client_auth.ca",
        &["cannot read", "missing.pem"],
    );

    let check = Strait::check(&config(&format!(
        "{}      client_auth: {{ ca: {d}/broken-ca.pem }}\n{respond}",
        tls_listener(&dir, "")
    )));
    check.assert_error(5, 26, "listeners[0].tls.client_auth.ca", &["broken-ca.pem"]);

    let check = Strait::check(&config(&format!(
        "{}      min_version: \"1.1\"\n{respond}",
        tls_listener(&dir, "")
    )));
    check.assert_error(
        5,
        20,
        "listeners[0].tls.min_version",
        &["\"1.1\"", "1.2, 1.3"],
    );

    let check = Strait::check(&config(&format!(
        "{}      client_auth: {{ ca: {d}/site.crt, mode: sometimes }}\n{respond}",
        tls_listener(&dir, "")
    )));
    let at = check
        .find("listeners[0].tls.client_auth.mode")
        .expect("a mode error");
    assert!(at.2.contains("require, optional"), "{at:?}");

    let upstream = |tls: &str| {
        config(&format!(
            "domains:\n  - hosts: [\"*\"]\n    backends: [\"https://127.0.0.1:9\"]\n    upstream_tls: {{ {tls} }}\n"
        ))
    };
    let check = Strait::check(&upstream(&format!("client_cert: {d}/site.crt")));
    check.assert_error(
        6,
        34,
        "domains[0].upstream_tls.client_cert",
        &["client_key"],
    );

    let check = Strait::check(&upstream(&format!("ca: {d}/broken-ca.pem")));
    check.assert_error(6, 19, "domains[0].upstream_tls.ca", &["broken-ca.pem"]);

    let check = Strait::check(&upstream(&format!(
        "client_cert: {d}/site.crt, client_key: {d}/other.key"
    )));
    check.assert_error(
        6,
        19,
        "domains[0].upstream_tls.client_cert",
        &["does not match"],
    );
}

/// `drop: true` on a TLS listener: a handshake whose SNI routes to a dropping domain is
/// refused (`unrecognized_name`) before a certificate is sent, and counted; other names on the
/// same port, and a dropping domain that still serves a route, complete their handshakes.
#[test]
fn a_dropped_sni_is_refused_during_the_handshake() {
    let dir = temp_dir("sni-drop");
    pki::issue("site.test", None, &["site.test", "*.test"], None, false).write(&dir, "site");
    let probe = std::net::SocketAddr::from(([127, 0, 0, 1], crate::support::strait::free_port()));
    let yaml = config(&format!(
        "{}probe: {{ addr: \"{probe}\" }}
domains:
  - hosts: [\"*.bots.test\"]
    drop: true
  - hosts: [partly.test]
    drop: true
    routes: [{{ path_prefix: /ok, respond: {{ body: ok }} }}]
  - hosts: [\"*\"]
    respond: {{ body: site }}
",
        tls_listener(&dir, "")
    ));
    let s = Strait::start(&yaml);
    let bot = Client {
        sni: Some("crawler.bots.test"),
        ..Client::default()
    };
    let refused = pki::connect(s.addr(), &bot).map(|_| ());
    let why = refused.expect_err("the dropped name completed a handshake");
    assert!(why.contains("handshake"), "{why}");
    for (sni, path, want) in [("site.test", "/", "site"), ("partly.test", "/ok", "ok")] {
        let c = Client {
            sni: Some(sni),
            ..Client::default()
        };
        let (status, _, body) = pki::get(s.addr(), &c, sni, path).expect("handshake");
        assert_eq!((status, body.as_slice()), (200, want.as_bytes()), "{sni}");
    }
    let metrics = crate::support::client::get(probe, "probe", "/metrics")
        .expect("metrics")
        .text();
    assert!(
        metrics.contains("strait_tls_handshakes_dropped_total 1"),
        "{metrics}"
    );
}
