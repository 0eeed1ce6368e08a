//! The reload plan: `strait -t --plan -c NEW --against OLD` and `POST /reload?dry_run=true`.
//! The ip_hash key-movement figure is checked against where clients actually go: the
//! explained pick for 2 000 random addresses before and after a real reload (the exact
//! function itself is checked against 100 000 addresses in `balance::ip_hash`'s unit tests).

use std::fs;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::{json, Value};

use crate::admin::{json, Ports};
use crate::support::strait::{run_bin, temp_dir};
use crate::support::{config, domains, Domain, Origin, Strait};

#[test]
fn strait_t_plan_prints_the_changes_and_exits_as_t_does() {
    let dir = temp_dir("plan-cli");
    let old = dir.join("old.yaml");
    let new = dir.join("new.yaml");
    fs::write(
        &old,
        "listeners: [{ addr: 127.0.0.1:1 }]
domains:
  - hosts: [a.test]
    load_balancer: ip_hash
    backends: [http://127.0.0.1:9001, http://127.0.0.1:9002, http://127.0.0.1:9003, http://127.0.0.1:9004]
  - hosts: [gone.test]
    respond: { status: 200 }
  - hosts: [v.test]
    respond: { status: 200 }
    routes:
      - { path_prefix: /up/, max_body_bytes: 1000, respond: { status: 200 } }
",
    )
    .expect("write old");
    fs::write(
        &new,
        "listeners: [{ addr: 127.0.0.1:1 }, { addr: 127.0.0.1:2 }]
server: { drain_delay: 3s }
domains:
  - hosts: [a.test]
    load_balancer: ip_hash
    backends: [http://127.0.0.1:9001, http://127.0.0.1:9002, http://127.0.0.1:9003]
    compress: { algorithms: [br, gzip], types: [text/*] }
    routes:
      - { path_prefix: /r/, respond: { status: 204 } }
  - hosts: [v.test]
    respond: { status: 200 }
    routes:
      - { path_prefix: /up/, max_body_bytes: 2000, respond: { status: 200 } }
",
    )
    .expect("write new");
    let (old_s, new_s) = (old.to_string_lossy(), new.to_string_lossy());
    let ran = run_bin(&["-t", "--plan", "-c", &new_s, "--against", &old_s]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let out = &ran.stdout;
    for line in [
        "- domain gone.test",
        "+ route a.test /r/",
        // What changed, with the value before and after.
        "~ route v.test /up/: max_body_bytes changed\n    old: Some(1000)\n    new: Some(2000)\n",
        "compress changed\n    old: off\n    new: algorithms [\"br\", \"gzip\"], min_bytes 256, types [\"text/*\"]\n",
        "- backend a.test http://127.0.0.1:9004",
        "! needs a binary upgrade (strait -u): listener 127.0.0.1:2 added",
        "! needs a binary upgrade (strait -u): server.drain_delay: 1s -> 3s",
        ": ok (2 domains, 3 backends)",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    // Removing one of four equal backends moves its quarter of the clients, and only that.
    let share = out
        .lines()
        .find_map(|l| l.strip_prefix("  ip_hash pool a.test: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no ip_hash line in\n{out}"));
    assert!((15.0..35.0).contains(&share), "{share} %\n{out}");

    // --json: the dry-run document alone on stdout, with the same values.
    let ran = run_bin(&["-t", "--plan", "--json", "-c", &new_s, "--against", &old_s]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let v: Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{}", ran.stdout));
    assert_eq!(
        (v["dry_run"].clone(), v["valid"].clone()),
        (json!(true), json!(true)),
        "{v}"
    );
    let v_test = v["plan"]["domains"]["changed"]
        .as_array()
        .and_then(|l| l.iter().find(|d| d["domain"] == "v.test"))
        .cloned()
        .unwrap_or_else(|| panic!("v.test not changed in {v}"));
    assert_eq!(
        v_test["routes"]["changed"][0]["values"],
        json!([{ "aspect": "max_body_bytes", "old": "Some(1000)", "new": "Some(2000)" }]),
        "{v}"
    );

    // An invalid new file: the usual errors, exit 1. No --against: exit 1 with a hint.
    fs::write(&new, "listeners: []\n").expect("write bad");
    let ran = run_bin(&["-t", "--plan", "-c", &new_s, "--against", &old_s]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(
        ran.stderr.contains("error(s); nothing was started"),
        "{ran:?}"
    );
    let ran = run_bin(&["-t", "--plan", "-c", &old_s]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.stderr.contains("--against"), "{ran:?}");
}

/// Deterministic pseudo-random IPv4 addresses (xorshift), none on loopback.
fn addresses(n: usize) -> Vec<IpAddr> {
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            IpAddr::V4(Ipv4Addr::from(x | 0x0100_0000))
        })
        .collect()
}

fn picks(p: &Ports, ips: &[IpAddr]) -> Vec<String> {
    ips.iter()
        .map(|ip| {
            let body = json!({ "host": "h.test", "client_ip": ip.to_string() }).to_string();
            let r = p.call("POST", "/explain", &body);
            assert_eq!(r.status, 200, "{}", r.text());
            json(&r)["backend"]["pick"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn dry_run_plans_without_swapping_and_the_moved_share_holds() {
    let o: Vec<Origin> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| Origin::plain(n))
        .collect();
    let p = Ports::new();
    let yaml = |list: &[&Origin], weights: &[u32]| {
        let items: Vec<String> = list
            .iter()
            .zip(weights)
            .map(|(x, w)| format!("{{ addr: {}, weight: {w} }}", x.url()))
            .collect();
        config(&format!(
            "{}{}",
            p.yaml(true),
            domains(&[Domain::new("h.test")
                .strategy("ip_hash")
                .backends(format!("[{}]", items.join(", ")))])
        ))
    };
    let s = Strait::start(&yaml(&[&o[0], &o[1], &o[2], &o[3]], &[1, 1, 1, 1]));
    p.wait_up();
    let ips = addresses(2_000);
    let before = picks(&p, &ips);

    // The file now drops d and doubles c's weight; the listener line is what the harness wrote.
    let running = fs::read_to_string(s.config_path()).expect("read config");
    let old = temp_dir("plan-json").join("old.yaml");
    fs::write(&old, &running).expect("write old");
    let listen_line = running.lines().nth(1).expect("listener line").to_string();
    let next =
        yaml(&[&o[0], &o[1], &o[2]], &[1, 1, 2]).replace("  - addr: \"{listen}\"", &listen_line);
    fs::write(s.config_path(), next).expect("write config");

    let r = p.call("POST", "/reload?dry_run=true", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = json(&r);
    assert_eq!(
        (v["dry_run"].clone(), v["valid"].clone()),
        (json!(true), json!(true)),
        "{v}"
    );
    let plan = &v["plan"];
    assert_eq!(
        plan["pools"]["changed"][0]["backends"]["removed"],
        json!([o[3].url()]),
        "{v}"
    );
    assert!(
        plan["needs_upgrade"].as_array().is_some_and(Vec::is_empty),
        "{v}"
    );
    let share = plan["ip_hash"][0]["keys_moved"]
        .as_f64()
        .expect("keys_moved");
    // The CLI's --json prints the same document for the same two files.
    let config_s = s.config_path().to_string_lossy().to_string();
    let ran = run_bin(&[
        "-t",
        "--plan",
        "--json",
        "-c",
        &config_s,
        "--against",
        &old.to_string_lossy(),
    ]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let cli: Value = serde_json::from_str(&ran.stdout).unwrap_or(Value::Null);
    assert_eq!(
        cli, v,
        "strait -t --plan --json vs POST /reload?dry_run=true"
    );
    // Nothing was swapped: still four backends, and the same picks.
    let r = p.call("GET", "/backends?domain=h.test", "");
    assert_eq!(json(&r).as_array().map(Vec::len), Some(4), "{}", r.text());
    assert_eq!(picks(&p, &ips[..50]), before[..50]);

    // Now for real; the share of addresses whose backend changed is the planned one.
    let r = p.call("POST", "/reload", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let after = picks(&p, &ips);
    let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count() as f64 / ips.len() as f64;
    let sigma = (share * (1.0 - share) / ips.len() as f64).sqrt();
    eprintln!("ip_hash reload: planned {share:.4}, observed {moved:.4}");
    assert!(
        (moved - share).abs() <= 5.0 * sigma,
        "planned {share:.4}, observed {moved:.4} over {} addresses",
        ips.len()
    );
    // d's clients all moved, and clients only ever moved to c (the heavier one) or off d.
    for ((a, b), _) in before.iter().zip(&after).zip(&ips) {
        if a != b {
            assert!(*a == o[3].url() || *b == o[2].url(), "{a} -> {b}");
        }
    }

    // A broken file: 422 with the errors, as a reload would answer, and nothing changes.
    fs::write(s.config_path(), "listeners: []\n").expect("write bad config");
    let r = p.call("POST", "/reload?dry_run=true", "");
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        json(&r)["errors"].as_array().is_some_and(|e| !e.is_empty()),
        "{}",
        r.text()
    );
    let r = p.call("GET", "/backends?domain=h.test", "");
    assert_eq!(json(&r).as_array().map(Vec::len), Some(3), "{}", r.text());
}
