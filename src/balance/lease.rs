//! An in-flight slot on a backend.
//!
//! The count is tied to a value rather than to explicit begin/end calls so that every way a
//! request can end (success, error, retry onto another backend, the client going away, a panic
//! unwinding the request task) gives the slot back exactly once.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Backend;

pub struct Lease {
    backend: Arc<Backend>,
}

impl Lease {
    pub(super) fn new(backend: Arc<Backend>) -> Self {
        backend.active.fetch_add(1, Ordering::Relaxed);
        backend.requests.fetch_add(1, Ordering::Relaxed);
        Lease { backend }
    }

    /// A lease whose in-flight slot the caller has already taken (see `Backend::try_lease`).
    pub(super) fn adopt(backend: Arc<Backend>) -> Self {
        backend.requests.fetch_add(1, Ordering::Relaxed);
        Lease { backend }
    }

    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.backend.active.fetch_sub(1, Ordering::Relaxed);
        if self.backend.max_connections().is_some() {
            // One queued request may take the slot; the permit is kept if none waits yet.
            self.backend.freed.notify_one();
        }
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("backend", &self.backend.config.url)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::backends;

    #[test]
    fn drop_gives_the_slot_back() {
        let b = backends(&[1]).remove(0);
        let first = b.lease();
        let second = b.lease();
        assert_eq!((b.active(), b.requests()), (2, 2));
        drop(first);
        assert_eq!((b.active(), b.requests()), (1, 2));
        // A retry replaces the lease: the old one drops as the new one is stored.
        let mut slot = second;
        assert!(std::sync::Arc::ptr_eq(slot.backend(), &b));
        slot = b.lease();
        assert_eq!((b.active(), b.requests()), (1, 3));
        drop(slot);
        assert_eq!(b.active(), 0);
    }
}
