//! `discovery: { etcd: { prefix } }`: a backend registered under the prefix gets traffic on
//! every node after its first good health check and none after its key is deleted, with no
//! failed request on the way.

use std::time::Duration;

use super::{discovered_shop, Node};
use crate::admin::{assert_all_ok, Load};
use crate::support::etcd::Etcd;
use crate::support::{eventually_msg, Behaviour, Origin};

#[test]
fn a_registered_backend_serves_on_every_node_and_leaves_when_its_key_goes() {
    let etcd = Etcd::start();
    let a = Origin::plain("a");
    let d = Origin::start("d", Behaviour::default().unhealthy());
    let n1 = Node::start(&etcd, "d1", &[discovered_shop(&a)]);
    let n2 = Node::start(&etcd, "d2", &[discovered_shop(&a)]);
    let loads = [
        Load::start(n1.strait.addr(), "shop.test", 2),
        Load::start(n2.strait.addr(), "shop.test", 2),
    ];

    // A key that names no backend is skipped; the good one joins.
    etcd.put("/services/shop/not an address", "{}");
    let key = format!("/services/shop/{}", d.addr());
    etcd.put(&key, r#"{"weight": 1, "max_connections": 50}"#);
    for n in [&n1, &n2] {
        eventually_msg(Duration::from_secs(1), "d listed on every node", || {
            n.backends("shop.test") == vec![a.url(), d.url()]
        });
    }
    // Listed but failing its check: no traffic yet.
    let before = d.hits();
    let seen = loads[0].answered() + loads[1].answered();
    eventually_msg(Duration::from_secs(5), "load while d is unhealthy", || {
        loads[0].answered() + loads[1].answered() > seen + 40
    });
    assert_eq!(d.hits(), before, "an unchecked backend got requests");
    d.set_healthy(true);
    for n in [&n1, &n2] {
        eventually_msg(Duration::from_secs(3), "d serving on every node", || {
            (0..4).any(|_| n.served("shop.test") == "d")
        });
    }

    etcd.delete(&key);
    for n in [&n1, &n2] {
        eventually_msg(Duration::from_secs(1), "d gone from every node", || {
            n.backends("shop.test") == vec![a.url()]
        });
    }
    // One window of load lets requests already on d finish (each load thread sends one
    // request at a time); in the next, nothing reaches it.
    let window = |what: &str| {
        let seen = loads[0].answered() + loads[1].answered();
        eventually_msg(Duration::from_secs(5), what, || {
            loads[0].answered() + loads[1].answered() > seen + 40
        });
    };
    window("load while requests on d finish");
    let after = d.hits();
    window("load after d left");
    assert_eq!(d.hits(), after, "a deleted backend still got requests");
    let [l1, l2] = loads;
    let total = assert_all_ok(&l1.finish()) + assert_all_ok(&l2.finish());
    eprintln!("{total} requests under the loop, none failed");
}
