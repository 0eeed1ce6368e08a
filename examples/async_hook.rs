//! A request hook that awaits: implement `strait::hooks::RequestHook` (with the re-exported
//! `async_trait`) when a decision needs I/O, e.g. asking an auth service. Here the "service"
//! is a table behind a tokio lock, consulted per request, that maps API keys to tenants;
//! the tenant goes to the backend as `X-Tenant` and to its own upstream `Host`.
//!
//! ```text
//! cargo run --example async_hook -- conf/strait.yaml
//! curl -i -H 'X-Api-Key: k-alpha' http://127.0.0.1:8080/
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use strait::hooks::{async_trait, Reject, Request, RequestHook};
use strait::Strait;
use tokio::sync::RwLock;

struct TenantLookup {
    keys: Arc<RwLock<HashMap<String, String>>>,
}

#[async_trait]
impl RequestHook for TenantLookup {
    async fn on_request(&self, req: &mut Request<'_>) -> Result<(), Reject> {
        let Some(key) = req.header("x-api-key").map(str::to_string) else {
            return Err(Reject::new(401).body("X-Api-Key required\n"));
        };
        let tenant = self.keys.read().await.get(&key).cloned();
        match tenant {
            Some(tenant) => {
                req.remove_header("x-api-key");
                req.set_upstream_host(format!("{tenant}.internal"));
                req.set_header("X-Tenant", &tenant);
                Ok(())
            }
            None => Err(Reject::new(403).body("unknown API key\n")),
        }
    }
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "conf/strait.yaml".to_string());
    let keys = HashMap::from([
        ("k-alpha".to_string(), "alpha".to_string()),
        ("k-beta".to_string(), "beta".to_string()),
    ]);
    let hook = TenantLookup {
        keys: Arc::new(RwLock::new(keys)),
    };
    if let Err(e) = Strait::from_file(&path).and_then(|s| {
        // The library installs no logger; this is the `strait` command's console format.
        strait::logging::init(s.config().logging.level);
        s.request_hook(hook).run()
    }) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
