#!/usr/bin/env python3
"""A strait plugin (docs/plugins.md) in Python, standard library only: backend discovery.

A background `command` plugin: it keeps one pool of strait in step with a file that lists
backend URLs, one per line (`#` starts a comment; blank lines are skipped):

    http://10.0.0.5:3000
    http://10.0.0.6:3000

Every 200 ms it reads the file; when the list changed (and at least once a second anyway,
so a reload that put the configured pool back is corrected), it asks strait's admin API
for the pool (`GET /backends`), adds the backends the file lists and the pool lacks
(`POST /backends`), then removes the ones the file no longer lists (`DELETE /backends`).
Adding first means the pool is never empty in between. A file that is missing or lists
nothing changes nothing (a half-written file must not empty the pool): write the new list to
a temporary file and rename it into place.

    plugins:
      discovery:
        command: [python3, examples/plugins/sync_backends.py,
                  --domain, app.example.com, --file, backends.txt]
        autostart: true
    admin: { addr: 127.0.0.1:9900, token: "${STRAIT_ADMIN_TOKEN}" }

`autostart: true` runs it although no domain or route lists it; the admin API must be on
(strait passes STRAIT_ADMIN_URL and STRAIT_ADMIN_TOKEN). `--route /p/` keeps a route's own
pool instead of the domain's. Relative paths are from the config file's folder. Without
arguments, SYNC_DOMAIN, BACKENDS_FILE and SYNC_ROUTE are read from the environment.

Changes made through the admin API are not written to strait's config file: a reload puts
the configured pool back, and the next round here corrects it again.

strait supervises the program through its socket: it answers `GET /v1/hello` on
STRAIT_PLUGIN_SOCKET with no phases, so strait never calls it about traffic.
"""

import argparse
import json
import os
import socketserver
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler

POLL_SECONDS = 0.2
RESYNC_SECONDS = 1.0
ADMIN_TIMEOUT = 5.0


def log(message):
    # strait logs a command plugin's stderr lines with the plugin's name.
    print(message, file=sys.stderr, flush=True)


def normalize(url):
    """One spelling per backend: a scheme, no trailing slash."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    return url.rstrip("/")


def read_list(path):
    """The backends the file lists, in order; None when it cannot be read or lists none."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    out = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line and normalize(line) not in out:
            out.append(normalize(line))
    return out or None


class Admin:
    """The few admin API calls this plugin makes."""

    def __init__(self, base, token, domain, route):
        self.base = base.rstrip("/")
        self.token = token
        query = {"domain": domain}
        if route:
            query["route"] = route
        self.query = urllib.parse.urlencode(query)

    def call(self, method, extra="", body=None):
        url = "%s/backends?%s%s" % (self.base, self.query, extra)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=ADMIN_TIMEOUT) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def pool(self):
        status, body = self.call("GET")
        if status != 200:
            raise RuntimeError("GET /backends: %d %s" % (status, body[:200]))
        return [normalize(b["addr"]) for b in json.loads(body)]

    def add(self, addr):
        status, body = self.call("POST", body={"addr": addr})
        # 409: already there (added by someone else in between), which is what we wanted.
        if status not in (200, 201, 409):
            raise RuntimeError("POST /backends %s: %d %s" % (addr, status, body[:200]))

    def remove(self, addr):
        status, body = self.call("DELETE", "&addr=" + urllib.parse.quote(addr, safe=""))
        # 404: already gone.
        if status not in (200, 404):
            raise RuntimeError("DELETE /backends %s: %d %s" % (addr, status, body[:200]))


def sync(admin, wanted):
    """One round: the pool made to hold exactly `wanted`. Returns the changes made."""
    have = admin.pool()
    added = [a for a in wanted if a not in have]
    removed = [a for a in have if a not in wanted]
    for addr in added:
        admin.add(addr)
    for addr in removed:
        admin.remove(addr)
    return added, removed


def run(admin, path):
    last = None  # the list last put in place
    last_sync = 0.0
    last_error = None
    while True:
        wanted = read_list(path)
        now = time.monotonic()
        if wanted is not None and (wanted != last or now - last_sync >= RESYNC_SECONDS):
            try:
                added, removed = sync(admin, wanted)
                if added or removed:
                    log("synced from %s: added %s, removed %s" % (path, added, removed))
                last, last_sync, last_error = wanted, now, None
            except (OSError, RuntimeError, ValueError, KeyError) as e:
                # The admin API may not be up yet, or strait is reloading: try again.
                if str(e) != last_error:
                    log("sync failed (will retry): %s" % e)
                    last_error = str(e)
        time.sleep(POLL_SECONDS)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send_json(self, value, status=200):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/v1/hello":
            # No phases: strait never asks this plugin about connections, requests or responses.
            self.send_json({"phases": []})
        else:
            self.send_json({"error": "not found"}, 404)

    def log_message(self, fmt, *args):
        pass


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def main():
    p = argparse.ArgumentParser(description="keep a strait pool in step with a file")
    p.add_argument("--domain", default=os.environ.get("SYNC_DOMAIN"))
    p.add_argument("--file", default=os.environ.get("BACKENDS_FILE"))
    p.add_argument("--route", default=os.environ.get("SYNC_ROUTE"))
    args = p.parse_args()
    admin_url = os.environ.get("STRAIT_ADMIN_URL")
    if not args.domain or not args.file:
        p.error("--domain and --file (or SYNC_DOMAIN and BACKENDS_FILE) are required")
    if not admin_url:
        p.error("STRAIT_ADMIN_URL is not set: turn strait's admin API on")
    admin = Admin(admin_url, os.environ.get("STRAIT_ADMIN_TOKEN"), args.domain, args.route)

    socket_path = os.environ.get("STRAIT_PLUGIN_SOCKET")
    if socket_path:
        server = UnixServer(socket_path, Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    log(
        "sync_backends: %s%s from %s via %s"
        % (args.domain, " " + args.route if args.route else "", args.file, admin_url)
    )
    try:
        run(admin, args.file)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
