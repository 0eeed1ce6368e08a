//! How many requests a server is handling, from the first proxy phase until the request's
//! context is dropped after logging (kept in the server's `State`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The count of one server.
#[derive(Debug, Default)]
pub(crate) struct InFlightCounter(Arc<AtomicUsize>);

impl InFlightCounter {
    /// Counts one more request until the returned guard is dropped.
    pub(crate) fn start(&self) -> InFlight {
        self.0.fetch_add(1, Ordering::Relaxed);
        InFlight(self.0.clone())
    }

    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Held by each request's context; counts the request until dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
