//! Source allow and deny lists of a service (DPVS's whtlst/blklst), checked
//! when a flow would open a session, never on the fast path.
//!
//! The prefixes of both lists become one sorted array of change points:
//! from each point on, until the next, one verdict holds - that of the
//! longest prefix covering those addresses (CIDR prefixes either nest or are
//! disjoint, so a stack walk over them in order finds it). A lookup is a
//! binary search: 17 steps for 100,000 prefixes over one array of keys
//! (`u32` for IPv4, `u128` for IPv6), no pointer chasing, and no table of
//! 64 MiB per service as DIR-24-8 would need. One set per family.
//!
//! The most specific prefix decides: `deny 198.18.0.0/16` with `allow
//! 198.18.5.0/24` lets 198.18.5.x in. An address no prefix covers is
//! allowed when the allow list is empty, refused when it is not. The same
//! prefix in both lists is denied.

/// What the most specific prefix covering an address says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listed {
    /// On the allow list.
    Allow,
    /// On the deny list.
    Deny,
}

/// Why a source may not open a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A deny prefix is its most specific match.
    Denied,
    /// The service has an allow list and no allow prefix covers it.
    NotAllowed,
}

/// An address as a key of a [`PrefixSet`]: `u32` for IPv4, `u128` for
/// IPv6.
pub trait Key: Copy + Ord + Default + std::fmt::Debug {
    /// The next address, None past the last.
    fn next(self) -> Option<Self>;
}

impl Key for u32 {
    fn next(self) -> Option<u32> {
        self.checked_add(1)
    }
}

impl Key for u128 {
    fn next(self) -> Option<u128> {
        self.checked_add(1)
    }
}

/// The prefixes of one family, compiled into change points: the keys in
/// one array (for IPv4, 4 bytes each: 100,000 prefixes search in ~300 KB),
/// their verdicts in another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefixSet<K> {
    /// Sorted; from `starts[i]` until the next start the verdict is
    /// `verdicts[i]` (None: no prefix covers it).
    starts: Vec<K>,
    verdicts: Vec<Option<Listed>>,
}

impl<K: Key> PrefixSet<K> {
    /// Compiles `(first address, last address, verdict)` ranges that are
    /// CIDR prefixes of one family (nested or disjoint).
    pub fn build(mut ranges: Vec<(K, K, Listed)>) -> PrefixSet<K> {
        // Outer prefixes first; for the same prefix, Deny last (it wins).
        ranges.sort_by_key(|&(start, end, v)| (start, std::cmp::Reverse(end), v == Listed::Deny));
        ranges.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0 && later.1 == earlier.1;
            if same {
                earlier.2 = later.2;
            }
            same
        });
        let mut points: Vec<(K, Option<Listed>)> = Vec::with_capacity(ranges.len() * 2);
        let mut stack: Vec<(K, Listed)> = Vec::new();
        let close = |stack: &mut Vec<(K, Listed)>, points: &mut Vec<(K, Option<Listed>)>| {
            if let Some((end, _)) = stack.pop() {
                if let Some(next) = end.next() {
                    points.push((next, stack.last().map(|&(_, v)| v)));
                }
            }
        };
        for (start, end, v) in ranges {
            while stack.last().is_some_and(|&(e, _)| e < start) {
                close(&mut stack, &mut points);
            }
            points.push((start, Some(v)));
            stack.push((end, v));
        }
        while !stack.is_empty() {
            close(&mut stack, &mut points);
        }
        // Several points at one address: the last pushed holds.
        let mut out: Vec<(K, Option<Listed>)> = Vec::with_capacity(points.len());
        for p in points {
            match out.last_mut() {
                Some(last) if last.0 == p.0 => *last = p,
                _ => out.push(p),
            }
        }
        // Neighbouring points with the same verdict say nothing new.
        out.dedup_by(|later, earlier| later.1 == earlier.1);
        PrefixSet { starts: out.iter().map(|p| p.0).collect(), verdicts: out.iter().map(|p| p.1).collect() }
    }

    /// The verdict of the most specific prefix covering `a`, if any.
    #[inline]
    pub fn lookup(&self, a: K) -> Option<Listed> {
        let i = self.starts.partition_point(|&start| start <= a);
        i.checked_sub(1).and_then(|i| self.verdicts.get(i)).copied().flatten()
    }

    /// Change points held (about two per prefix).
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// True when no prefix is listed.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
}

/// A service's source lists, both families.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceLists {
    /// IPv4 sources.
    pub v4: PrefixSet<u32>,
    /// IPv6 sources.
    pub v6: PrefixSet<u128>,
    /// Whether the allow list has entries (then an unlisted source is
    /// refused).
    pub has_allow: bool,
}

impl SourceLists {
    /// Compiles the configuration's lists.
    pub fn build(allow: &[config::InterfaceAddr], deny: &[config::InterfaceAddr]) -> SourceLists {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (list, verdict) in [(allow, Listed::Allow), (deny, Listed::Deny)] {
            for p in list {
                match p.addr {
                    std::net::IpAddr::V4(a) => {
                        let len = u32::from(p.prefix.min(32));
                        let host = if len == 0 { u32::MAX } else { u32::MAX.checked_shr(len).unwrap_or(0) };
                        let start = u32::from(a) & !host;
                        v4.push((start, start | host, verdict));
                    }
                    std::net::IpAddr::V6(a) => {
                        let len = u32::from(p.prefix.min(128));
                        let host = if len == 0 { u128::MAX } else { u128::MAX.checked_shr(len).unwrap_or(0) };
                        let start = u128::from(a) & !host;
                        v6.push((start, start | host, verdict));
                    }
                }
            }
        }
        SourceLists { v4: PrefixSet::build(v4), v6: PrefixSet::build(v6), has_allow: !allow.is_empty() }
    }

    /// Whether a source may open a flow (`key`: the address as an integer,
    /// an IPv4 one in the low 32 bits).
    #[inline]
    pub fn check(&self, v6: bool, key: u128) -> Result<(), Refusal> {
        let listed = if v6 {
            self.v6.lookup(key)
        } else {
            // An IPv4 key never has high bits; saturate rather than wrap.
            self.v4.lookup(u32::try_from(key).unwrap_or(u32::MAX))
        };
        match listed {
            Some(Listed::Deny) => Err(Refusal::Denied),
            Some(Listed::Allow) => Ok(()),
            None if self.has_allow => Err(Refusal::NotAllowed),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> config::InterfaceAddr {
        s.parse().unwrap()
    }

    fn v4(s: &str) -> u128 {
        u128::from(u32::from(s.parse::<std::net::Ipv4Addr>().unwrap()))
    }

    #[test]
    fn the_most_specific_prefix_decides() {
        let l = SourceLists::build(&[p("198.18.5.0/24"), p("198.18.5.7/32")], &[p("198.18.0.0/16"), p("198.18.5.7/32"), p("0.0.0.0/0")]);
        assert_eq!(l.check(false, v4("198.18.5.1")), Ok(()));
        assert_eq!(l.check(false, v4("198.18.6.1")), Err(Refusal::Denied));
        assert_eq!(l.check(false, v4("198.18.5.7")), Err(Refusal::Denied), "the same prefix on both lists is denied");
        assert_eq!(l.check(false, v4("203.0.113.9")), Err(Refusal::Denied), "0/0 denies the rest");
        let only = SourceLists::build(&[p("198.18.0.0/15")], &[]);
        assert_eq!(only.check(false, v4("198.19.255.255")), Ok(()));
        assert_eq!(only.check(false, v4("198.20.0.0")), Err(Refusal::NotAllowed));
        assert_eq!(only.check(true, 1), Err(Refusal::NotAllowed), "no IPv6 allow prefix: refused");
        let none = SourceLists::build(&[], &[p("2001:db8::/32")]);
        assert_eq!(none.check(false, v4("198.18.0.1")), Ok(()));
        let a: u128 = u128::from("2001:db8::5".parse::<std::net::Ipv6Addr>().unwrap());
        assert_eq!(none.check(true, a), Err(Refusal::Denied));
        assert_eq!(none.check(true, a + (1 << 96)), Ok(()));
        // The top of the address space.
        let top = SourceLists::build(&[], &[p("255.255.255.0/24")]);
        assert_eq!(top.check(false, v4("255.255.255.255")), Err(Refusal::Denied));
        assert_eq!(top.check(false, v4("255.255.254.255")), Ok(()));
    }

    /// The reference: the longest matching prefix by a scan.
    fn scan(prefixes: &[(u32, u8, Listed)], a: u32) -> Option<Listed> {
        let mut best: Option<(u8, Listed)> = None;
        for &(net, len, v) in prefixes {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            if a & mask == net & mask {
                match best {
                    Some((l, bv)) if l > len || (l == len && bv == Listed::Deny) => {}
                    _ => best = Some((len, v)),
                }
            }
        }
        best.map(|(_, v)| v)
    }

    proptest! {
        #[test]
        fn lookups_match_a_longest_prefix_scan(
            prefixes in proptest::collection::vec((any::<u32>(), 0u8..=32, any::<bool>()), 0..60),
            probes in proptest::collection::vec(any::<u32>(), 50),
        ) {
            let prefixes: Vec<(u32, u8, Listed)> = prefixes
                .into_iter()
                .map(|(a, len, d)| (a & (u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)), len, if d { Listed::Deny } else { Listed::Allow }))
                .collect();
            let ranges = prefixes.iter().map(|&(net, len, v)| {
                let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                (net, net | host, v)
            }).collect();
            let set = PrefixSet::build(ranges);
            // Probe the random addresses and every prefix's edges.
            let mut all = probes.clone();
            for &(net, len, _) in &prefixes {
                let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                all.extend([net, net | host, net.wrapping_sub(1), (net | host).wrapping_add(1)]);
            }
            for a in all {
                prop_assert_eq!(set.lookup(a), scan(&prefixes, a), "address {:#x}", a);
            }
        }
    }
}
