//! What is stored per entry: the serialised meta and the entry itself.

use super::*;

/// A stored meta: the serialized internal part and the parsed header. Hits rebuild the
/// `CacheMeta` from a clone of the header and, for a meta never revalidated, its fields
/// ([`Fields`]); otherwise from the internal bytes. `CacheMeta` is not `Clone`, and
/// decoding its MessagePack on every hit was 5.4k of a hit's 64k instructions.
#[derive(Clone)]
pub struct StoredMeta {
    pub(super) internal: Box<[u8]>,
    pub(super) fields: Option<Fields>,
    pub(super) header: ResponseHeader,
    /// Serialized size of both parts, counted in the entry's weight.
    pub(super) size: usize,
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
pub(super) struct Fields {
    pub(super) fresh_until: SystemTime,
    pub(super) created: SystemTime,
    pub(super) stale_while_revalidate_sec: u32,
    pub(super) stale_if_error_sec: u32,
    pub(super) variance: Option<HashBinary>,
    pub(super) epoch_override: Option<SystemTime>,
}

impl Fields {
    pub(super) fn of(meta: &CacheMeta) -> Option<Fields> {
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

    pub(super) fn rebuild(&self, header: ResponseHeader) -> CacheMeta {
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

pub struct Entry {
    pub(super) id: u64,
    pub(super) primary_hash: HashBinary,
    pub(super) variance: Option<HashBinary>,
    pub(super) primary: Box<[u8]>,
    pub(super) meta: StoredMeta,
    pub(super) body: Bytes,
    pub(super) gzip: Option<Bytes>,
    pub(super) weight: usize,
    pub(super) last_access: AtomicU64,
}

impl Entry {
    pub(super) fn matches(&self, key: &CacheKey, primary_hash: &HashBinary) -> bool {
        self.primary_hash == *primary_hash
            && self.variance == key.variance_bin()
            && *self.primary == *key.primary_key()
    }

    pub(super) fn matches_compact(&self, key: &CompactCacheKey) -> bool {
        self.primary_hash == key.primary && self.variance == key.variance.as_deref().copied()
    }

    pub fn parts(&self) -> Option<KeyParts<'_>> {
        key::parse(&self.primary)
    }

    /// At `now`: when the stored response stops being fresh, and whether it may be served
    /// stale while revalidating, and if the origin fails.
    pub fn freshness(&self, now: SystemTime) -> Option<(SystemTime, bool, bool)> {
        let meta = self.meta.to_meta().ok()?;
        Some((
            meta.fresh_until(),
            meta.serve_stale_while_revalidate(now),
            meta.serve_stale_if_error(now),
        ))
    }

    /// Whether the entry is one `Vary` variant among several possible.
    pub fn is_variant(&self) -> bool {
        self.variance().is_some()
    }

    pub fn weight(&self) -> usize {
        self.weight
    }

    /// The `Vary` secondary key of the request it answers, if any. Pingora stores the first
    /// variant fetched under the bare primary key (its key carries no variance) and keeps the
    /// variance in the meta; a lookup serves it only when the request's variance equals the
    /// meta's, so the meta's is the one that counts.
    pub fn variance(&self) -> Option<HashBinary> {
        self.variance.or_else(|| match &self.meta.fields {
            Some(f) => f.variance,
            None => self.meta.to_meta().ok().and_then(|m| m.variance()),
        })
    }

    /// The stored response's header (its `Vary` names the secondary key's fields).
    pub fn response_header(&self) -> &ResponseHeader {
        &self.meta.header
    }

    pub fn has_gzip(&self) -> bool {
        self.gzip.is_some()
    }

    pub(super) fn with(&self, meta: StoredMeta, gzip: Option<Bytes>) -> Entry {
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
