//! `serve`: the static file server, on real files in a temp folder through a real strait.
//! Content types, index files and folder redirects, SPA fallback, listings, traversal and
//! symlink escapes, validators and 304s, ranges, HEAD, precompressed siblings, 405, a 1 GiB
//! file with bounded memory, header rules and the access log, bad config values.

use std::fs;
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::client::{self, Response};
use crate::support::strait::temp_dir;
use crate::support::{config, eventually_msg, Strait};

const HOST: &str = "files.test";
const SECRET: &str = "top-secret-outside-the-root";

/// A site: `base/root` with files, and `base/secret.txt` outside the root.
struct Site {
    base: PathBuf,
    root: PathBuf,
}

impl Site {
    fn new(tag: &str) -> Site {
        let base = temp_dir(tag);
        let root = base.join("root");
        fs::create_dir_all(&root).unwrap();
        fs::write(base.join("secret.txt"), SECRET).unwrap();
        Site { base, root }
    }

    fn file(&self, rel: &str, body: impl AsRef<[u8]>) -> &Site {
        let path = self.root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, body).unwrap();
        self
    }

    fn dir(&self, rel: &str) -> &Site {
        fs::create_dir_all(self.root.join(rel)).unwrap();
        self
    }

    /// strait serving this root on `files.test`; `serve` holds extra keys, `rest` more
    /// domain keys (each line indented by four spaces).
    fn start(&self, serve: &str, rest: &str) -> Strait {
        Strait::start(&config(&format!(
            "domains:\n  - hosts: [{HOST}]\n    serve: {{ root: \"{}\"{serve} }}\n{rest}",
            self.root.display()
        )))
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.base);
    }
}

fn req(s: &Strait, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut all = vec![("Host", HOST)];
    all.extend_from_slice(headers);
    client::request(s.addr(), method, path, &all, b"")
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", s.stderr()))
}

fn get(s: &Strait, path: &str) -> Response {
    req(s, "GET", path, &[])
}

#[track_caller]
fn assert_refused(r: &Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.header("x-strait-error"), Some(code), "{r:?}");
}

#[test]
fn content_types_index_files_and_folders() {
    let site = Site::new("serve-types");
    site.file("index.html", "<h1>home</h1>")
        .file("style.css", "b{}")
        .file("app.js", "1")
        .file("data.json", "{}")
        .file("pic.png", [0x89, b'P', b'N', b'G'])
        .file("README", "plain")
        .file(".well-known/x.txt", "dot")
        .file("docs/index.html", "docs")
        .dir("empty");
    let s = site.start(", cache_control: \"public, max-age=60\"", "");
    for (path, want) in [
        ("/style.css", "text/css; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/data.json", "application/json"),
        ("/pic.png", "image/png"),
        ("/README", "application/octet-stream"),
        ("/.well-known/x.txt", "text/plain; charset=utf-8"),
    ] {
        let r = get(&s, path);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.header("content-type"), Some(want), "{path}");
        assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
    }
    let r = get(&s, "/");
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>home</h1>"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(get(&s, "/docs/").text(), "docs");
    // A folder without its slash: 301 to the slash form, query kept.
    let r = get(&s, "/docs?x=1&y=%20");
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(r.header("location"), Some("/docs/?x=1&y=%20"));
    // Never a protocol-relative Location naming another host.
    let r = get(&s, "//docs");
    assert_eq!(r.header("location"), Some("/docs/"), "{r:?}");
    // A folder without an index file, browse off: 403.
    assert_refused(&get(&s, "/empty/"), 403, "forbidden-path");
    assert_refused(&get(&s, "/missing.html"), 404, "not-found");
    assert_refused(&get(&s, "/style.css/x"), 404, "not-found");
    // Percent-encoded names are decoded.
    site.file("a b.txt", "space");
    assert_eq!(get(&s, "/a%20b.txt").text(), "space");
}

#[test]
fn a_route_appends_the_whole_path_to_its_root() {
    let site = Site::new("serve-route");
    site.file("static/app.css", "css").file("app.css", "wrong");
    let s = Strait::start(&config(&format!(
        "domains:\n  - hosts: [{HOST}]\n    respond: {{ status: 200, body: domain }}\n    routes:\n      - {{ path_prefix: /static/, serve: {{ root: \"{}\" }} }}\n",
        site.root.display()
    )));
    let r = get(&s, "/static/app.css");
    assert_eq!((r.status, r.text().as_str()), (200, "css"));
    assert_eq!(get(&s, "/app.css").text(), "domain");
}

/// `strip_prefix` or a `rewrite` on the route changes the path the file server looks up, as
/// nginx's `alias` would: `/assets/app.css` from the root's `app.css`.
#[test]
fn a_rewritten_path_is_what_the_file_server_looks_up() {
    let site = Site::new("serve-rewrite");
    site.file("app.css", "css").file("v2/logo.svg", "<svg/>");
    let s = Strait::start(&config(&format!(
        "domains:\n  - hosts: [{HOST}]\n    routes:\n      - {{ path_prefix: /assets/, strip_prefix: true, serve: {{ root: \"{r}\" }} }}\n      - {{ path: \"/img/*.svg\", rewrite: /v2/$1.svg, serve: {{ root: \"{r}\" }} }}\n",
        r = site.root.display()
    )));
    let r = get(&s, "/assets/app.css");
    assert_eq!((r.status, r.text().as_str()), (200, "css"));
    let r = get(&s, "/img/logo.svg");
    assert_eq!((r.status, r.text().as_str()), (200, "<svg/>"));
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    // A rewrite cannot climb out of the root either.
    assert_refused(&get(&s, "/assets/%2e%2e/secret.txt"), 403, "forbidden-path");
}

#[test]
fn spa_serves_the_index_for_unknown_paths() {
    let site = Site::new("serve-spa");
    site.file("index.html", "app shell")
        .file("assets/app.js", "js");
    let s = site.start(", spa: true", "");
    for path in ["/", "/users/42", "/deep/link?tab=2", "/assets/missing.js"] {
        let r = get(&s, path);
        assert_eq!((r.status, r.text().as_str()), (200, "app shell"), "{path}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    }
    assert_eq!(get(&s, "/assets/app.js").text(), "js");
    // Refusals are not turned into the app.
    assert_refused(&get(&s, "/%2e%2e/secret.txt"), 403, "forbidden-path");
}

#[test]
fn browse_lists_folders_escaped() {
    let site = Site::new("serve-browse");
    site.file("<script>x.txt", "x")
        .file("a&b.txt", "ab")
        .file("sub dir/inner.txt", "in");
    let s = site.start(", browse: true", "");
    let r = get(&s, "/");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = r.text();
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("href=\"./%3Cscript%3Ex.txt\">&lt;script&gt;x.txt</a>"),
        "{html}"
    );
    assert!(
        html.contains("href=\"./a%26b.txt\">a&amp;b.txt</a>"),
        "{html}"
    );
    assert!(html.contains("href=\"./sub%20dir/\""), "{html}");
    // The links work.
    assert_eq!(get(&s, "/a%26b.txt").text(), "ab");
    let r = get(&s, "/sub%20dir/");
    assert!(r.text().contains("inner.txt") && r.text().contains("href=\"../\""));
}

#[test]
fn traversal_never_leaves_the_root() {
    let site = Site::new("serve-traversal");
    site.file("a/b.txt", "inside").file("ok.txt", "ok");
    std::os::unix::fs::symlink(site.base.join("secret.txt"), site.root.join("escape")).unwrap();
    std::os::unix::fs::symlink(&site.base, site.root.join("up")).unwrap();
    std::os::unix::fs::symlink("a/b.txt", site.root.join("inner")).unwrap();
    let s = site.start(", browse: true", "");
    let attempts = [
        "/../secret.txt",
        "/a/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/%2E./secret.txt",
        "/a/..%2f..%2fsecret.txt",
        "/a/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/..\\secret.txt",
        "/a%5c..%5c..%5csecret.txt",
        "/ok.txt%00.png",
        "/escape",
        "/up/secret.txt",
        "/up/",
    ];
    for path in attempts {
        let raw = client::raw(
            s.addr(),
            format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains(SECRET), "{path} leaked the secret:\n{text}");
        let status: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{path}: no response: {text:?}"));
        assert!(
            [400, 403, 404].contains(&status),
            "{path}: status {status}\n{text}"
        );
    }
    assert_refused(&get(&s, "/escape"), 403, "forbidden-path");
    assert_refused(&get(&s, "/%2e%2e/secret.txt"), 403, "forbidden-path");
    // A symlink that stays inside the root is followed.
    let r = get(&s, "/inner");
    assert_eq!((r.status, r.text().as_str()), (200, "inside"));
}

#[test]
fn validators_answer_304() {
    let site = Site::new("serve-304");
    site.file("page.html", "hello");
    let s = site.start(", cache_control: \"max-age=5\"", "");
    let r = get(&s, "/page.html");
    let etag = r.header("etag").expect("ETag").to_string();
    let modified = r
        .header("last-modified")
        .expect("Last-Modified")
        .to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    let r = req(&s, "GET", "/page.html", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304, "{r:?}");
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("cache-control"), Some("max-age=5"));
    let weak = format!("\"x\", W/{etag}");
    assert_eq!(
        req(&s, "GET", "/page.html", &[("If-None-Match", &weak)]).status,
        304
    );
    let r = req(&s, "GET", "/page.html", &[("If-Modified-Since", &modified)]);
    assert_eq!(r.status, 304, "{r:?}");
    // If-None-Match wins over If-Modified-Since.
    let r = req(
        &s,
        "GET",
        "/page.html",
        &[
            ("If-None-Match", "\"other\""),
            ("If-Modified-Since", &modified),
        ],
    );
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    let r = req(
        &s,
        "GET",
        "/page.html",
        &[("If-Modified-Since", "Thu, 01 Jan 1998 00:00:00 GMT")],
    );
    assert_eq!(r.status, 200);
    // A changed file gets a new tag.
    site.file("page.html", "hello, again");
    let r = req(&s, "GET", "/page.html", &[("If-None-Match", &etag)]);
    assert_eq!((r.status, r.text().as_str()), (200, "hello, again"));
    assert_ne!(r.header("etag"), Some(etag.as_str()));
}

#[test]
fn ranges_206_416_and_if_range() {
    let site = Site::new("serve-range");
    site.file("d.txt", "0123456789");
    let s = site.start("", "");
    let etag = get(&s, "/d.txt").header("etag").unwrap().to_string();
    let range = |h: &[(&str, &str)]| req(&s, "GET", "/d.txt", h);

    let r = range(&[("Range", "bytes=2-5")]);
    assert_eq!((r.status, r.text().as_str()), (206, "2345"));
    assert_eq!(r.header("content-range"), Some("bytes 2-5/10"));
    assert_eq!(r.header("content-length"), Some("4"));
    let r = range(&[("Range", "bytes=-3")]);
    assert_eq!((r.status, r.text().as_str()), (206, "789"));
    let r = range(&[("Range", "bytes=7-")]);
    assert_eq!((r.status, r.text().as_str()), (206, "789"));
    let r = range(&[("Range", "bytes=10-")]);
    assert_refused(&r, 416, "range-not-satisfiable");
    assert_eq!(r.header("content-range"), Some("bytes */10"));
    // Several ranges: the whole file (no multipart bodies).
    let r = range(&[("Range", "bytes=0-1,4-5")]);
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
    // If-Range: the range only while the validator still matches.
    let r = range(&[("Range", "bytes=0-0"), ("If-Range", &etag)]);
    assert_eq!((r.status, r.text().as_str()), (206, "0"));
    let r = range(&[("Range", "bytes=0-0"), ("If-Range", "\"stale\"")]);
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
}

#[test]
fn head_sends_the_headers_only() {
    let site = Site::new("serve-head");
    site.file("big.bin", vec![7u8; 200_000])
        .file("s.txt", "abc");
    let s = site.start("", "");
    for (path, len) in [("/big.bin", "200000"), ("/s.txt", "3")] {
        let r = req(&s, "HEAD", path, &[]);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("content-length"), Some(len), "{path}");
        assert!(r.body.is_empty());
    }
    // On one keep-alive connection, HEAD leaves it usable.
    let mut c = client::Conn::connect(s.addr()).unwrap();
    let r = c
        .request("HEAD", "/big.bin", &[("Host", HOST)], b"")
        .unwrap();
    assert_eq!(r.status, 200);
    let r = c.get(HOST, "/big.bin").unwrap();
    assert_eq!(r.body.len(), 200_000);
    assert!(r.body.iter().all(|&b| b == 7));
}

#[test]
fn precompressed_siblings_follow_accept_encoding() {
    let site = Site::new("serve-precompressed");
    site.file("app.js", "plain")
        .file("app.js.br", "BROTLI")
        .file("app.js.gz", "GZIP")
        .file("only.css", "css");
    let s = site.start(", precompressed: [br, gzip]", "");
    let with = |ae: Option<&str>, path: &str| match ae {
        Some(ae) => req(&s, "GET", path, &[("Accept-Encoding", ae)]),
        None => get(&s, path),
    };
    for (ae, body, coding) in [
        (Some("gzip, deflate, br"), "BROTLI", Some("br")),
        (Some("gzip"), "GZIP", Some("gzip")),
        (Some("br;q=0, gzip"), "GZIP", Some("gzip")),
        (Some("br;q=0.2, gzip;q=0.8"), "GZIP", Some("gzip")),
        (Some("*"), "BROTLI", Some("br")),
        (Some("gzip;q=0, br;q=0"), "plain", None),
        (Some("identity"), "plain", None),
        (None, "plain", None),
    ] {
        let r = with(ae, "/app.js");
        assert_eq!(r.status, 200, "{ae:?}");
        assert_eq!(r.text(), body, "{ae:?}");
        assert_eq!(r.header("content-encoding"), coding, "{ae:?}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{ae:?}");
        assert_eq!(
            r.header("content-type"),
            Some("text/javascript; charset=utf-8"),
            "{ae:?}"
        );
    }
    // No sibling: the file itself, still with Vary.
    let r = with(Some("br, gzip"), "/only.css");
    assert_eq!(
        (r.text().as_str(), r.header("content-encoding")),
        ("css", None)
    );
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    // Each variant has its own validator.
    let plain = with(None, "/app.js").header("etag").unwrap().to_string();
    let br = with(Some("br"), "/app.js")
        .header("etag")
        .unwrap()
        .to_string();
    assert_ne!(plain, br);
}

#[test]
fn other_methods_get_405() {
    let site = Site::new("serve-405");
    site.file("x.txt", "x");
    let s = site.start("", "");
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let r = req(&s, method, "/x.txt", &[]);
        assert_refused(&r, 405, "method-not-allowed");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method}");
    }
}

/// `VmHWM` (peak resident memory) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn a_1gib_file_streams_with_bounded_memory() {
    const LEN: u64 = 1 << 30;
    let site = Site::new("serve-big");
    // Sparse: no disk blocks, reads as zeros.
    fs::File::create(site.root.join("big.bin"))
        .unwrap()
        .set_len(LEN)
        .unwrap();
    site.file("warm.txt", "w");
    let s = site.start("", "");
    assert_eq!(get(&s, "/warm.txt").status, 200);
    let before = peak_rss_kib(s.pid());

    let mut stream = TcpStream::connect(s.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(
            format!("GET /big.bin HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let head = client::read_head(&mut reader).unwrap().expect("a response");
    assert!(head.start.contains(" 200 "), "{}", head.raw);
    assert_eq!(
        head.header("content-length"),
        Some(LEN.to_string().as_str())
    );
    let mut buf = vec![0u8; 1 << 20];
    let mut got: u64 = 0;
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(buf[..n].iter().all(|&b| b == 0));
        got += n as u64;
    }
    assert_eq!(got, LEN);
    let growth = peak_rss_kib(s.pid()).saturating_sub(before);
    assert!(
        growth < 64 * 1024,
        "peak RSS grew by {growth} KiB serving 1 GiB"
    );
}

#[test]
fn header_rules_and_the_access_log_apply() {
    let site = Site::new("serve-log");
    site.file("f.txt", "twelve bytes");
    let s = Strait::start(&config(&format!(
        "logging:\n  access_log: \"{{dir}}/access.log\"\ndomains:\n  - hosts: [{HOST}]\n    serve: {{ root: \"{}\" }}\n    headers: {{ response: {{ set: {{ X-Served-By: strait }}, remove: [Accept-Ranges] }} }}\n",
        site.root.display()
    )));
    let r = get(&s, "/f.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-served-by"), Some("strait"));
    assert_eq!(r.header("accept-ranges"), None);
    assert_eq!(get(&s, "/nope").status, 404);
    let log = s.dir().join("access.log");
    let lines = || -> Vec<Value> {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    eventually_msg(Duration::from_secs(5), "two access-log lines", || {
        lines().len() >= 2
    });
    let lines = lines();
    let line = |path: &str| lines.iter().find(|l| l["path"] == path).cloned().unwrap();
    assert_eq!(line("/f.txt")["status"], 200);
    assert_eq!(line("/f.txt")["bytes_out"], 12);
    assert_eq!(line("/nope")["status"], 404);
}

#[test]
fn a_root_that_disappears_answers_404() {
    let site = Site::new("serve-gone");
    site.file("x.txt", "x");
    let s = site.start("", "");
    assert_eq!(get(&s, "/x.txt").status, 200);
    fs::remove_dir_all(&site.root).unwrap();
    for _ in 0..20 {
        assert_refused(&get(&s, "/x.txt"), 404, "not-found");
    }
    eventually_msg(Duration::from_secs(5), "the warning", || {
        s.stderr_has("is missing")
    });
    // At most one line a second: 20 quick requests do not make 20 lines.
    let warned = s.stderr().matches("is missing").count();
    assert!(warned < 20, "{warned} warnings:\n{}", s.stderr());
}

#[test]
fn bad_roots_are_config_errors() {
    let site = Site::new("serve-bad");
    let file = site.base.join("secret.txt");
    let yaml = |root: &Path| {
        config(&format!(
            "domains:\n  - hosts: [{HOST}]\n    serve: {{ root: \"{}\", precompressed: [br] }}\n",
            root.display()
        ))
    };
    let c = Strait::check(&yaml(&site.base.join("nope")));
    c.assert_error(5, 20, "domains[0].serve.root", &["does not exist", "nope"]);
    let c = Strait::check(&yaml(&file));
    c.assert_error(5, 20, "domains[0].serve.root", &["not a folder"]);
    let line = format!(
        "    serve: {{ root: \"{}\", precompressed: [lz4], index: [] }}",
        site.root.display()
    );
    let c = Strait::check(&config(&format!("domains:\n  - hosts: [{HOST}]\n{line}\n")));
    let col = |text: &str| line.find(text).unwrap() + 1;
    c.assert_error(
        5,
        col("lz4"),
        "domains[0].serve.precompressed[0]",
        &["unknown value \"lz4\"", "br, gzip, zstd"],
    );
    c.assert_error(5, col("[]"), "domains[0].serve.index", &["empty list"]);
}

#[test]
fn deny_and_rate_limits_apply_before_files() {
    let site = Site::new("serve-limits");
    site.file("x.txt", "x");
    let s = Strait::start(&config(&format!(
        "domains:\n  - hosts: [{HOST}]\n    serve: {{ root: \"{root}\" }}\n    rate_limit: {{ requests: 2, per: 1h }}\n    routes:\n      - {{ path_prefix: /private/, deny: [127.0.0.0/8], serve: {{ root: \"{root}\" }} }}\n",
        root = site.root.display()
    )));
    assert_refused(&get(&s, "/private/x.txt"), 403, "denied");
    assert_eq!(get(&s, "/x.txt").status, 200);
    assert_eq!(get(&s, "/x.txt").status, 200);
    assert_refused(&get(&s, "/x.txt"), 429, "rate-limited");
}

#[test]
fn explain_and_show_name_the_serve() {
    let site = Site::new("serve-explain");
    let path = site.base.join("strait.yaml");
    fs::write(
        &path,
        format!(
            "listeners:\n  - addr: 127.0.0.1:{}\ndomains:\n  - hosts: [{HOST}]\n    serve: {{ root: \"{}\", spa: true, precompressed: [gzip] }}\n",
            crate::support::strait::free_port(),
            site.root.display()
        ),
    )
    .unwrap();
    let path = path.display().to_string();
    let ran =
        crate::support::strait::run_bin(&["explain", "-c", &path, "--host", HOST, "--path", "/a"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let v: Value = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {ran:?}"));
    assert_eq!(v["action"]["kind"], "serve", "{v}");
    assert!(
        v["outcome"]
            .as_str()
            .unwrap()
            .contains("served from the files"),
        "{v}"
    );
    let ran = crate::support::strait::run_bin(&["config", "show", "-c", &path]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(
        ran.stdout
            .contains("spa: true, browse: false, precompressed: [gzip] }"),
        "{}",
        ran.stdout
    );
}

#[test]
fn hooks_guard_and_see_served_files() {
    let site = Site::new("serve-hooks");
    site.file("private-files/a.txt", "a")
        .file("pub/big.bin", vec![1u8; 100_000]);
    // The hook server of hooks.rs: rejects /private* without `X-Token: secret`, labels every
    // response with X-Hook-Source and X-Hook-Status-Seen.
    let s = crate::hooks::start_hooked(&config(&format!(
        "domains:\n  - hosts: [{HOST}]\n    serve: {{ root: \"{}\" }}\n",
        site.root.display()
    )));
    let r = get(&s, "/private-files/a.txt");
    assert_eq!((r.status, r.text().as_str()), (401, "no token\n"));
    let r = req(&s, "GET", "/private-files/a.txt", &[("X-Token", "secret")]);
    assert_eq!((r.status, r.text().as_str()), (200, "a"));
    assert_eq!(r.header("x-hook-source"), Some("strait"));
    assert_eq!(r.header("x-hook-status-seen"), Some("200"));
    // A streamed file's head goes through the hook too.
    let r = get(&s, "/pub/big.bin");
    assert_eq!((r.status, r.body.len()), (200, 100_000));
    assert_eq!(r.header("x-hook-source"), Some("strait"));
    assert_refused(&get(&s, "/pub/none"), 404, "not-found");
}
