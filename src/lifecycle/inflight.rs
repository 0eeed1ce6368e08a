//! A process-wide count of requests being handled, from the first proxy phase until the
//! request's context is dropped after logging.

use std::sync::atomic::{AtomicUsize, Ordering};

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Held by each request's context; counts the request until dropped.
pub struct InFlight(());

impl InFlight {
    pub fn start() -> InFlight {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

pub fn count() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}
