//! Bad admin input is refused with a clear status and message, and nothing is applied.

use std::time::Duration;

use crate::support::{config, domains, eventually_msg, Domain, Origin, Strait};

use super::{addrs, enc, find, json, listed, rr, Ports};

#[test]
fn bad_input_is_refused_and_nothing_is_applied() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}{}",
        p.yaml(true),
        domains(&[
            rr("bad.test")
                .origins(&[&a])
                .route("{ path_prefix: /ping, respond: { status: 200, body: pong } }")
                .route("{ path_prefix: /own/, backends: [] }"),
            Domain::new("nopool.test")
                .route("{ path_prefix: /x, respond: { status: 200, body: x } }"),
        ])
    )));
    p.wait_up();
    let before = p.call("GET", "/domains", "").text();
    let a_url = a.url();
    let b_url = b.url();
    let cases: Vec<(&str, String, String, u16, &str)> = vec![
        (
            "POST",
            "/backends?domain=nope.test".into(),
            format!("{{\"addr\":\"{b_url}\"}}"),
            404,
            "no domain",
        ),
        (
            "POST",
            "/backends".into(),
            format!("{{\"addr\":\"{b_url}\"}}"),
            400,
            "domain",
        ),
        (
            "POST",
            "/backends?domain=bad.test&route=/nope/".into(),
            format!("{{\"addr\":\"{b_url}\"}}"),
            404,
            "no route",
        ),
        (
            "POST",
            "/backends?domain=bad.test&route=/ping".into(),
            format!("{{\"addr\":\"{b_url}\"}}"),
            409,
            "static",
        ),
        (
            "POST",
            "/backends?domain=nopool.test".into(),
            format!("{{\"addr\":\"{b_url}\"}}"),
            409,
            "no backend pool",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            "{\"addr\":\"127.0.0.1:9\"}".into(),
            400,
            "expected a url",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            "{\"addr\":\"ftp://127.0.0.1:9\"}".into(),
            400,
            "scheme",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            "{\"addr\":\"http://127.0.0.1:70000\"}".into(),
            400,
            "port",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            "{\"addr\":\"http://bad host\"}".into(),
            400,
            "host",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            "{\"addr\":\"http://no-such-host.invalid:80\"}".into(),
            400,
            "resolve",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            format!("{{\"addr\":\"{a_url}\"}}"),
            409,
            "already",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            format!(
                "{{\"addr\":\"{}\"}}",
                a_url.replace("127.0.0.1", "localhost")
            ),
            409,
            "already",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            format!("{{\"addr\":\"{b_url}\",\"weight\":0}}"),
            400,
            "weight",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            format!("{{\"addr\":\"{b_url}\",\"weight\":101}}"),
            400,
            "weight",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            format!("{{\"addr\":\"{b_url}\",\"weight\":-1}}"),
            400,
            "bad json",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            format!("{{\"addr\":\"{b_url}\",\"wieght\":2}}"),
            400,
            "unknown field",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            format!("{{\"addr\":\"{b_url}\""),
            400,
            "bad json",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            "[]".into(),
            400,
            "bad json",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            String::new(),
            400,
            "json body",
        ),
        (
            "POST",
            "/backends?domain=bad.test".into(),
            format!(
                "{{\"addr\":\"{b_url}\",\"pad\":\"{}\"}}",
                "x".repeat(70_000)
            ),
            413,
            "larger",
        ),
        (
            "DELETE",
            format!("/backends?domain=bad.test&addr={}", enc(&b_url)),
            String::new(),
            404,
            "no backend",
        ),
        (
            "DELETE",
            "/backends?domain=bad.test&addr=http%3A%2F%2F%5B%3A%3A1".into(),
            String::new(),
            400,
            "]",
        ),
        (
            "DELETE",
            "/backends?domain=bad.test".into(),
            String::new(),
            400,
            "addr",
        ),
        (
            "PUT",
            format!("/backends/enabled?domain=bad.test&addr={}", enc(&a_url)),
            "{\"enabled\":\"no\"}".into(),
            400,
            "bad json",
        ),
        (
            "PUT",
            format!("/backends/enabled?domain=bad.test&addr={}", enc(&a_url)),
            "{}".into(),
            400,
            "enabled",
        ),
        (
            "PUT",
            format!("/backends/enabled?domain=nope.test&addr={}", enc(&a_url)),
            "{\"enabled\":false}".into(),
            404,
            "no domain",
        ),
        (
            "GET",
            "/backends?domain=bad.test&route=/ping".into(),
            String::new(),
            409,
            "static",
        ),
        (
            "PATCH",
            "/backends?domain=bad.test".into(),
            String::new(),
            405,
            "not allowed",
        ),
        (
            "GET",
            "/nothing-here".into(),
            String::new(),
            404,
            "no admin endpoint",
        ),
        (
            "DELETE",
            "/cache?path=/x".into(),
            String::new(),
            400,
            "domain",
        ),
    ];
    for (method, path, body, status, words) in &cases {
        let r = p.call(method, path, body);
        let v = json(&r);
        let message = v["error"].as_str().unwrap_or_default().to_lowercase();
        assert_eq!(
            r.status,
            *status,
            "{method} {path} {body:.80}: {}",
            r.text()
        );
        assert!(
            message.contains(words),
            "{method} {path}: {message:?} lacks {words:?}"
        );
    }
    // Nothing was applied: the same domains, pools and backends, and a still serves.
    assert_eq!(p.call("GET", "/domains", "").text(), before);
    assert_eq!(addrs(&listed(&p, "domain=bad.test")), vec![a_url.clone()]);
    assert!(find(&listed(&p, "domain=bad.test"), &a_url)["enabled"] == true);
    assert_eq!(s.get("bad.test", "/").status, 200);
    // A route with its own pool is addressed with `route`, and the domain's pool is untouched.
    let r = p.call(
        "POST",
        "/backends?domain=bad.test&route=/own/",
        &format!("{{\"addr\":\"{b_url}\",\"weight\":3}}"),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(json(&r)["backend"]["weight"], 3);
    assert_eq!(
        addrs(&listed(&p, "domain=bad.test&route=/own/")),
        vec![b_url.clone()]
    );
    assert_eq!(addrs(&listed(&p, "domain=bad.test")), vec![a_url]);
    eventually_msg(
        Duration::from_secs(5),
        "the route's new backend serving",
        || crate::support::served_by(&s.get("bad.test", "/own/x")) == "b",
    );
}
