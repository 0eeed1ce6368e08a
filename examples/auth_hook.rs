//! An `on_request` hook guarding part of a site: requests under `/admin/` need
//! `Authorization: Bearer <token>` (the token comes from `ADMIN_TOKEN`), on every kind of
//! request strait serves — proxied, WebSocket upgrades, cache hits and `respond` routes alike.
//! The backend learns who passed through `X-Authenticated`.
//!
//! ```text
//! ADMIN_TOKEN=s3cret cargo run --example auth_hook -- conf/strait.yaml
//! curl -i http://127.0.0.1:8080/admin/                                  # 401
//! curl -i -H 'Authorization: Bearer s3cret' http://127.0.0.1:8080/admin/  # proxied
//! ```

use strait::{Reject, Strait};

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "conf/strait.yaml".to_string());
    let token = std::env::var("ADMIN_TOKEN").unwrap_or_default();
    if token.is_empty() {
        eprintln!("auth_hook: set ADMIN_TOKEN");
        std::process::exit(2);
    }
    let expected = format!("Bearer {token}");
    let server = Strait::from_file(&path).and_then(|s| {
        // The library installs no logger; this is the `strait` command's console format.
        strait::logging::init(s.config().logging.level);
        s.on_request(move |req| {
            if !req.path().starts_with("/admin/") {
                return Ok(());
            }
            if req.header("authorization") != Some(expected.as_str()) {
                return Err(Reject::new(401)
                    .header("WWW-Authenticate", "Bearer")
                    .body("strait: this area needs a bearer token\n"));
            }
            // The credential stays here; the backend gets a plain statement instead.
            req.remove_header("authorization");
            req.set_header("X-Authenticated", "admin");
            Ok(())
        })
        .run()
    });
    if let Err(e) = server {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
