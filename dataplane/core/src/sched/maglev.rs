//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), with weights.
//!
//! Each candidate has a permutation of the M table positions, derived from
//! two stable hashes of its identity (`offset`, `skip`); candidates take
//! turns claiming their next free preferred position until the table is
//! full. Weights are honoured as IPVS's `mh` does (per round a candidate
//! takes `weight / gcd(weights)` turns), and each candidate stops at a quota
//! apportioned from M by its weight (largest remainders), so its share of
//! the table is within one entry of `M * weight / total`. Candidates with
//! weight 0 take no position.
//!
//! M must be prime (65537 by default) so every skip generates a full
//! permutation. The build walks each permutation incrementally (add `skip`,
//! subtract M on overflow) instead of computing `(offset + j*skip) mod M`,
//! which keeps a 65537-entry build at about a millisecond.
use super::hashing::stable_hash;
use super::Candidate;
use rvs_wire::num::sat_usize;

const EMPTY: u16 = u16::MAX;

/// A built Maglev lookup table over candidate indices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaglevTable {
    entries: Vec<u16>,
}

/// Splits `total` into integer quotas proportional to `weights` (largest
/// remainder method): the quotas sum to `total` and each is within one of
/// its exact share.
fn apportion(weights: &[u64], total: u64) -> Vec<u64> {
    let sum: u64 = weights.iter().sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let mut q: Vec<u64> = weights.iter().map(|&w| rvs_wire::num::sat_u64(u128::from(total) * u128::from(w) / u128::from(sum))).collect();
    let mut rest = total - q.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse((u128::from(total) * u128::from(weights[i])) % u128::from(sum)));
    for &i in order.iter().cycle() {
        if rest == 0 {
            break;
        }
        q[i] += 1;
        rest -= 1;
    }
    q
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl MaglevTable {
    /// Builds a table of `m` entries (prime). `ids[i]` is a stable identity
    /// of candidate i (e.g. a hash of its address and port), so a candidate
    /// keeps its permutation whatever else changes, and the table maps each
    /// entry to the same identity whatever the candidates' order.
    pub fn build(cands: &[Candidate], ids: &[u64], m: u32) -> MaglevTable {
        let m64 = u64::from(m.max(2));
        let size = sat_usize(m64);
        let mut entries = vec![EMPTY; size];
        // Turns go in the order of the candidates' identities, not of their
        // indices: the table is a function of the set of (identity, weight)
        // alone, whatever order a configuration lists them in or its
        // history gave their slots - so every balancer of a cluster with
        // the same real servers builds the same table.
        let mut live: Vec<usize> = (0..cands.len()).filter(|&i| cands[i].weight > 0).collect();
        live.sort_by_key(|&i| (ids.get(i).copied().unwrap_or(i as u64), i));
        if live.is_empty() {
            return MaglevTable { entries };
        }
        let g = live.iter().fold(0, |g, &i| gcd(g, cands[i].weight));
        // Cap turns per round: huge weights would only make rounds long.
        let turns: Vec<u64> = live.iter().map(|&i| u64::from(cands[i].weight / g).min(m64)).collect();
        let mut quota = apportion(&live.iter().map(|&i| u64::from(cands[i].weight)).collect::<Vec<_>>(), m64);
        let mut pos: Vec<u64> = Vec::with_capacity(live.len());
        let mut skip: Vec<u64> = Vec::with_capacity(live.len());
        for &i in &live {
            let id = ids.get(i).copied().unwrap_or(i as u64).to_le_bytes();
            pos.push(stable_hash(&id, 0x6d61_676c_6576_3031) % m64);
            skip.push(stable_hash(&id, 0x6d61_676c_6576_3032) % (m64 - 1) + 1);
        }
        let mut filled = 0usize;
        'fill: loop {
            for (k, &i) in live.iter().enumerate() {
                // Entries are u16 candidate indices: none beyond.
                let Ok(entry) = u16::try_from(i) else { break 'fill };
                for _ in 0..turns[k].min(quota[k]) {
                    quota[k] -= 1;
                    let mut p = pos[k];
                    while entries[sat_usize(p)] != EMPTY {
                        p += skip[k];
                        if p >= m64 {
                            p -= m64;
                        }
                    }
                    entries[sat_usize(p)] = entry;
                    p += skip[k];
                    if p >= m64 {
                        p -= m64;
                    }
                    pos[k] = p;
                    filled += 1;
                    if filled == size {
                        break 'fill;
                    }
                }
            }
        }
        MaglevTable { entries }
    }

    /// Table size M.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True for an empty table (never: M >= 2).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The candidate index stored at entry `i`, if any.
    pub fn entry(&self, i: usize) -> Option<usize> {
        self.entries.get(i).filter(|&&e| e != EMPTY).map(|&e| usize::from(e))
    }

    /// The candidate for hash `h`. With `fallback`, when that candidate has
    /// weight 0 now (drained or down since the table was built), the
    /// following entries are tried.
    #[inline]
    pub fn lookup(&self, h: u64, cands: &[Candidate], fallback: bool) -> Option<usize> {
        let n = self.entries.len();
        let start = rvs_wire::num::rem_usize(h, n);
        let tries = if fallback { n } else { 1 };
        for k in 0..tries {
            let mut j = start + k;
            if j >= n {
                j -= n;
            }
            let e = self.entries[j];
            if e == EMPTY {
                return None;
            }
            if cands.get(usize::from(e)).is_some_and(|c| c.weight > 0) {
                return Some(usize::from(e));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cands(weights: &[u32]) -> Vec<Candidate> {
        weights.iter().enumerate().map(|(i, &w)| Candidate { slot: u16::try_from(i).unwrap(), weight: w }).collect()
    }

    fn ids(n: usize) -> Vec<u64> {
        (0..n as u64).map(|i| stable_hash(&(0xc612_0100 + i).to_be_bytes(), 7)).collect()
    }

    proptest! {
        /// The same real servers listed in any order build the same table,
        /// read as identities (what a cluster of balancers relies on).
        #[test]
        fn the_table_does_not_depend_on_the_candidates_order(weights in proptest::collection::vec(0u32..5, 1..12), seed in any::<u64>()) {
            let n = weights.len();
            let id = ids(n);
            let a = MaglevTable::build(&cands(&weights), &id, 251);
            // A permutation of the candidates (with their ids and weights).
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|&i| stable_hash(&(i as u64 ^ seed).to_le_bytes(), 3));
            let w2: Vec<u32> = order.iter().map(|&i| weights[i]).collect();
            let id2: Vec<u64> = order.iter().map(|&i| id[i]).collect();
            let b = MaglevTable::build(&cands(&w2), &id2, 251);
            for e in 0..251 {
                prop_assert_eq!(a.entry(e).map(|c| id[c]), b.entry(e).map(|c| id2[c]), "entry {}", e);
            }
        }
    }

    fn shares(t: &MaglevTable, n: usize) -> Vec<usize> {
        let mut s = vec![0; n];
        for i in 0..t.len() {
            if let Some(c) = t.entry(i) {
                s[c] += 1;
            }
        }
        s
    }

    #[test]
    fn fills_every_entry_equally() {
        let c = cands(&[1; 7]);
        let t = MaglevTable::build(&c, &ids(7), 65537);
        let s = shares(&t, 7);
        assert_eq!(s.iter().sum::<usize>(), 65537);
        for x in s {
            assert!((9362..=9363).contains(&x), "{x}");
        }
    }

    #[test]
    fn weight_zero_takes_nothing_and_fallback_moves_on() {
        let c = cands(&[1, 0, 1]);
        let t = MaglevTable::build(&c, &ids(3), 251);
        assert_eq!(shares(&t, 3)[1], 0);
        let drained = cands(&[1, 0, 0]);
        let h = (0..251u64).find(|&h| t.lookup(h, &c, false) == Some(2)).unwrap();
        assert_eq!(t.lookup(h, &drained, false), None);
        assert_eq!(t.lookup(h, &drained, true), Some(0));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
        /// Every candidate's share of the table is within 1% of its weight share.
        #[test]
        fn shares_follow_weights(weights in prop::collection::vec(1u32..=100, 2..40)) {
            let c = cands(&weights);
            let t = MaglevTable::build(&c, &ids(c.len()), 65537);
            let s = shares(&t, c.len());
            let total: u32 = weights.iter().sum();
            for (i, &w) in weights.iter().enumerate() {
                // Entries are whole: the share is exact to one entry, which
                // is within 1% for every share of at least 100 entries.
                let want = 65537.0 * f64::from(w) / f64::from(total);
                let got = s[i] as f64;
                prop_assert!((got - want).abs() < 1.0, "candidate {} weight {}: {} entries, want {:.2}", i, w, got, want);
                if want >= 100.0 {
                    prop_assert!((got - want).abs() <= 0.01 * want);
                }
            }
        }

        /// Removing one of 100 equal candidates moves under 1% of the entries
        /// that belonged to the others.
        #[test]
        fn removal_disrupts_little(gone in 0usize..100) {
            let all_ids = ids(100);
            let before = MaglevTable::build(&cands(&[1; 100]), &all_ids, 65537);
            let mut w = vec![1u32; 100];
            w[gone] = 0;
            let after = MaglevTable::build(&cands(&w), &all_ids, 65537);
            let mut others = 0usize;
            let mut moved = 0usize;
            for i in 0..65537 {
                let b = before.entry(i).unwrap();
                if b != gone {
                    others += 1;
                    if after.entry(i).unwrap() != b { moved += 1; }
                }
            }
            prop_assert!((moved as f64) < 0.01 * others as f64, "moved {} of {}", moved, others);
        }
    }
}
