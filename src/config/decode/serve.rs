//! `serve` of a domain or route: the static file server's settings (`crate::serve`).

use super::fields::{item_path, list, string, Errors, Fields};
use crate::config::keys::{self, Section};
use crate::config::model::{Encoding, Serve};
use crate::config::yaml::Node;

pub(super) fn serve(e: &mut Errors, node: &Node, path: &str) -> Option<Serve> {
    let f = Fields::new(e, node, path, Section::Serve)?;
    f.require(e, "root");
    let root = f.file_path(e, "root").and_then(|root| {
        let at = f.get("root").map_or(node.pos, |n| n.pos);
        // Relative roots are relative to strait's working folder, like every other path.
        let problem = match std::fs::metadata(&root) {
            Ok(m) if m.is_dir() => return Some(root),
            Ok(_) => format!("{} is not a folder", root.display()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                format!("folder {} does not exist", root.display())
            }
            Err(err) => format!("cannot read folder {}: {err}", root.display()),
        };
        e.push(at, &f.path("root"), problem);
        None
    });
    // Each key is read (and its problems reported) before any missing value ends the read.
    let index = match f.get("index") {
        None => Some(vec!["index.html".to_string()]),
        Some(n) => index(e, n, &f.path("index")),
    };
    let precompressed = match f.get("precompressed") {
        None => Some(Vec::new()),
        Some(n) => precompressed(e, n, &f.path("precompressed")),
    };
    let cache_control = f.string(e, "cache_control");
    if let (Some(text), Some(n)) = (&cache_control, f.get("cache_control")) {
        if text.is_empty() || !super::fields::is_header_value(text) {
            e.push(
                n.pos,
                &f.path("cache_control"),
                format!("expected a header value like \"public, max-age=60\", found {text:?}"),
            );
        }
    }
    let spa = f
        .boolean(e, "spa")
        .unwrap_or_else(|| keys::default_bool(Section::Serve, "spa"));
    let browse = f
        .boolean(e, "browse")
        .unwrap_or_else(|| keys::default_bool(Section::Serve, "browse"));
    Some(Serve {
        root: root?,
        index: index?,
        spa,
        browse,
        precompressed: precompressed?,
        cache_control,
    })
}

/// File names: no folders, no `..`, never empty.
fn index(e: &mut Errors, node: &Node, path: &str) -> Option<Vec<String>> {
    let items = list(e, node, path)?;
    if items.is_empty() {
        e.push(
            node.pos,
            path,
            "expected at least one file name like index.html, found an empty list",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let at = item_path(path, i);
        let Some(name) = string(e, item, &at) else {
            ok = false;
            continue;
        };
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
            e.push(
                item.pos,
                &at,
                format!("expected a file name like index.html (no folders), found {name:?}"),
            );
            ok = false;
            continue;
        }
        out.push(name);
    }
    ok.then_some(out)
}

fn precompressed(e: &mut Errors, node: &Node, path: &str) -> Option<Vec<Encoding>> {
    let items = list(e, node, path)?;
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let at = item_path(path, i);
        let Some(name) = string(e, item, &at) else {
            ok = false;
            continue;
        };
        let Some(found) = Encoding::ALL.into_iter().find(|c| c.name() == name) else {
            let names: Vec<&str> = Encoding::ALL.iter().map(|c| c.name()).collect();
            e.push(
                item.pos,
                &at,
                format!(
                    "unknown value {name:?}, expected one of: {}",
                    names.join(", ")
                ),
            );
            ok = false;
            continue;
        };
        if out.contains(&found) {
            e.push(item.pos, &at, format!("{name} is listed twice"));
            ok = false;
            continue;
        }
        out.push(found);
    }
    ok.then_some(out)
}
