#!/usr/bin/env python3
"""How long a change takes to reach every node of a strait cluster (docs/cluster.md).

Starts a one-member etcd and NODES strait nodes on loopback (temp dir, stopped on exit),
then, ROUNDS times:
  - admin: POST /backends on node 0, time until every other node's GET /backends lists it
    (measured from the moment node 0 answered), then DELETE it the same way;
  - discovery: `etcdctl put` of a key under the discovery prefix, time until every node
    lists the backend; then `etcdctl del`, time until none does.
Prints p50/p90/max per kind. Polls every 2 ms, so figures are +-2 ms.

    benches/cluster_propagation.py            (STRAIT_BIN, NODES [3], ROUNDS [50])
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("STRAIT_BIN", os.path.join(ROOT, "target/release/strait"))
NODES = int(os.environ.get("NODES", "3"))
ROUNDS = int(os.environ.get("ROUNDS", "50"))
TOKEN = "bench"
procs = []


def port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None):
    req = urllib.request.Request(url, method=method, data=body.encode() if body else None)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait(cond, what, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if cond():
                return
        except OSError:
            pass
        time.sleep(0.002)
    sys.exit(f"timed out waiting for {what}")


def listed(admin, url):
    status, body = http("GET", f"http://{admin}/backends?domain=shop.test")
    return status == 200 and any(b["addr"] == url for b in json.loads(body))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    tmp = tempfile.mkdtemp(prefix="strait-cluster-bench-")
    try:
        cport, pport = port(), port()
        etcd_url = f"http://127.0.0.1:{cport}"
        procs.append(subprocess.Popen(
            ["etcd", "--name=b", f"--data-dir={tmp}/etcd",
             f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
             f"--listen-peer-urls=http://127.0.0.1:{pport}",
             f"--initial-advertise-peer-urls=http://127.0.0.1:{pport}",
             f"--initial-cluster=b=http://127.0.0.1:{pport}", "--log-level=error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait(lambda: b"true" in urllib.request.urlopen(f"{etcd_url}/health", timeout=1).read(), "etcd")
        admins = []
        for i in range(NODES):
            admin = f"127.0.0.1:{port()}"
            cfg = os.path.join(tmp, f"n{i}.yaml")
            with open(cfg, "w") as f:
                f.write(f"""listeners:
  - addr: 127.0.0.1:{port()}
admin: {{ addr: {admin}, token: {TOKEN} }}
logging: {{ level: warn }}
cluster:
  etcd: {{ endpoints: [{etcd_url}], prefix: /bench/, node_name: n{i} }}
domains:
  - hosts: [shop.test]
    backends: [http://127.0.0.1:9]
    discovery: {{ etcd: {{ prefix: /services/shop/ }} }}
""")
            procs.append(subprocess.Popen([BIN, "-c", cfg], stdout=subprocess.DEVNULL,
                                          stderr=open(os.path.join(tmp, f"n{i}.log"), "w")))
            admins.append(admin)
        for a in admins:
            wait(lambda a=a: json.loads(http("GET", f"http://{a}/cluster")[1])["live_nodes"] == NODES,
                 f"{a} to see {NODES} nodes")
        ctl = ["etcdctl", f"--endpoints={etcd_url}"]
        env = dict(os.environ, ETCDCTL_API="3")
        times = {"admin add": [], "admin remove": [], "discovery put": [], "discovery delete": []}
        for r in range(ROUNDS):
            url = f"http://127.0.0.1:{20000 + r}"
            status, body = http("POST", f"http://{admins[0]}/backends?domain=shop.test",
                                json.dumps({"addr": url}))
            assert status == 201, body
            t0 = time.monotonic()
            for a in admins[1:]:
                wait(lambda a=a: listed(a, url), "the added backend")
            times["admin add"].append(time.monotonic() - t0)
            q = urllib.parse.quote(url, safe="")
            status, body = http("DELETE", f"http://{admins[0]}/backends?domain=shop.test&addr={q}")
            assert status == 200, body
            t0 = time.monotonic()
            for a in admins[1:]:
                wait(lambda a=a: not listed(a, url), "the removed backend gone")
            times["admin remove"].append(time.monotonic() - t0)

            addr = f"127.0.0.1:{30000 + r}"
            subprocess.run(ctl + ["put", f"/services/shop/{addr}", ""], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            t0 = time.monotonic()
            for a in admins:
                wait(lambda a=a: listed(a, f"http://{addr}"), "the discovered backend")
            times["discovery put"].append(time.monotonic() - t0)
            subprocess.run(ctl + ["del", f"/services/shop/{addr}"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            t0 = time.monotonic()
            for a in admins:
                wait(lambda a=a: not listed(a, f"http://{addr}"), "the discovered backend gone")
            times["discovery delete"].append(time.monotonic() - t0)
        print(f"{NODES} nodes, {ROUNDS} rounds; time until every node lists the change (ms)")
        print(f"{'change':<18} {'p50':>7} {'p90':>7} {'max':>7}")
        for k, xs in times.items():
            ms = [x * 1000 for x in xs]
            print(f"{k:<18} {pct(ms, 50):7.1f} {pct(ms, 90):7.1f} {max(ms):7.1f}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT if p is not procs[0] else signal.SIGKILL)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    import urllib.parse  # noqa: F401  (quote)
    main()
