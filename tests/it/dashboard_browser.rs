//! The dashboard in a real browser: headless Chromium (Debian's `chromium`; `.ci/run` and
//! `scripts/setup.sh` install it) loads `GET /` from a running strait with traffic, logs in
//! through the form, and is driven and read through the DevTools protocol: the domain and its
//! request rate appear, a backend whose health checks fail is shown down, a screenshot is
//! taken, and the drain button drains (the admin API confirms).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::admin::{json as body_json, Ports, TOKEN};
use crate::support::client;
use crate::support::strait::temp_dir;
use crate::support::websocket::{WsClient, TEXT};
use crate::support::{
    config, domains, eventually_msg, send_many, try_eventually, Behaviour, Domain, Origin, Strait,
};

/// The browser; killed (and its profile removed) on drop, so a failing test leaves nothing.
struct Browser {
    child: Child,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.profile);
    }
}

fn chromium() -> String {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {name}"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        if let Some(path) = found.filter(|p| !p.is_empty()) {
            return path;
        }
    }
    panic!("no chromium: apt-get install chromium (scripts/setup.sh does)");
}

impl Browser {
    fn open(url: &str) -> Browser {
        let profile = temp_dir("chromium");
        let child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--window-size=1400,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        Browser { child, profile }
    }

    /// The DevTools port, which Chromium writes into the profile once it listens.
    fn port(&self) -> u16 {
        let file = self.profile.join("DevToolsActivePort");
        let mut port = None;
        try_eventually(Duration::from_secs(30), || {
            port = fs::read_to_string(&file)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()));
            port.is_some()
        });
        port.unwrap_or_else(|| panic!("chromium wrote no {}", file.display()))
    }
}

/// A DevTools session on the page target.
struct Page {
    ws: WsClient,
    next_id: u64,
}

impl Page {
    fn attach(browser: &Browser, wanted_url: &str) -> Page {
        let addr = SocketAddr::from(([127, 0, 0, 1], browser.port()));
        let mut target = None;
        eventually_msg(Duration::from_secs(20), "the page target", || {
            target = client::get(addr, "127.0.0.1", "/json/list")
                .ok()
                .and_then(|r| serde_json::from_slice::<Value>(&r.body).ok())
                .and_then(|list| {
                    list.as_array()?
                        .iter()
                        .find(|t| {
                            t["type"] == "page"
                                && t["url"].as_str().is_some_and(|u| u.starts_with(wanted_url))
                        })
                        .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_string))
                });
            target.is_some()
        });
        let url = target.unwrap_or_default();
        let path = url
            .splitn(4, '/')
            .nth(3)
            .map(|p| format!("/{p}"))
            .expect("a ws URL");
        let ws = WsClient::connect(addr, &format!("127.0.0.1:{}", addr.port()), &path, &[])
            .expect("connect to DevTools");
        assert_eq!(
            ws.response.status,
            101,
            "DevTools refused: {}",
            ws.response.text()
        );
        ws.set_read_timeout(Duration::from_secs(15))
            .expect("timeout");
        Page { ws, next_id: 1 }
    }

    /// One DevTools command; events arriving meanwhile are skipped.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({ "id": id, "method": method, "params": params });
        self.ws
            .send(TEXT, message.to_string().as_bytes())
            .expect("send to DevTools");
        loop {
            let frame = self.ws.recv().unwrap_or_else(|e| panic!("{method}: {e}"));
            let Ok(v) = serde_json::from_slice::<Value>(&frame.payload) else {
                continue;
            };
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page; its value (JSON-able).
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(r["exceptionDetails"].is_null(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    fn text(&mut self, id: &str) -> String {
        self.eval(&format!(
            "(document.getElementById({id:?}) || {{}}).innerText || ''"
        ))
        .as_str()
        .unwrap_or("")
        .to_string()
    }
}

fn save_png(base64: &str, path: &Path) -> usize {
    let bytes = openssl::base64::decode_block(base64).expect("base64 screenshot");
    fs::write(path, &bytes).expect("write screenshot");
    bytes.len()
}

#[test]
fn the_dashboard_shows_the_node_and_drains_from_the_page() {
    let a = Origin::plain("a");
    let b = Origin::start("b", Behaviour::default().unhealthy());
    let p = Ports::new();
    let s = Strait::start(&config(&format!(
        "{}{}",
        p.yaml(true),
        domains(&[Domain::new("dash.test")
            .origins(&[&a, &b])
            .route("{ path_prefix: /broken/, respond: { status: 503 } }")
            .health_check("{ path: /health, interval: 1s, timeout: 500ms, fail_threshold: 1, success_threshold: 1 }")])
    )));
    p.wait_up();
    eventually_msg(Duration::from_secs(10), "b marked down", || {
        let list = body_json(&p.call("GET", "/backends?domain=dash.test", ""));
        list.as_array().is_some_and(|l| {
            l.iter()
                .any(|x| x["addr"] == b.url() && x["healthy"] == false)
        })
    });
    send_many(&s, "dash.test", "/", 20);

    let url = format!("http://{}/", p.admin);
    let browser = Browser::open(&url);
    let mut page = Page::attach(&browser, &url);
    // The login form, then the board.
    eventually_msg(Duration::from_secs(10), "the login form", || {
        page.eval(
            "(() => { const f = document.getElementById('login'); return !!f && !f.hidden; })()",
        ) == true
    });
    page.eval(&format!(
        "document.getElementById('token').value = {TOKEN:?}; document.getElementById('login').requestSubmit(); true"
    ));
    eventually_msg(Duration::from_secs(10), "the domain on the board", || {
        page.text("domains").contains("dash.test")
    });
    assert_eq!(
        page.eval("sessionStorage.getItem('strait-admin-token')"),
        json!(TOKEN)
    );
    // Traffic while the page polls: the rate column shows requests per second.
    let load = std::thread::spawn({
        let addr = s.addr();
        move || {
            for _ in 0..100 {
                let _ = client::get(addr, "dash.test", "/");
                let _ = client::get(addr, "dash.test", "/broken/x");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    });
    eventually_msg(Duration::from_secs(10), "a non-zero request rate", || {
        let rate = page.eval("(document.querySelector('tr[data-domain=\"dash.test\"] td.rate') || {}).innerText || ''");
        rate.as_str()
            .and_then(|r| r.parse::<f64>().ok())
            .is_some_and(|r| r > 0.0)
    });
    // The route's own row: its rate, its latency, and an error rate of all of its requests
    // (every one a 503), which the domain's row (half of them) does not show.
    let route = |class: &str| {
        format!("(document.querySelector('tr[data-route=\"dash.test /broken/\"] td.{class}') || {{}}).innerText || ''")
    };
    eventually_msg(
        Duration::from_secs(10),
        "the route's rate, latency and errors",
        || {
            let number = |v: Value| v.as_str().and_then(|r| r.parse::<f64>().ok());
            number(page.eval(&route("rate"))).is_some_and(|r| r > 0.0)
                && number(page.eval(&route("p50"))).is_some()
                && number(page.eval(&route("p99"))).is_some()
                && page.eval(&route("errors")) == "100.0 %"
        },
    );
    let _ = load.join();
    let down = format!(
        "document.querySelector('tr[data-backend=\"{}\"] td.state').innerText",
        b.url()
    );
    eventually_msg(Duration::from_secs(10), "b shown down", || {
        page.eval(&down) == "down"
    });
    assert!(
        page.text("node").contains(env!("CARGO_PKG_VERSION")),
        "{}",
        page.text("node")
    );
    assert_eq!(
        page.eval("document.getElementById('status').innerText"),
        "live"
    );

    let shot = page.call("Page.captureScreenshot", json!({ "format": "png" }));
    let png = temp_dir("dashboard").join("dashboard.png");
    let size = save_png(shot["data"].as_str().unwrap_or(""), &png);
    assert!(size > 1000, "screenshot of {size} bytes");
    eprintln!("dashboard screenshot: {}", png.display());

    // The drain button drains (the confirmation accepted), and the page shows it.
    page.eval("window.confirm = () => true; true");
    page.eval(&format!(
        "document.querySelector('tr[data-backend=\"{}\"] button.drain').click(); true",
        a.url()
    ));
    eventually_msg(Duration::from_secs(10), "a drained through the API", || {
        let v = body_json(&p.call(
            "GET",
            &format!("/backends?domain=dash.test&addr={}", a.addr()),
            "",
        ));
        v["enabled"] == false
    });
    let state = format!(
        "document.querySelector('tr[data-backend=\"{}\"] td.state').innerText",
        a.url()
    );
    eventually_msg(Duration::from_secs(10), "a shown drained", || {
        page.eval(&state) == "drained"
    });

    // The admin API gone: the last figures stay, marked stale.
    drop(s);
    eventually_msg(Duration::from_secs(10), "stale since ...", || {
        page.text("status").starts_with("stale since")
    });
    assert!(page.text("domains").contains("dash.test"));
}
