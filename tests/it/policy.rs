//! Traffic policy through the real binary: `deny`, `trusted_proxies`, rate limits (exact
//! counts), `max_connections`, `redirect` and `respond`, header rule order, `max_body_bytes`,
//! and the request-head limits (408, 431) with a raw socket client.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::admin::Ports;
use crate::metrics::scrape;
use crate::support::client::{self, parse_echo, Conn, Response};
use crate::support::{config, Behaviour, Origin, Strait};

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// One request on a fresh connection from `127.0.0.<from>`.
fn get_from(s: &Strait, from: u8, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut all = vec![("Host", host), ("Connection", "close")];
    all.extend_from_slice(headers);
    Conn::connect_from(loopback(from), s.addr())
        .and_then(|mut c| c.request("GET", path, &all, b""))
        .unwrap_or_else(|e| panic!("GET {path} from 127.0.0.{from}: {e}\n{}", s.stderr()))
}

fn statuses(rs: &[Response]) -> Vec<u16> {
    rs.iter().map(|r| r.status).collect()
}

#[test]
fn deny_refuses_client_networks_per_domain_and_route() {
    let o = Origin::plain("o");
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [app.test]
    backends: [{{ addr: {} }}]
    deny: [127.0.0.7/32]
    routes:
      - {{ path_prefix: /admin/, deny: [127.0.0.8/31] }}
",
        o.url()
    )));
    let r = get_from(&s, 7, "app.test", "/", &[]);
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-strait-error"), Some("denied"));
    assert_eq!(get_from(&s, 1, "app.test", "/", &[]).status, 200);
    // The route adds 127.0.0.8-9 to the domain's list.
    assert_eq!(get_from(&s, 8, "app.test", "/", &[]).status, 200);
    assert_eq!(get_from(&s, 9, "app.test", "/admin/x", &[]).status, 403);
    assert_eq!(get_from(&s, 7, "app.test", "/admin/x", &[]).status, 403);
    assert_eq!(get_from(&s, 10, "app.test", "/admin/x", &[]).status, 200);
    assert_eq!(o.hits(), 3);
}

#[test]
fn rate_limit_counts_exactly_per_client() {
    let o = Origin::plain("o");
    let ports = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}domains:
  - hosts: [app.test]
    backends: [{{ addr: {} }}]
    rate_limit: {{ requests: 3, per: 1m }}
",
        ports.yaml(true),
        o.url()
    )));
    let first: Vec<Response> = (0..5)
        .map(|_| get_from(&s, 1, "app.test", "/", &[]))
        .collect();
    assert_eq!(statuses(&first), [200, 200, 200, 429, 429]);
    let remaining: Vec<&str> = first
        .iter()
        .map(|r| r.header("ratelimit-remaining").unwrap_or("?"))
        .collect();
    assert_eq!(remaining, ["2", "1", "0", "0", "0"]);
    for r in &first {
        assert_eq!(r.header("ratelimit-limit"), Some("3"));
        let reset: u64 = r.header("ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "reset {reset}");
    }
    let limited = &first[3];
    assert_eq!(limited.header("x-strait-error"), Some("rate-limited"));
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert!(first[0].header("retry-after").is_none());
    // Another client has its own budget.
    let other: Vec<Response> = (0..4)
        .map(|_| get_from(&s, 2, "app.test", "/", &[]))
        .collect();
    assert_eq!(statuses(&other), [200, 200, 200, 429]);
    assert_eq!(o.hits(), 6);
    ports.wait_up();
    let m = scrape(&ports);
    assert_eq!(
        m.value("strait_ratelimited_total", &[("domain", "app.test")]),
        3.0
    );
}

#[test]
fn forwarded_for_names_the_client_only_behind_trusted_proxies() {
    let o = Origin::start("o", Behaviour::default().echo());
    let s = Strait::start(&config(&format!(
        "server:
  trusted_proxies: [127.0.0.1/32, 10.0.0.0/8]
domains:
  - hosts: [app.test]
    backends: [{{ addr: {} }}]
    rate_limit: {{ requests: 2, per: 1m }}
    deny: [192.0.2.66/32]
",
        o.url()
    )));
    let via_proxy = |xff: &str| get_from(&s, 1, "app.test", "/", &[("X-Forwarded-For", xff)]);
    // Behind the trusted 127.0.0.1: each forwarded client has its own budget of 2.
    let a: Vec<Response> = (0..3).map(|_| via_proxy("203.0.113.1")).collect();
    assert_eq!(statuses(&a), [200, 200, 429]);
    let b: Vec<Response> = (0..2).map(|_| via_proxy("203.0.113.2")).collect();
    assert_eq!(statuses(&b), [200, 200]);
    // The right-most untrusted address counts, not what the client wrote before it.
    assert_eq!(via_proxy("198.51.100.1, 203.0.113.1").status, 429);
    assert_eq!(via_proxy("203.0.113.1, 203.0.113.3, 10.1.2.3").status, 200);
    // deny applies to the forwarded client.
    assert_eq!(via_proxy("192.0.2.66").status, 403);
    // The backend still gets the full chain, with this hop's peer appended.
    let up = parse_echo(&a[0].body).1;
    assert_eq!(
        client::find_header(&up, "x-forwarded-for"),
        Some("203.0.113.1, 127.0.0.1")
    );

    // From the untrusted 127.0.0.2, X-Forwarded-For is ignored: one budget, whatever it says.
    let c: Vec<Response> = ["203.0.113.7", "203.0.113.8", "203.0.113.9"]
        .iter()
        .map(|xff| get_from(&s, 2, "app.test", "/", &[("X-Forwarded-For", xff)]))
        .collect();
    assert_eq!(statuses(&c), [200, 200, 429]);
    assert_eq!(
        get_from(&s, 2, "app.test", "/", &[("X-Forwarded-For", "192.0.2.66")]).status,
        429
    );
}

#[test]
fn rate_limit_keys_by_header_and_by_route() {
    let o = Origin::plain("o");
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [app.test]
    backends: [{{ addr: {} }}]
    rate_limit: {{ requests: 2, per: 1m }}
    routes:
      - {{ path_prefix: /api/, rate_limit: {{ requests: 1, per: 1m, key: 'header:X-Api-Key' }} }}
      - {{ path_prefix: /feed/, rate_limit: {{ requests: 2, per: 1m, key: route }} }}
      - {{ path_prefix: /shared/ }}
",
        o.url()
    )));
    let key = |k: &str| get_from(&s, 1, "app.test", "/api/x", &[("X-Api-Key", k)]).status;
    assert_eq!(
        [key("a"), key("a"), key("b"), key("b")],
        [200, 429, 200, 429]
    );
    // Without the header the client's address is the key.
    assert_eq!(get_from(&s, 3, "app.test", "/api/x", &[]).status, 200);
    assert_eq!(get_from(&s, 3, "app.test", "/api/x", &[]).status, 429);
    // One budget for the whole route, whoever asks.
    let feed: Vec<u16> = (1..=3)
        .map(|n| get_from(&s, n, "app.test", "/feed/", &[]).status)
        .collect();
    assert_eq!(feed, [200, 200, 429]);
    // A route without its own limit shares its domain's counter.
    assert_eq!(get_from(&s, 5, "app.test", "/", &[]).status, 200);
    assert_eq!(get_from(&s, 5, "app.test", "/shared/x", &[]).status, 200);
    assert_eq!(get_from(&s, 5, "app.test", "/shared/y", &[]).status, 429);
    assert_eq!(get_from(&s, 5, "app.test", "/", &[]).status, 429);
}

/// Sends `n` requests at once, each on its own connection; returns them in completion order.
fn concurrent(s: &Strait, host: &str, n: usize) -> Vec<(Response, Duration)> {
    let addr = s.addr();
    let host = host.to_string();
    let started = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let host = host.clone();
            thread::spawn(move || {
                let r = client::get(addr, &host, "/").expect("GET");
                (r, started.elapsed())
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn max_connections_queues_then_answers_busy() {
    let slow = Origin::start(
        "slow",
        Behaviour::default().delay(Duration::from_millis(400)),
    );
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [queue.test]
    backends: [{{ addr: {url}, max_connections: 1 }}]
    connect_timeout: 5s
  - hosts: [busy.test]
    backends: [{{ addr: {url}, max_connections: 1 }}]
    connect_timeout: 150ms
",
        url = slow.url()
    )));
    // Enough wait: the three requests take turns on the one slot.
    let queued = concurrent(&s, "queue.test", 3);
    assert!(queued.iter().all(|(r, _)| r.status == 200));
    assert_eq!(slow.max_in_flight(), 1);
    let longest = queued.iter().map(|(_, t)| *t).max().unwrap();
    assert!(longest >= Duration::from_millis(1100), "took {longest:?}");

    // A short wait: one is served, the others give up after the queue wait.
    let busy = concurrent(&s, "busy.test", 3);
    let mut codes: Vec<u16> = busy.iter().map(|(r, _)| r.status).collect();
    codes.sort();
    assert_eq!(codes, [200, 503, 503]);
    for (r, took) in busy.iter().filter(|(r, _)| r.status == 503) {
        assert_eq!(r.header("x-strait-error"), Some("backend-busy"));
        assert!(
            *took < Duration::from_millis(400),
            "busy answered after {took:?}"
        );
    }
    assert_eq!(slow.max_in_flight(), 1);
}

/// `max_connections` given to `POST /backends` caps the added backend as the config key does.
#[test]
fn max_connections_from_the_admin_api_holds() {
    let slow = Origin::start(
        "slow",
        Behaviour::default().delay(Duration::from_millis(300)),
    );
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}domains:\n  - hosts: [capped.test]\n    backends: []\n    connect_timeout: 5s\n",
        p.yaml(true)
    )));
    p.wait_up();
    let bad = p.call(
        "POST",
        "/backends?domain=capped.test",
        &format!("{{\"addr\": \"{}\", \"max_connections\": 0}}", slow.url()),
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("max_connections"), "{}", bad.text());

    let added = p.call(
        "POST",
        "/backends?domain=capped.test",
        &format!("{{\"addr\": \"{}\", \"max_connections\": 1}}", slow.url()),
    );
    assert_eq!(added.status, 201, "{}", added.text());
    let listed: serde_json::Value =
        serde_json::from_str(&p.call("GET", "/backends?domain=capped.test", "").text())
            .expect("JSON");
    assert_eq!(listed[0]["max_connections"], 1, "{listed}");

    let results = concurrent(&s, "capped.test", 3);
    assert!(results.iter().all(|(r, _)| r.status == 200));
    assert_eq!(slow.max_in_flight(), 1, "the cap was not applied");
}

#[test]
fn max_connections_spreads_over_backends_with_room() {
    let a = Origin::start("a", Behaviour::default().delay(Duration::from_millis(300)));
    let b = Origin::start("b", Behaviour::default().delay(Duration::from_millis(300)));
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [app.test]
    load_balancer: ip_hash
    backends: [{{ addr: {}, max_connections: 1 }}, {{ addr: {}, max_connections: 1 }}]
    connect_timeout: 100ms
",
        a.url(),
        b.url()
    )));
    // ip_hash sends one client to one backend; a full one passes the request on.
    let rs = concurrent(&s, "app.test", 2);
    assert!(
        rs.iter().all(|(r, _)| r.status == 200),
        "{:?}",
        rs.iter().map(|(r, _)| r.status).collect::<Vec<_>>()
    );
    assert_eq!((a.hits(), b.hits()), (1, 1));
}

#[test]
fn redirects_fill_in_host_path_and_query() {
    let s = Strait::start(&config(
        r#"domains:
  - hosts: [old.test]
    redirect: { status: 308, location: "https://new.test$path$query" }
  - hosts: ["*.site.test"]
    respond: { status: 200, body: "home\n" }
    routes:
      - { path_prefix: /go/, redirect: { location: "https://$host/landing$path" } }
"#,
    ));
    let r = s.get("old.test", "/a/b?x=1&y=2");
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("https://new.test/a/b?x=1&y=2"));
    assert!(r.text().contains("https://new.test/a/b?x=1&y=2"));
    let r = s.get("old.test", "/");
    assert_eq!(r.header("location"), Some("https://new.test/"));
    let r = s.get("www.site.test:8080", "/go/x?q");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://www.site.test/landing/go/x")
    );
    let r = s.get("www.site.test", "/else");
    assert_eq!((r.status, r.text().as_str()), (200, "home\n"));
}

#[test]
fn respond_routes_take_status_body_headers_and_response_rules() {
    let s = Strait::start(&config(
        r#"domains:
  - hosts: [app.test]
    headers: { response: { set: { X-Frame-Options: DENY } } }
    routes:
      - { path_prefix: /gone, respond: { status: 410, body: "gone\n", headers: { Content-Type: text/html } } }
"#,
    ));
    let r = s.get("app.test", "/gone");
    assert_eq!((r.status, r.text().as_str()), (410, "gone\n"));
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let head = client::request(s.addr(), "HEAD", "/gone", &[("Host", "app.test")], b"").unwrap();
    assert_eq!(head.status, 410);
    assert_eq!(head.header("content-length"), Some("5"));
    assert!(head.body.is_empty());
}

#[test]
fn route_header_rules_win_over_the_domain_per_header() {
    let o = Origin::start(
        "o",
        Behaviour::default().respond_with(|seen| {
            let mut body = String::new();
            for (k, v) in &seen.headers {
                body.push_str(&format!("{}: {v}\n", k.to_ascii_lowercase()));
            }
            crate::support::origin::Reply::new(200)
                .header("Server", "origin/1.0")
                .header("X-Powered-By", "php")
                .body(body)
        }),
    );
    let s = Strait::start(&config(&format!(
        r#"domains:
  - hosts: [app.test]
    backends: [{{ addr: {} }}]
    headers:
      request: {{ set: {{ X-A: domain, X-B: domain }}, add: {{ X-C: domain }}, remove: [X-Client] }}
      response: {{ set: {{ X-R: domain }}, remove: [Server, X-Powered-By] }}
    routes:
      - path_prefix: /r/
        headers:
          request: {{ set: {{ X-A: route }}, remove: [X-B], add: {{ X-Client: route }} }}
          response: {{ set: {{ X-R: route }}, remove: [X-Extra] }}
"#,
        o.url()
    )));
    let up = |path: &str| {
        let r = client::request(
            s.addr(),
            "GET",
            path,
            &[
                ("Host", "app.test"),
                ("X-Client", "client"),
                ("X-B", "client"),
            ],
            b"",
        )
        .unwrap();
        (r.text(), r)
    };
    let (seen, r) = up("/x");
    assert!(
        seen.contains("x-a: domain\n") && seen.contains("x-b: domain\n"),
        "{seen}"
    );
    assert!(
        seen.contains("x-c: domain\n") && !seen.contains("x-client"),
        "{seen}"
    );
    assert_eq!(r.header("x-r"), Some("domain"));
    assert_eq!((r.header("server"), r.header("x-powered-by")), (None, None));

    let (seen, r) = up("/r/x");
    assert!(seen.contains("x-a: route\n"), "{seen}");
    assert!(
        !seen.contains("x-b:"),
        "the route's remove beats the domain's set: {seen}"
    );
    assert!(
        seen.contains("x-c: domain\n"),
        "untouched domain rules still apply: {seen}"
    );
    // The route's add of X-Client replaces the domain's remove of it.
    assert!(
        seen.contains("x-client: client\n") && seen.contains("x-client: route\n"),
        "{seen}"
    );
    assert_eq!(r.header("x-r"), Some("route"));
    assert_eq!(r.header("server"), None);
}

#[test]
fn max_body_bytes_answers_413() {
    let o = Origin::plain("o");
    let s = Strait::start(&config(&format!(
        "domains:
  - hosts: [app.test]
    backends: [{{ addr: {} }}]
    max_body_bytes: 10
    routes:
      - {{ path_prefix: /upload/, max_body_bytes: 1KiB }}
",
        o.url()
    )));
    let post = |path: &str, body: &[u8], extra: &[(&str, &str)]| {
        let mut h = vec![("Host", "app.test")];
        h.extend_from_slice(extra);
        client::request(s.addr(), "POST", path, &h, body).unwrap()
    };
    let r = post("/", b"12345678901", &[]);
    assert_eq!(r.status, 413);
    assert_eq!(r.header("x-strait-error"), Some("body-too-large"));
    assert_eq!(o.hits(), 0, "refused by Content-Length before any backend");
    assert_eq!(post("/", b"1234567890", &[]).status, 200);
    assert_eq!(post("/upload/", &[b'x'; 1000], &[]).status, 200);
    // A chunked body is counted as it arrives.
    let chunked = b"20\r\n0123456789abcdef0123456789abcdef\r\n0\r\n\r\n";
    let r = post("/", chunked, &[("Transfer-Encoding", "chunked")]);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.header("x-strait-error"), Some("body-too-large"));
}

fn limits_config(o: &Origin) -> String {
    config(&format!(
        "server:
  request_header_timeout: 1s
  max_header_bytes: 2KiB
domains:
  - hosts: [app.test]
    backends: [{{ addr: {} }}]
",
        o.url()
    ))
}

#[test]
fn a_slow_request_head_gets_408() {
    let o = Origin::plain("o");
    let s = Strait::start(&limits_config(&o));
    // Half a head, then nothing.
    let mut c = Conn::connect(s.addr()).unwrap();
    let started = Instant::now();
    c.send_raw(b"GET / HTTP/1.1\r\nHost: app.test\r\n").unwrap();
    let r = c.read_response("GET").unwrap();
    assert_eq!(r.status, 408);
    assert_eq!(r.header("x-strait-error"), Some("request-header-timeout"));
    assert!(r.closes());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // Dripping a byte at a time does not reset the clock.
    let mut c = Conn::connect(s.addr()).unwrap();
    let started = Instant::now();
    let drip = b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Slow: ";
    for chunk in drip.chunks(8) {
        c.send_raw(chunk).unwrap();
        thread::sleep(Duration::from_millis(150));
    }
    while started.elapsed() < Duration::from_millis(1300) {
        if c.send_raw(b"a").is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let r = c.read_response("GET").unwrap();
    assert_eq!(r.status, 408);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(3500), "{took:?}");
    assert_eq!(o.hits(), 0);

    // A connection that never sends anything is closed without an answer.
    let mut idle = TcpStream::connect(s.addr()).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let started = Instant::now();
    let _ = idle.read_to_end(&mut buf);
    assert!(buf.is_empty(), "{:?}", String::from_utf8_lossy(&buf));
    assert!(started.elapsed() < Duration::from_secs(4));

    // Normal requests, several on one connection, are unaffected.
    let mut c = Conn::connect(s.addr()).unwrap();
    for _ in 0..3 {
        assert_eq!(c.get("app.test", "/").unwrap().status, 200);
    }
}

/// 408 and 431 are answered before Pingora parses anything; they still reach the access log
/// (with what had arrived of the request line and Host) and `strait_requests_total`.
#[test]
fn refused_heads_are_logged_and_counted() {
    let o = Origin::plain("o");
    let p = Ports::new();
    let s = Strait::start(&format!(
        "{}{}logging:\n  access_log: \"{{dir}}/access.log\"\n",
        limits_config(&o),
        p.yaml(true)
    ));
    p.wait_up();
    let mut c = Conn::connect(s.addr()).unwrap();
    c.send_raw(b"GET /slow?q=1 HTTP/1.1\r\nHost: app.test\r\n")
        .unwrap();
    assert_eq!(c.read_response("GET").unwrap().status, 408);
    let big = "a".repeat(3000);
    let r = client::request(
        s.addr(),
        "PUT",
        "/big",
        &[("Host", "app.test"), ("X-Big", &big)],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 431);

    let log = s.dir().join("access.log");
    let mut lines: Vec<serde_json::Value> = Vec::new();
    crate::support::eventually_msg(Duration::from_secs(10), "two access log lines", || {
        lines = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        lines.len() >= 2
    });
    let slow = lines
        .iter()
        .find(|l| l["status"] == 408)
        .expect("a 408 line");
    assert_eq!(slow["method"], "GET", "{slow}");
    assert_eq!(slow["path"], "/slow", "{slow}");
    assert_eq!(slow["query"], "q=1", "{slow}");
    assert_eq!(slow["host"], "app.test", "{slow}");
    assert_eq!(slow["client"], "127.0.0.1", "{slow}");
    assert_eq!(slow["error"], "request-header-timeout", "{slow}");
    assert!(
        slow["duration_ms"].as_f64().unwrap_or(0.0) >= 900.0,
        "{slow}"
    );
    let large = lines
        .iter()
        .find(|l| l["status"] == 431)
        .expect("a 431 line");
    assert_eq!(large["method"], "PUT", "{large}");
    assert_eq!(large["path"], "/big", "{large}");
    assert_eq!(large["error"], "header-too-large", "{large}");
    assert_eq!(large["domain"], serde_json::Value::Null, "{large}");

    let m = scrape(&p);
    for status in ["408", "431"] {
        assert_eq!(
            m.value(
                "strait_requests_total",
                &[
                    ("domain", "(unknown)"),
                    ("route", "(none)"),
                    ("status", status)
                ]
            ),
            1.0,
            "status {status}"
        );
    }
    assert_eq!(o.hits(), 0);
}

#[test]
fn a_large_request_head_gets_431() {
    let o = Origin::plain("o");
    let s = Strait::start(&limits_config(&o));
    let big = "a".repeat(3000);
    let r = client::request(
        s.addr(),
        "GET",
        "/",
        &[("Host", "app.test"), ("X-Big", &big)],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 431);
    assert_eq!(r.header("x-strait-error"), Some("header-too-large"));
    let fits = "a".repeat(1500);
    let r = client::request(
        s.addr(),
        "GET",
        "/",
        &[("Host", "app.test"), ("X-Big", &fits)],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(o.hits(), 1);

    // The default limit is 64 KiB (Pingora alone would take up to 1 MiB).
    let s = Strait::start(&config(&format!(
        "domains:\n  - hosts: [app.test]\n    backends: [{{ addr: {} }}]\n",
        o.url()
    )));
    let huge = "a".repeat(70_000);
    let r = client::request(
        s.addr(),
        "GET",
        "/",
        &[("Host", "app.test"), ("X-Big", &huge)],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 431);
}
