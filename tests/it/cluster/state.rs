//! Runtime changes through any node's admin API are written to etcd and applied by every
//! node, the writer included; a node started later applies the same state; a purge reaches
//! every node's cache.

use std::time::{Duration, Instant};

use super::{addr_query, shop, Node};
use crate::admin::json;
use crate::support::etcd::Etcd;
use crate::support::{eventually_msg, try_eventually, Domain, Origin};

#[test]
fn a_backend_added_on_one_node_serves_on_the_others_within_a_second() {
    let etcd = Etcd::start();
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let n1 = Node::start(&etcd, "n1", &[shop(&a)]);
    let n2 = Node::start(&etcd, "n2", &[shop(&a)]);
    assert_eq!(n2.served("shop.test"), "a");

    let r = n1.ports.call(
        "POST",
        "/backends?domain=shop.test",
        &format!(r#"{{"addr": "{}", "weight": 2}}"#, b.url()),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let answer = json(&r);
    assert_eq!(answer["persisted"], true, "{answer}");
    assert_eq!(answer["applied"], true, "{answer}");
    // The writer has it as it answers.
    assert!(n1.backends("shop.test").contains(&b.url()));
    let answered = Instant::now();
    // The other node: listed, checked and serving within a second.
    assert!(
        try_eventually(Duration::from_secs(1), || {
            (0..4).any(|_| n2.served("shop.test") == "b")
        }),
        "b did not serve on n2 within 1s of the answer: {:?}",
        n2.backend_list("shop.test")
    );
    let took = answered.elapsed();
    eprintln!("added on n1, serving on n2 after {took:?}");
    let entry = n2
        .backend_list("shop.test")
        .into_iter()
        .find(|x| x["addr"] == b.url().as_str())
        .expect("b listed on n2");
    assert_eq!(entry["weight"], 2, "{entry}");

    // Drained on n2: n1 stops sending to it.
    let r = n2.ports.call(
        "PUT",
        &format!(
            "/backends/enabled?domain=shop.test&addr={}",
            addr_query(&b.url())
        ),
        r#"{"enabled": false}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["persisted"], true);
    eventually_msg(Duration::from_secs(2), "b drained on n1", || {
        n1.backend_list("shop.test")
            .iter()
            .any(|x| x["addr"] == b.url().as_str() && x["enabled"] == false)
    });
    let before = b.hits();
    for _ in 0..6 {
        assert_eq!(n1.served("shop.test"), "a");
    }
    assert_eq!(b.hits(), before, "a drained backend got requests");

    // The file's backend removed on n2: gone on n1 too.
    let r = n2.ports.call(
        "DELETE",
        &format!("/backends?domain=shop.test&addr={}", addr_query(&a.url())),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    eventually_msg(Duration::from_secs(2), "a removed on n1", || {
        n1.backends("shop.test") == vec![b.url()]
    });

    // A node that starts now applies the same state: b only, drained.
    let n3 = Node::start(&etcd, "n3", &[shop(&a)]);
    let list = n3.backend_list("shop.test");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["addr"], b.url().as_str());
    assert_eq!(list[0]["enabled"], false, "{list:?}");
    // Undrained from the new node: every node sends to b again.
    let r = n3.ports.call(
        "PUT",
        &format!(
            "/backends/enabled?domain=shop.test&addr={}",
            addr_query(&b.url())
        ),
        r#"{"enabled": true}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    eventually_msg(Duration::from_secs(2), "b serving on n1 again", || {
        n1.served("shop.test") == "b"
    });
}

#[test]
fn a_cache_purge_on_one_node_empties_every_node_s_cache() {
    let etcd = Etcd::start();
    let a = Origin::plain("a");
    let site = || Domain::new("cached.test").origins(&[&a]).cache();
    let cache = "cache: { max_bytes: 8MiB, default_ttl: 1m }\n";
    let n1 = Node::start_with(&etcd, "c1", cache, &[site()]);
    let n2 = Node::start_with(&etcd, "c2", cache, &[site()]);
    let x_cache = |n: &Node| {
        let r = n.strait.get("cached.test", "/one");
        assert_eq!(r.status, 200);
        r.header("x-cache").unwrap_or("-").to_string()
    };
    for n in [&n1, &n2] {
        x_cache(n);
        assert_eq!(x_cache(n), "HIT", "not cached on {}", n.name);
    }
    let r = n1.ports.call("DELETE", "/cache?domain=cached.test", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = json(&r);
    assert_eq!(answer["purged"], 1, "{answer}");
    assert_eq!(answer["cluster"], true, "{answer}");
    eventually_msg(Duration::from_secs(2), "the purge on c2", || {
        json(&n2.ports.call("GET", "/cache/stats", ""))["entries"] == 0
    });
    assert_eq!(x_cache(&n2), "MISS");
    assert_eq!(x_cache(&n1), "MISS");
}
