//! A plugin's decision cache (`cache: { key: header:NAME, ttl }`): `continue` answers
//! remembered per value of one request header, for `ttl`, `max_entries` at most (the
//! oldest go first). Only `continue` is remembered: a refusal always asks again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Edits;
use crate::config::PluginCache;

pub(super) struct DecisionCache {
    header: http::HeaderName,
    ttl: Duration,
    max: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Key -> (when stored, edits).
    map: HashMap<Vec<u8>, (Instant, Arc<Edits>)>,
    /// Keys in the order stored (with when), for eviction; stale pairs are skipped.
    order: VecDeque<(Vec<u8>, Instant)>,
}

impl DecisionCache {
    pub(super) fn new(config: &PluginCache) -> DecisionCache {
        DecisionCache {
            // Validated as a token by the config decoder.
            header: http::HeaderName::from_bytes(config.header.as_bytes())
                .unwrap_or(http::header::AUTHORIZATION),
            ttl: config.ttl,
            max: config.max_entries.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    pub(super) fn header(&self) -> &http::HeaderName {
        &self.header
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<Arc<Edits>> {
        let mut inner = self.lock();
        let (at, edits) = inner.map.get(key)?;
        if at.elapsed() < self.ttl {
            return Some(Arc::clone(edits));
        }
        inner.map.remove(key);
        None
    }

    pub(super) fn put(&self, key: Vec<u8>, edits: Arc<Edits>) {
        let now = Instant::now();
        let mut inner = self.lock();
        while inner.map.len() >= self.max && !inner.map.contains_key(&key) {
            let Some((old, at)) = inner.order.pop_front() else {
                break;
            };
            if inner.map.get(&old).is_some_and(|(stored, _)| *stored == at) {
                inner.map.remove(&old);
            }
        }
        inner.map.insert(key.clone(), (now, edits));
        inner.order.push_back((key, now));
        // The order list only grows past the map by re-stored keys; keep it bounded too.
        if inner.order.len() > 2 * self.max {
            let Inner { map, order } = &mut *inner;
            order.retain(|(k, at)| map.get(k).is_some_and(|(stored, _)| stored == at));
        }
    }

    pub(super) fn len(&self) -> usize {
        self.lock().map.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(max: usize, ttl: Duration) -> DecisionCache {
        DecisionCache::new(&PluginCache {
            header: "authorization".into(),
            ttl,
            max_entries: max,
        })
    }

    #[test]
    fn remembers_for_ttl_and_evicts_the_oldest() {
        let c = cache(2, Duration::from_secs(60));
        let e = Arc::new(Edits::default());
        c.put(b"a".to_vec(), e.clone());
        c.put(b"b".to_vec(), e.clone());
        c.put(b"c".to_vec(), e.clone());
        assert_eq!(c.len(), 2);
        assert!(c.get(b"a").is_none());
        assert!(c.get(b"b").is_some() && c.get(b"c").is_some());
        for _ in 0..10 {
            c.put(b"c".to_vec(), e.clone());
        }
        assert_eq!(c.len(), 2);
        let expired = cache(10, Duration::ZERO);
        expired.put(b"a".to_vec(), e);
        assert!(expired.get(b"a").is_none());
    }
}
