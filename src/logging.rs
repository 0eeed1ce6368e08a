//! Console logging. The level comes from the config unless `STRAIT_LOG` or `RUST_LOG` says
//! otherwise (both take env_logger filter syntax, e.g. `strait=debug,pingora=warn`).

use log::LevelFilter;

pub fn init(level: LevelFilter) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level);
    let spec = std::env::var("STRAIT_LOG").or_else(|_| std::env::var("RUST_LOG"));
    if let Ok(spec) = spec {
        builder.parse_filters(&spec);
    }
    builder.format_timestamp_millis();
    // A second init (tests, library users with their own logger) is not an error.
    let _ = builder.try_init();
}
