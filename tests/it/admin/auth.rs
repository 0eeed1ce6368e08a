//! Admin auth: every endpoint needs the bearer token; without one, only a loopback admin
//! listener is allowed.

use crate::support::client;
use crate::support::strait::free_port;
use crate::support::{config, domains, Origin, Strait};

use super::{enc, json, listed, rr, Ports, TOKEN};

#[test]
fn every_endpoint_needs_the_token() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}{}",
        p.yaml(true),
        domains(&[rr("auth.test").origins(&[&a])])
    )));
    p.wait_up();
    let b_url = b.url();
    let add = format!("{{\"addr\": \"{b_url}\"}}");
    let on_b = format!("domain=auth.test&addr={}", enc(&b_url));
    // In order: each call with the token must work given the ones before it.
    let calls: Vec<(&str, String, String, &[u16])> = vec![
        ("GET", "/domains".into(), String::new(), &[200]),
        (
            "GET",
            "/backends?domain=auth.test".into(),
            String::new(),
            &[200],
        ),
        ("POST", "/backends?domain=auth.test".into(), add, &[201]),
        (
            "PUT",
            format!("/backends/enabled?{on_b}"),
            "{\"enabled\": false}".into(),
            &[200],
        ),
        ("DELETE", format!("/backends?{on_b}"), String::new(), &[200]),
        ("GET", "/cache/stats".into(), String::new(), &[200]),
        ("DELETE", "/cache".into(), String::new(), &[200]),
        (
            "DELETE",
            "/cache?domain=auth.test".into(),
            String::new(),
            &[200],
        ),
        ("GET", "/stats".into(), String::new(), &[200]),
        ("POST", "/reload".into(), String::new(), &[200]),
        ("POST", "/reload?dry_run=true".into(), String::new(), &[200]),
        (
            "POST",
            "/explain".into(),
            "{\"host\": \"auth.test\"}".into(),
            &[200],
        ),
        ("GET", "/info".into(), String::new(), &[200]),
    ];
    for (method, path, body, ok) in &calls {
        let before = listed(&p, "domain=auth.test");
        for bad in [None, Some("wrong"), Some("s3cret-tokeN"), Some("")] {
            let r = p.admin(method, path, bad, body);
            assert_eq!(r.status, 401, "{method} {path} with {bad:?}: {}", r.text());
            assert!(json(&r)["error"].is_string());
            assert!(r.header("www-authenticate").is_some());
        }
        // A token in another scheme is not a bearer token.
        let r = client::request(
            p.admin,
            method,
            path,
            &[
                ("Host", "admin"),
                ("Authorization", &format!("Basic {TOKEN}")),
            ],
            body.as_bytes(),
        )
        .expect("admin request");
        assert_eq!(r.status, 401);
        // The refused calls changed nothing.
        assert_eq!(listed(&p, "domain=auth.test"), before, "{method} {path}");

        let r = p.call(method, path, body);
        assert!(
            ok.contains(&r.status),
            "{method} {path} with the token: {} {}",
            r.status,
            r.text()
        );
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{method} {path}: {:?}",
            r.headers
        );
        let v = json(&r);
        if matches!(*method, "POST" | "PUT" | "DELETE") && path.starts_with("/backends") {
            assert_eq!(v["persisted"], false, "{v}");
        }
    }
    // `Bearer` is case-insensitive and surrounding blanks are ignored.
    let r = client::request(
        p.admin,
        "GET",
        "/domains",
        &[
            ("Host", "admin"),
            ("Authorization", &format!("bearer  {TOKEN} ")),
        ],
        b"",
    )
    .expect("admin request");
    assert_eq!(r.status, 200, "{}", r.text());
    drop(s);
}

#[test]
fn loopback_admin_without_token_is_open_and_non_loopback_is_refused() {
    let a = Origin::plain("a");
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}{}",
        p.yaml(false),
        domains(&[rr("open.test").origins(&[&a])])
    )));
    p.wait_up();
    let r = p.admin("GET", "/domains", None, "");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    assert_eq!(v["domains"][0]["name"], "open.test");
    assert_eq!(v["domains"][0]["pool"]["backends"], 1);
    drop(s);

    // Validation and an actual start both refuse an open admin port on all interfaces.
    let yaml = config(&format!(
        "admin:\n  addr: 0.0.0.0:{}\n{}",
        free_port(),
        domains(&[rr("open.test").origins(&[&a])])
    ));
    let check = Strait::check(&yaml);
    check.assert_error(4, 3, "admin.token", &["required", "loopback"]);

    let dir = crate::support::strait::temp_dir("admin-refused");
    let file = dir.join("strait.yaml");
    std::fs::write(
        &file,
        yaml.replace("{listen}", &format!("127.0.0.1:{}", free_port())),
    )
    .unwrap();
    let out = std::process::Command::new(crate::support::strait::bin())
        .arg("-c")
        .arg(&file)
        .output()
        .expect("run strait");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("admin.token"),
        "{out:?}"
    );
}
