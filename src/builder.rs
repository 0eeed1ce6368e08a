//! The [`Strait`] builder: a config plus hooks, then serve.

use std::path::Path;

use crate::config::{self, Config};
use crate::hooks::{ErrorEvent, ErrorHook, Reject, Request, RequestHook, Response, ResponseHook};
use crate::server::{self, Prepared, RunOptions, StartError};

/// A strait server to embed: build it from a config file, YAML text or a [`Config`], add
/// hooks, then [`run`](Strait::run) it.
///
/// ```no_run
/// use strait::{Reject, Strait};
///
/// Strait::from_file("conf/strait.yaml")?
///     .on_request(|req| match req.header("x-api-key") {
///         Some("let-me-in") => Ok(()),
///         _ => Err(Reject::new(401).body("missing or wrong X-Api-Key\n")),
///     })
///     .run()?;
/// # Ok::<(), strait::StartError>(())
/// ```
#[derive(Debug)]
pub struct Strait {
    config: Config,
    options: RunOptions,
}

impl Strait {
    /// Loads a config file (`${VAR}` expanded from the environment). SIGHUP and the admin
    /// API's reload read it again; the hooks stay.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Strait, StartError> {
        let path = path.as_ref();
        let config = config::load_file(path).map_err(StartError::Config)?;
        Ok(Strait::from_config(config).config_file(path))
    }

    /// Decodes YAML text (`${VAR}` expanded from the environment); `source` names it in
    /// error messages.
    pub fn from_yaml(text: &str, source: &str) -> Result<Strait, StartError> {
        config::load_str(text, source, &|name| std::env::var(name).ok())
            .map(Strait::from_config)
            .map_err(StartError::Config)
    }

    /// Uses a config decoded (and possibly adjusted) by the caller.
    pub fn from_config(config: Config) -> Strait {
        Strait {
            config,
            options: RunOptions::default(),
        }
    }

    /// The config this server will run.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Adds an `on_request` hook (see [`crate::hooks`]).
    pub fn on_request<F>(mut self, f: F) -> Self
    where
        F: Fn(&mut Request<'_>) -> Result<(), Reject> + Send + Sync + 'static,
    {
        self.options.hooks.on_request(f);
        self
    }

    /// Adds an `on_response` hook.
    pub fn on_response<F>(mut self, f: F) -> Self
    where
        F: Fn(&mut Response<'_>) + Send + Sync + 'static,
    {
        self.options.hooks.on_response(f);
        self
    }

    /// Adds an `on_error` hook.
    pub fn on_error<F>(mut self, f: F) -> Self
    where
        F: Fn(&ErrorEvent<'_>) + Send + Sync + 'static,
    {
        self.options.hooks.on_error(f);
        self
    }

    /// Adds an `on_request` hook that may await.
    pub fn request_hook(mut self, hook: impl RequestHook) -> Self {
        self.options.hooks.add_request_hook(hook);
        self
    }

    /// Adds an `on_response` hook that may await.
    pub fn response_hook(mut self, hook: impl ResponseHook) -> Self {
        self.options.hooks.add_response_hook(hook);
        self
    }

    /// Adds an `on_error` hook implemented as a type (the closure form is [`Strait::on_error`]).
    pub fn error_hook(mut self, hook: impl ErrorHook) -> Self {
        self.options.hooks.add_error_hook(hook);
        self
    }

    /// The file SIGHUP and `POST /reload` read again ([`Strait::from_file`] sets it). A
    /// relative path is made absolute now: a daemon changes its working directory.
    pub fn config_file(mut self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        self.options.config_path =
            Some(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
        self
    }

    /// Everything [`Strait::run`] checks before serving (backend names resolve, certificates
    /// load, the admin section is sound), short of binding the listeners (a running
    /// instance usually holds them). What `strait -t` runs.
    pub fn check(self) -> Result<(), StartError> {
        server::check(self.config)
    }

    /// Forks into the background before serving (writes `server.pid_file`).
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.options.daemon = daemon;
        self
    }

    /// Reloads when the config file (see [`Strait::config_file`]) changes, as `server.watch`.
    pub fn watch(mut self, watch: bool) -> Self {
        self.options.watch = watch;
        self
    }

    /// Takes the listening sockets over from a running instance (graceful upgrade).
    pub fn upgrade(mut self, upgrade: bool) -> Self {
        self.options.upgrade = upgrade;
        self
    }

    /// Builds the server without serving: add Pingora services to `Prepared::server`, then
    /// call `run_forever`. No logger is installed: keep your own, or call
    /// [`crate::logging::init`] with `config().logging.level` for strait's console format.
    pub fn prepare(self) -> Result<Prepared, StartError> {
        server::prepare(self.config, self.options)
    }

    /// Serves until shut down, then exits the process; returns only on a start-up failure.
    pub fn run(self) -> Result<(), StartError> {
        self.prepare()?.run_forever()
    }
}
