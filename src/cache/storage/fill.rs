//! Storing a response (pingora-cache's miss handler): the body is buffered and published
//! whole in `finish`, and the gzip copy is made in the background.

use super::*;

/// What a fill carries in `CacheKey::extensions`: set by the request phase.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FillOptions {
    /// Largest body this fill may store.
    pub max_body_bytes: Option<u64>,
    pub precompress: Option<Precompress>,
}

/// A fill in progress: buffers the body, publishes the entry in `finish`. Dropped without
/// `finish` (origin error, client gone, too large), it leaves nothing behind.
pub(super) struct Fill {
    pub(super) store: &'static MemoryStore,
    pub(super) primary: Box<[u8]>,
    pub(super) primary_hash: HashBinary,
    pub(super) variance: Option<HashBinary>,
    pub(super) meta: StoredMeta,
    pub(super) body: Vec<Bytes>,
    pub(super) size: u64,
    pub(super) limit: u64,
    pub(super) overflowed: bool,
    pub(super) precompress: Option<Precompress>,
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
pub(super) fn spawn_gzip(store: &'static MemoryStore, entry: Arc<Entry>, level: u32) {
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
