//! The node registry, and etcd lost and back: nodes keep serving what they last read, say so
//! in /ready (still 200), /cluster and the metrics, refuse writes they cannot store, and
//! converge once etcd is back.

use std::time::Duration;

use super::{discovered_shop, Node};
use crate::admin::json;
use crate::support::etcd::Etcd;
use crate::support::{eventually_msg, Domain, Origin};

#[test]
fn nodes_register_keep_serving_without_etcd_and_converge_after() {
    let mut etcd = Etcd::start();
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let c = Origin::plain("c");
    let n1 = Node::start(&etcd, "o1", &[discovered_shop(&a)]);
    let n2 = Node::start(&etcd, "o2", &[discovered_shop(&a)]);

    // The registry: both nodes, each with its own config hash as /info shows it.
    for n in [&n1, &n2] {
        eventually_msg(Duration::from_secs(5), "two live nodes", || {
            n.cluster()["live_nodes"] == 2
        });
    }
    let cluster = n1.cluster();
    let nodes = cluster["nodes"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = nodes.iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(names, ["o1", "o2"], "{cluster}");
    let info = json(&n2.ports.call("GET", "/info", ""));
    let o2 = &nodes[1];
    assert_eq!(o2["config_hash"], info["config_hash"], "{cluster}");
    assert_eq!(o2["version"], info["version"], "{cluster}");
    assert_eq!(
        o2["listeners"][0].as_str(),
        Some(n2.strait.addr().to_string().as_str()),
        "{cluster}"
    );
    assert_eq!(o2["self"], false);
    assert_eq!(nodes[0]["self"], true);
    // The nodes listen on different ports, so their configs differ.
    assert_eq!(cluster["config_hashes_agree"], false, "{cluster}");

    let r = n1.ports.call(
        "POST",
        "/backends?domain=shop.test",
        &format!(r#"{{"addr": "{}"}}"#, b.url()),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    for n in [&n1, &n2] {
        eventually_msg(
            Duration::from_secs(2),
            "b checked and serving on every node",
            || {
                n.backends("shop.test") == vec![a.url(), b.url()]
                    && (0..4).any(|_| n.served("shop.test") == "b")
            },
        );
    }

    etcd.kill();
    for n in [&n1, &n2] {
        eventually_msg(Duration::from_secs(5), "/ready saying etcd is away", || {
            let r = n.ports.probe("/ready");
            r.status == 200 && r.text().contains("etcd unreachable")
        });
        assert_eq!(n.cluster()["etcd"]["status"]["connected"], false);
        let metrics = n.ports.probe("/metrics").text();
        assert!(
            metrics.contains("strait_cluster_etcd_connected 0"),
            "{metrics}"
        );
        // Serving the last state: both backends, every request answered.
        let served: Vec<String> = (0..6).map(|_| n.served("shop.test")).collect();
        assert!(
            served.contains(&"a".to_string()) && served.contains(&"b".to_string()),
            "{} served {served:?} with {:?}\n{}",
            n.name,
            n.backend_list("shop.test"),
            n.strait.stderr()
        );
    }
    // A change that cannot be stored is refused, not half-made.
    let r = n2.ports.call(
        "POST",
        "/backends?domain=shop.test",
        &format!(r#"{{"addr": "{}"}}"#, c.url()),
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(n2.backends("shop.test"), vec![a.url(), b.url()]);

    etcd.restart();
    // Written while the nodes may still be reconnecting: the full read or the watch brings it.
    etcd.put(&format!("/services/shop/{}", c.addr()), "");
    for n in [&n1, &n2] {
        eventually_msg(Duration::from_secs(10), "reconnected and converged", || {
            n.backends("shop.test") == vec![a.url(), b.url(), c.url()]
                && n.cluster()["etcd"]["status"]["connected"] == true
        });
        let r = n.ports.probe("/ready");
        assert_eq!((r.status, r.text()), (200, "ready\n".to_string()));
        let status = &n.cluster()["etcd"]["status"];
        assert!(status["full_reads"].as_u64() >= Some(2), "{status}");
        assert!(status["connection_losses"].as_u64() >= Some(1), "{status}");
    }
    // And changes flow again.
    let r = n2.ports.call(
        "DELETE",
        &format!(
            "/backends?domain=shop.test&addr={}",
            super::addr_query(&a.url())
        ),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    eventually_msg(Duration::from_secs(2), "a removed on o1", || {
        n1.backends("shop.test") == vec![b.url(), c.url()]
    });

    // A node that stops leaves the registry (its lease is revoked, or runs out).
    // SAFETY: a signal to the child process this test started.
    unsafe { libc::kill(n2.strait.pid() as i32, libc::SIGINT) };
    eventually_msg(Duration::from_secs(10), "o2 gone from the registry", || {
        n1.cluster()["live_nodes"] == 1
    });
}

#[test]
fn etcd_users_and_passwords_are_used_and_a_wrong_one_degrades_to_the_file() {
    let etcd = Etcd::start();
    etcd.enable_auth("pw-root");
    let a = Origin::plain("a");
    let shop = || Domain::new("shop.test").origins(&[&a]);
    let good = Node::start_unsynced(
        &etcd,
        "good",
        "    username: root\n    password: pw-root\n",
        &[shop()],
    );
    eventually_msg(
        Duration::from_secs(10),
        "the good node's first read",
        || good.cluster()["etcd"]["status"]["synced"] == true,
    );
    let bad = Node::start_unsynced(
        &etcd,
        "bad",
        "    username: root\n    password: wrong\n",
        &[shop()],
    );
    eventually_msg(
        Duration::from_secs(10),
        "the bad node's failed attempt",
        || bad.cluster()["etcd"]["status"]["last_error"].is_string(),
    );
    let status = &bad.cluster()["etcd"]["status"];
    assert_eq!(status["connected"], false, "{status}");
    // It serves its file, ready, and says why it is alone.
    assert_eq!(bad.served("shop.test"), "a");
    let r = bad.ports.probe("/ready");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("etcd unreachable"), "{}", r.text());
    // Its changes cannot be stored: refused.
    let r = bad.ports.call(
        "POST",
        "/backends?domain=shop.test",
        r#"{"addr": "http://127.0.0.1:9"}"#,
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(good.cluster()["live_nodes"], 1);
}
