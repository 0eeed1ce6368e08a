//! Backends found at run time (a domain's `discovery`, docs/cluster.md): a control-plane
//! service that looks the backends up and applies each change through the same snapshot path
//! as the admin API's `POST`/`DELETE /backends` (`admin::changes::set_pool`): a new address
//! waits for a good health check when the pool is checked, a vanished one is removed while
//! requests in flight on it finish, unchanged ones keep their state.
//!
//! A failed lookup keeps the last good set: it is logged, counted
//! (`strait_discovery_lookups_total{outcome="error"}`) and retried soon. A reload keeps a
//! discovered pool's backends ([`carry_discovered`]) while the domain's `discovery` stays
//! the same.

pub(crate) mod dns;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::{Action, Config, DnsDiscovery, HostPattern, Scheme};
use crate::snapshot::Snapshot;
use crate::state::State;

/// How often the service looks for due lookups and pools to restore.
const SCAN_EVERY: Duration = Duration::from_millis(200);
/// After a failed lookup, the next one comes this soon (or after `interval`, if shorter).
const RETRY_AFTER: Duration = Duration::from_secs(2);

pub(crate) struct DiscoveryService {
    state: Arc<State>,
}

impl DiscoveryService {
    pub(crate) fn new(state: Arc<State>) -> DiscoveryService {
        DiscoveryService { state }
    }
}

/// One discovered domain.
struct Watch {
    source: dns::DnsSource,
    next: Instant,
    last_good: Option<BTreeSet<SocketAddr>>,
}

#[async_trait]
impl BackgroundService for DiscoveryService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut watches: HashMap<String, Watch> = HashMap::new();
        let mut tick = tokio::time::interval(SCAN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => self.scan(&mut watches).await,
            }
        }
    }
}

/// Each domain with `discovery.dns`, by name (its first host).
fn discovered(snapshot: &Snapshot) -> Vec<(String, DnsDiscovery)> {
    snapshot
        .config
        .domains
        .iter()
        .filter_map(|d| {
            let dns = d.discovery.as_ref()?.dns.clone()?;
            Some((d.hosts.first()?.text(), dns))
        })
        .collect()
}

/// The `http://` addresses domain `domain`'s pool holds now.
fn pool_addrs(snapshot: &Snapshot, domain: &str) -> Option<BTreeSet<SocketAddr>> {
    let at = crate::admin::changes::find_pool(snapshot, domain, None).ok()?;
    Some(
        snapshot.pools[at.pool]
            .backends
            .iter()
            .filter(|b| b.config.scheme == Scheme::Http)
            .map(|b| b.addr)
            .collect(),
    )
}

impl DiscoveryService {
    async fn scan(&self, watches: &mut HashMap<String, Watch>) {
        let wanted = discovered(&self.state.snapshot());
        watches.retain(|name, w| {
            wanted
                .iter()
                .any(|(n, s)| n == name && *s == w.source.settings)
        });
        for (domain, settings) in wanted {
            let w = watches.entry(domain.clone()).or_insert_with(|| Watch {
                source: dns::DnsSource::new(&settings),
                next: Instant::now(),
                last_good: None,
            });
            if Instant::now() >= w.next {
                lookup(&domain, w).await;
            }
            let Some(good) = &w.last_good else {
                continue;
            };
            // No pool (the domain answers by itself: `respond`, `redirect`, ...): nothing
            // to fill. The same set: nothing to change.
            match pool_addrs(&self.state.snapshot(), &domain) {
                Some(now) if now != *good => {}
                _ => continue,
            }
            let list: Vec<SocketAddr> = good.iter().copied().collect();
            let source = format!("discovery.dns {}", settings.name);
            match crate::admin::changes::set_pool(&self.state, &domain, &list, &source).await {
                Ok((added, removed)) => log::info!(
                    "discovery: domain {domain}: {} now has {} address(es): {added} added, {removed} removed",
                    settings.name,
                    list.len()
                ),
                Err(e) => log::warn!(
                    "discovery: domain {domain}: cannot apply the pool: {}",
                    e.message
                ),
            }
        }
    }
}

/// Looks `w`'s name up once; on success its answer becomes the last good set.
async fn lookup(domain: &str, w: &mut Watch) {
    let settings = &w.source.settings;
    match w.source.lookup().await {
        Ok(found) => {
            crate::metrics::DISCOVERY_LOOKUPS
                .with_label_values(&[domain, "ok"])
                .inc();
            w.next = found.next;
            w.last_good = Some(found.addrs);
        }
        Err(e) => {
            crate::metrics::DISCOVERY_LOOKUPS
                .with_label_values(&[domain, "error"])
                .inc();
            let kept = w.last_good.as_ref().map_or(0, BTreeSet::len);
            log::warn!(
                "discovery: domain {domain}: looking up {} failed ({e}); keeping the last good set ({kept} address(es))",
                settings.name
            );
            w.next = Instant::now() + settings.interval.min(RETRY_AFTER);
        }
    }
}

/// Before a snapshot is built from a reloaded file: each discovered domain that keeps its
/// `discovery` keeps the backends discovery gave it, instead of the file's empty pool (which
/// would answer 503 until the next scan).
pub(crate) fn carry_discovered(config: &mut Config, previous: &Config) {
    for d in &config.domains {
        let (Some(discovery), Action::Proxy { pool, .. }) = (&d.discovery, &d.handling.action)
        else {
            continue;
        };
        let name = d.hosts.first().map(HostPattern::text);
        let before = previous.domains.iter().find(|p| {
            p.discovery.as_ref() == Some(discovery)
                && p.hosts.first().map(HostPattern::text) == name
        });
        let Some(Action::Proxy { pool: old, .. }) = before.map(|p| &p.handling.action) else {
            continue;
        };
        let kept = previous.pools.get(*old).map(|p| p.backends.clone());
        if let (Some(kept), Some(target)) = (kept, config.pools.get(*pool)) {
            if target.backends.is_empty() {
                let pool = *pool;
                // Indices are valid: `pool` came from this config's own domain.
                config.pools[pool].backends = kept;
            }
        }
    }
}
