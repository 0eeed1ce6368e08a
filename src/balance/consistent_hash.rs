//! Affinity by consistent hashing (`consistent_hash` on a `hash_key`, and `ip_hash`, which
//! hashes the client address).
//!
//! Each backend owns `POINTS_PER_WEIGHT * weight` points on a 64-bit ring; a request goes to the
//! owner of the first point at or after the hash of its key. Point positions depend only on
//! the backend's identity (scheme, host, port), never on its index or on the other backends, so:
//! - removing a backend from the list moves only the clients that were on it;
//! - a backend that is down (or already tried) passes its clients to the next point, which
//!   spreads them over the others, and they come back when it recovers;
//! - changing a weight adds or removes only that backend's points.
//!
//! The hash is fixed (FNV-1a with a 64-bit finaliser), not `std`'s randomly keyed SipHash, so
//! every process, worker and restart agrees on the mapping.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::Scheme;

use super::{is_candidate, Backend, Balancer, RingSpot, RoundRobin};

/// Points per unit of weight. A backend's share of the ring deviates from its weight's share by
/// roughly 1/sqrt(points); with the 160 of ketama-style rings, simulated 4-backend pools had a
/// backend more than 15 % off even in about one case in ten. 512 keeps 4 to 10 equal backends
/// within about ±10 % in practice, at 4 KiB of ring per unit of weight.
pub(crate) const POINTS_PER_WEIGHT: u32 = 512;

/// A ring point packs its position (high bits) and the backend index (low bits) into one word:
/// half the memory of a (u64, u32) pair, and ordering by the word orders by position first.
const INDEX_BITS: u32 = 16;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;

pub(crate) struct ConsistentHash {
    ring: Vec<u64>,
    /// The length of the list the ring was built from; ring indices mean nothing for another.
    built_for: usize,
    /// For requests without the key (no such header, no client address on a Unix socket).
    fallback: RoundRobin,
}

impl ConsistentHash {
    pub(crate) fn new(backends: &[Arc<Backend>]) -> Self {
        let total: usize = backends
            .iter()
            .map(|b| (b.weight() * POINTS_PER_WEIGHT) as usize)
            .sum();
        let mut ring = Vec::with_capacity(total);
        // Two entries for the same target would otherwise get identical points and one would
        // never be chosen.
        let mut seen: HashMap<(Scheme, String, u16), u32> = HashMap::new();
        // Indices beyond what a point can hold are left off the ring (a pool of 65 536 backends
        // is not a real configuration, but it must not corrupt the ring).
        for (index, b) in backends.iter().enumerate().take(1 << INDEX_BITS) {
            let host = b.config.host.to_ascii_lowercase();
            let dup = seen
                .entry((b.config.scheme, host, b.config.port))
                .or_insert(0);
            let id = identity_hash(b, *dup);
            *dup += 1;
            for replica in 0..b.weight() * POINTS_PER_WEIGHT {
                ring.push((point_hash(id, replica) & !INDEX_MASK) | index as u64);
            }
        }
        // Positions that collide in their high bits are ordered by index, the same way on every
        // build.
        ring.sort_unstable();
        ConsistentHash {
            ring,
            built_for: backends.len(),
            fallback: RoundRobin::new(),
        }
    }
}

impl fmt::Debug for ConsistentHash {
    // The ring has thousands of points; its size is what is worth seeing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsistentHash")
            .field("points", &self.ring.len())
            .field("built_for", &self.built_for)
            .finish_non_exhaustive()
    }
}

impl Balancer for ConsistentHash {
    fn pick(
        &self,
        backends: &[Arc<Backend>],
        key: Option<u64>,
        skip: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let Some(key) = key else {
            return self.fallback.pick(backends, key, skip);
        };
        if self.ring.is_empty() || self.built_for != backends.len() {
            return self.fallback.pick(backends, Some(key), skip);
        }
        let len = self.ring.len();
        let spot = self.spot(key);
        let (start, first) = (spot.point, spot.owner);
        if is_candidate(backends, first, skip) {
            return Some(first);
        }
        // The walk below can be long when most of the ring is down; make sure it will end in a
        // hit before starting it.
        if !(0..backends.len()).any(|i| is_candidate(backends, i, skip)) {
            return None;
        }
        (1..len)
            .map(|step| (self.ring[(start + step) % len] & INDEX_MASK) as usize)
            .find(|&i| is_candidate(backends, i, skip))
    }

    fn peek(&self, backends: &[Arc<Backend>], key: Option<u64>) -> Option<usize> {
        match key {
            // Without a key the round-robin fallback decides, and it has a cursor.
            None => self.fallback.peek(backends, key),
            Some(_) if self.ring.is_empty() || self.built_for != backends.len() => {
                self.fallback.peek(backends, key)
            }
            // Picking by key changes no state.
            Some(_) => self.pick(backends, key, &|_| false),
        }
    }

    fn ring_spot(&self, key: u64) -> Option<RingSpot> {
        (!self.ring.is_empty()).then(|| self.spot(key))
    }
}

impl ConsistentHash {
    /// Where `key` lands: the first point at or after it. The ring must not be empty.
    fn spot(&self, key: u64) -> RingSpot {
        let len = self.ring.len();
        // Compare positions only: with the index bits cleared here, which side of a point a
        // key falls on cannot depend on the backend's index, which shifts when another
        // backend is removed from the list.
        let h = key & !INDEX_MASK;
        let point = self.ring.partition_point(|&p| p < h) % len.max(1);
        let owner = self
            .ring
            .get(point)
            .map_or(0, |p| (p & INDEX_MASK) as usize);
        RingSpot {
            hash: h,
            point,
            points: len,
            owner,
        }
    }

    /// For every arc of the hash space, the index of the backend owning it: `(end, owner)`
    /// pairs in ring order, an arc running from the previous point (exclusive) to `end`
    /// (inclusive); the space past the last point wraps to the first.
    fn owners(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        self.ring
            .iter()
            .map(|&p| (p & !INDEX_MASK, (p & INDEX_MASK) as usize))
    }
}

/// The share of client addresses (of the whole hash space, so of uniformly spread clients)
/// whose backend differs between ring `old` and ring `new`, every backend usable. A backend
/// is known across the two by `old_ids[i]` / `new_ids[j]` (its URL), since indices shift when
/// the list changes. Exact: it walks the merged point positions of both rings, each arc
/// between consecutive positions having one owner in each.
pub(crate) fn moved_share(
    old: &ConsistentHash,
    old_ids: &[String],
    new: &ConsistentHash,
    new_ids: &[String],
) -> f64 {
    let a: Vec<(u64, usize)> = old.owners().collect();
    let b: Vec<(u64, usize)> = new.owners().collect();
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return 0.0,
        // Every client moves from "no backend" to one, or the other way.
        (true, false) | (false, true) => return 1.0,
        _ => {}
    }
    let id = |ids: &[String], i: usize| ids.get(i).cloned().unwrap_or_default();
    let mut positions: Vec<u64> = a.iter().chain(b.iter()).map(|p| p.0).collect();
    positions.sort_unstable();
    positions.dedup();
    // The owner of the arc ending at `pos` in a ring: the first point at or after `pos`.
    let owner_at = |ring: &[(u64, usize)], pos: u64| {
        let k = ring.partition_point(|p| p.0 < pos) % ring.len();
        ring[k].1
    };
    let mut moved: u128 = 0;
    let mut prev: Option<u64> = None;
    for &pos in &positions {
        // Client hashes are multiples of 2^INDEX_BITS; an arc (prev, pos] holds
        // (pos - prev) / 2^INDEX_BITS of them. The first arc joins the wrap-around one below.
        if let Some(p) = prev {
            if id(old_ids, owner_at(&a, pos)) != id(new_ids, owner_at(&b, pos)) {
                moved += u128::from(pos - p);
            }
        }
        prev = Some(pos);
    }
    // From the last position round to the first (inclusive): owned by each ring's first point.
    let (first, last) = (positions[0], positions[positions.len() - 1]);
    if id(old_ids, a[0].1) != id(new_ids, b[0].1) {
        moved += (1u128 << 64) - u128::from(last) + u128::from(first);
    }
    moved as f64 / (1u128 << 64) as f64
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        h ^= u64::from(byte);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// FNV-1a alone mixes the last bytes of short keys poorly into the high bits, which decide the
/// ring position; a multiply-xorshift finaliser spreads every input bit over the whole word.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The ring position of a client address.
/// (Public for benches/balance.rs.)
pub fn hash_ip(ip: IpAddr) -> u64 {
    // An IPv4 client seen through a dual-stack socket (::ffff:a.b.c.d) is the same client.
    let h = match ip.to_canonical() {
        IpAddr::V4(v4) => fnv1a(FNV_OFFSET, &v4.octets()),
        IpAddr::V6(v6) => fnv1a(FNV_OFFSET, &v6.octets()),
    };
    mix(h)
}

/// The ring position of any other key (a header's or cookie's value, a path).
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    mix(fnv1a(FNV_OFFSET, bytes))
}

fn identity_hash(b: &Backend, dup: u32) -> u64 {
    let scheme: &[u8] = match b.config.scheme {
        Scheme::Http => b"http",
        Scheme::Https => b"https",
        Scheme::H2c => b"h2c",
        Scheme::Tcp => b"tcp",
    };
    let mut h = fnv1a(FNV_OFFSET, scheme);
    h = fnv1a(h, b"://");
    for byte in b.config.host.bytes() {
        h = fnv1a(h, &[byte.to_ascii_lowercase()]);
    }
    h = fnv1a(h, b":");
    h = fnv1a(h, &b.config.port.to_be_bytes());
    if dup > 0 {
        h = fnv1a(h, b"#");
        h = fnv1a(h, &dup.to_be_bytes());
    }
    h
}

fn point_hash(id: u64, replica: u32) -> u64 {
    // Successive replicas step by an odd constant (2^64 / golden ratio) before mixing, which
    // gives well-separated, independent-looking positions for every replica of one backend.
    mix(id.wrapping_add(u64::from(replica + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{backend, backends, counts, no_skip};
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn random_ips(n: usize, seed: u64) -> Vec<IpAddr> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| IpAddr::V4(Ipv4Addr::from(rng.gen::<u32>())))
            .collect()
    }

    fn pick(h: &ConsistentHash, b: &[Arc<Backend>], ip: IpAddr) -> usize {
        h.pick(b, Some(hash_ip(ip)), &no_skip).unwrap()
    }

    #[test]
    fn fnv1a_matches_published_vectors() {
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn hash_is_fixed() {
        // Pins the function: a change here remaps every client of every deployment.
        assert_eq!(
            hash_ip("192.0.2.1".parse().unwrap()),
            hash_ip("::ffff:192.0.2.1".parse().unwrap())
        );
        assert_eq!(hash_ip("192.0.2.1".parse().unwrap()), PINNED_V4);
        assert_eq!(hash_ip("2001:db8::1".parse().unwrap()), PINNED_V6);
    }
    const PINNED_V4: u64 = 9_239_470_546_723_440_874;
    const PINNED_V6: u64 = 10_226_596_326_310_564_623;

    #[test]
    fn same_ip_same_backend() {
        let b = backends(&[1, 1, 1, 1]);
        let h = ConsistentHash::new(&b);
        for ip in random_ips(50, 1)
            .into_iter()
            .chain(["2001:db8::7".parse().unwrap()])
        {
            let first = pick(&h, &b, ip);
            for _ in 0..100 {
                assert_eq!(pick(&h, &b, ip), first);
            }
            // A ring built again (another worker, a restart) agrees.
            assert_eq!(pick(&ConsistentHash::new(&b), &b, ip), first);
        }
        let v4: IpAddr = Ipv4Addr::new(198, 51, 100, 9).into();
        let mapped: IpAddr = Ipv4Addr::new(198, 51, 100, 9).to_ipv6_mapped().into();
        assert_eq!(pick(&h, &b, v4), pick(&h, &b, mapped));
    }

    #[test]
    fn spread_within_15_percent() {
        let b = backends(&[1, 1, 1, 1]);
        let h = ConsistentHash::new(&b);
        let mut c = [0usize; 4];
        for ip in random_ips(10_000, 2) {
            c[pick(&h, &b, ip)] += 1;
        }
        for got in c {
            assert!(got.abs_diff(2_500) * 100 <= 2_500 * 15, "{c:?}");
        }
    }

    #[test]
    fn weighted_spread() {
        let b = backends(&[1, 2, 3]);
        let h = ConsistentHash::new(&b);
        let mut c = [0usize; 3];
        for ip in random_ips(12_000, 3) {
            c[pick(&h, &b, ip)] += 1;
        }
        for (got, want) in c.iter().zip([2_000usize, 4_000, 6_000]) {
            assert!(got.abs_diff(want) * 100 <= want * 15, "{c:?}");
        }
    }

    /// `moved_share` against a brute-force count: 100 000 random addresses looked up in the
    /// old and the new ring, for removals, additions and weight changes.
    #[test]
    fn moved_share_matches_a_brute_force_count() {
        let ids = |b: &[Arc<Backend>]| -> Vec<String> {
            b.iter().map(|x| x.config.url.clone()).collect()
        };
        let base = backends(&[1, 1, 1, 1]);
        let cases: Vec<(&str, Vec<Arc<Backend>>)> = vec![
            ("remove one", base[..3].to_vec()),
            ("remove the first", base[1..].to_vec()),
            ("add one", {
                let mut v = base.clone();
                v.push(backend(7, 1));
                v
            }),
            ("weight 1 -> 3", {
                let mut v = base.clone();
                v[2] = backend(2, 3);
                v
            }),
            (
                "replace two",
                vec![
                    base[0].clone(),
                    base[1].clone(),
                    backend(8, 1),
                    backend(9, 2),
                ],
            ),
            (
                "unchanged, reordered",
                vec![
                    base[3].clone(),
                    base[1].clone(),
                    base[2].clone(),
                    base[0].clone(),
                ],
            ),
        ];
        let old = ConsistentHash::new(&base);
        let ips = random_ips(100_000, 0x91a2);
        for (what, new_list) in cases {
            let new = ConsistentHash::new(&new_list);
            let share = moved_share(&old, &ids(&base), &new, &ids(&new_list));
            let moved = ips
                .iter()
                .filter(|&&ip| {
                    base[pick(&old, &base, ip)].config.url
                        != new_list[pick(&new, &new_list, ip)].config.url
                })
                .count();
            let counted = moved as f64 / ips.len() as f64;
            eprintln!("{what}: exact {share:.5}, counted {counted:.5}");
            // Binomial spread of the count around the exact share: 5 sigma never flakes.
            let sigma = (share * (1.0 - share) / ips.len() as f64).sqrt();
            assert!(
                (counted - share).abs() <= 5.0 * sigma + 1e-9,
                "{what}: exact {share:.5}, counted {counted:.5}"
            );
            if what.starts_with("unchanged") {
                assert_eq!(share, 0.0);
            }
        }
    }

    #[test]
    fn removing_a_backend_moves_only_its_clients() {
        let b = backends(&[1, 1, 1, 1]);
        let before = ConsistentHash::new(&b);
        let removed = 2;
        let rest: Vec<_> = b
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != removed)
            .map(|(_, x)| Arc::clone(x))
            .collect();
        let after = ConsistentHash::new(&rest);
        let mut moved = [0usize; 4];
        for ip in random_ips(10_000, 4) {
            let old = &b[pick(&before, &b, ip)];
            let new = &rest[pick(&after, &rest, ip)];
            if Arc::ptr_eq(old, &b[removed]) {
                let to = b.iter().position(|x| Arc::ptr_eq(x, new)).unwrap();
                moved[to] += 1;
            } else {
                assert!(Arc::ptr_eq(old, new), "{ip} moved off a surviving backend");
            }
        }
        // The removed backend's clients spread over all the survivors.
        assert_eq!(moved[removed], 0);
        assert!(moved.iter().sum::<usize>() > 2_000, "{moved:?}");
        for (i, m) in moved.iter().enumerate() {
            assert!(i == removed || *m > 400, "{moved:?}");
        }
    }

    /// `consistent_hash` on a header value: removing one of 4 backends moves only its keys,
    /// about a quarter of them.
    #[test]
    fn removing_a_backend_moves_only_its_keys() {
        let b = backends(&[1, 1, 1, 1]);
        let before = ConsistentHash::new(&b);
        let rest: Vec<_> = b.iter().skip(1).cloned().collect();
        let after = ConsistentHash::new(&rest);
        let mut moved = 0;
        for user in 0..10_000u32 {
            let key = Some(hash_bytes(format!("user-{user}").as_bytes()));
            let old = before.pick(&b, key, &no_skip).unwrap();
            let new = after.pick(&rest, key, &no_skip).unwrap();
            if old == 0 {
                moved += 1;
            } else {
                assert_eq!(old, new + 1, "user-{user} moved off a surviving backend");
            }
        }
        assert!(
            (2_000..3_000).contains(&moved),
            "{moved} of 10000 keys moved"
        );
    }

    #[test]
    fn adding_a_backend_takes_clients_only_for_itself() {
        let b = backends(&[1, 1, 1, 1]);
        let before = ConsistentHash::new(&b[..3]);
        let after = ConsistentHash::new(&b);
        for ip in random_ips(5_000, 5) {
            let old = pick(&before, &b[..3], ip);
            let new = pick(&after, &b, ip);
            assert!(new == old || new == 3);
        }
    }

    #[test]
    fn down_backend_moves_only_its_clients_and_they_return() {
        let b = backends(&[1, 1, 1, 1]);
        let h = ConsistentHash::new(&b);
        let ips = random_ips(10_000, 6);
        let before: Vec<usize> = ips.iter().map(|&ip| pick(&h, &b, ip)).collect();
        b[1].set_healthy(false);
        for (&ip, &old) in ips.iter().zip(&before) {
            let new = pick(&h, &b, ip);
            if old == 1 {
                assert_ne!(new, 1);
            } else {
                assert_eq!(new, old, "{ip} moved off a healthy backend");
            }
        }
        b[1].set_healthy(true);
        let again: Vec<usize> = ips.iter().map(|&ip| pick(&h, &b, ip)).collect();
        assert_eq!(again, before);
    }

    #[test]
    fn retry_goes_to_the_next_backend_on_the_ring() {
        let b = backends(&[1, 1, 1]);
        let h = ConsistentHash::new(&b);
        for ip in random_ips(200, 7) {
            let first = pick(&h, &b, ip);
            let second = h.pick(&b, Some(hash_ip(ip)), &|i| i == first).unwrap();
            assert_ne!(second, first);
            // Deterministic, like the first choice.
            assert_eq!(h.pick(&b, Some(hash_ip(ip)), &|i| i == first), Some(second));
            let third = h.pick(&b, Some(hash_ip(ip)), &|i| i == first || i == second);
            assert_eq!(third, Some(3 - first - second));
            assert_eq!(h.pick(&b, Some(hash_ip(ip)), &|_| true), None);
        }
    }

    #[test]
    fn no_client_address_falls_back_to_round_robin() {
        let b = backends(&[1, 3, 1]);
        let h = ConsistentHash::new(&b);
        assert_eq!(counts(&h, &b, 300), vec![100, 100, 100]);
    }

    #[test]
    fn duplicate_targets_both_get_clients() {
        let b = vec![backend(0, 1), backend(0, 1), backend(1, 1)];
        let h = ConsistentHash::new(&b);
        let mut c = [0usize; 3];
        for ip in random_ips(3_000, 8) {
            c[pick(&h, &b, ip)] += 1;
        }
        assert!(c.iter().all(|&n| n > 700), "{c:?}");
    }

    #[test]
    fn stale_ring_does_not_panic() {
        let b = backends(&[1, 1, 1]);
        let h = ConsistentHash::new(&b[..1]);
        let ip = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert!(h.pick(&b, ip.map(hash_ip), &no_skip).is_some());
        assert_eq!(h.pick(&b[..0], ip.map(hash_ip), &no_skip), None);
        let empty = ConsistentHash::new(&[]);
        assert_eq!(empty.pick(&b[..0], ip.map(hash_ip), &no_skip), None);
        assert!(empty.pick(&b, ip.map(hash_ip), &no_skip).is_some());
    }
}
