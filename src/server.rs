//! Assembles the Pingora server from a validated config: listeners, the proxy service, the
//! health checker, and strait's defaults where Pingora's do not suit an edge proxy.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::proxy::http_proxy;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use pingora::tls::ssl::SslAcceptor;

use crate::config::{Config, ConfigError};
use crate::health::HealthChecker;
use crate::lifecycle::ready::{DaemonStarted, Readiness};
use crate::lifecycle::{self, ExitWhenIdle, ReloadService, StraitSignals};
use crate::limits::listener::GuardedHttp;
use crate::proxy::StraitProxy;
use crate::snapshot::Snapshot;
use crate::state::State;

#[derive(Debug, Clone, Default)]
pub(crate) struct RunOptions {
    /// Fork into the background (pid_file written).
    pub daemon: bool,
    /// Take the listening sockets from a running instance over `upgrade_sock`.
    pub upgrade: bool,
    /// The file SIGHUP and POST /reload read again; `None` for configs built in code.
    pub config_path: Option<PathBuf>,
    /// Reload when the config file changes (`--watch`; `server.watch` does the same).
    pub watch: bool,
    /// Embedders' hooks (see `crate::hooks` and the `crate::Strait` builder).
    pub hooks: crate::hooks::Hooks,
}

/// A server ready to run, with the state its services share.
pub struct Prepared {
    /// The Pingora server: add services to it before `run_forever`.
    pub server: Server,
    pub(crate) state: Arc<State>,
    drain_delay: Duration,
    /// `-d`: fork first and wait for the daemon's word (see `crate::daemon`).
    daemon: bool,
    error_log: Option<PathBuf>,
}

/// How long the `-d` parent waits: the daemon gives up on its listeners after 30 s.
const DAEMON_WAIT: Duration = Duration::from_secs(35);

impl Prepared {
    /// Serves until shut down, then exits the process.
    pub fn run_forever(self) -> ! {
        let signals = StraitSignals {
            state: self.state.clone(),
            drain_delay: self.drain_delay,
        };
        if self.daemon {
            crate::daemon::fork_and_wait(DAEMON_WAIT, self.error_log.as_deref());
        }
        self.server.run(RunArgs {
            shutdown_signal: Box::new(signals),
        });
        lifecycle::exit::before_exit(&self.state);
        std::process::exit(0)
    }
}

/// Why strait could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The config has errors, each with its `file:line:col`.
    Config(Vec<crate::config::ConfigError>),
    /// A listener could not bind.
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// What the operating system said.
        reason: std::io::Error,
    },
    /// The runtime could not start.
    Runtime(std::io::Error),
    /// `server.pid_file` cannot be written (`-d`).
    PidFile {
        /// The file.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// `logging.error_log` cannot be opened.
    ErrorLog {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        reason: std::io::Error,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(errors) => {
                for (i, e) in errors.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
            StartError::Listen { addr, reason } => write!(f, "cannot listen on {addr}: {reason}"),
            StartError::Runtime(e) => write!(f, "cannot start a runtime: {e}"),
            StartError::PidFile { path, reason } => {
                write!(f, "cannot write the pid file {}: {reason}", path.display())
            }
            StartError::ErrorLog { path, reason } => {
                write!(f, "cannot open the error log {}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for StartError {}

/// Resolves backend names on a short-lived runtime: the server proper may fork to daemonize,
/// and threads started before a fork do not survive it.
pub(crate) fn build_snapshot(
    config: Config,
    previous: Option<&Snapshot>,
) -> Result<Snapshot, StartError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    if previous.is_none() {
        for w in crate::config::warnings(&config) {
            log::warn!("{w}");
        }
    }
    rt.block_on(Snapshot::build(config, previous))
        .map_err(StartError::Config)
}

/// Builds everything and serves until shut down. Returns only on a start-up failure.
pub(crate) fn run(config: Config, options: RunOptions) -> Result<(), StartError> {
    prepare(config, options)?.run_forever()
}

/// Everything up to, but not including, serving: a library user can add services to the
/// returned server before calling `run_forever`.
pub(crate) fn prepare(config: Config, options: RunOptions) -> Result<Prepared, StartError> {
    if !options.upgrade {
        check_listeners(&config)?;
    }
    // ACME first: the stored certificates of `tls.acme` hosts are read before the listeners
    // are built, so their first handshakes use them.
    let acme = Arc::new(crate::acme::Acme::default());
    acme.configure(&config);
    let (listeners, tls_listeners) =
        listener_endpoints(&config, Some(&acme.certs)).map_err(StartError::Config)?;
    let tcp_listeners: Vec<std::net::SocketAddr> = config
        .listeners
        .iter()
        .filter(|l| l.tcp.is_some())
        .map(|l| l.addr)
        .collect();
    let threads = config.server.threads;
    let drain_delay = config.server.drain_delay;
    let error_log = config.logging.error_log.clone();
    let watch_config = config.server.watch;
    if let Some(path) = &error_log {
        // Pingora's daemonize opens it too, and panics when it cannot.
        crate::logging::error_log::open(path).map_err(|reason| StartError::ErrorLog {
            path: path.clone(),
            reason,
        })?;
    }
    if options.daemon {
        check_pid_dir(&config.server.pid_file)?;
    }
    let mut ready_addrs: Vec<std::net::SocketAddr> =
        config.listeners.iter().map(|l| l.addr).collect();
    let admin_addr = config.admin.as_ref().map(|a| a.addr);
    let probe_addr = config.probe.as_ref().map(|p| p.addr);
    ready_addrs.extend(admin_addr);
    ready_addrs.extend(probe_addr);
    let (domain_count, backend_count) = (
        config.domains.len(),
        config.pools.iter().map(|p| p.backends.len()).sum::<usize>(),
    );
    let conf = server_conf(&config, &options);
    let state = State::new(build_snapshot(config, None)?);
    if let Some(path) = options.config_path {
        state.set_config_path(path);
    }
    state.set_hooks(options.hooks);
    state.set_tls_listeners(tls_listeners);
    state.set_acme(acme);

    exit_when_listeners_fail();
    let opt = Opt {
        upgrade: options.upgrade,
        daemon: options.daemon,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    // As a service, bootstrap (taking sockets over from an old instance) runs after the
    // daemon fork, in the process that will serve.
    let bootstrap = server.bootstrap_as_a_service();

    // Pingora's proxy behind strait's request-head limits (408/431, crate::limits::listener).
    let mut app = http_proxy(&server.configuration, StraitProxy::new(state.clone()));
    // h2c is a property of the app, not of one listener: the head guard only hands a
    // connection to Pingora's h2c detection on listeners with `http2: true`.
    if state.snapshot().config.listeners.iter().any(|l| l.h2c) {
        let mut options = pingora::apps::HttpServerOptions::default();
        options.h2c = true;
        app.server_options = Some(options);
    }
    // TLS listeners are bound as plain TCP: strait reads the ClientHello first, to pass
    // connections through by SNI, then runs the handshake itself (crate::l4::pass).
    let mut urls = Vec::with_capacity(listeners.len() + tcp_listeners.len());
    let mut acceptors = std::collections::HashMap::new();
    for (addr, tls) in &listeners {
        urls.push(match tls {
            Some(_) => format!("https://{addr}"),
            None => format!("http://{addr}"),
        });
    }
    let addrs: Vec<std::net::SocketAddr> = listeners.iter().map(|(addr, _)| *addr).collect();
    for (addr, tls) in listeners {
        if let Some(acceptor) = tls {
            acceptors.insert(addr, acceptor);
        }
    }
    let mut proxy = Service::new(
        "strait proxy".to_string(),
        GuardedHttp::new(app, state.clone(), acceptors),
    );
    for addr in addrs {
        // No L4 read buffer: Pingora gives every connection a 64 KiB one by default, held for
        // the connection's life (idle keep-alive clients included), and every read then goes
        // through it and is copied again. On plain listeners the head guard and Pingora's
        // HTTP/1 session read into buffers of their own; on TLS listeners (bound as TCP too,
        // see above) OpenSSL reads ahead into its record buffer (crate::tls::acceptor), so a
        // record's header and body still come in one system call.
        proxy.add_listener(
            ListenerConfig::tcp(addr.to_string()).l4_buffer(L4BufferSettings::default().read(0)),
        );
    }
    proxy.threads = Some(threads);
    server.add_service(proxy).add_dependency(&bootstrap);
    if !tcp_listeners.is_empty() {
        let mut relay = Service::new(
            "strait tcp relay".to_string(),
            crate::l4::tcp::TcpRelay::new(state.clone()),
        );
        for addr in &tcp_listeners {
            urls.push(format!("tcp://{addr}"));
            // The relay copies through buffers of its own (as the plain HTTP listeners'
            // sessions do, above): no 64 KiB L4 read buffer per relayed connection.
            relay.add_listener(
                ListenerConfig::tcp(addr.to_string())
                    .l4_buffer(L4BufferSettings::default().read(0)),
            );
        }
        relay.threads = Some(threads);
        server.add_service(relay).add_dependency(&bootstrap);
    }
    server.add_service(background_service(
        "strait health checks",
        HealthChecker::new(state.clone()),
    ));
    // Idle without an `acme` section; a reload may add one.
    server.add_service(background_service(
        "strait acme",
        crate::acme::scheduler::Scheduler(state.clone()),
    ));
    server.add_service(background_service(
        "strait discovery",
        crate::discovery::DiscoveryService::new(state.clone()),
    ));
    server.add_service(background_service(
        "strait plugins",
        StartPlugins(state.clone()),
    ));
    server.add_service(background_service(
        "strait reload",
        ReloadService {
            state: state.clone(),
        },
    ));
    server.add_service(background_service(
        "strait exit when idle",
        ExitWhenIdle(state.clone()),
    ));
    if let Some(cluster) = crate::cluster::install(&state) {
        server.add_service(background_service("strait cluster (etcd)", cluster));
    }
    crate::admin::add_services(&mut server, &state, options.upgrade, &bootstrap)?;
    // Said once each address accepts (so under -d they reach the error log, not the caller).
    let mut announce: Vec<String> = urls
        .iter()
        .map(|url| format!("strait listening on {url}"))
        .collect();
    if let Some(admin) = &admin_addr {
        announce.push(format!("admin API on http://{admin}"));
    }
    if let Some(probe) = &probe_addr {
        announce.push(format!("probe (/live /ready /metrics) on http://{probe}"));
    }
    announce.push(format!(
        "{domain_count} domains, {backend_count} backends configured"
    ));
    server
        .add_service(background_service(
            "strait readiness",
            Readiness {
                state: state.clone(),
                addrs: ready_addrs,
                upgrade: options.upgrade,
                announce,
            },
        ))
        .add_dependency(&bootstrap);
    if options.daemon && options.upgrade {
        server.add_service(background_service("strait daemon started", DaemonStarted));
    }
    if options.watch || watch_config {
        server.add_service(background_service(
            "strait config watch",
            crate::lifecycle::watch::WatchService {
                state: state.clone(),
            },
        ));
    }
    if let Some(exporter) = state.trace_export.install(&state.snapshot().config.tracing) {
        server.add_service(background_service("strait trace export", exporter));
    }
    if error_log.is_some() {
        server.add_service(background_service(
            "strait error log",
            crate::logging::ErrorLogService,
        ));
    }
    Ok(Prepared {
        server,
        state,
        drain_delay,
        daemon: options.daemon,
        error_log,
    })
}

/// One HTTP listener ready for Pingora: its address and, for TLS, its acceptor.
type Endpoint = (std::net::SocketAddr, Option<SslAcceptor>);
/// Every listener ready for Pingora, and the TLS listeners' certificate stores.
type Endpoints = (Vec<Endpoint>, Vec<Arc<crate::tls::TlsListener>>);

/// Each listener with its TLS certificates loaded: certificates are read and checked here, so
/// a bad file fails start-up and `strait -t` rather than the first handshake. Also returns
/// each TLS listener's swappable certificates, which a reload replaces.
fn listener_endpoints(
    config: &Config,
    acme: Option<&Arc<crate::acme::Certs>>,
) -> Result<Endpoints, Vec<ConfigError>> {
    let mut out = Vec::with_capacity(config.listeners.len());
    let mut stores = Vec::new();
    let mut errors = Vec::new();
    for (i, l) in config.listeners.iter().enumerate() {
        if l.tcp.is_some() {
            continue;
        }
        let Some(tls) = &l.tls else {
            out.push((l.addr, None));
            continue;
        };
        match crate::tls::load(config, i, l, tls, acme) {
            Ok((certs, warnings)) => {
                for w in warnings {
                    log::warn!("{w}");
                }
                let store = Arc::new(crate::tls::TlsListener::new(l.addr, certs));
                match crate::tls::acceptor(store.clone()) {
                    Ok(acceptor) => {
                        out.push((l.addr, Some(acceptor)));
                        stores.push(store);
                    }
                    Err(message) => errors.push(ConfigError::new(
                        &config.source,
                        l.pos,
                        &format!("listeners[{i}].tls"),
                        message,
                    )),
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok((out, stores))
    } else {
        Err(errors)
    }
}

/// What `strait -t` checks beyond the file itself: names resolve, certificates load.
pub(crate) fn check(config: Config) -> Result<(), StartError> {
    let mut errors = listener_endpoints(&config, None).err().unwrap_or_default();
    errors.extend(crate::acme::check(&config).err());
    if let Err(StartError::Config(e)) = build_snapshot(config, None) {
        errors.extend(e);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        errors.sort_by_key(|e| (e.line, e.col));
        Err(StartError::Config(errors))
    }
}

/// The CA bundle that verifies https:// backends. Pingora's vendored OpenSSL looks in its own
/// build-time directory, which holds no certificates, so without this every https backend
/// would fail verification. `SSL_CERT_FILE` wins; then the usual system bundles. Only a file
/// that exists is passed on: Pingora panics on one it cannot load.
pub(crate) fn upstream_ca_file() -> Option<String> {
    let from_env = std::env::var("SSL_CERT_FILE").ok();
    from_env
        .into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/cert.pem",
            ]
            .map(String::from),
        )
        .find(|path| std::fs::metadata(path).is_ok_and(|m| m.is_file()) && loads(path))
}

fn loads(path: &str) -> bool {
    use pingora::tls::ssl::{SslContextBuilder, SslMethod};
    let ok =
        SslContextBuilder::new(SslMethod::tls()).is_ok_and(|mut b| b.set_ca_file(path).is_ok());
    if !ok {
        log::warn!("CA bundle {path} cannot be loaded; https backends will not verify against it");
    }
    ok
}

fn server_conf(config: &Config, options: &RunOptions) -> ServerConf {
    let s = &config.server;
    let pool_size: usize = config
        .domains
        .iter()
        .flat_map(|d| d.handlings().map(|h| &h.action))
        .filter_map(|a| match a {
            crate::config::Action::Proxy { pool, options } => {
                let backends = config.pools.get(*pool).map_or(0, |p| p.backends.len());
                Some(backends * options.max_idle_conns as usize)
            }
            _ => None,
        })
        .sum();
    ServerConf {
        daemon: options.daemon,
        threads: s.threads,
        pid_file: s.pid_file.display().to_string(),
        upgrade_sock: s.upgrade_sock.display().to_string(),
        user: s.user.clone(),
        group: s.group.clone(),
        grace_period_seconds: Some(s.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(s.shutdown_timeout.as_secs()),
        // Pingora's pool is one LRU for all peers; size it for every backend's share.
        upstream_keepalive_pool_size: pool_size.max(128),
        ca_file: upstream_ca_file(),
        // Off on purpose. Pingora's parent installs its SIGUSR1 handler only after forking, so a
        // quick child's "ready" signal either kills the parent (exit 138) or is lost and the
        // parent waits until the child gives up: 3 of 6 `-u -d` runs failed so here. And the
        // signal is sent before the listeners are bound, so it never meant "serving". Without
        // it, strait's own fork waits for the daemon to listen (crate::daemon).
        daemon_wait_for_ready: false,
        // Under -d, Pingora's daemonize points stdin and stdout at /dev/null and stderr here:
        // the daemon never keeps the caller's descriptors (a `$(strait -d)` would not return).
        error_log: options.daemon.then(|| {
            config
                .logging
                .error_log
                .as_ref()
                .map_or_else(|| "/dev/null".to_string(), |p| p.display().to_string())
        }),
        ..ServerConf::default()
    }
}

/// Pingora binds inside its runtime and, on failure, retries for 30 s and then panics in a
/// task while the process lives on serving nothing. Binding once up front turns the common
/// cases (port taken, no permission, address not local) into a clear message and exit 1.
fn check_listeners(config: &Config) -> Result<(), StartError> {
    for l in &config.listeners {
        std::net::TcpListener::bind(l.addr).map_err(|reason| StartError::Listen {
            addr: l.addr,
            reason,
        })?;
    }
    Ok(())
}

/// Pingora's daemonize panics (in a process that still has the caller's stderr) when the pid
/// file cannot be created; the usual cause, a missing directory, is reported plainly instead.
fn check_pid_dir(pid_file: &std::path::Path) -> Result<(), StartError> {
    let dir = match pid_file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        Ok(())
    } else {
        Err(StartError::PidFile {
            path: pid_file.to_path_buf(),
            reason: format!("{} is not a directory", dir.display()),
        })
    }
}

/// The same failure can still happen in a race after the check; make it fatal, not silent.
fn exit_when_listeners_fail() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.to_string();
        if message.contains("Failed to build listeners") {
            eprintln!("strait: {message}");
            std::process::exit(1);
        }
        default(info);
    }));
}

/// Starts the `command` plugins once the server runs (after a daemon's fork: their
/// supervising threads would not survive it).
struct StartPlugins(Arc<State>);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for StartPlugins {
    async fn start(&self, _shutdown: pingora::server::ShutdownWatch) {
        self.0.snapshot().start_plugins();
    }
}
