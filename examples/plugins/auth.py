#!/usr/bin/env python3
"""A strait plugin (docs/plugins.md) in Python, standard library only: bearer-token auth.

Run by strait (it listens on the Unix socket strait names in STRAIT_PLUGIN_SOCKET):

    plugins:
      auth: { command: [python3, examples/plugins/auth.py], timeout: 1s }

or on its own, over TCP:

    python3 examples/plugins/auth.py 9100          # or PLUGIN_PORT=9100
    AUTH_TOKENS="s3cret=alice,t0ken=bob" python3 examples/plugins/auth.py 9100

    plugins:
      auth: { url: http://127.0.0.1:9100, timeout: 1s, on_error: deny }
    domains:
      - hosts: [app.example.com]
        backends: [http://127.0.0.1:3000]
        plugins: [auth]

A request with `Authorization: Bearer <token>` of a known token goes on with `X-User: <name>`
(the credential itself is removed, so the backend never sees it); anything else gets a 401.
"""

import json
import os
import socketserver
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def tokens():
    """AUTH_TOKENS="token=user,...": who each bearer token is."""
    spec = os.environ.get("AUTH_TOKENS", "s3cret=alice")
    out = {}
    for pair in spec.split(","):
        token, _, user = pair.partition("=")
        if token and user:
            out[token.strip()] = user.strip()
    return out


TOKENS = tokens()


def decide(request):
    """The answer to POST /v1/request."""
    auth = request.get("headers", {}).get("authorization", "")
    scheme, _, token = auth.partition(" ")
    user = TOKENS.get(token.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        return {
            "action": "respond",
            "status": 401,
            "headers": {"WWW-Authenticate": 'Bearer realm="strait"', "Content-Type": "text/plain"},
            "body": "unauthorized\n",
        }
    return {
        "action": "continue",
        "set_headers": {"X-User": user},
        "remove_headers": ["authorization"],
    }


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
            self.send_json({"phases": ["request"]})
        else:
            self.send_json({"error": "not found"}, 404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            message = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self.send_json({"error": "bad JSON"}, 400)
            return
        if self.path == "/v1/request":
            self.send_json(decide(message))
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
        port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PLUGIN_PORT", "9100"))
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        where = "127.0.0.1:%d" % port
    # strait logs a command plugin's stderr lines with the plugin's name.
    print("auth plugin listening on %s with %d tokens" % (where, len(TOKENS)), file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
