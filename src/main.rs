//! The `strait` command: a thin layer over the library (see `strait --help`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use strait::{config, StartError, Strait};

/// mimalloc rather than the system allocator: a proxied request makes a few hundred small
/// allocations (header maps, buffers, futures); see the allocator notes in benches/README.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Used when neither -c, STRAIT_CONFIG nor CONFIG_PATH names a file.
const DEFAULT_CONFIG: &str = "conf/strait.yaml";
/// Read when -c and STRAIT_CONFIG are both absent (the name other deployments use).
const CONFIG_PATH_ENV: &str = "CONFIG_PATH";

#[derive(Parser, Debug)]
#[command(
    name = "strait",
    version,
    about = "A high-throughput edge reverse proxy on Pingora"
)]
struct Cli {
    /// The YAML config file (also STRAIT_CONFIG, then CONFIG_PATH; default conf/strait.yaml).
    #[arg(
        short = 'c',
        long = "conf",
        env = "STRAIT_CONFIG",
        value_name = "FILE",
        global = true
    )]
    config: Option<PathBuf>,
    /// Console log filter, e.g. `debug` or `info,pingora=warn`; LOG_LEVEL, STRAIT_LOG and
    /// RUST_LOG win over it, and it wins over logging.level.
    #[arg(long = "log-level", value_name = "FILTER", value_parser = log_filter)]
    log_level: Option<String>,
    /// Run in the background (writes server.pid_file).
    #[arg(short, long)]
    daemon: bool,
    /// Graceful upgrade: take the listening sockets over from the running instance.
    #[arg(short, long)]
    upgrade: bool,
    /// Reload when the config file changes (as server.watch: true).
    #[arg(long)]
    watch: bool,
    /// Validate the config (including backend name resolution) and exit: 0 ok, 1 errors.
    #[arg(short, long)]
    test: bool,
    /// With -t: also print what reloading from the --against file to this one would change.
    #[arg(long, requires = "test")]
    plan: bool,
    /// With --plan: the config the running instance has (ask a running instance instead with
    /// its admin API: POST /reload?dry_run=true).
    #[arg(long, value_name = "OLD", requires = "plan")]
    against: Option<PathBuf>,
    /// With --plan: print the plan as the JSON `POST /reload?dry_run=true` answers, alone on
    /// stdout (for scripts), instead of the text.
    #[arg(long, requires = "plan")]
    json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print configuration: every default, or a file's effective config.
    Config {
        #[command(subcommand)]
        what: ConfigCommand,
    },
    /// Run two local origins and the proxy in one process, and show requests alternating.
    Demo {
        /// Where the demo proxy listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// What strait would do with a request under the config file (-c), without sending it:
    /// domain, route, action, limits, cache decision and the backend picked, with reasons.
    Explain {
        /// The Host header.
        #[arg(long)]
        host: String,
        /// Path and optional query string.
        #[arg(long, default_value = "/")]
        path: String,
        #[arg(long, default_value = "GET")]
        method: String,
        /// A request header as `Name: value` (repeatable).
        #[arg(long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
        /// The client's (TCP peer's) address.
        #[arg(long)]
        client_ip: Option<std::net::IpAddr>,
        /// The listener's scheme, part of the cache key (default: the --listener's, else http).
        #[arg(long, value_parser = ["http", "https"])]
        scheme: Option<String>,
        /// The listener the request arrives on (its configured addr).
        #[arg(long)]
        listener: Option<std::net::SocketAddr>,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print the JSON Schema (draft 2020-12) of the config file, for editors and validators.
    Schema,
    /// Every key with its default, as YAML (from the same table the loader uses).
    Defaults,
    /// The effective config of -c FILE: after ${VAR} expansion, defaults and inheritance.
    Show,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_command = match &cli.command {
        Some(Command::Config { what }) => Some(what),
        _ => None,
    };
    if let Some(ConfigCommand::Schema) = config_command {
        print!("{}", config::json_schema_text());
        return ExitCode::SUCCESS;
    }
    if let Some(ConfigCommand::Defaults) = config_command {
        print!("{}", config::defaults_yaml());
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Demo { listen }) = cli.command {
        strait::logging::init(log::LevelFilter::Info);
        return match strait::demo::run(listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        };
    }
    let path = cli
        .config
        .clone()
        .or_else(|| {
            std::env::var_os(CONFIG_PATH_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let config = match config::load_file(&path) {
        Ok(c) => c,
        Err(errors) => return report(&path, &errors),
    };
    if let Some(ConfigCommand::Show) = config_command {
        print!("{}", config::show_yaml(&config));
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Explain {
        host,
        path: target,
        method,
        headers,
        client_ip,
        scheme,
        listener,
    }) = cli.command
    {
        let mut parsed = Vec::new();
        for h in &headers {
            match h.split_once(':') {
                Some((name, value)) if !name.trim().is_empty() => {
                    parsed.push((name.trim().to_string(), value.trim().to_string()))
                }
                _ => return fail(&format!("--header {h:?}: expected NAME:VALUE")),
            }
        }
        let question = strait::explain::Question {
            method,
            host,
            path: target,
            headers: parsed,
            client_ip,
            scheme: scheme.unwrap_or_default(),
            listener,
        };
        return match strait::explain::explain_config(config, &question) {
            Ok(answer) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&answer).unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => report(&path, &errors),
        };
    }
    if cli.test {
        if cli.plan {
            let Some(old_path) = cli.against else {
                return fail("--plan needs --against OLD (a running instance answers POST /reload?dry_run=true)");
            };
            let old = match config::load_file(&old_path) {
                Ok(c) => c,
                Err(errors) => return report(&old_path, &errors),
            };
            let plan = strait::plan::plan(&old, &config);
            if cli.json {
                // Validate first and print nothing else on stdout: a script reads one document.
                return match validate(config) {
                    Ok(()) => {
                        let answer =
                            serde_json::json!({ "dry_run": true, "valid": true, "plan": plan });
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&answer).unwrap_or_default()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(StartError::Config(errors)) => report(&path, &errors),
                    Err(e) => fail(&e.to_string()),
                };
            }
            print!("{}", strait::plan::plan_text(&plan));
        }
        return check(&path, config);
    }
    let settings = strait::logging::LogSettings {
        level: config.logging.level,
        flag: cli.log_level,
        error_log: config.logging.error_log.clone(),
        error_log_level: config.logging.error_log_level,
        daemon: cli.daemon,
    };
    match strait::logging::init_with(&settings) {
        Ok(chosen) => log::debug!("log filter {:?} from {}", chosen.spec, chosen.source),
        Err(e) => return fail(&e),
    }
    let server = Strait::from_config(config)
        .config_file(&path)
        .daemon(cli.daemon)
        .upgrade(cli.upgrade)
        .watch(cli.watch);
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

/// `-t`: everything `run` checks before serving, short of binding the listeners (a running
/// instance usually holds them).
/// What `-t` checks beyond loading (backend names resolve, listeners can be built).
fn validate(config: config::Config) -> Result<(), StartError> {
    Strait::from_config(config).check()
}

fn check(path: &Path, config: config::Config) -> ExitCode {
    for w in config::warnings(&config) {
        eprintln!(
            "{}:{}:{}: warning: {}: {}",
            w.file, w.line, w.col, w.path, w.message
        );
    }
    let domains = config.domains.len();
    let backends: usize = config.pools.iter().map(|p| p.backends.len()).sum();
    match validate(config) {
        Ok(()) => {
            println!(
                "{}: ok ({domains} domains, {backends} backends)",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(StartError::Config(errors)) => report(path, &errors),
        Err(e) => fail(&e.to_string()),
    }
}

/// `--log-level` is checked like the environment variables are (see `logging::levels`).
fn log_filter(value: &str) -> Result<String, String> {
    strait::logging::levels::parse(value).map(|_| value.to_string())
}

fn report(path: &Path, errors: &[config::ConfigError]) -> ExitCode {
    for e in errors {
        eprintln!("{e}");
    }
    eprintln!(
        "{}: {} error(s); nothing was started",
        path.display(),
        errors.len()
    );
    ExitCode::FAILURE
}

fn fail(message: &str) -> ExitCode {
    eprintln!("strait: {message}");
    ExitCode::FAILURE
}
