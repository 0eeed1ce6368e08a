//! `plugins`: a map of name -> how to reach the plugin and what to do when it fails
//! (docs/plugins.md). Domains and routes name them (`handling.rs`).

use super::backend::split_host_port;
use super::fields::{item_path, string, Errors, Fields};
use crate::config::keys::{self, Section};
use crate::config::model::{
    Plugin, PluginCache, PluginOnError, PluginProtocol, PluginTarget, PluginUrl,
};
use crate::config::yaml::{Node, Value};

/// Decodes the top-level `plugins` map, in file order, with the name of every entry (those
/// with errors too, so a domain naming one is not reported a second time).
pub(super) fn plugins(e: &mut Errors, node: Option<&Node>) -> (Vec<Plugin>, Vec<String>) {
    let Some(node) = node else {
        return (Vec::new(), Vec::new());
    };
    let Value::Map(entries) = &node.value else {
        e.push(
            node.pos,
            "plugins",
            format!(
                "expected a mapping of plugin names to settings, found {}",
                node.describe()
            ),
        );
        return (Vec::new(), Vec::new());
    };
    let mut out = Vec::new();
    let mut names = Vec::new();
    for entry in entries {
        let path = format!("plugins.{}", entry.key);
        if entry.key.is_empty()
            || !entry
                .key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            e.push(
                entry.key_pos,
                "plugins",
                format!(
                    "plugin name {:?}: use letters, digits, `-`, `_` and `.`",
                    entry.key
                ),
            );
            continue;
        }
        names.push(entry.key.clone());
        if let Some(p) = plugin(e, &entry.key, &entry.value, &path) {
            out.push(p);
        }
    }
    (out, names)
}

fn plugin(e: &mut Errors, name: &str, node: &Node, path: &str) -> Option<Plugin> {
    let f = Fields::new(e, node, path, Section::Plugin)?;
    let target = match (f.get("url"), f.get("command")) {
        (Some(_), Some(at)) => {
            e.push(
                at.pos,
                &f.path("command"),
                "url and command cannot both be set: a plugin is either a running service (url) or a program strait starts (command)",
            );
            None
        }
        (None, None) => {
            e.push(node.pos, path, "missing field `url` or `command`");
            None
        }
        (None, Some(at)) => command(e, at, &f.path("command")).map(PluginTarget::Command),
        (Some(at), None) => f.string(e, "url").and_then(|text| {
            parse_url(&text)
                .map_err(|m| e.push(at.pos, &f.path("url"), m))
                .ok()
                .map(PluginTarget::Url)
        }),
    };
    let autostart = f.boolean(e, "autostart").unwrap_or(false);
    if let (Some(at), Some(PluginTarget::Url(_)), true) = (f.get("autostart"), &target, autostart) {
        e.push(
            at.pos,
            &f.path("autostart"),
            "autostart is for `command` plugins (strait does not start a `url` plugin)",
        );
    }
    let protocol = match f.one_of(e, "protocol", &["strait", "forward_auth"]) {
        Some(1) => PluginProtocol::ForwardAuth,
        _ => PluginProtocol::Strait,
    };
    let timeout = f
        .positive_duration(e, "timeout")
        .unwrap_or_else(|| keys::default_duration(Section::Plugin, "timeout"));
    let on_error = match f.one_of(e, "on_error", &["deny", "allow"]) {
        Some(1) => PluginOnError::Allow,
        _ => PluginOnError::Deny,
    };
    let mut copy_headers = Vec::new();
    if let Some(items) = f.list(e, "copy_headers") {
        for (i, item) in items.iter().enumerate() {
            let item_path = item_path(&f.path("copy_headers"), i);
            let Some(h) = string(e, item, &item_path) else {
                continue;
            };
            if !super::fields::is_token(&h) {
                e.push(item.pos, &item_path, format!("{h:?} is not a header name"));
                continue;
            }
            copy_headers.push(h.to_ascii_lowercase());
        }
    }
    if let (Some(at), PluginProtocol::Strait) = (f.get("copy_headers"), protocol) {
        e.push(
            at.pos,
            &f.path("copy_headers"),
            "copy_headers is for protocol: forward_auth (a strait-protocol plugin sets headers in its answer)",
        );
    }
    let cache = f.get("cache").and_then(|n| cache(e, n, &f.path("cache")));
    Some(Plugin {
        name: name.to_string(),
        target: target?,
        autostart,
        protocol,
        timeout,
        on_error,
        copy_headers,
        cache,
        pos: node.pos,
    })
}

/// `command: [program, args...]`: at least the program.
fn command(e: &mut Errors, node: &Node, path: &str) -> Option<Vec<String>> {
    let items = super::fields::list(e, node, path)?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        out.push(string(e, item, &item_path(path, i))?);
    }
    if out.first().is_none_or(|p| p.is_empty()) {
        e.push(
            node.pos,
            path,
            "expected the program to run, then its arguments",
        );
        return None;
    }
    Some(out)
}

fn cache(e: &mut Errors, node: &Node, path: &str) -> Option<PluginCache> {
    let f = Fields::new(e, node, path, Section::PluginCache)?;
    f.require(e, "key");
    f.require(e, "ttl");
    let header = f.string(e, "key").and_then(|k| {
        let name = k.strip_prefix("header:").map(str::trim);
        match name {
            Some(n) if super::fields::is_token(n) => Some(n.to_ascii_lowercase()),
            _ => {
                let at = f.get("key").map_or(node.pos, |n| n.pos);
                e.push(
                    at,
                    &f.path("key"),
                    format!("expected header:NAME (e.g. header:Authorization), found {k:?}"),
                );
                None
            }
        }
    });
    let ttl = f.positive_duration(e, "ttl");
    let max_entries = f
        .int(e, "max_entries")
        .unwrap_or_else(|| keys::default_int(Section::PluginCache, "max_entries"));
    Some(PluginCache {
        header: header?,
        ttl: ttl?,
        max_entries: max_entries as usize,
    })
}

/// `http://HOST[:PORT][/PATH]`: the only scheme plugins speak for now.
pub(crate) fn parse_url(url: &str) -> Result<PluginUrl, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "expected a URL like http://127.0.0.1:9100, found {url:?}"
        ));
    };
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(format!(
            "unsupported scheme {scheme:?} in {url:?}: plugins are reached over http://"
        ));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if tail.contains(['?', '#']) {
        return Err(format!(
            "a plugin URL cannot have a query or fragment, found {url:?}"
        ));
    }
    if authority.contains('@') {
        return Err(format!(
            "a plugin URL cannot contain user info, found {url:?}"
        ));
    }
    let (host, port) = split_host_port(authority, url)?;
    let port = match port {
        None => 80,
        Some(text) => match text.parse::<u16>() {
            Ok(p) if p > 0 && text.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => {
                return Err(format!(
                    "invalid port {text:?} in {url:?}, expected 1-65535"
                ))
            }
        },
    };
    let path = if tail.is_empty() { "/" } else { tail };
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("invalid path {path:?} in {url:?}"));
    }
    Ok(PluginUrl {
        text: url.to_string(),
        host,
        port,
        path: path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("http://127.0.0.1:9100").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 9100, "/")
        );
        let u = parse_url("http://auth.local/verify").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("auth.local", 80, "/verify")
        );
        assert!(parse_url("https://a:1").is_err());
        assert!(parse_url("http://a:1/x?y").is_err());
        assert!(parse_url("127.0.0.1:9100").is_err());
    }
}
