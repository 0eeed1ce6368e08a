#!/usr/bin/env python3
"""A strait plugin (docs/plugins.md) in Python, standard library only: security headers.

It declares only the `response` phase, so strait never asks it about requests: for every
response a client gets from a domain or route that lists the plugin (a backend's, a cache
hit, strait's own), it sets

    Strict-Transport-Security: max-age=31536000; includeSubDomains
    X-Content-Type-Options: nosniff
    Referrer-Policy: strict-origin-when-cross-origin

and removes `Server` and `X-Powered-By`, which tell an attacker what runs behind the proxy.

Run by strait (it listens on the Unix socket strait names in STRAIT_PLUGIN_SOCKET):

    plugins:
      secure: { command: [python3, examples/plugins/response_headers.py], on_error: allow }
    domains:
      - hosts: [app.example.com]
        backends: [http://127.0.0.1:3000]
        plugins: [secure]

or on its own, over TCP:

    python3 examples/plugins/response_headers.py 9101     # or PLUGIN_PORT=9101

    plugins:
      secure: { url: http://127.0.0.1:9101, on_error: allow }

`on_error` only matters until the plugin has answered its `/v1/hello` (strait asks it on the
first request): `allow` lets those first responses out without the headers, `deny` answers
them `503`. A response-phase call that fails later leaves that response as it is.

HSTS_VALUE and REFERRER_POLICY override the two values.
"""

import json
import os
import socketserver
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SET = {
    "Strict-Transport-Security": os.environ.get(
        "HSTS_VALUE", "max-age=31536000; includeSubDomains"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": os.environ.get("REFERRER_POLICY", "strict-origin-when-cross-origin"),
}
REMOVE = ["Server", "X-Powered-By"]


def edit(response):
    """The answer to POST /v1/response: the same edits for every response."""
    return {"set_headers": SET, "remove_headers": REMOVE}


class Handler(BaseHTTPRequestHandler):
    # Keep-alive: strait pools its connections to plugins.
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
            # Only responses: strait makes no request-phase call to this plugin.
            self.send_json({"phases": ["response"]})
        else:
            self.send_json({"error": "not found"}, 404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            message = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self.send_json({"error": "bad JSON"}, 400)
            return
        if self.path == "/v1/response":
            self.send_json(edit(message))
        elif self.path == "/v1/request":
            # Not called (hello declares no `request`); harmless if it were.
            self.send_json({"action": "continue"})
        else:
            self.send_json({"error": "not found"}, 404)

    def log_message(self, fmt, *args):
        # One line per call on stderr would be noise at any request rate.
        pass


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def main():
    socket_path = os.environ.get("STRAIT_PLUGIN_SOCKET")
    if socket_path:
        server = UnixServer(socket_path, Handler)
        where = socket_path
    else:
        port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PLUGIN_PORT", "9101"))
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        where = "127.0.0.1:%d" % port
    # strait logs a command plugin's stderr lines with the plugin's name.
    print("response_headers plugin listening on %s" % where, file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
