//! `discovery: { dns: { name, port, interval, resolver } }`: the A and AAAA records of a name,
//! resolved with hickory's async resolver (never a blocking `getaddrinfo` on a worker).
//!
//! Each lookup asks the nameserver afresh (the resolver's cache is cleared first): the pool
//! follows DNS as of the last lookup, and the next lookup comes after `interval` or when the
//! answer's TTL runs out, whichever is sooner (but at least [`MIN_GAP`] apart).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;

use crate::config::DnsDiscovery;

/// Lookups of one name never come closer together than this, whatever the TTL says.
pub(crate) const MIN_GAP: Duration = Duration::from_secs(1);
/// One lookup (both record types) at most this long; then it failed.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// One name's resolver.
pub(crate) struct DnsSource {
    pub settings: DnsDiscovery,
    resolver: Result<TokioResolver, String>,
}

/// What one successful lookup found: the backends' addresses, and when to look again.
#[derive(Debug)]
pub(crate) struct Found {
    pub addrs: BTreeSet<SocketAddr>,
    pub next: Instant,
}

impl DnsSource {
    pub(crate) fn new(settings: &DnsDiscovery) -> DnsSource {
        DnsSource {
            settings: settings.clone(),
            resolver: build(settings),
        }
    }

    /// Resolves the name once. An empty answer is an error too: a name that briefly has no
    /// records must not empty the pool.
    pub(crate) async fn lookup(&self) -> Result<Found, String> {
        let resolver = self.resolver.as_ref().map_err(Clone::clone)?;
        resolver.clear_cache();
        let name = self.settings.name.as_str();
        let answer = tokio::time::timeout(LOOKUP_TIMEOUT, resolver.lookup_ip(name))
            .await
            .map_err(|_| format!("no answer within {LOOKUP_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        let addrs: BTreeSet<SocketAddr> = answer
            .iter()
            .map(|ip: IpAddr| SocketAddr::new(ip, self.settings.port))
            .collect();
        if addrs.is_empty() {
            return Err("no A or AAAA records".into());
        }
        let now = Instant::now();
        let ttl = answer.valid_until().saturating_duration_since(now);
        Ok(Found {
            addrs,
            next: now + self.settings.interval.min(ttl).max(MIN_GAP),
        })
    }
}

fn build(settings: &DnsDiscovery) -> Result<TokioResolver, String> {
    let mut builder = match settings.resolver {
        Some(addr) => {
            let mut config = ResolverConfig::new();
            config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
        }
        None => TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system's resolver settings: {e}"))?,
    };
    let opts = builder.options_mut();
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.timeout = LOOKUP_TIMEOUT;
    opts.attempts = 2;
    if settings.resolver.is_some() {
        // The named nameserver is the whole truth; /etc/hosts has no say.
        opts.use_hosts_file = ResolveHosts::Never;
    }
    Ok(builder.build())
}
