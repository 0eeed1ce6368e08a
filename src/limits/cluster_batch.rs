//! `cluster.redis.sync`: cluster rate limits counted locally and synced to Redis in batches,
//! the alternative to one script call per request (`cluster_rate.rs`; docs/cluster.md has
//! the measurements of both).
//!
//! Every `sync`, one script call adds each key's local count to its fixed-window counter in
//! Redis (windows of `per` on Redis' clock) and returns the cluster's total and the time left
//! in the window. Between two syncs a node decides alone: it admits while the last known
//! total plus what it admitted since stays under the limit, and it takes at most its share
//! (`1 / nodes`) of what was left at the last sync, so nodes that all start a window at once
//! do not each spend the whole budget before they hear of one another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

use super::cluster_rate::Decision;

/// KEYS: counters; ARGV: per key its window length in ms, then per key the count to add,
/// then per key the window the node counted in (0: unknown). A node whose clock turned to
/// the next window a little before Redis' did counts in that next window, not in the one
/// Redis is finishing (which would hand that window's budget out twice).
/// Returns per key {window, total in it, ms until it ends}.
const SYNC: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
local out = {}
for i = 1, n do
  local per = tonumber(ARGV[i])
  local add = tonumber(ARGV[n + i])
  local window = math.max(math.floor(now / per), tonumber(ARGV[2 * n + i]))
  local k = KEYS[i] .. '@' .. string.format('%.0f', window)
  local total = redis.call('INCRBY', k, add)
  if total == add then redis.call('PEXPIRE', k, per * 3) end
  out[i] = {window, total, (window + 1) * per - now}
end
return out
";

/// One key's local view.
struct Slot {
    requests: u64,
    per: Duration,
    /// The cluster's total in the current window at the last sync.
    known: u64,
    /// Admitted here since the last sync (not yet sent).
    pending: u64,
    /// Sent in the sync under way.
    flushing: u64,
    /// What this node may still admit before the next sync.
    allowance: u64,
    /// Redis' number of the window being counted (0 before the first sync).
    window: u64,
    window_end: Instant,
    last_used: Instant,
}

pub(crate) struct Batcher {
    pub sync: Duration,
    nodes: u64,
    slots: Mutex<HashMap<Vec<u8>, Slot>>,
    script: redis::Script,
}

impl Batcher {
    pub(crate) fn new(sync: Duration, nodes: u64) -> Batcher {
        Batcher {
            sync,
            nodes: nodes.max(1),
            slots: Mutex::new(HashMap::new()),
            script: redis::Script::new(SYNC),
        }
    }

    /// Decides one request here, from the last sync's figures.
    pub(crate) fn decide(&self, key: &[u8], requests: u64, per: Duration) -> Decision {
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let nodes = self.nodes;
        let slot = slots.entry(key.to_vec()).or_insert_with(|| Slot {
            requests,
            per,
            known: 0,
            pending: 0,
            flushing: 0,
            allowance: (requests / nodes).max(1),
            window: 0,
            window_end: now + per,
            last_used: now,
        });
        slot.last_used = now;
        if now >= slot.window_end {
            // A new window began since the last sync: start from this node's share.
            slot.known = 0;
            slot.allowance = (requests / nodes).max(1);
            slot.window_end = now + per;
            if slot.window > 0 {
                slot.window += 1;
            }
        }
        let used = slot.known + slot.pending + slot.flushing;
        let allowed = used < requests && slot.allowance > 0;
        if allowed {
            slot.pending += 1;
            slot.allowance -= 1;
        }
        Decision {
            allowed,
            remaining: requests.saturating_sub(used + u64::from(allowed)),
            reset: slot.window_end.saturating_duration_since(now),
        }
    }

    /// Sends the counts admitted since the last sync; Err when Redis did not take them (the
    /// counts are then dropped: the caller falls back until a sync succeeds).
    pub(crate) async fn sync_once(
        &self,
        conn: &mut ConnectionManager,
        timeout: Duration,
    ) -> Result<(), String> {
        let now = Instant::now();
        let batch: Vec<(Vec<u8>, u64, u64, u64)> = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.retain(|_, s| {
                s.pending > 0 || now.saturating_duration_since(s.last_used) < s.per * 2
            });
            slots
                .iter_mut()
                .map(|(k, s)| {
                    s.flushing = s.pending;
                    s.pending = 0;
                    let per = s.per.as_millis().max(1) as u64;
                    (k.clone(), per, s.flushing, s.window)
                })
                .collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        let mut call = self.script.prepare_invoke();
        for (k, _, _, _) in &batch {
            call.key(k.as_slice());
        }
        for (_, per, _, _) in &batch {
            call.arg(*per);
        }
        for (_, _, n, _) in &batch {
            call.arg(*n);
        }
        for (_, _, _, window) in &batch {
            call.arg(*window);
        }
        let answer = tokio::time::timeout(timeout, call.invoke_async::<Vec<(u64, u64, u64)>>(conn))
            .await
            .map_err(|_| format!("no answer within {timeout:?}"))
            .and_then(|r| r.map_err(|e| e.to_string()));
        let done = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for (i, (k, _, _, _)) in batch.iter().enumerate() {
            let Some(s) = slots.get_mut(k) else {
                continue;
            };
            s.flushing = 0;
            if let Ok(totals) = &answer {
                if let Some(&(window, total, left_ms)) = totals.get(i) {
                    s.window = window;
                    s.known = total;
                    s.window_end = done + Duration::from_millis(left_ms);
                    let left = s.requests.saturating_sub(total + s.pending);
                    // Rounded down: nodes syncing at different moments must not each round up.
                    s.allowance = left / self.nodes;
                }
            }
        }
        answer.map(|_| ())
    }
}

/// The sync loop: one batch every `sync` until the counter is dropped.
pub(crate) async fn run(
    batcher: Arc<Batcher>,
    counter: std::sync::Weak<super::cluster_rate::ClusterCounter>,
) {
    let mut tick = tokio::time::interval(batcher.sync);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(counter) = counter.upgrade() else {
            return;
        };
        counter.sync(&batcher).await;
    }
}
