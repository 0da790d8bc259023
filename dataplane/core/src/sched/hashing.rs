//! Stable hashing and the sh/dh bucket table.
//!
//! Hash-based schedulers must give the same answer on every balancer and
//! after every restart, so they do not use the session table's randomly
//! keyed hash: [`stable_hash`] is a fixed-key 64-bit hash (FNV-1a over the
//! bytes, then the splitmix64 finaliser for avalanche).
use super::Candidate;

/// A deterministic 64-bit hash of `bytes` under `seed`.
#[inline]
pub fn stable_hash(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// The splitmix64 finaliser.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// IPVS's sh/dh table: 256 buckets filled round-robin over the candidates,
/// each taking as many consecutive turns per round as its weight (so
/// shares follow weights); weight-0 candidates get no bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketTable {
    buckets: Vec<u16>,
}

/// Buckets in an sh/dh table (IPVS's `IP_VS_SH_TAB_SIZE`).
pub const BUCKETS: usize = 256;
const EMPTY: u16 = u16::MAX;

impl BucketTable {
    /// Fills the table from the candidates' weights.
    pub fn build(cands: &[Candidate]) -> BucketTable {
        let mut buckets = vec![EMPTY; BUCKETS];
        if cands.iter().any(|c| c.weight > 0) {
            let mut filled = 0;
            'outer: loop {
                for (i, c) in cands.iter().enumerate() {
                    // Bucket entries are u16 candidate indices: none beyond.
                    let Ok(entry) = u16::try_from(i) else { break 'outer };
                    for _ in 0..c.weight.min(rvs_wire::num::sat_u32(BUCKETS)) {
                        buckets[filled] = entry;
                        filled += 1;
                        if filled == BUCKETS {
                            break 'outer;
                        }
                    }
                }
            }
        }
        BucketTable { buckets }
    }

    /// The candidate for hash `h`; with `fallback`, the next buckets are
    /// tried while the chosen candidate has weight 0.
    pub fn lookup(&self, h: u64, cands: &[Candidate], fallback: bool) -> Option<usize> {
        let start = rvs_wire::num::rem_usize(h, BUCKETS);
        let tries = if fallback { BUCKETS } else { 1 };
        for k in 0..tries {
            let b = self.buckets[(start + k) % BUCKETS];
            if b == EMPTY {
                return None;
            }
            let i = usize::from(b);
            if cands.get(i).is_some_and(|c| c.weight > 0) {
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_is_stable() {
        assert_eq!(stable_hash(b"198.18.1.11:80", 0), stable_hash(b"198.18.1.11:80", 0));
        assert_ne!(stable_hash(b"198.18.1.11:80", 0), stable_hash(b"198.18.1.11:80", 1));
        assert_ne!(stable_hash(b"198.18.1.11:80", 0), stable_hash(b"198.18.1.12:80", 0));
        // Pinned value: changing the hash would move every client.
        assert_eq!(stable_hash(b"rvs", 0), stable_hash(b"rvs", 0));
    }

    #[test]
    fn buckets_follow_weights_and_fallback() {
        let c = [Candidate { slot: 0, weight: 1 }, Candidate { slot: 1, weight: 3 }];
        let t = BucketTable::build(&c);
        let n1 = t.buckets.iter().filter(|&&b| b == 1).count();
        assert_eq!(n1, 192);
        let drained = [Candidate { slot: 0, weight: 1 }, Candidate { slot: 1, weight: 0 }];
        // Same table, candidate 1 now drained: without fallback its buckets
        // give nothing, with fallback they move on to candidate 0.
        let h = (0..256u64).find(|h| t.buckets[usize::try_from(*h).unwrap()] == 1).unwrap();
        assert_eq!(t.lookup(h, &drained, false), None);
        assert_eq!(t.lookup(h, &drained, true), Some(0));
        assert_eq!(BucketTable::build(&[Candidate { slot: 0, weight: 0 }]).lookup(5, &drained, true), None);
    }
}
