//! Plugins (docs/plugins.md): services outside the process that see requests, named in
//! `plugins:` and listed by domains and routes. This module is the runtime side: one
//! [`Plugin`] per configured entry (its connection pool, its `/v1/hello` answer, its decision
//! cache, its figures for `/stats`), kept across reloads while its settings do not change.
//! The proxy's request and response phases call them through `proxy/plugin_calls.rs`.
//!
//! - `client.rs`: one HTTP/1.1 exchange over Pingora's pooled connector, under the timeout;
//! - `protocol.rs`: the strait protocol's JSON messages (`/v1/hello`, `/v1/request`,
//!   `/v1/response`);
//! - `forward_auth.rs`: the nginx `auth_request` / Traefik `forwardAuth` convention;
//! - `cache.rs`: remembered `continue` decisions;
//! - `supervisor.rs`: `command` plugins' processes.

mod cache;
mod client;
mod forward_auth;
pub(crate) mod gate;
mod protocol;
mod supervisor;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pingora::http::RequestHeader;
use serde_json::{json, Value};

use crate::config::{self, ConfigError, PluginOnError, PluginProtocol};
use crate::hooks::Reject;

pub(crate) use protocol::{ConnectionInfo, RequestInfo, ResponseInfo};

/// After a failed `/v1/hello`, requests go by `on_error` for this long before the next try.
const HELLO_RETRY: Duration = Duration::from_secs(1);
/// While a just started `command` plugin's socket is not there yet, its hello is asked again
/// this often (within the plugin's `timeout`).
const COMMAND_START_POLL: Duration = Duration::from_millis(20);
/// The same for a `command` plugin, which is usually just starting.
const HELLO_RETRY_COMMAND: Duration = Duration::from_millis(100);

/// The phases a plugin handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Phases {
    pub request: bool,
    pub response: bool,
    /// New connections on the listeners that list the plugin.
    pub connection: bool,
}

/// What a plugin said about a request.
#[derive(Debug, Clone)]
pub(crate) enum Decision {
    /// Go on, with these edits.
    Continue(Arc<Edits>),
    /// Answer the client with this.
    Respond(Reject),
}

/// Edits a `continue` carries (also what the decision cache remembers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Edits {
    /// Request headers to set (replacing).
    pub set: Vec<(String, String)>,
    /// Request headers to remove (before `set`).
    pub remove: Vec<String>,
    /// Response headers to set on what the client gets.
    pub response: Vec<(String, String)>,
}

/// A response-phase answer: edits to the response the client gets.
#[derive(Debug, Clone, Default)]
pub(crate) struct ResponseEdits {
    pub set: Vec<(String, String)>,
    pub remove: Vec<String>,
    pub status: Option<u16>,
}

/// Why a call gave no usable answer.
#[derive(Debug, Clone)]
pub(crate) enum CallError {
    /// No complete answer within `timeout`.
    Timeout,
    /// Could not connect, or the connection broke.
    Unavailable(String),
    /// An answer strait cannot use (status, JSON, action); with the start of its body.
    Bad(String),
}

impl CallError {
    /// The `outcome` label of `strait_plugin_calls_total`.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            CallError::Timeout => "timeout",
            CallError::Unavailable(_) => "unavailable",
            CallError::Bad(_) => "error",
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Timeout => f.write_str("timed out"),
            CallError::Unavailable(why) => write!(f, "unavailable: {why}"),
            CallError::Bad(why) => write!(f, "bad answer: {why}"),
        }
    }
}

/// Which phase a call is for (the `phase` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Hello,
    Request,
    Response,
    Connection,
}

impl Phase {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Hello => "hello",
            Phase::Request => "request",
            Phase::Response => "response",
            Phase::Connection => "connection",
        }
    }
}

/// A plugin's figures for `/stats`; carried over a reload that changes its settings.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    calls: AtomicU64,
    errors: AtomicU64,
    cached: AtomicU64,
    last_error: Mutex<Option<(SystemTime, String)>>,
    /// Milliseconds since `LOG_EPOCH` of the last failure logged (one a second at most).
    last_logged_ms: AtomicU64,
}

static LOG_EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// What `/v1/hello` said, or when to ask again.
#[derive(Debug, Clone, Copy)]
enum Hello {
    Unknown { retry_at: Option<Instant> },
    Known(Phases),
}

/// One configured plugin at run time.
pub(crate) struct Plugin {
    pub(crate) config: config::Plugin,
    client: client::Client,
    /// What hello said, and for which start of a `command` plugin's program.
    hello: Mutex<(Hello, u64)>,
    /// A `command` plugin's process.
    supervisor: Option<supervisor::Supervisor>,
    /// One `/v1/hello` at a time; the others wait for its answer.
    hello_lock: tokio::sync::Mutex<()>,
    cache: Option<cache::DecisionCache>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    fn new(
        config: config::Plugin,
        peer: pingora::upstreams::peer::HttpPeer,
        stats: Arc<Stats>,
        supervisor: Option<supervisor::Supervisor>,
    ) -> Plugin {
        let hello = match config.protocol {
            PluginProtocol::ForwardAuth => Hello::Known(Phases {
                request: true,
                response: false,
                connection: false,
            }),
            PluginProtocol::Strait => Hello::Unknown { retry_at: None },
        };
        Plugin {
            client: client::Client::new(&config, peer),
            cache: config.cache.as_ref().map(cache::DecisionCache::new),
            hello: Mutex::new((hello, 0)),
            supervisor,
            hello_lock: tokio::sync::Mutex::new(()),
            stats,
            config,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    pub(crate) fn on_error(&self) -> PluginOnError {
        self.config.on_error
    }

    /// The phases the plugin handles: from `/v1/hello`, asked once (again after a failure,
    /// at most once per [`HELLO_RETRY`]).
    pub(crate) async fn phases(&self) -> Result<Phases, CallError> {
        if let Some(s) = &self.supervisor {
            s.ensure_started();
        }
        match self.hello_state() {
            Hello::Known(p) => return Ok(p),
            Hello::Unknown { retry_at: Some(at) } if Instant::now() < at => {
                return Err(CallError::Unavailable(
                    "/v1/hello failed; asking again shortly".into(),
                ))
            }
            Hello::Unknown { .. } => {}
        }
        let _one = self.hello_lock.lock().await;
        // Another request may have asked while this one waited.
        if let Hello::Known(p) = self.hello_state() {
            return Ok(p);
        }
        let started = Instant::now();
        let generation = self.supervisor.as_ref().map_or(0, |s| s.starts());
        let deadline = started + self.config.timeout;
        let result = loop {
            let result = match self.client.get(&self.config.url_path("/v1/hello")).await {
                Ok(answer) => protocol::hello(&answer),
                Err(e) => Err(e),
            };
            // A `command` plugin that is still starting has no socket yet: the request waits
            // for it, within the plugin's timeout, instead of taking `on_error` at once (so
            // the first requests after a start or a binary upgrade do not fail).
            match &result {
                Err(CallError::Unavailable(_))
                    if self.supervisor.is_some()
                        && Instant::now() + COMMAND_START_POLL < deadline =>
                {
                    tokio::time::sleep(COMMAND_START_POLL).await;
                }
                _ => break result,
            }
        };
        let retry = if self.supervisor.is_some() {
            HELLO_RETRY_COMMAND
        } else {
            HELLO_RETRY
        };
        let next = match &result {
            Ok(p) => Hello::Known(*p),
            Err(_) => Hello::Unknown {
                retry_at: Some(Instant::now() + retry),
            },
        };
        *lock(&self.hello) = (next, generation);
        self.count(Phase::Hello, Some(started), &result.as_ref().map(|_| "ok"));
        result
    }

    /// Whether the plugin handles the response phase (as far as its hello said).
    pub(crate) fn handles_response(&self) -> bool {
        matches!(self.hello_state(), Hello::Known(p) if p.response)
    }

    /// What hello said; a `command` plugin restarted since is asked again.
    fn hello_state(&self) -> Hello {
        let (hello, generation) = *lock(&self.hello);
        match &self.supervisor {
            Some(s)
                if self.config.protocol == PluginProtocol::Strait && s.starts() != generation =>
            {
                Hello::Unknown { retry_at: None }
            }
            _ => hello,
        }
    }

    /// Starts a `command` plugin's program (once; a no-op for others).
    pub(crate) fn start(&self) {
        if let Some(s) = &self.supervisor {
            s.ensure_started();
        }
    }

    /// The request phase for one request: the decision cache, else a call; `None` when the
    /// plugin does not handle the phase. A plugin whose hello failed counts as unavailable.
    pub(crate) async fn on_request(
        &self,
        info: &RequestInfo<'_>,
        req: &RequestHeader,
    ) -> Result<Option<Decision>, CallError> {
        let phases = match self.phases().await {
            Ok(p) => p,
            Err(e) => {
                let e = CallError::Unavailable(format!("no hello: {e}"));
                self.count(Phase::Request, None, &Err(&e));
                return Err(e);
            }
        };
        if !phases.request {
            return Ok(None);
        }
        self.decide(info, req).await.map(Some)
    }

    async fn decide(
        &self,
        info: &RequestInfo<'_>,
        req: &RequestHeader,
    ) -> Result<Decision, CallError> {
        let key = self
            .cache
            .as_ref()
            .and_then(|c| req.headers.get(c.header()).map(|v| v.as_bytes().to_vec()));
        if let (Some(cache), Some(key)) = (&self.cache, &key) {
            if let Some(edits) = cache.get(key) {
                self.stats.cached.fetch_add(1, Ordering::Relaxed);
                crate::metrics::PLUGIN_CALLS
                    .with_label_values(&[self.name(), Phase::Request.name(), "cached"])
                    .inc();
                return Ok(Decision::Continue(edits));
            }
        }
        let started = Instant::now();
        let result = match self.config.protocol {
            PluginProtocol::ForwardAuth => forward_auth::call(self, info, req).await,
            PluginProtocol::Strait => {
                let body = protocol::request_body(info, req);
                match self
                    .client
                    .post(&self.config.url_path("/v1/request"), body)
                    .await
                {
                    Ok(answer) => protocol::request_decision(&answer),
                    Err(e) => Err(e),
                }
            }
        };
        let outcome = result.as_ref().map(|d| match d {
            Decision::Continue(_) => "continue",
            Decision::Respond(_) => "respond",
        });
        self.count(Phase::Request, Some(started), &outcome);
        if let (Some(cache), Some(key), Ok(Decision::Continue(edits))) = (&self.cache, key, &result)
        {
            cache.put(key, edits.clone());
        }
        result
    }

    /// The connection phase: `POST /v1/connection`; `None` when the plugin does not handle
    /// it. Always a call (a decision about a connection is not cached).
    pub(crate) async fn on_connection(
        &self,
        info: &ConnectionInfo<'_>,
    ) -> Result<Option<bool>, CallError> {
        let phases = match self.phases().await {
            Ok(p) => p,
            Err(e) => {
                let e = CallError::Unavailable(format!("no hello: {e}"));
                self.count(Phase::Connection, None, &Err(&e));
                return Err(e);
            }
        };
        if !phases.connection {
            return Ok(None);
        }
        let started = Instant::now();
        let result = match self
            .client
            .post(
                &self.config.url_path("/v1/connection"),
                protocol::connection_body(info),
            )
            .await
        {
            Ok(answer) => protocol::connection_decision(&answer),
            Err(e) => Err(e),
        };
        let outcome = result
            .as_ref()
            .map(|allowed| if *allowed { "allow" } else { "deny" });
        self.count(Phase::Connection, Some(started), &outcome);
        result.map(Some)
    }

    /// The response phase: `POST /v1/response`.
    pub(crate) async fn on_response(
        &self,
        info: &ResponseInfo<'_>,
    ) -> Result<ResponseEdits, CallError> {
        let started = Instant::now();
        let body = protocol::response_body(info);
        let result = match self
            .client
            .post(&self.config.url_path("/v1/response"), body)
            .await
        {
            Ok(answer) => protocol::response_edits(&answer),
            Err(e) => Err(e),
        };
        self.count(
            Phase::Response,
            Some(started),
            &result.as_ref().map(|_| "ok"),
        );
        result
    }

    /// Counts one outcome (the time of the call, when one was made), and records (and
    /// logs, at most once a second) a failure.
    fn count(
        &self,
        phase: Phase,
        started: Option<Instant>,
        outcome: &Result<&'static str, &CallError>,
    ) {
        if let Some(started) = started {
            crate::metrics::PLUGIN_CALL_SECONDS
                .with_label_values(&[self.name(), phase.name()])
                .observe(started.elapsed().as_secs_f64());
        }
        let label = match outcome {
            Ok(o) => o,
            Err(e) => e.outcome(),
        };
        crate::metrics::PLUGIN_CALLS
            .with_label_values(&[self.name(), phase.name(), label])
            .inc();
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let Err(e) = outcome else {
            return;
        };
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        let message = format!("{}: {e}", phase.name());
        *lock(&self.stats.last_error) = Some((SystemTime::now(), message.clone()));
        let now = LOG_EPOCH.elapsed().as_millis() as u64;
        let last = self.stats.last_logged_ms.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 1000)
            && self
                .stats
                .last_logged_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let then = match self.config.on_error {
                PluginOnError::Deny => "denying (on_error: deny)",
                PluginOnError::Allow => "going on without it (on_error: allow)",
            };
            log::warn!("plugin {}: {message}; {then}", self.name());
        }
    }

    fn stats_json(&self) -> Value {
        let s = &self.stats;
        let last_error = lock(&s.last_error).as_ref().map(|(at, message)| {
            json!({
                "at": at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                "message": message,
            })
        });
        let phases = match self.hello_state() {
            Hello::Known(p) => {
                let mut v = Vec::new();
                if p.request {
                    v.push("request");
                }
                if p.response {
                    v.push("response");
                }
                json!(v)
            }
            Hello::Unknown { .. } => Value::Null,
        };
        let (url, command) = match &self.config.target {
            config::PluginTarget::Url(u) => (Some(u.text.as_str()), None),
            config::PluginTarget::Command(argv) => (None, Some(argv)),
        };
        json!({
            "name": self.name(),
            "url": url,
            "command": command,
            "pid": self.supervisor.as_ref().and_then(|s| s.pid()),
            "starts": self.supervisor.as_ref().map(|s| s.starts()),
            "protocol": self.config.protocol.name(),
            "phases": phases,
            "calls": s.calls.load(Ordering::Relaxed),
            "errors": s.errors.load(Ordering::Relaxed),
            "cached": s.cached.load(Ordering::Relaxed),
            "cache_entries": self.cache.as_ref().map(|c| c.len()),
            "last_error": last_error,
        })
    }
}

impl config::Plugin {
    /// `path` under the plugin URL's own path.
    fn url_path(&self, path: &str) -> String {
        format!("{}{path}", self.target.path().trim_end_matches('/'))
    }
}

/// Every configured plugin, by name.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    plugins: Vec<Arc<Plugin>>,
}

impl Registry {
    /// The plugins of `config`; those of `previous` with the same settings are kept as they
    /// are (pool, `/v1/hello` answer, cache), changed ones keep their figures.
    pub(crate) async fn build(
        config: &config::Config,
        previous: Option<&Registry>,
    ) -> Result<Registry, Vec<ConfigError>> {
        let old: HashMap<&str, &Arc<Plugin>> = previous
            .map(|r| r.plugins.iter().map(|p| (p.name(), p)).collect())
            .unwrap_or_default();
        let mut plugins = Vec::new();
        let mut errors = Vec::new();
        for pc in &config.plugins {
            match old.get(pc.name.as_str()) {
                Some(kept) if kept.config == *pc => {
                    plugins.push(Arc::clone(kept));
                    continue;
                }
                _ => {}
            }
            let stats = old
                .get(pc.name.as_str())
                .map(|p| Arc::clone(&p.stats))
                .unwrap_or_default();
            match peer(config, pc).await {
                Ok((peer, supervisor)) => {
                    plugins.push(Arc::new(Plugin::new(pc.clone(), peer, stats, supervisor)))
                }
                Err(message) => errors.push(ConfigError::new(
                    &config.source,
                    pc.pos,
                    &format!("plugins.{}", pc.name),
                    message,
                )),
            }
        }
        if errors.is_empty() {
            Ok(Registry { plugins })
        } else {
            Err(errors)
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.iter().find(|p| p.name() == name)
    }

    /// Starts the `command` plugins that `used` names or that have `autostart`.
    pub(crate) fn start(&self, used: &[&str]) {
        for p in &self.plugins {
            if p.config.autostart || used.contains(&p.name()) {
                p.start();
            }
        }
    }

    /// Stops every `command` plugin's program (TERM, KILL after 5 s), all at once, and
    /// waits for them; for the process's exit.
    pub(crate) fn stop_all(&self) {
        let running: Vec<&supervisor::Supervisor> = self
            .plugins
            .iter()
            .filter_map(|p| p.supervisor.as_ref())
            .collect();
        for s in &running {
            s.request_stop();
        }
        for s in running {
            s.join();
        }
        supervisor::remove_runtime_dir();
    }

    /// The `plugins` list of `GET /stats`.
    pub(crate) fn stats_json(&self) -> Value {
        Value::Array(self.plugins.iter().map(|p| p.stats_json()).collect())
    }
}

/// Where a plugin answers: its URL's address, or the Unix socket of its `command` (and the
/// supervisor that will run it).
async fn peer(
    config: &config::Config,
    pc: &config::Plugin,
) -> Result<
    (
        pingora::upstreams::peer::HttpPeer,
        Option<supervisor::Supervisor>,
    ),
    String,
> {
    use pingora::upstreams::peer::HttpPeer;
    match &pc.target {
        config::PluginTarget::Url(url) => {
            let addr = crate::snapshot::resolve(&url.host, url.port).await?;
            Ok((HttpPeer::new(addr, false, String::new()), None))
        }
        config::PluginTarget::Command(argv) => {
            let mut env = Vec::new();
            if let Some(admin) = &config.admin {
                env.push((
                    "STRAIT_ADMIN_URL".to_string(),
                    format!("http://{}", admin.addr),
                ));
                if let Some(token) = &admin.token {
                    env.push(("STRAIT_ADMIN_TOKEN".to_string(), token.clone()));
                }
            }
            let dir = std::path::Path::new(&config.source)
                .parent()
                .filter(|d| d.is_dir())
                .map(std::path::Path::to_path_buf);
            let s = supervisor::Supervisor::new(supervisor::Spec {
                name: pc.name.clone(),
                argv: argv.clone(),
                dir,
                env,
            });
            let path = s.socket().to_string_lossy().into_owned();
            let peer = HttpPeer::new_uds(&path, false, String::new())
                .map_err(|e| format!("socket {path}: {e}"))?;
            Ok((peer, Some(s)))
        }
    }
}

/// Whether a header of a plugin's answer may go to the client: not hop-by-hop ones, nor the
/// framing (strait frames the body itself).
pub(crate) fn returnable(name: &str) -> bool {
    const NOT_RETURNED: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    ];
    !NOT_RETURNED.iter().any(|h| h.eq_ignore_ascii_case(name))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
