//! A `command` plugin for tests, in Python (standard library only): it lets every request
//! through and names the process that answered in `X-Plugin`.

/// The program's text; it waits `startup_delay` seconds before it listens (a plugin that is
/// slow to start).
pub fn allow_all(startup_delay: f32) -> String {
    format!("STARTUP_DELAY = {startup_delay}\n{SCRIPT}")
}

const SCRIPT: &str = r#"
import json, os, socketserver, time
from http.server import BaseHTTPRequestHandler

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def answer(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.answer({"phases": ["request"]})
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.answer({"action": "continue", "set_headers": {"X-Plugin": str(os.getpid())}})

class S(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("plugin", 0)

time.sleep(STARTUP_DELAY)
path = os.environ["STRAIT_PLUGIN_SOCKET"]
if os.path.exists(path):
    os.unlink(path)
S(path, H).serve_forever()
"#;
