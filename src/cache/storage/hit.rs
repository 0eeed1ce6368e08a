//! Serving a stored entry (pingora-cache's hit handler), identity or its gzip copy.

use super::*;

/// Reads a stored body: the identity body (seekable for ranges) or, once selected, its gzip
/// copy. Bodies are `Bytes` slices of the stored entry: no copy.
pub struct Hit {
    pub(super) entry: Arc<Entry>,
    pub(super) gzip: bool,
    pub(super) done: bool,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Hit {
    pub(super) fn new(entry: Arc<Entry>) -> Hit {
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
