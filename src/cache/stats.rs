//! Cache counters: lock-free atomics bumped on the request path, read by the admin API and
//! the metrics exporter through [`CacheStats`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// How a response on a cache-enabled domain was produced (the `X-Cache` value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Served from a fresh stored response.
    Hit,
    /// Looked up, not usable, fetched from the origin.
    Miss,
    /// A stale stored response was found and revalidated or replaced through the origin.
    Expired,
    /// Served from a stale stored response (stale-while-revalidate or stale-if-error).
    Stale,
    /// The cache was not consulted (method, rule, ...).
    Bypass,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "HIT",
            Outcome::Miss => "MISS",
            Outcome::Expired => "EXPIRED",
            Outcome::Stale => "STALE",
            Outcome::Bypass => "BYPASS",
        }
    }

    /// The `result` label of `strait_cache_requests_total` (design §5): expired counts as a
    /// miss there, since the origin was asked.
    pub fn metric_label(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss | Outcome::Expired => "miss",
            Outcome::Stale => "stale",
            Outcome::Bypass => "bypass",
        }
    }
}

#[derive(Debug, Default)]
pub struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub expired: AtomicU64,
    pub stale: AtomicU64,
    pub bypass: AtomicU64,
    /// Entries removed to make room (budget), not by purges.
    pub evictions: AtomicU64,
    /// Entries removed by purges and invalidations.
    pub purged: AtomicU64,
    /// Completed fills that were stored.
    pub stored: AtomicU64,
    /// Completed fills refused by the storage (larger than a budget).
    pub rejected: AtomicU64,
}

impl Counters {
    pub fn record(&self, outcome: Outcome) {
        let c = match outcome {
            Outcome::Hit => &self.hits,
            Outcome::Miss => &self.misses,
            Outcome::Expired => &self.expired,
            Outcome::Stale => &self.stale,
            Outcome::Bypass => &self.bypass,
        };
        c.fetch_add(1, Relaxed);
    }
}

/// A point-in-time copy of the counters and the storage occupancy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: u64,
    pub bytes: u64,
    pub max_entries: u64,
    pub max_bytes: u64,
    pub hits: u64,
    /// Origin fetches for cacheable requests, expired ones included.
    pub misses: u64,
    /// Of `misses`, those that found a stale entry first.
    pub expired: u64,
    pub stale_served: u64,
    pub bypassed: u64,
    pub evictions: u64,
    pub purged: u64,
    pub stored: u64,
    pub rejected: u64,
}

impl CacheStats {
    pub(crate) fn from_counters(
        c: &Counters,
        entries: u64,
        bytes: u64,
        max_entries: u64,
        max_bytes: u64,
    ) -> CacheStats {
        let expired = c.expired.load(Relaxed);
        CacheStats {
            entries,
            bytes,
            max_entries,
            max_bytes,
            hits: c.hits.load(Relaxed),
            misses: c.misses.load(Relaxed) + expired,
            expired,
            stale_served: c.stale.load(Relaxed),
            bypassed: c.bypass.load(Relaxed),
            evictions: c.evictions.load(Relaxed),
            purged: c.purged.load(Relaxed),
            stored: c.stored.load(Relaxed),
            rejected: c.rejected.load(Relaxed),
        }
    }

    /// Requests answered from storage (fresh or stale) over all requests that consulted it.
    pub fn hit_rate(&self) -> f64 {
        let served = self.hits + self.stale_served;
        let total = served + self.misses;
        if total == 0 {
            0.0
        } else {
            served as f64 / total as f64
        }
    }

    /// `GET /cache/stats` (design §4), as JSON.
    pub fn to_json(self) -> String {
        format!(
            concat!(
                "{{\"entries\":{},\"bytes\":{},\"hits\":{},\"misses\":{},\"stale_served\":{},",
                "\"evictions\":{},\"expired\":{},\"bypassed\":{},\"purged\":{},\"stored\":{},",
                "\"rejected\":{},\"max_entries\":{},\"max_bytes\":{},\"hit_rate\":{:.4}}}"
            ),
            self.entries,
            self.bytes,
            self.hits,
            self.misses,
            self.stale_served,
            self.evictions,
            self.expired,
            self.bypassed,
            self.purged,
            self.stored,
            self.rejected,
            self.max_entries,
            self.max_bytes,
            self.hit_rate()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_counts_as_a_miss_and_rates_add_up() {
        let c = Counters::default();
        for o in [
            Outcome::Hit,
            Outcome::Hit,
            Outcome::Stale,
            Outcome::Miss,
            Outcome::Expired,
            Outcome::Bypass,
        ] {
            c.record(o);
        }
        let s = CacheStats::from_counters(&c, 1, 2, 3, 4);
        assert_eq!(
            (s.hits, s.misses, s.expired, s.stale_served, s.bypassed),
            (2, 2, 1, 1, 1)
        );
        assert!((s.hit_rate() - 0.6).abs() < 1e-9);
        assert!(s.to_json().starts_with(
            "{\"entries\":1,\"bytes\":2,\"hits\":2,\"misses\":2,\"stale_served\":1,\"evictions\":0"
        ));
        assert_eq!(Outcome::Expired.metric_label(), "miss");
    }
}
