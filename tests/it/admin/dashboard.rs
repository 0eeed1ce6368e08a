//! The dashboard: `GET /` serves the page without the token (it holds no data), everything
//! it reads needs the token, and `GET /info` reports the node and the last reload.

use crate::support::{config, domains, Origin, Strait};

use super::{json, rr, Ports};

#[test]
fn the_page_is_served_and_info_reports_the_node() {
    let a = Origin::plain("a");
    let p = Ports::new();
    let _s = Strait::start(&config(&format!(
        "{}{}",
        p.yaml(true),
        domains(&[rr("dash.test")
            .origins(&[&a])
            .route("{ path_prefix: /r/, respond: { status: 200 } }")])
    )));
    p.wait_up();
    let r = p.admin("GET", "/", None, "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r
        .header("content-security-policy")
        .is_some_and(|c| c.contains("default-src 'none'") && c.contains("connect-src 'self'")));
    let page = r.text();
    assert!(page.len() < 100 * 1024);
    for needle in [
        "sessionStorage",
        "/stats",
        "/backends/enabled",
        "stale since",
    ] {
        assert!(page.contains(needle), "the page lacks {needle:?}");
    }
    // /stats carries what the page shows per domain: routes, rate-limit refusals, cache.
    let _ = crate::support::send_many(&_s, "dash.test", "/r/x", 2);
    let _ = crate::support::send_many(&_s, "dash.test", "/", 1);
    // A request is counted in its logging phase, just after its response is sent.
    let mut v = serde_json::Value::Null;
    crate::support::eventually_msg(
        std::time::Duration::from_secs(5),
        "3 requests counted",
        || {
            v = json(&p.call("GET", "/stats", ""));
            v["domains"][0]["requests"] == 3
        },
    );
    let d = &v["domains"][0];
    // Each route with its own figures, the configured ones first, then `(none)`.
    let routes = d["routes"].as_array().cloned().unwrap_or_default();
    let prefixes: Vec<_> = routes.iter().map(|r| r["path_prefix"].clone()).collect();
    assert_eq!(prefixes, ["/r/", "(none)"], "{v}");
    let (r, none) = (&routes[0], &routes[1]);
    assert_eq!(
        (r["requests"].clone(), r["configured"].clone()),
        (2.into(), true.into()),
        "{v}"
    );
    assert_eq!(r["status"]["2xx"], 2, "{v}");
    assert_eq!(r["errors"], 0, "{v}");
    for q in ["p50", "p90", "p99"] {
        assert!(
            r["latency_ms"][q].as_f64().is_some_and(|ms| ms > 0.0),
            "{q}: {v}"
        );
    }
    assert_eq!(none["requests"], 1, "{v}");
    assert_eq!(d["ratelimited"], 0, "{v}");
    assert!(d["cache"]["hit"].is_u64(), "{v}");
    // Only the page is open: its data is not.
    assert_eq!(p.admin("GET", "/info", None, "").status, 401);
    assert_eq!(p.admin("GET", "/stats", None, "").status, 401);

    let v = json(&p.call("GET", "/info", ""));
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"), "{v}");
    assert!(v["uptime_secs"].as_f64().is_some_and(|u| u >= 0.0), "{v}");
    assert_eq!(
        (v["domains"].clone(), v["backends"].clone()),
        (1.into(), 1.into()),
        "{v}"
    );
    assert!(v["last_reload"].is_null(), "{v}");
    let hash = v["config_hash"].as_str().unwrap_or("").to_string();
    assert!(
        hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{v}"
    );
    assert_eq!(p.call("POST", "/reload", "").status, 200);
    let v = json(&p.call("GET", "/info", ""));
    assert_eq!(v["last_reload"]["ok"], true, "{v}");
    // The same file reloaded: the same config, the same hash.
    assert_eq!(v["config_hash"], hash.as_str(), "{v}");
    assert!(
        v["last_reload"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("1 domains")),
        "{v}"
    );
}
