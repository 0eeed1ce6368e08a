//! `GET /backends?domain=D&addr=A`: that backend alone (its state object), 404 when the pool
//! does not hold it; a route's own pool is addressed with `route=`.

use crate::support::{config, domains, send_many, Strait};

use super::{enc, json, rr, Ports};
use crate::support::Origin;

#[test]
fn one_backend_by_url_or_host_port_and_404_when_absent() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let c = Origin::plain("c");
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}{}",
        p.yaml(true),
        domains(&[rr("one.test").origins(&[&a, &b]).route(&format!(
            "{{ path_prefix: /own/, backends: [{{ addr: {} }}] }}",
            c.url()
        ))])
    )));
    p.wait_up();
    // Two requests through round robin: one on each backend, so `requests` tells them apart.
    send_many(&s, "one.test", "/", 2);

    for addr in [b.url(), b.addr().to_string()] {
        let r = p.call(
            "GET",
            &format!("/backends?domain=one.test&addr={}", enc(&addr)),
            "",
        );
        assert_eq!(r.status, 200, "{addr}: {}", r.text());
        let v = json(&r);
        assert!(v.is_object(), "{addr}: not one object: {v}");
        assert_eq!(v["addr"], b.url(), "{v}");
        assert_eq!(v["healthy"], true, "{v}");
        assert_eq!(v["requests"], 1, "{v}");
    }

    // In another pool (the route's), or nowhere: 404 with a message.
    let r = p.call(
        "GET",
        &format!("/backends?domain=one.test&addr={}", enc(&c.url())),
        "",
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(
        json(&r)["error"]
            .as_str()
            .is_some_and(|e| e.contains("no backend")),
        "{}",
        r.text()
    );
    let r = p.call(
        "GET",
        &format!(
            "/backends?domain=one.test&route=/own/&addr={}",
            enc(&c.url())
        ),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["addr"], c.url());
    let r = p.call("GET", "/backends?domain=one.test&addr=127.0.0.1:1", "");
    assert_eq!(r.status, 404, "{}", r.text());
    // A malformed address is the caller's mistake, not an absent backend.
    let r = p.call("GET", "/backends?domain=one.test&addr=http%3A%2F%2F", "");
    assert_eq!(r.status, 400, "{}", r.text());
    // Without `addr` the whole pool still comes back.
    let r = p.call("GET", "/backends?domain=one.test", "");
    assert_eq!(json(&r).as_array().map(Vec::len), Some(2), "{}", r.text());
}
