//! `include: [conf.d/*.yaml]`: domains kept in more files. Each pattern is relative to the
//! including file's folder; `*` and `?` may appear in its last component only, and matching
//! files are read in name order. An included file holds a `domains:` list and nothing else;
//! its problems are reported with its own name, line and column.

use std::path::{Path, PathBuf};

/// Files matching `pattern` (relative to `base`), sorted by name. A pattern without
/// wildcards names one file, which must exist.
pub(super) fn resolve(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = base.join(pattern);
    let Some(name) = full.file_name().and_then(|n| n.to_str()) else {
        return Err(format!(
            "expected a file or a pattern like conf.d/*.yaml, found {pattern:?}"
        ));
    };
    let dir = full.parent().unwrap_or(base);
    if dir.to_string_lossy().contains(['*', '?']) {
        return Err(format!(
            "wildcards are allowed in the file name only (conf.d/*.yaml), found {pattern:?}"
        ));
    }
    if !name.contains(['*', '?']) {
        return if full.is_file() {
            Ok(vec![full])
        } else {
            Err(format!(
                "{} does not exist or is not a file",
                full.display()
            ))
        };
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && wildcard(name.as_bytes(), n.as_bytes()))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// `*` (any run) and `?` (one byte) over a file name; hidden files are left to the caller.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| wildcard(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && wildcard(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && wildcard(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard(b"*.yaml", b"a.yaml"));
        assert!(!wildcard(b"*.yaml", b"a.yml"));
        assert!(wildcard(b"site-?.yaml", b"site-1.yaml"));
        assert!(wildcard(b"*", b"x"));
    }

    #[test]
    fn resolving() {
        let dir = std::env::temp_dir().join(format!("strait-include-{}", std::process::id()));
        let conf = dir.join("conf.d");
        std::fs::create_dir_all(&conf).unwrap();
        for f in ["b.yaml", "a.yaml", "c.txt", ".hidden.yaml"] {
            std::fs::write(conf.join(f), "").unwrap();
        }
        let got = resolve(&dir, "conf.d/*.yaml").unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a.yaml", "b.yaml"]);
        assert_eq!(resolve(&dir, "conf.d/a.yaml").unwrap().len(), 1);
        assert!(resolve(&dir, "conf.d/missing.yaml").is_err());
        assert!(resolve(&dir, "*/a.yaml").is_err());
        assert!(resolve(&dir, "none/*.yaml").is_err());
        assert!(resolve(&dir, "conf.d/*.json").unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
