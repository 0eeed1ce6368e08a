//! Which console filter wins: `LOG_LEVEL`, then `STRAIT_LOG`, then `RUST_LOG` (the
//! environment is what an operator changes without touching the file), then the
//! `--log-level` flag, then `logging.level`. Each takes env_logger's filter syntax: a level,
//! `module=level` pairs, or both (`info,pingora=warn`).

use log::LevelFilter;

/// The environment variables read, highest priority first.
pub const ENV_VARS: [&str; 3] = ["LOG_LEVEL", "STRAIT_LOG", "RUST_LOG"];

/// The filter in force and where it came from (for the start-up log line and errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// The filter text.
    pub spec: String,
    /// The variable, flag or key it came from.
    pub source: String,
}

/// Picks the filter; `env` looks a variable up (the process environment in production).
/// Empty values count as unset, as most tools treat them.
pub fn choose(
    env: impl Fn(&str) -> Option<String>,
    flag: Option<&str>,
    config: LevelFilter,
) -> Chosen {
    for var in ENV_VARS {
        if let Some(value) = env(var).filter(|v| !v.trim().is_empty()) {
            return Chosen {
                spec: value,
                source: var.to_string(),
            };
        }
    }
    if let Some(flag) = flag.filter(|f| !f.trim().is_empty()) {
        return Chosen {
            spec: flag.to_string(),
            source: "--log-level".to_string(),
        };
    }
    Chosen {
        spec: config.as_str().to_ascii_lowercase(),
        source: "logging.level".to_string(),
    }
}

/// Parses a filter, refusing what env_logger would silently skip (a misspelt level means a
/// console that says nothing, which is hard to diagnose).
pub fn parse(spec: &str) -> Result<env_filter::Filter, String> {
    let bad = |why: String| {
        format!("invalid log filter {spec:?}: {why} (expected e.g. `info` or `info,pingora=warn`)")
    };
    // env_logger reads a bare word as a module name: `infoo` would mean "module infoo, every
    // level" and the console would go quiet. A bare word here must be a level.
    let directives = spec.split('/').next().unwrap_or_default();
    for d in directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        if !d.contains('=') && d.parse::<LevelFilter>().is_err() {
            return Err(bad(format!(
                "`{d}` is not a level (off, error, warn, info, debug, trace); write `{d}=LEVEL` for a module"
            )));
        }
    }
    let mut builder = env_filter::Builder::new();
    builder.try_parse(spec).map_err(|e| bad(e.to_string()))?;
    Ok(builder.build())
}

/// Whether the filter names Pingora's modules itself, in which case its start-up lines are
/// left at their own level.
pub fn mentions_pingora(spec: &str) -> bool {
    spec.split(',')
        .any(|d| d.trim_start().starts_with("pingora"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn precedence_env_then_flag_then_config() {
        let all = [
            ("LOG_LEVEL", "trace"),
            ("STRAIT_LOG", "debug"),
            ("RUST_LOG", "warn"),
        ];
        let c = choose(env(&all), Some("error"), LevelFilter::Info);
        assert_eq!((c.spec.as_str(), c.source.as_str()), ("trace", "LOG_LEVEL"));
        let c = choose(env(&all[1..]), Some("error"), LevelFilter::Info);
        assert_eq!(c.source, "STRAIT_LOG");
        let c = choose(env(&all[2..]), Some("error"), LevelFilter::Info);
        assert_eq!(c.source, "RUST_LOG");
        let c = choose(env(&[("LOG_LEVEL", " ")]), Some("error"), LevelFilter::Info);
        assert_eq!(
            (c.spec.as_str(), c.source.as_str()),
            ("error", "--log-level")
        );
        let c = choose(env(&[]), None, LevelFilter::Debug);
        assert_eq!(
            (c.spec.as_str(), c.source.as_str()),
            ("debug", "logging.level")
        );
    }

    #[test]
    fn per_module_filters_parse_and_bad_ones_are_refused() {
        let f = parse("info,pingora=warn").expect("valid");
        assert_eq!(f.filter(), LevelFilter::Info);
        assert!(parse("strait=debug").is_ok());
        let e = parse("infoo").err().unwrap_or_default();
        assert!(e.contains("infoo"), "{e}");
        assert!(parse("pingora=loud").is_err());
        assert!(mentions_pingora("info, pingora_core=info"));
        assert!(!mentions_pingora("info,strait=debug"));
    }
}
