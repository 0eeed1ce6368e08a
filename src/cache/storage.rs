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

/// A stored meta: the serialized internal part and the parsed header. Hits rebuild the
/// `CacheMeta` from a clone of the header and, for a meta never revalidated, its fields
/// ([`Fields`]); otherwise from the internal bytes. `CacheMeta` is not `Clone`, and
/// decoding its MessagePack on every hit was 5.4k of a hit's 64k instructions.
#[derive(Clone)]
pub struct StoredMeta {
    internal: Box<[u8]>,
    fields: Option<Fields>,
    header: ResponseHeader,
    /// Serialized size of both parts, counted in the entry's weight.
    size: usize,
}

/// A serialized empty header: the placeholder `CacheMeta::deserialize` parses on hits.
static EMPTY_HEADER: Lazy<Vec<u8>> = Lazy::new(|| {
    let now = SystemTime::now();
    match ResponseHeader::build(200, Some(0)) {
        Ok(header) => CacheMeta::new(now, now, 0, 0, header)
            .serialize()
            .map(|(_, h)| h)
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
});

/// What `CacheMeta::new` and its public setters can rebuild exactly: a meta whose `updated`
/// and provenance are still its `created` (no 304 merge yet; those set `updated`, which has
/// no setter).
#[derive(Clone, Copy)]
struct Fields {
    fresh_until: SystemTime,
    created: SystemTime,
    stale_while_revalidate_sec: u32,
    stale_if_error_sec: u32,
    variance: Option<HashBinary>,
    epoch_override: Option<SystemTime>,
}

impl Fields {
    fn of(meta: &CacheMeta) -> Option<Fields> {
        let created = meta.created();
        (meta.updated() == created && meta.provenance() == created).then(|| Fields {
            fresh_until: meta.fresh_until(),
            created,
            stale_while_revalidate_sec: meta.stale_while_revalidate_sec(),
            stale_if_error_sec: meta.stale_if_error_sec(),
            variance: meta.variance(),
            epoch_override: meta.epoch_override(),
        })
    }

    fn rebuild(&self, header: ResponseHeader) -> CacheMeta {
        let mut meta = CacheMeta::new(
            self.fresh_until,
            self.created,
            self.stale_while_revalidate_sec,
            self.stale_if_error_sec,
            header,
        );
        if let Some(variance) = self.variance {
            meta.set_variance(variance);
        }
        if let Some(epoch) = self.epoch_override {
            meta.set_epoch_override(epoch);
        }
        meta
    }
}

impl StoredMeta {
    /// The stored form of Pingora's meta.
    pub fn of(meta: &CacheMeta) -> Result<StoredMeta> {
        let (internal, header) = meta.serialize()?;
        Ok(StoredMeta {
            size: internal.len() + header.len(),
            internal: internal.into(),
            fields: Fields::of(meta),
            header: meta.response_header().clone(),
        })
    }

    /// Pingora's meta again.
    pub fn to_meta(&self) -> Result<CacheMeta> {
        if let Some(fields) = &self.fields {
            return Ok(fields.rebuild(self.header.clone()));
        }
        let mut meta = CacheMeta::deserialize(&self.internal, &EMPTY_HEADER)?;
        *meta.response_header_mut() = self.header.clone();
        Ok(meta)
    }
}

/// What a fill carries in `CacheKey::extensions`: set by the request phase.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FillOptions {
    /// Largest body this fill may store.
    pub max_body_bytes: Option<u64>,
    pub precompress: Option<Precompress>,
}

pub struct Entry {
    id: u64,
    primary_hash: HashBinary,
    variance: Option<HashBinary>,
    primary: Box<[u8]>,
    meta: StoredMeta,
    body: Bytes,
    gzip: Option<Bytes>,
    weight: usize,
    last_access: AtomicU64,
}

impl Entry {
    fn matches(&self, key: &CacheKey, primary_hash: &HashBinary) -> bool {
        self.primary_hash == *primary_hash
            && self.variance == key.variance_bin()
            && *self.primary == *key.primary_key()
    }

    fn matches_compact(&self, key: &CompactCacheKey) -> bool {
        self.primary_hash == key.primary && self.variance == key.variance.as_deref().copied()
    }

    pub fn parts(&self) -> Option<KeyParts<'_>> {
        key::parse(&self.primary)
    }

    pub fn weight(&self) -> usize {
        self.weight
    }

    pub fn has_gzip(&self) -> bool {
        self.gzip.is_some()
    }

    fn with(&self, meta: StoredMeta, gzip: Option<Bytes>) -> Entry {
        let weight = weight_of(&self.primary, &meta, &self.body, gzip.as_ref());
        Entry {
            id: self.id,
            primary_hash: self.primary_hash,
            variance: self.variance,
            primary: self.primary.clone(),
            meta,
            body: self.body.clone(),
            gzip,
            weight,
            last_access: AtomicU64::new(self.last_access.load(Relaxed)),
        }
    }
}

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

    /// Removes every variant stored under this primary key. Returns how many.
    pub fn remove_primary(&self, primary: &[u8]) -> usize {
        let primary_hash = CacheKey::new(primary.to_vec(), "").primary_bin();
        let slot = slot_of(&primary_hash);
        let mut b = self.lock();
        let victims: Vec<Arc<Entry>> = {
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
        };
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

/// Reads a stored body: the identity body (seekable for ranges) or, once selected, its gzip
/// copy. Bodies are `Bytes` slices of the stored entry: no copy.
pub struct Hit {
    entry: Arc<Entry>,
    gzip: bool,
    done: bool,
    start: usize,
    end: usize,
}

impl Hit {
    fn new(entry: Arc<Entry>) -> Hit {
        let end = entry.body.len();
        Hit {
            entry,
            gzip: false,
            done: false,
            start: 0,
            end,
        }
    }

    /// Serve the gzip copy instead of the identity body. Returns its length, or `None` (and
    /// changes nothing) when the entry has no gzip copy.
    pub fn use_gzip(&mut self) -> Option<usize> {
        let len = self.entry.gzip.as_ref()?.len();
        self.gzip = true;
        self.start = 0;
        self.end = len;
        Some(len)
    }

    /// The next body chunk (the whole remaining body at once).
    pub fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        self.done = true;
        let body = if self.gzip {
            self.entry.gzip.as_ref()?
        } else {
            &self.entry.body
        };
        Some(body.slice(self.start..self.end))
    }
}

#[async_trait]
impl HandleHit for Hit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        Ok(self.next_chunk())
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        !self.gzip
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.entry.body.len();
        if self.gzip || start >= len {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("seek {start} out of range 0..{len}"),
            );
        }
        self.start = start;
        self.end = end.map_or(len, |e| e.min(len));
        self.done = false;
        Ok(())
    }

    fn get_eviction_weight(&self) -> usize {
        self.entry.weight
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

/// A fill in progress: buffers the body, publishes the entry in `finish`. Dropped without
/// `finish` (origin error, client gone, too large), it leaves nothing behind.
struct Fill {
    store: &'static MemoryStore,
    primary: Box<[u8]>,
    primary_hash: HashBinary,
    variance: Option<HashBinary>,
    meta: StoredMeta,
    body: Vec<Bytes>,
    size: u64,
    limit: u64,
    overflowed: bool,
    precompress: Option<Precompress>,
}

#[async_trait]
impl HandleMiss for Fill {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        // An error here would fail the client's response; an oversized body is refused in
        // `finish` instead and keeps streaming to the client.
        if self.overflowed {
            return Ok(());
        }
        self.size += data.len() as u64;
        if self.size > self.limit {
            self.overflowed = true;
            self.body = Vec::new();
        } else if !data.is_empty() {
            self.body.push(data);
        }
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let fill = *self;
        if fill.overflowed {
            fill.store.counters.rejected.fetch_add(1, Relaxed);
            return Error::e_explain(ERR_TOO_LARGE, format!("body over {} bytes", fill.limit));
        }
        let body = match fill.body.len() {
            0 => Bytes::new(),
            1 => fill.body.into_iter().next().unwrap_or_default(),
            _ => {
                let mut all = BytesMut::with_capacity(fill.size as usize);
                for chunk in &fill.body {
                    all.extend_from_slice(chunk);
                }
                all.freeze()
            }
        };
        let store = fill.store;
        let compress = fill
            .precompress
            .filter(|p| body.len() as u64 >= p.min_bytes);
        let entry = store.insert(
            fill.primary,
            fill.primary_hash,
            fill.variance,
            fill.meta,
            body,
        )?;
        let weight = entry.weight;
        if let Some(p) = compress {
            spawn_gzip(store, entry, p.level);
        }
        Ok(MissFinishType::Created(weight))
    }
}

/// Makes the gzip copy off the request path: the identity entry is already served meanwhile.
fn spawn_gzip(store: &'static MemoryStore, entry: Arc<Entry>, level: u32) {
    let job = move || {
        if let Some(gz) = precompress::gzip(&entry.body, level) {
            store.attach_gzip(&entry, gz);
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn_blocking(job);
        }
        Err(_) => job(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(host: &str, path: &str) -> CacheKey {
        CacheKey::new(key::primary("http", host, "GET", path), "")
    }

    fn meta() -> CacheMeta {
        let now = SystemTime::now();
        let mut h = ResponseHeader::build(200, None).unwrap();
        h.append_header("content-type", "text/plain").unwrap();
        CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, h)
    }

    fn leak(store: MemoryStore) -> &'static MemoryStore {
        Box::leak(Box::new(store))
    }

    fn put(store: &MemoryStore, k: &CacheKey, body: &[u8]) -> Result<Arc<Entry>> {
        store.insert(
            k.primary_key().into(),
            k.primary_bin(),
            k.variance_bin(),
            StoredMeta::of(&meta()).unwrap(),
            Bytes::copy_from_slice(body),
        )
    }

    fn body_of(store: &MemoryStore, k: &CacheKey) -> Option<Vec<u8>> {
        let (_, mut hit) = store.hit(k).unwrap()?;
        Some(hit.next_chunk().unwrap_or_default().to_vec())
    }

    static RT: Lazy<tokio::runtime::Runtime> = Lazy::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    });

    #[test]
    fn stores_and_finds_with_the_full_key() {
        let s = MemoryStore::new(1 << 20, 100);
        let k = key("a.test", "/x");
        put(&s, &k, b"hello").unwrap();
        assert_eq!(body_of(&s, &k).unwrap(), b"hello");
        assert!(body_of(&s, &key("b.test", "/x")).is_none());
        // Same hash, different key bytes: never served.
        let mut forged = CacheKey::new(b"something else".to_vec(), "");
        forged.set_primary_bin_override(k.primary_bin());
        assert!(s.hit(&forged).unwrap().is_none());
        let st = s.stats();
        assert_eq!(st.entries, 1);
        assert_eq!(st.bytes as usize, s.find(&k).unwrap().weight());
    }

    #[test]
    fn variants_live_side_by_side_and_go_together() {
        let s = MemoryStore::new(1 << 20, 100);
        let primary = key("a.test", "/v");
        let mut fr = key("a.test", "/v");
        fr.set_variance_key([1; 16]);
        let mut de = key("a.test", "/v");
        de.set_variance_key([2; 16]);
        put(&s, &primary, b"p").unwrap();
        put(&s, &fr, b"fr").unwrap();
        put(&s, &de, b"de").unwrap();
        assert_eq!(body_of(&s, &fr).unwrap(), b"fr");
        assert_eq!(body_of(&s, &de).unwrap(), b"de");
        assert_eq!(body_of(&s, &primary).unwrap(), b"p");
        assert_eq!(s.remove_primary(primary.primary_key()), 3);
        assert_eq!(s.stats().entries, 0);
        assert_eq!(s.stats().bytes, 0);
    }

    #[test]
    fn replacing_a_key_does_not_leak_budget() {
        let s = MemoryStore::new(1 << 20, 100);
        let k = key("a.test", "/r");
        put(&s, &k, &[0; 100]).unwrap();
        let w = put(&s, &k, &[0; 300]).unwrap().weight();
        assert_eq!(s.stats().entries, 1);
        assert_eq!(s.stats().bytes as usize, w);
        assert_eq!(body_of(&s, &k).unwrap().len(), 300);
    }

    #[test]
    fn eviction_is_least_recently_used_first() {
        let s = MemoryStore::new(1 << 20, 3);
        let keys: Vec<CacheKey> = (0..4).map(|i| key("a.test", &format!("/{i}"))).collect();
        for k in &keys[..3] {
            put(&s, k, b"x").unwrap();
        }
        // /0 is read, so /1 is now the least recently used.
        assert!(s.find(&keys[0]).is_some());
        put(&s, &keys[3], b"x").unwrap();
        assert!(s.find(&keys[1]).is_none(), "/1 should have been evicted");
        for i in [0, 2, 3] {
            assert!(s.find(&keys[i]).is_some(), "/{i} should still be cached");
        }
        assert_eq!(s.stats().evictions, 1);
        assert_eq!(s.stats().entries, 3);
    }

    #[test]
    fn oversized_entries_are_refused_and_budgets_shrink_on_demand() {
        let s = MemoryStore::new(2000, 100);
        assert!(put(&s, &key("a.test", "/big"), &[0; 3000]).is_err());
        for i in 0..5 {
            put(&s, &key("a.test", &format!("/{i}")), &[0; 300]).unwrap();
        }
        assert!(s.stats().bytes <= 2000);
        s.set_limits(1000, 100);
        assert!(s.stats().bytes <= 1000);
        s.set_limits(1 << 20, 1);
        assert_eq!(s.stats().entries, 1);
    }

    #[test]
    fn budget_is_never_exceeded_by_concurrent_writers() {
        use rand::Rng;
        use std::sync::atomic::AtomicBool;
        const MAX: u64 = 64 * 1024;
        let s: &'static MemoryStore = leak(MemoryStore::new(MAX, 1_000_000));
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut samples = 0u64;
                let mut peak = 0;
                while !stop.load(Relaxed) {
                    let b = s.stats().bytes;
                    peak = peak.max(b);
                    assert!(b <= MAX, "cache holds {b} bytes, over its {MAX}");
                    samples += 1;
                }
                (samples, peak)
            })
        };
        let writers: Vec<_> = (0..8)
            .map(|w| {
                std::thread::spawn(move || {
                    let mut rng = rand::thread_rng();
                    for i in 0..400 {
                        let size = rng.gen_range(0..8000);
                        let k = key("a.test", &format!("/{w}/{}", i % 50));
                        let _ = put(s, &k, &vec![7u8; size]);
                        let _ = s.find(&key(
                            "a.test",
                            &format!("/{}/{}", rng.gen_range(0..8), rng.gen_range(0..50)),
                        ));
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, Relaxed);
        let (samples, peak) = watcher.join().unwrap();
        assert!(samples > 0);
        assert!(
            peak > MAX / 2,
            "the test should have filled the cache (peak {peak})"
        );
        // The counts agree with what is actually indexed.
        let mut indexed = 0u64;
        let mut n = 0u64;
        for shard in s.index.iter() {
            for v in shard.read().unwrap().values() {
                for e in v {
                    indexed += e.weight as u64;
                    n += 1;
                }
            }
        }
        assert_eq!((indexed, n), (s.stats().bytes, s.stats().entries));
        assert_eq!(s.lru.len() as u64, n);
    }

    #[test]
    fn fills_publish_only_when_finished_and_respect_their_limit() {
        let s = leak(MemoryStore::new(1 << 20, 100));
        RT.block_on(async {
            let span = pingora::cache::trace::Span::inactive().handle();
            let k = key("a.test", "/fill");
            let mut miss = s.get_miss_handler(&k, &meta(), &span).await.unwrap();
            miss.write_body(Bytes::from_static(b"hel"), false)
                .await
                .unwrap();
            assert!(
                s.lookup(&k, &span).await.unwrap().is_none(),
                "partial write visible"
            );
            miss.write_body(Bytes::from_static(b"lo"), true)
                .await
                .unwrap();
            miss.finish().await.unwrap();
            assert_eq!(body_of(s, &k).unwrap(), b"hello");

            // A dropped fill leaves nothing.
            let k2 = key("a.test", "/dropped");
            let mut miss = s.get_miss_handler(&k2, &meta(), &span).await.unwrap();
            miss.write_body(Bytes::from_static(b"abc"), false)
                .await
                .unwrap();
            drop(miss);
            assert!(s.lookup(&k2, &span).await.unwrap().is_none());

            // Over its per-entry limit: refused at finish, never an error mid-stream.
            let mut k3 = key("a.test", "/limited");
            k3.extensions.insert(FillOptions {
                max_body_bytes: Some(4),
                precompress: None,
            });
            let mut miss = s.get_miss_handler(&k3, &meta(), &span).await.unwrap();
            miss.write_body(Bytes::from_static(b"abc"), false)
                .await
                .unwrap();
            miss.write_body(Bytes::from_static(b"def"), true)
                .await
                .unwrap();
            assert!(miss.finish().await.is_err());
            assert!(s.lookup(&k3, &span).await.unwrap().is_none());
        });
    }

    #[test]
    fn gzip_copies_are_attached_in_the_background() {
        let s = leak(MemoryStore::new(1 << 20, 100));
        let text = "compress me please ".repeat(100);
        RT.block_on(async {
            let span = pingora::cache::trace::Span::inactive().handle();
            let mut k = key("a.test", "/gz");
            k.extensions.insert(FillOptions {
                max_body_bytes: None,
                precompress: Some(Precompress {
                    level: 6,
                    min_bytes: 10,
                }),
            });
            let mut miss = s.get_miss_handler(&k, &meta(), &span).await.unwrap();
            miss.write_body(Bytes::from(text.clone()), true)
                .await
                .unwrap();
            miss.finish().await.unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !s.find(&k).unwrap().has_gzip() {
                assert!(std::time::Instant::now() < deadline, "no gzip copy");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let (_, mut hit) = s.hit(&key("a.test", "/gz")).unwrap().unwrap();
        let gz_len = hit.use_gzip().unwrap();
        let gz = hit.next_chunk().unwrap();
        assert_eq!(gz.len(), gz_len);
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out)
            .unwrap();
        assert_eq!(out, text);
        let e = s.find(&key("a.test", "/gz")).unwrap();
        assert_eq!(s.stats().bytes as usize, e.weight());
    }

    #[test]
    fn update_meta_keeps_the_body_and_the_budget_right() {
        let s = MemoryStore::new(1 << 20, 100);
        let k = key("a.test", "/m");
        put(&s, &k, b"body").unwrap();
        let mut m = meta();
        m.response_header_mut()
            .insert_header("x-version", "2")
            .unwrap();
        assert!(s.replace_meta(&k, StoredMeta::of(&m).unwrap()));
        let (stored, mut hit) = s.hit(&k).unwrap().unwrap();
        assert_eq!(stored.headers().get("x-version").unwrap(), "2");
        assert_eq!(hit.next_chunk().unwrap(), &b"body"[..]);
        assert_eq!(s.stats().bytes as usize, s.find(&k).unwrap().weight());
        assert!(!s.replace_meta(&key("a.test", "/nope"), StoredMeta::of(&meta()).unwrap()));
    }

    #[test]
    fn stored_meta_round_trips_every_field() {
        let now = SystemTime::now();
        let mut h = ResponseHeader::build(203, None).unwrap();
        h.append_header("etag", "\"e\"").unwrap();
        h.append_header("x-a", "1").unwrap();
        let mut m = CacheMeta::new(now + Duration::from_secs(9), now, 7, 8, h);
        m.set_variance([3; 16]);
        m.set_epoch_override(now - Duration::from_secs(30));
        let stored = StoredMeta::of(&m).unwrap();
        assert!(stored.fields.is_some(), "a fresh meta takes the fast path");
        assert_round_trip(&m, &stored.to_meta().unwrap());
        // A revalidated meta (`updated` moved) is decoded from its bytes.
        std::thread::sleep(Duration::from_millis(2));
        m.update_freshness(now + Duration::from_secs(60), 7, 8);
        let stored = StoredMeta::of(&m).unwrap();
        assert!(stored.fields.is_none());
        assert_round_trip(&m, &stored.to_meta().unwrap());
    }

    fn assert_round_trip(m: &CacheMeta, back: &CacheMeta) {
        assert_eq!(back.fresh_until(), m.fresh_until());
        assert_eq!(back.created(), m.created());
        assert_eq!(back.updated(), m.updated());
        assert_eq!(back.provenance(), m.provenance());
        assert_eq!(back.variance(), m.variance());
        assert_eq!(back.epoch_override(), m.epoch_override());
        assert_eq!(back.stale_while_revalidate_sec(), 7);
        assert_eq!(back.stale_if_error_sec(), 8);
        assert_eq!(back.response_header().status, 203);
        assert_eq!(back.headers(), m.headers());
        assert_eq!(back.serialize().unwrap(), m.serialize().unwrap());
    }

    #[test]
    fn seek_serves_ranges_of_the_identity_body() {
        let s = MemoryStore::new(1 << 20, 100);
        let k = key("a.test", "/range");
        put(&s, &k, b"0123456789").unwrap();
        let (_, mut hit) = s.hit(&k).unwrap().unwrap();
        assert!(hit.can_seek());
        hit.seek(2, Some(5)).unwrap();
        assert_eq!(hit.next_chunk().unwrap(), &b"234"[..]);
        assert!(hit.next_chunk().is_none());
        assert!(hit.seek(10, None).is_err());
    }
}
