//! End-to-end tests through [`load_str`]: `valid` checks decoded models, `errors` checks the
//! exact `file:line:col: path: message` lines a user would see.

use std::time::Duration;

use super::*;

mod errors;
mod plugins;
mod policy;
mod readme;
mod serve;
mod valid;

pub(super) fn env(name: &str) -> Option<String> {
    match name {
        "STRAIT_ADMIN_TOKEN" => Some("s3cret".to_string()),
        "PORT" => Some("8081".to_string()),
        _ => None,
    }
}

pub(super) fn load(text: &str) -> Result<Config, Vec<ConfigError>> {
    load_str(text, "t.yaml", &env)
}

pub(super) fn ok(text: &str) -> Config {
    match load(text) {
        Ok(config) => config,
        Err(errors) => panic!("unexpected errors:\n{}", lines(&errors).join("\n")),
    }
}

pub(super) fn lines(errors: &[ConfigError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

pub(super) fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(errors) => lines(&errors),
    }
}

/// A small valid file; tests append or prepend sections to it.
pub(super) const MINIMAL: &str = "\
listeners:
  - addr: 127.0.0.1:8080
domains:
  - hosts: [a.com]
    backends: [http://127.0.0.1:3000]
";

pub(super) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
