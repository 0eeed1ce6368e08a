//! TEMPORARY stub; replaced by the real loader.
pub mod model;
pub use model::*;

#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub path: String,
    pub message: String,
}
impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.col, self.path, self.message
        )
    }
}
pub fn load_file(path: &std::path::Path) -> Result<Config, Vec<ConfigError>> {
    Err(vec![ConfigError {
        file: path.display().to_string(),
        line: 0,
        col: 0,
        path: String::new(),
        message: "stub".into(),
    }])
}
pub fn load_str(
    _t: &str,
    s: &str,
    _e: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigError>> {
    Err(vec![ConfigError {
        file: s.into(),
        line: 0,
        col: 0,
        path: String::new(),
        message: "stub".into(),
    }])
}
