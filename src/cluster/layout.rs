//! Where strait keeps things in etcd, under `cluster.etcd.prefix` (docs/cluster.md):
//!
//! ```text
//! PREFIX state/backends/POOL/URL   {"weight": N, "max_connections": M} (added) or {"removed": true}
//! PREFIX state/enabled/POOL/URL    {"enabled": false}   (drained; true: undrained)
//! PREFIX purge/NODE/N              a cache purge, under a short lease (an event, not state)
//! PREFIX nodes/NODE                the node registry, under each node's lease
//! ```
//!
//! Pool names and backend URLs hold `/` and `:`, so each is one percent-encoded segment.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// What a segment must escape to stay one segment and decode back to itself.
const SEGMENT: &AsciiSet = &CONTROLS.add(b'/').add(b'%').add(b' ');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

fn dec(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

pub(super) fn backend(prefix: &str, pool: &str, url: &str) -> String {
    format!("{prefix}state/backends/{}/{}", enc(pool), enc(url))
}

pub(super) fn enabled(prefix: &str, pool: &str, url: &str) -> String {
    format!("{prefix}state/enabled/{}/{}", enc(pool), enc(url))
}

pub(super) fn purge(prefix: &str, node: &str, n: u64) -> String {
    format!("{prefix}purge/{}/{n}", enc(node))
}

pub(super) fn node(prefix: &str, node: &str) -> String {
    format!("{prefix}nodes/{}", enc(node))
}

/// A key under the cluster prefix, read back.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Entry {
    Backend { pool: String, url: String },
    Enabled { pool: String, url: String },
    Purge,
    Node(String),
}

pub(super) fn parse(prefix: &str, key: &str) -> Option<Entry> {
    let rest = key.strip_prefix(prefix)?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts[..] {
        ["state", "backends", pool, url] => Some(Entry::Backend {
            pool: dec(pool)?,
            url: dec(url)?,
        }),
        ["state", "enabled", pool, url] => Some(Entry::Enabled {
            pool: dec(pool)?,
            url: dec(url)?,
        }),
        ["purge", _, _] => Some(Entry::Purge),
        ["nodes", name] => Some(Entry::Node(dec(name)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back() {
        let k = backend("/strait/", "shop.example.com/api/", "http://127.0.0.1:3001");
        assert_eq!(
            k,
            "/strait/state/backends/shop.example.com%2Fapi%2F/http:%2F%2F127.0.0.1:3001"
        );
        assert_eq!(
            parse("/strait/", &k),
            Some(Entry::Backend {
                pool: "shop.example.com/api/".into(),
                url: "http://127.0.0.1:3001".into()
            })
        );
        assert_eq!(
            parse("/strait/", &node("/strait/", "a/b")),
            Some(Entry::Node("a/b".into()))
        );
        assert_eq!(
            parse("/strait/", &purge("/strait/", "n", 3)),
            Some(Entry::Purge)
        );
        assert_eq!(parse("/strait/", "/other/nodes/x"), None);
        assert_eq!(parse("/strait/", "/strait/state/what"), None);
    }
}
