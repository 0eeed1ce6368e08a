//! What etcd says, as one value: the admin API's backend changes and drains, each discovery
//! prefix's backends, the live nodes. Applied over the config file's pools
//! ([`View::apply_to`]) to make the config a snapshot is built from, so the snapshot path is
//! the one a reload and the admin API take.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::layout::{self, Entry};
use crate::config::{Action, BackendConfig, Config, Pos};
use crate::snapshot::Snapshot;

/// An admin API change to one pool's backend list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum Change {
    Removed { removed: bool },
    Added(Settings),
}

/// A backend's settings as etcd holds them (admin API additions, discovery values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Settings {
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
}

fn one() -> u32 {
    1
}

impl Settings {
    /// A discovery value: empty means the defaults; otherwise JSON in the config's bounds.
    pub(super) fn parse(value: &[u8]) -> Result<Settings, String> {
        if value.iter().all(u8::is_ascii_whitespace) {
            return Ok(Settings {
                weight: 1,
                max_connections: None,
            });
        }
        let s: Settings = serde_json::from_slice(value).map_err(|e| format!("bad JSON: {e}"))?;
        if !(1..=crate::balance::MAX_WEIGHT).contains(&s.weight) {
            return Err(format!(
                "weight must be 1-{}, found {}",
                crate::balance::MAX_WEIGHT,
                s.weight
            ));
        }
        if s.max_connections
            .is_some_and(|n| !(1..=1_000_000).contains(&n))
        {
            return Err("max_connections must be 1-1000000".into());
        }
        Ok(s)
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct View {
    /// (pool, url) -> the admin API's change.
    pub changes: BTreeMap<(String, String), Change>,
    /// (pool, url) -> enabled (false: drained).
    pub enabled: BTreeMap<(String, String), bool>,
    /// discovery prefix -> backend URL -> settings.
    pub discovered: BTreeMap<String, BTreeMap<String, Settings>>,
    /// node name -> what it registered.
    pub nodes: BTreeMap<String, Value>,
}

/// What one key's put or delete changed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Effect {
    /// The pools change: build a new snapshot.
    Pools,
    /// Only drain flags changed: no new snapshot needed.
    Enabled,
    Nodes,
    /// A cache purge to run (a put under `purge/`).
    Purge,
    None,
}

/// `127.0.0.1:3001` or `http://127.0.0.1:3001` (a discovery key's last part) as a backend URL.
pub(super) fn discovered_url(address: &str) -> Result<String, String> {
    let url = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    crate::config::parse_backend_url(&url)?;
    Ok(url)
}

impl View {
    /// Applies one key's new value (`None`: deleted). `discovery` are the watched discovery
    /// prefixes. Bad values are logged and skipped: one bad key must not stop the others.
    pub(super) fn set(
        &mut self,
        prefix: &str,
        discovery: &[String],
        key: &str,
        value: Option<&[u8]>,
    ) -> Effect {
        let mut effect = Effect::None;
        for d in discovery {
            let Some(address) = key.strip_prefix(d.as_str()) else {
                continue;
            };
            if address.is_empty() || address.contains('/') {
                continue;
            }
            let list = self.discovered.entry(d.clone()).or_default();
            let url = match discovered_url(address) {
                Ok(url) => url,
                Err(e) => {
                    log::warn!("etcd discovery: key {key:?} is not a backend address: {e}");
                    continue;
                }
            };
            let changed = match value.map(Settings::parse) {
                None => list.remove(&url).is_some(),
                Some(Ok(s)) => list.insert(url, s) != Some(s),
                Some(Err(e)) => {
                    log::warn!("etcd discovery: key {key:?}: {e}; ignored");
                    list.remove(&url).is_some()
                }
            };
            if changed {
                effect = Effect::Pools;
            }
        }
        let Some(entry) = layout::parse(prefix, key) else {
            return effect;
        };
        match entry {
            Entry::Backend { pool, url } => {
                let parsed = value.map(serde_json::from_slice::<Change>);
                let changed = match parsed {
                    None => self.changes.remove(&(pool, url)).is_some(),
                    Some(Ok(c)) => self.changes.insert((pool, url), c.clone()) != Some(c),
                    Some(Err(e)) => {
                        log::warn!("cluster state: key {key:?}: {e}; ignored");
                        false
                    }
                };
                if changed {
                    effect = Effect::Pools;
                }
            }
            Entry::Enabled { pool, url } => {
                #[derive(Deserialize)]
                struct Enabled {
                    enabled: bool,
                }
                match value.map(serde_json::from_slice::<Enabled>) {
                    None => {
                        self.enabled.remove(&(pool, url));
                    }
                    Some(Ok(e)) => {
                        self.enabled.insert((pool, url), e.enabled);
                    }
                    Some(Err(e)) => log::warn!("cluster state: key {key:?}: {e}; ignored"),
                }
                if effect == Effect::None {
                    effect = Effect::Enabled;
                }
            }
            Entry::Node(name) => {
                match value.map(serde_json::from_slice::<Value>) {
                    None => {
                        self.nodes.remove(&name);
                    }
                    Some(Ok(v)) => {
                        self.nodes.insert(name, v);
                    }
                    Some(Err(e)) => log::warn!("node registry: key {key:?}: {e}; ignored"),
                }
                effect = Effect::Nodes;
            }
            Entry::Purge if value.is_some() => effect = Effect::Purge,
            Entry::Purge => {}
        }
        effect
    }

    /// The config file's pools with etcd's changes: removed backends left out, added and
    /// discovered ones appended (after the file's, so the file's order and indices stay).
    pub(super) fn apply_to(&self, config: &mut Config) {
        let mut discovery: BTreeMap<usize, &str> = BTreeMap::new();
        for d in &config.domains {
            let (Some(prefix), Action::Proxy { pool, .. }) = (
                d.discovery.as_ref().and_then(|x| x.etcd.as_deref()),
                &d.handling.action,
            ) else {
                continue;
            };
            discovery.insert(*pool, prefix);
        }
        for (index, pool) in config.pools.iter_mut().enumerate() {
            let name = pool.name.clone();
            let removed = |url: &str| {
                matches!(
                    self.changes.get(&(name.clone(), url.to_string())),
                    Some(Change::Removed { .. })
                )
            };
            pool.backends.retain(|b| !removed(&b.url));
            let added = self
                .changes
                .range((name.clone(), String::new())..)
                .take_while(|((p, _), _)| *p == name)
                .filter_map(|((_, url), c)| match c {
                    Change::Added(s) => Some((url, *s, "admin API (etcd)")),
                    Change::Removed { .. } => None,
                });
            let found = discovery
                .get(&index)
                .and_then(|p| self.discovered.get(*p))
                .into_iter()
                .flatten()
                .filter(|(url, _)| !removed(url))
                .map(|(url, s)| (url, *s, "etcd discovery"));
            for (url, s, origin) in added.chain(found).collect::<Vec<_>>() {
                if pool.backends.iter().any(|b| &b.url == url) {
                    continue;
                }
                let Ok((scheme, host, port)) = crate::config::parse_backend_url(url) else {
                    log::warn!("{origin}: {url:?} is not a backend URL; ignored");
                    continue;
                };
                pool.backends.push(BackendConfig {
                    url: url.clone(),
                    scheme,
                    host,
                    port,
                    weight: s.weight,
                    max_connections: s.max_connections,
                    pos: Pos::default(),
                    path: format!("{origin}: pool {name}"),
                });
            }
        }
    }

    /// Sets every backend's drain flag as etcd says (backends etcd says nothing of keep theirs).
    pub(super) fn apply_enabled(&self, snapshot: &Snapshot) {
        for pool in &snapshot.pools {
            for b in &pool.backends {
                if let Some(&on) = self.enabled.get(&(pool.name.clone(), b.config.url.clone())) {
                    b.set_enabled(on);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_and_discovery_read() {
        let mut v = View::default();
        let d = vec!["/services/shop/".to_string()];
        let k = layout::backend("/s/", "p", "http://10.0.0.1:80");
        assert_eq!(
            v.set("/s/", &d, &k, Some(br#"{"weight": 3}"#)),
            Effect::Pools
        );
        assert_eq!(
            v.changes.get(&("p".into(), "http://10.0.0.1:80".into())),
            Some(&Change::Added(Settings {
                weight: 3,
                max_connections: None
            }))
        );
        assert_eq!(
            v.set("/s/", &d, &k, Some(br#"{"removed": true}"#)),
            Effect::Pools
        );
        assert!(matches!(
            v.changes.values().next(),
            Some(Change::Removed { .. })
        ));
        assert_eq!(
            v.set("/s/", &d, "/services/shop/10.0.0.2:8080", Some(b"")),
            Effect::Pools
        );
        assert_eq!(
            v.set("/s/", &d, "/services/shop/10.0.0.2:8080", Some(b"")),
            Effect::None
        );
        assert_eq!(
            v.set(
                "/s/",
                &d,
                "/services/shop/10.0.0.3:1",
                Some(b"{\"weight\": 0}")
            ),
            Effect::None
        );
        assert_eq!(v.discovered["/services/shop/"].len(), 1);
        assert_eq!(
            v.set("/s/", &d, "/services/shop/10.0.0.2:8080", None),
            Effect::Pools
        );
        assert!(v.discovered["/services/shop/"].is_empty());
    }
}
