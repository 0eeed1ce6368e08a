//! `on_response` and `on_error` hooks: security headers on every response (static answers and
//! cache hits included), a longer cache life for `/assets/` whatever the origin says, and a
//! log line for every failed upstream attempt.
//!
//! ```text
//! cargo run --example add_header -- conf/strait.yaml
//! curl -i http://127.0.0.1:8080/
//! ```

use std::time::Duration;

use strait::Strait;

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "conf/strait.yaml".to_string());
    let result = Strait::from_file(&path).and_then(|s| {
        // The library installs no logger; this is the `strait` command's console format.
        strait::logging::init(s.config().logging.level);
        s.on_response(|resp| {
            resp.set_header("Strict-Transport-Security", "max-age=31536000");
            resp.set_header("X-Content-Type-Options", "nosniff");
            resp.remove_header("X-Powered-By");
            // Takes effect where the domain or route has `cache` on.
            if resp.path().starts_with("/assets/") && resp.status() == 200 {
                resp.cache_for(Duration::from_secs(24 * 3600));
            }
        })
        .on_error(|e| {
            eprintln!(
                "upstream failure: {} {} attempt {} on {} ({}){}",
                e.method(),
                e.path(),
                e.attempt(),
                e.backend().unwrap_or("no backend"),
                e.kind(),
                if e.retrying() { ", retrying" } else { "" }
            );
        })
        .run()
    });
    if let Err(e) = result {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
