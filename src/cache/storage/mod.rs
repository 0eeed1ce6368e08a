//! The memory [`Storage`] behind pingora-cache, with its hit and miss handlers.
//!
//! Layout:
//! - **Index**: 64 shards of `RwLock<HashMap<u64, Vec<Arc<Entry>>>>`, keyed by the first 8 bytes
//!   of the primary hash. A slot holds every variant (Vary) of one URL, so a URL is invalidated
//!   with one hash lookup. A hit takes one shard read lock for as long as an `Arc` clone.
//! - **Every hit checks the full key**: the 128-bit primary hash, the variance and the primary
//!   key bytes themselves, so neither a 64-bit nor a 128-bit collision can serve the wrong body.
//! - **Eviction order**: `pingora-lru` (16 shards, byte-weighted) holds the recency of every
//!   entry; a hit promotes in its shard only. Eviction takes the least recently used of the
//!   shard tails, which gives global LRU order. TinyUFO was not used: its weights are `u16`,
//!   which cannot carry byte sizes, and its admission may reject a fresh fill.
//! - **Exact budgets**: every change to the set of entries (admission, eviction, purge, meta
//!   update) runs under one writer mutex that also owns the byte and entry counts. Room is made
//!   before an entry is published, so `bytes <= max_bytes` and `entries <= max_entries` hold at
//!   every instant, however many fills finish at once. Readers never take that mutex.
//! - **No partial writes are visible**: a fill buffers its body and publishes the whole entry
//!   in `finish`; a fill dropped before that leaves nothing behind.
//!
//! An entry's weight is its body, its gzip copy, its serialized meta and key, plus a fixed
//! overhead for the bookkeeping around it.

use std::any::Any;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use once_cell::sync::Lazy;
use pingora::cache::key::{CacheHashKey, CompactCacheKey, HashBinary};
use pingora::cache::storage::{HandleHit, HandleMiss, MissFinishType};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{
    CacheKey, CacheMeta, HitHandler, MissHandler, PurgeOutcome, PurgeTarget, PurgeType, Storage,
};
use pingora::http::ResponseHeader;
use pingora::{Error, ErrorType, Result};
use pingora_lru::Lru;

use super::key::{self, KeyParts};
use super::precompress::{self, Precompress};
use super::stats::{CacheStats, Counters};

const INDEX_SHARDS: usize = 64;
const LRU_SHARDS: usize = 16;
/// Bookkeeping around an entry (Arc, index and LRU nodes), counted in its weight.
pub(crate) const ENTRY_OVERHEAD: usize = 256;

/// Raised by a fill that the storage refuses (larger than its limit or the whole budget).
pub(crate) const ERR_TOO_LARGE: ErrorType = ErrorType::Custom("cache-entry-too-large");

mod fill;
mod hit;
mod meta;
#[cfg(test)]
mod tests;

use fill::Fill;
pub(crate) use fill::FillOptions;
pub(crate) use hit::Hit;
pub(crate) use meta::Entry;
pub use meta::StoredMeta;

fn weight_of(primary: &[u8], meta: &StoredMeta, body: &Bytes, gzip: Option<&Bytes>) -> usize {
    primary.len() + meta.size + body.len() + gzip.map_or(0, Bytes::len) + ENTRY_OVERHEAD
}

/// The index key: the hash is already uniform, so it is used as is.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Slots = HashMap<u64, Vec<Arc<Entry>>, BuildHasherDefault<IdHasher>>;

/// Byte and entry budgets and the current use, owned by the writer lock.
struct Budget {
    max_bytes: u64,
    max_entries: u64,
    bytes: u64,
    entries: u64,
}

/// The in-memory response cache storage.
pub struct MemoryStore {
    index: Box<[RwLock<Slots>]>,
    lru: Lru<Arc<Entry>, LRU_SHARDS>,
    writer: Mutex<Budget>,
    /// Mirrors of the budget for lock-free reads (stats, metrics).
    bytes: AtomicU64,
    entries: AtomicU64,
    max_bytes: AtomicU64,
    max_entries: AtomicU64,
    next_id: AtomicU64,
    clock: AtomicU64,
    /// Hits, misses and the rest, for `/cache/stats`.
    pub counters: Counters,
}

fn slot_of(primary_hash: &HashBinary) -> u64 {
    u64::from_le_bytes(primary_hash[..8].try_into().expect("16-byte hash"))
}

impl MemoryStore {
    /// A store bounded by bytes and entries.
    pub fn new(max_bytes: u64, max_entries: u64) -> MemoryStore {
        MemoryStore {
            index: (0..INDEX_SHARDS)
                .map(|_| RwLock::new(Slots::default()))
                .collect(),
            lru: Lru::with_capacity(usize::MAX, 64),
            writer: Mutex::new(Budget {
                max_bytes,
                max_entries,
                bytes: 0,
                entries: 0,
            }),
            bytes: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            max_bytes: AtomicU64::new(max_bytes),
            max_entries: AtomicU64::new(max_entries),
            next_id: AtomicU64::new(1),
            clock: AtomicU64::new(1),
            counters: Counters::default(),
        }
    }

    fn shard(&self, slot: u64) -> &RwLock<Slots> {
        &self.index[(slot % INDEX_SHARDS as u64) as usize]
    }

    fn lock(&self) -> MutexGuard<'_, Budget> {
        // A panic while holding it cannot leave the counts half-updated (each update is
        // written after the structural change it describes), so poisoning is ignored.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self, e: &Entry) {
        e.last_access
            .store(self.clock.fetch_add(1, Relaxed), Relaxed);
        self.lru.promote(e.id);
    }

    /// Current occupancy and counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats::from_counters(
            &self.counters,
            self.entries.load(Relaxed),
            self.bytes.load(Relaxed),
            self.max_entries.load(Relaxed),
            self.max_bytes.load(Relaxed),
        )
    }

    /// Changes the budgets, evicting down to them at once.
    pub fn set_limits(&self, max_bytes: u64, max_entries: u64) {
        let mut b = self.lock();
        b.max_bytes = max_bytes;
        b.max_entries = max_entries;
        self.max_bytes.store(max_bytes, Relaxed);
        self.max_entries.store(max_entries, Relaxed);
        while b.bytes > b.max_bytes || b.entries > b.max_entries {
            if !self.evict_one(&mut b) {
                break;
            }
        }
    }

    /// The stored entry for `key`, full key checked. Promotes it.
    pub fn find(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        let primary_hash = key.primary_bin();
        let slot = slot_of(&primary_hash);
        let found = {
            let shard = self.shard(slot).read().unwrap_or_else(|e| e.into_inner());
            shard
                .get(&slot)
                .and_then(|v| v.iter().find(|e| e.matches(key, &primary_hash)).cloned())
        }?;
        self.touch(&found);
        Some(found)
    }

    /// A hit: the entry's meta and a handler reading its body.
    pub fn hit(&self, key: &CacheKey) -> Result<Option<(CacheMeta, Hit)>> {
        let Some(entry) = self.find(key) else {
            return Ok(None);
        };
        let meta = entry.meta.to_meta()?;
        Ok(Some((meta, Hit::new(entry))))
    }

    /// Publishes a complete entry, making room first. Replaces the entry for the same key.
    pub fn insert(
        &self,
        primary: Box<[u8]>,
        primary_hash: HashBinary,
        variance: Option<HashBinary>,
        meta: StoredMeta,
        body: Bytes,
    ) -> Result<Arc<Entry>> {
        let weight = weight_of(&primary, &meta, &body, None);
        let entry = Arc::new(Entry {
            id: self.next_id.fetch_add(1, Relaxed),
            primary_hash,
            variance,
            primary,
            meta,
            body,
            gzip: None,
            weight,
            last_access: AtomicU64::new(self.clock.fetch_add(1, Relaxed)),
        });
        let mut b = self.lock();
        if weight as u64 > b.max_bytes {
            drop(b);
            self.counters.rejected.fetch_add(1, Relaxed);
            return Error::e_explain(
                ERR_TOO_LARGE,
                format!("entry of {weight} bytes exceeds the cache's max_bytes"),
            );
        }
        let slot = slot_of(&primary_hash);
        // The previous entry for this exact key (same URL and variant) makes way first.
        let previous: Vec<Arc<Entry>> = {
            let shard = self.shard(slot).read().unwrap_or_else(|e| e.into_inner());
            shard
                .get(&slot)
                .map(|v| {
                    v.iter()
                        .filter(|e| {
                            e.primary_hash == primary_hash
                                && e.variance == variance
                                && e.primary == entry.primary
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        };
        for old in previous {
            self.unlink(&mut b, &old);
        }
        while b.bytes + weight as u64 > b.max_bytes || b.entries + 1 > b.max_entries {
            if !self.evict_one(&mut b) {
                drop(b);
                self.counters.rejected.fetch_add(1, Relaxed);
                return Error::e_explain(ERR_TOO_LARGE, "no room in the cache");
            }
        }
        self.shard(slot)
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(slot)
            .or_default()
            .push(entry.clone());
        self.lru.admit(entry.id, entry.clone(), weight);
        self.account(&mut b, weight as i64, 1);
        drop(b);
        self.counters.stored.fetch_add(1, Relaxed);
        Ok(entry)
    }

    fn account(&self, b: &mut Budget, bytes: i64, entries: i64) {
        b.bytes = b.bytes.saturating_add_signed(bytes);
        b.entries = b.entries.saturating_add_signed(entries);
        self.bytes.store(b.bytes, Relaxed);
        self.entries.store(b.entries, Relaxed);
    }

    /// Removes `entry` from the index and the LRU. Caller holds the writer lock.
    fn unlink(&self, b: &mut Budget, entry: &Entry) -> bool {
        let slot = slot_of(&entry.primary_hash);
        let removed = {
            let mut shard = self.shard(slot).write().unwrap_or_else(|e| e.into_inner());
            let Some(v) = shard.get_mut(&slot) else {
                return false;
            };
            let before = v.len();
            v.retain(|e| e.id != entry.id);
            let removed = v.len() != before;
            if v.is_empty() {
                shard.remove(&slot);
            }
            removed
        };
        if removed {
            self.lru.remove(entry.id);
            self.account(b, -(entry.weight as i64), -1);
        }
        removed
    }

    /// Evicts the least recently used entry. Caller holds the writer lock.
    fn evict_one(&self, b: &mut Budget) -> bool {
        let oldest = (0..LRU_SHARDS)
            .filter_map(|s| self.lru.peek_lru(s))
            .min_by_key(|(e, _)| e.last_access.load(Relaxed));
        let Some((victim, _)) = oldest else {
            return false;
        };
        if self.unlink(b, &victim) {
            self.counters.evictions.fetch_add(1, Relaxed);
        } else {
            // In the LRU but not the index cannot happen under the writer lock; heal anyway.
            self.lru.remove(victim.id);
        }
        true
    }

    /// Replaces the meta of the entry for `key` (a 304 revalidation). `false` if gone.
    pub fn replace_meta(&self, key: &CacheKey, meta: StoredMeta) -> bool {
        let primary_hash = key.primary_bin();
        let mut b = self.lock();
        let Some(old) = self.find_locked(key, &primary_hash) else {
            return false;
        };
        let next = Arc::new(old.with(meta, old.gzip.clone()));
        self.replace(&mut b, &old, next);
        true
    }

    /// Adds the gzip copy to entry `id` if it is still stored and there is room for it.
    pub fn attach_gzip(&self, target: &Arc<Entry>, gzip: Bytes) -> bool {
        let mut b = self.lock();
        let slot = slot_of(&target.primary_hash);
        let current = {
            let shard = self.shard(slot).read().unwrap_or_else(|e| e.into_inner());
            shard
                .get(&slot)
                .and_then(|v| v.iter().find(|e| e.id == target.id).cloned())
        };
        let Some(current) = current else {
            return false;
        };
        let next = Arc::new(current.with(current.meta.clone(), Some(gzip)));
        let extra = (next.weight - current.weight) as u64;
        // Room for the copy comes from other entries, never from the one it belongs to.
        self.lru.promote(current.id);
        current
            .last_access
            .store(self.clock.fetch_add(1, Relaxed), Relaxed);
        while b.bytes + extra > b.max_bytes {
            let oldest = (0..LRU_SHARDS)
                .filter_map(|s| self.lru.peek_lru(s))
                .filter(|(e, _)| e.id != current.id)
                .min_by_key(|(e, _)| e.last_access.load(Relaxed));
            let Some((victim, _)) = oldest else {
                return false;
            };
            if self.unlink(&mut b, &victim) {
                self.counters.evictions.fetch_add(1, Relaxed);
            }
        }
        self.replace(&mut b, &current, next);
        true
    }

    fn find_locked(&self, key: &CacheKey, primary_hash: &HashBinary) -> Option<Arc<Entry>> {
        let slot = slot_of(primary_hash);
        let shard = self.shard(slot).read().unwrap_or_else(|e| e.into_inner());
        shard
            .get(&slot)
            .and_then(|v| v.iter().find(|e| e.matches(key, primary_hash)).cloned())
    }

    /// Swaps `old` for `next` (same id) in place. Caller holds the writer lock.
    fn replace(&self, b: &mut Budget, old: &Arc<Entry>, next: Arc<Entry>) {
        let slot = slot_of(&old.primary_hash);
        {
            let mut shard = self.shard(slot).write().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = shard
                .get_mut(&slot)
                .and_then(|v| v.iter_mut().find(|e| e.id == old.id))
            {
                *e = next.clone();
            }
        }
        let delta = next.weight as i64 - old.weight as i64;
        self.lru.admit(next.id, next.clone(), next.weight);
        self.account(b, delta, 0);
        // A grown meta may push the total over; shrink others (never below this entry).
        while b.bytes > b.max_bytes {
            let oldest = (0..LRU_SHARDS)
                .filter_map(|s| self.lru.peek_lru(s))
                .filter(|(e, _)| e.id != next.id)
                .min_by_key(|(e, _)| e.last_access.load(Relaxed));
            let Some((victim, _)) = oldest else { break };
            if self.unlink(b, &victim) {
                self.counters.evictions.fetch_add(1, Relaxed);
            }
        }
    }

    /// Removes every entry whose key satisfies `pred`. Returns how many.
    /// One index shard at a time, so a purge of a big cache never holds up fills for long;
    /// entries stored while it runs may survive it.
    pub fn remove_where(&self, mut pred: impl FnMut(&Entry) -> bool) -> usize {
        let mut n = 0;
        for shard in self.index.iter() {
            let mut b = self.lock();
            let mut victims: Vec<Arc<Entry>> = Vec::new();
            {
                let shard = shard.read().unwrap_or_else(|e| e.into_inner());
                for v in shard.values() {
                    victims.extend(v.iter().filter(|e| pred(e)).cloned());
                }
            }
            n += victims.iter().filter(|e| self.unlink(&mut b, e)).count();
        }
        self.counters.purged.fetch_add(n as u64, Relaxed);
        n
    }

    /// Every variant stored under this primary key, without promoting them (`POST /explain`
    /// looks, it does not use).
    pub fn peek_primary(&self, primary: &[u8]) -> Vec<Arc<Entry>> {
        let primary_hash = CacheKey::new(primary.to_vec(), "").primary_bin();
        let slot = slot_of(&primary_hash);
        let shard = self.shard(slot).read().unwrap_or_else(|e| e.into_inner());
        shard
            .get(&slot)
            .map(|v| {
                v.iter()
                    .filter(|e| e.primary_hash == primary_hash && *e.primary == *primary)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes every variant stored under this primary key. Returns how many.
    pub fn remove_primary(&self, primary: &[u8]) -> usize {
        let mut b = self.lock();
        let victims = self.peek_primary(primary);
        let n = victims.iter().filter(|e| self.unlink(&mut b, e)).count();
        drop(b);
        self.counters.purged.fetch_add(n as u64, Relaxed);
        n
    }

    /// Removes the entry a Pingora purge targets (hash identity only).
    fn remove_compact(&self, key: &CompactCacheKey) -> bool {
        let slot = slot_of(&key.primary);
        let mut b = self.lock();
        let victim = {
            let shard = self.shard(slot).read().unwrap_or_else(|e| e.into_inner());
            shard
                .get(&slot)
                .and_then(|v| v.iter().find(|e| e.matches_compact(key)).cloned())
        };
        match victim {
            Some(v) => self.unlink(&mut b, &v),
            None => false,
        }
    }
}

#[async_trait]
impl Storage for MemoryStore {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        Ok(self
            .hit(key)?
            .map(|(meta, hit)| (meta, Box::new(hit) as HitHandler)))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let stored = StoredMeta::of(meta)?;
        let options = key
            .extensions
            .get::<FillOptions>()
            .copied()
            .unwrap_or_default();
        let precompress = options.precompress.filter(|p| {
            precompress::eligible(meta.response_header())
                && precompress::big_enough(p, content_length(meta))
        });
        Ok(Box::new(Fill {
            store: self,
            primary: key.primary_key().into(),
            primary_hash: key.primary_bin(),
            variance: key.variance_bin(),
            meta: stored,
            body: Vec::new(),
            size: 0,
            limit: options.max_body_bytes.unwrap_or(u64::MAX),
            overflowed: false,
            precompress,
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        Ok(if self.remove_compact(target.key()) {
            PurgeOutcome::Purged(None)
        } else {
            PurgeOutcome::NotFound
        })
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        Ok(self.replace_meta(key, StoredMeta::of(meta)?))
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

fn content_length(meta: &CacheMeta) -> Option<u64> {
    meta.headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}
