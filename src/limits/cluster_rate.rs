//! `rate_limit: { scope: cluster }`: every node counts in one Redis (`cluster.redis`), so a
//! limit of 100/s held by three nodes is 100/s in total, not 300.
//!
//! One decision is one `EVALSHA` of a GCRA script (below): the script reads Redis' own clock,
//! so the nodes' clocks never have to agree, and it keeps one number per key (the theoretical
//! arrival time), expiring when the key's budget is whole again. GCRA admits `requests` at
//! once and then one every `per / requests`, which makes the rate over any long stretch
//! exactly the configured one. (Local batches synced every few milliseconds were the other
//! candidate; see docs/cluster.md for why the per-request round trip was kept.)
//!
//! A request never waits for Redis longer than `cluster.redis.timeout`. When Redis is slow,
//! down or answers nonsense, the node decides alone with its share of the limit, `requests /`
//! [`ClusterCounter::live_nodes`], counts the fallback (`strait_cluster_rate_fallbacks_total`)
//! and leaves Redis alone for [`HOLD_OFF`] so a dead Redis does not cost every request its
//! timeout. `GET /cluster/redis` and `/ready`'s body show the state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::Cluster;

/// After Redis failed a decision, decisions skip it this long (the next one after it probes).
pub(crate) const HOLD_OFF: Duration = Duration::from_millis(500);

/// GCRA. KEYS[1]: the key; ARGV[1]: the emission interval in µs (`per / requests`, may be
/// fractional); ARGV[2]: the tolerance in µs (`per`: a whole budget may come at once).
/// Returns {allowed 0|1, remaining, ms until reset}. The arrival time is stored as an integer
/// string (`%.0f`): Lua's number-to-string would round microseconds since 1970 to 14 digits.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - tolerance - now
if wait > 0 then
  return {0, 0, math.ceil(wait / 1000)}
end
local ttl = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl + 1)
return {1, math.floor((tolerance - (new_tat - now)) / interval), ttl}
";

/// What Redis said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub allowed: bool,
    pub remaining: u64,
    /// Until the key's budget is whole again (allowed) or the next request may pass (refused).
    pub reset: Duration,
}

/// Why a decision was made without Redis (the `reason` label of the fallback counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// Redis did not answer within `timeout`.
    Timeout,
    /// Redis refused the connection, or answered with an error.
    Error,
    /// Redis failed a recent decision; it is left alone until [`HOLD_OFF`] has passed.
    HeldOff,
}

impl Fallback {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Fallback::Timeout => "timeout",
            Fallback::Error => "error",
            Fallback::HeldOff => "held_off",
        }
    }
}

/// The connection to `cluster.redis` that every cluster-scoped limiter of a server shares;
/// carried from snapshot to snapshot while `cluster` stays the same.
pub(crate) struct ClusterCounter {
    pub settings: Cluster,
    client: Option<redis::Client>,
    /// Made on the first decision, inside the proxy's runtime (the manager spawns its
    /// connection task there); it reconnects by itself afterwards.
    manager: OnceLock<Option<ConnectionManager>>,
    script: redis::Script,
    /// Milliseconds since `born` before which decisions do not ask Redis.
    hold_off_until: AtomicU64,
    born: Instant,
    /// Whether the last decision that asked Redis got an answer.
    up: AtomicBool,
    pub decisions: AtomicU64,
    pub fallbacks: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for ClusterCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCounter")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ClusterCounter {
    /// `None` when `cluster` has no Redis.
    pub(crate) fn new(cluster: &Cluster) -> Option<ClusterCounter> {
        let redis = cluster.redis.as_ref()?;
        // The URL was checked when the config was read; should it fail here all the same,
        // every decision falls back (and says why).
        let client = redis::Client::open(redis.url.as_str()).ok();
        Some(ClusterCounter {
            settings: cluster.clone(),
            client,
            manager: OnceLock::new(),
            script: redis::Script::new(GCRA),
            hold_off_until: AtomicU64::new(0),
            born: Instant::now(),
            up: AtomicBool::new(false),
            decisions: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            last_error: Mutex::new(None),
        })
    }

    /// How many nodes share a cluster limit when Redis cannot count: each allows
    /// `requests / live_nodes()`. With `cluster.etcd`, the nodes registered under a live lease
    /// (the registry knows when one joins or leaves); otherwise `cluster.nodes`.
    pub(crate) fn live_nodes(&self) -> u64 {
        crate::cluster::registered_nodes()
            .unwrap_or(self.settings.nodes)
            .max(1)
    }

    fn timeout(&self) -> Duration {
        self.settings
            .redis
            .as_ref()
            .map_or(Duration::from_millis(20), |r| r.timeout)
    }

    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    /// Whether Redis answered the last decision that asked it (`false` before the first).
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The URL without its password, for the admin API and logs.
    pub(crate) fn url_shown(&self) -> String {
        let url = self.settings.redis.as_ref().map_or("", |r| r.url.as_str());
        match redis::parse_redis_url(url) {
            Some(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                u.to_string()
            }
            _ => url.to_string(),
        }
    }

    fn manager(&self) -> Option<ConnectionManager> {
        self.manager
            .get_or_init(|| {
                let client = self.client.clone()?;
                // Connecting may take the whole timeout (the decision gives up then, the
                // manager goes on); one retry: the hold-off paces the probes, not the manager.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout().max(Duration::from_millis(100))))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                match ConnectionManager::new_lazy_with_config(client, config) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        log::error!("cluster.redis: cannot make a client: {e}");
                        None
                    }
                }
            })
            .clone()
    }

    /// Counts one request under `key` in Redis: the decision, or why there is none (the
    /// caller then decides locally). Waits at most `timeout`.
    pub(crate) async fn decide(
        &self,
        key: &[u8],
        requests: u64,
        per: Duration,
    ) -> Result<Decision, Fallback> {
        self.decisions.fetch_add(1, Ordering::Relaxed);
        if self.now_ms() < self.hold_off_until.load(Ordering::Relaxed) {
            return Err(self.fell_back(Fallback::HeldOff, None));
        }
        let Some(mut conn) = self.manager() else {
            return Err(self.fell_back(Fallback::Error, Some("no client".into())));
        };
        let per_us = per.as_micros() as f64;
        let interval = per_us / requests.max(1) as f64;
        let mut call = self.script.key(key);
        call.arg(interval).arg(per_us);
        let answer = tokio::time::timeout(
            self.timeout(),
            call.invoke_async::<(u64, u64, u64)>(&mut conn),
        )
        .await;
        match answer {
            Ok(Ok((allowed, remaining, reset_ms))) => {
                if !self.up.swap(true, Ordering::Relaxed) {
                    log::info!("cluster.redis {}: answering", self.url_shown());
                }
                Ok(Decision {
                    allowed: allowed == 1,
                    remaining,
                    reset: Duration::from_millis(reset_ms),
                })
            }
            Ok(Err(e)) => Err(self.fail(Fallback::Error, e.to_string())),
            Err(_) => Err(self.fail(
                Fallback::Timeout,
                format!("no answer within {:?}", self.timeout()),
            )),
        }
    }

    /// Redis failed a decision: hold off, remember why, say so once per outage.
    fn fail(&self, why: Fallback, message: String) -> Fallback {
        self.hold_off_until.store(
            self.now_ms() + HOLD_OFF.as_millis() as u64,
            Ordering::Relaxed,
        );
        if self.up.swap(false, Ordering::Relaxed) || self.last_error().is_none() {
            log::warn!(
                "cluster.redis {}: {message}; cluster rate limits fall back to 1/{} of each limit per node",
                self.url_shown(),
                self.live_nodes()
            );
        }
        self.fell_back(why, Some(message))
    }

    fn fell_back(&self, why: Fallback, message: Option<String>) -> Fallback {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        crate::metrics::CLUSTER_RATE_FALLBACKS
            .with_label_values(&[why.label()])
            .inc();
        if let Some(m) = message {
            *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(m);
        }
        why
    }

    /// The admin API's view (`GET /cluster/redis`).
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "url": self.url_shown(),
            "state": if self.is_up() { "up" } else if self.decisions.load(Ordering::Relaxed) == 0 { "unused" } else { "down" },
            "timeout_ms": self.timeout().as_millis() as u64,
            "nodes": self.live_nodes(),
            "decisions": self.decisions.load(Ordering::Relaxed),
            "fallbacks": self.fallbacks.load(Ordering::Relaxed),
            "last_error": self.last_error(),
        })
    }

    /// One line for `/ready`'s body.
    pub(crate) fn ready_line(&self) -> String {
        let state = if self.is_up() {
            "up".to_string()
        } else if self.decisions.load(Ordering::Relaxed) == 0 {
            "not used yet".to_string()
        } else {
            format!(
                "down, each node allows 1/{} of cluster limits ({})",
                self.live_nodes(),
                self.last_error().unwrap_or_default()
            )
        };
        format!("redis: {state}")
    }
}
