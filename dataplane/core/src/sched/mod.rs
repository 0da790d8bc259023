//! Schedulers: how a new flow picks its real server.
//!
//! Every algorithm is a type behind [`Scheduler`], selected per service by
//! its ipvsadm name. A scheduler sees the service's real servers as
//! [`Candidate`]s in configuration order, each with its *effective* weight
//! (0 when drained by the operator or marked down by a health check: such a
//! candidate never gets a new flow), the connection counts of the calling
//! core ([`Load`]) and hashes of the flow ([`Flow`]); it returns the index
//! of the chosen candidate.
//!
//! Mutable state (round-robin cursors, smooth-WRR current weights) lives in
//! the scheduler object, which each worker core owns: no sharing, no locks.
//! Lookup tables that cost to build (Maglev, the sh/dh bucket tables) are
//! built once by management into a [`SchedSpec`] and shared read-only.
//!
//! | name | rule |
//! |------|------|
//! | `rr`  | next candidate with weight > 0 |
//! | `wrr` | smooth weighted round robin: over any W = sum of weights flows each gets exactly its weight |
//! | `lc`  | least `active * 256 + inactive` (IPVS's overhead) |
//! | `wlc` | least overhead / weight |
//! | `sed` | least (active + 1) / weight |
//! | `nq`  | an idle candidate (no active flow) if any, else `sed` |
//! | `sh`  | bucket table indexed by a hash of the source address (and port) |
//! | `dh`  | bucket table indexed by a hash of the destination address |
//! | `mh`  | Maglev lookup table indexed by a hash of the source (and port) |
//!
//! Ties go to the earliest candidate, as in IPVS.
pub mod hashing;
pub mod maglev;

use config::SchedulerKind;
use std::fmt::Debug;
use std::sync::Arc;

pub use hashing::{stable_hash, BucketTable};
pub use maglev::MaglevTable;

/// A real server as a scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Backend slot (for load lookups).
    pub slot: u16,
    /// Effective weight; 0 = no new flows.
    pub weight: u32,
}

/// Connection counts per backend slot, as the calling core sees them.
pub trait Load {
    /// (active, inactive) connections of a backend slot.
    fn conns(&self, slot: u16) -> (u32, u32);
}

/// A load view with no connections (for tests and stateless use).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLoad;

impl Load for NoLoad {
    fn conns(&self, _: u16) -> (u32, u32) {
        (0, 0)
    }
}

/// Hashes of the new flow a hashing scheduler may use.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flow {
    /// Hash of the source address (and port when the service hashes ports).
    pub src: u64,
    /// Hash of the destination address.
    pub dst: u64,
}

impl Flow {
    /// The hashes of a flow from `src` (and `sport`, when the service
    /// hashes ports) to `dst`, addresses in network byte order: stable
    /// across restarts and balancers (fixed seeds), so every balancer of
    /// a cluster hashes a flow alike.
    pub fn of(src: &[u8], sport: Option<u16>, dst: &[u8]) -> Flow {
        let mut b = [0u8; 18];
        let n = src.len().min(16);
        b[..n].copy_from_slice(&src[..n]);
        let n = match sport {
            Some(p) => {
                b[n..n + 2].copy_from_slice(&p.to_be_bytes());
                n + 2
            }
            None => n,
        };
        Flow { src: stable_hash(&b[..n], 0x0073_7263), dst: stable_hash(dst, 0x647374) }
    }
}

/// A scheduling algorithm with its per-core state.
pub trait Scheduler: Send + Debug + CloneScheduler {
    /// Picks a candidate index for a new flow, or None when no candidate
    /// has a positive weight.
    fn pick(&mut self, cands: &[Candidate], load: &dyn Load, flow: &Flow) -> Option<usize>;
    /// True when `pick` reads the flow's hashes (the caller computes them
    /// only then).
    fn uses_flow(&self) -> bool {
        false
    }
}

/// A copy of a scheduler with its state (`rvsadm explain` picks with a
/// copy, so the worker's own cursor does not move).
pub trait CloneScheduler {
    /// The copy.
    fn clone_box(&self) -> Box<dyn Scheduler>;
}

impl<T: Scheduler + Clone + 'static> CloneScheduler for T {
    fn clone_box(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }
}

/// The shareable, prebuilt part of a service's scheduler.
#[derive(Clone, Debug)]
pub enum SchedSpec {
    /// Round robin.
    Rr,
    /// Smooth weighted round robin.
    Wrr,
    /// Least connections.
    Lc,
    /// Weighted least connections.
    Wlc,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Source hashing.
    Sh {
        /// Bucket table over candidate indices.
        table: Arc<BucketTable>,
        /// Try the next bucket when the chosen one is unavailable.
        fallback: bool,
    },
    /// Destination hashing.
    Dh {
        /// Bucket table over candidate indices.
        table: Arc<BucketTable>,
        /// Try the next bucket when the chosen one is unavailable.
        fallback: bool,
    },
    /// Maglev hashing.
    Mh {
        /// Lookup table over candidate indices.
        table: Arc<MaglevTable>,
        /// Try the next entry when the chosen one is unavailable.
        fallback: bool,
    },
}

impl SchedSpec {
    /// Builds the shareable part for `kind` over `cands` (the expensive
    /// tables are built here, by management).
    pub fn build(kind: SchedulerKind, cands: &[Candidate], ids: &[u64], mh_size: u32, fallback: bool) -> SchedSpec {
        match kind {
            SchedulerKind::Rr => SchedSpec::Rr,
            SchedulerKind::Wrr => SchedSpec::Wrr,
            SchedulerKind::Lc => SchedSpec::Lc,
            SchedulerKind::Wlc => SchedSpec::Wlc,
            SchedulerKind::Sed => SchedSpec::Sed,
            SchedulerKind::Nq => SchedSpec::Nq,
            SchedulerKind::Sh => SchedSpec::Sh { table: Arc::new(BucketTable::build(cands)), fallback },
            SchedulerKind::Dh => SchedSpec::Dh { table: Arc::new(BucketTable::build(cands)), fallback },
            SchedulerKind::Mh => SchedSpec::Mh { table: Arc::new(MaglevTable::build(cands, ids, mh_size)), fallback },
        }
    }

    /// The candidate a hashing scheduler (sh, dh, mh) picks for `flow`,
    /// as every worker does; None for the others (their pick depends on
    /// per-core state) or when no candidate is available.
    pub fn hashed_pick(&self, cands: &[Candidate], flow: &Flow) -> Option<usize> {
        struct NoLoad;
        impl Load for NoLoad {
            fn conns(&self, _: u16) -> (u32, u32) {
                (0, 0)
            }
        }
        match self {
            SchedSpec::Sh { .. } | SchedSpec::Dh { .. } | SchedSpec::Mh { .. } => self.instantiate().pick(cands, &NoLoad, flow),
            _ => None,
        }
    }

    /// A per-core scheduler instance.
    pub fn instantiate(&self) -> Box<dyn Scheduler> {
        match self {
            SchedSpec::Rr => Box::new(RoundRobin::default()),
            SchedSpec::Wrr => Box::new(WeightedRoundRobin::default()),
            SchedSpec::Lc => Box::new(LeastConn),
            SchedSpec::Wlc => Box::new(WeightedLeastConn),
            SchedSpec::Sed => Box::new(ShortestExpectedDelay),
            SchedSpec::Nq => Box::new(NeverQueue),
            SchedSpec::Sh { table, fallback } => Box::new(HashSched { table: table.clone(), fallback: *fallback, on_dst: false }),
            SchedSpec::Dh { table, fallback } => Box::new(HashSched { table: table.clone(), fallback: *fallback, on_dst: true }),
            SchedSpec::Mh { table, fallback } => Box::new(MaglevSched { table: table.clone(), fallback: *fallback }),
        }
    }
}

/// `rr`: cycles through candidates with weight > 0.
#[derive(Clone, Debug, Default)]
pub struct RoundRobin {
    next: usize,
}

impl Scheduler for RoundRobin {
    fn pick(&mut self, cands: &[Candidate], _: &dyn Load, _: &Flow) -> Option<usize> {
        let n = cands.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if cands[i].weight > 0 {
                self.next = (i + 1) % n;
                return Some(i);
            }
        }
        None
    }
}

/// `wrr`: smooth weighted round robin (each pick adds every weight to its
/// candidate's current value, takes the largest, and subtracts the total
/// from it): interleaved, and exact over every full cycle of W flows.
#[derive(Clone, Debug, Default)]
pub struct WeightedRoundRobin {
    current: Vec<i64>,
}

impl Scheduler for WeightedRoundRobin {
    fn pick(&mut self, cands: &[Candidate], _: &dyn Load, _: &Flow) -> Option<usize> {
        if self.current.len() != cands.len() {
            self.current = vec![0; cands.len()];
        }
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, c) in cands.iter().enumerate() {
            if c.weight == 0 {
                continue;
            }
            let w = i64::from(c.weight);
            self.current[i] += w;
            total += w;
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        self.current[b] -= total;
        Some(b)
    }
}

/// IPVS's connection overhead: active connections weigh 256 inactive ones.
#[inline]
fn overhead(load: &dyn Load, slot: u16) -> u64 {
    let (a, i) = load.conns(slot);
    (u64::from(a) << 8) + u64::from(i)
}

/// `lc`: least overhead.
#[derive(Clone, Debug, Default)]
pub struct LeastConn;

impl Scheduler for LeastConn {
    fn pick(&mut self, cands: &[Candidate], load: &dyn Load, _: &Flow) -> Option<usize> {
        let mut best: Option<(usize, u64)> = None;
        for (i, c) in cands.iter().enumerate() {
            if c.weight == 0 {
                continue;
            }
            let o = overhead(load, c.slot);
            if best.is_none_or(|(_, bo)| o < bo) {
                best = Some((i, o));
            }
        }
        best.map(|(i, _)| i)
    }
}

/// Picks the candidate minimising `cost / weight` (compared by
/// cross-multiplication, as IPVS does, to stay in integers).
fn least_ratio(cands: &[Candidate], cost: impl Fn(&Candidate) -> u64) -> Option<usize> {
    let mut best: Option<(usize, u64, u64)> = None;
    for (i, c) in cands.iter().enumerate() {
        if c.weight == 0 {
            continue;
        }
        let (o, w) = (cost(c), u64::from(c.weight));
        match best {
            Some((_, bo, bw)) if u128::from(o) * u128::from(bw) >= u128::from(bo) * u128::from(w) => {}
            _ => best = Some((i, o, w)),
        }
    }
    best.map(|(i, _, _)| i)
}

/// `wlc`: least overhead per unit of weight.
#[derive(Clone, Debug, Default)]
pub struct WeightedLeastConn;

impl Scheduler for WeightedLeastConn {
    fn pick(&mut self, cands: &[Candidate], load: &dyn Load, _: &Flow) -> Option<usize> {
        least_ratio(cands, |c| overhead(load, c.slot))
    }
}

/// `sed`: least (active + 1) per unit of weight.
#[derive(Clone, Debug, Default)]
pub struct ShortestExpectedDelay;

impl Scheduler for ShortestExpectedDelay {
    fn pick(&mut self, cands: &[Candidate], load: &dyn Load, _: &Flow) -> Option<usize> {
        least_ratio(cands, |c| u64::from(load.conns(c.slot).0) + 1)
    }
}

/// `nq`: the first idle candidate, else `sed`.
#[derive(Clone, Debug, Default)]
pub struct NeverQueue;

impl Scheduler for NeverQueue {
    fn pick(&mut self, cands: &[Candidate], load: &dyn Load, f: &Flow) -> Option<usize> {
        if let Some(i) = cands.iter().position(|c| c.weight > 0 && load.conns(c.slot).0 == 0) {
            return Some(i);
        }
        ShortestExpectedDelay.pick(cands, load, f)
    }
}

/// `sh` / `dh`: a hash of the source (or destination) picks a bucket.
#[derive(Clone, Debug)]
pub struct HashSched {
    table: Arc<BucketTable>,
    fallback: bool,
    on_dst: bool,
}

impl Scheduler for HashSched {
    fn uses_flow(&self) -> bool {
        true
    }
    fn pick(&mut self, cands: &[Candidate], _: &dyn Load, f: &Flow) -> Option<usize> {
        let h = if self.on_dst { f.dst } else { f.src };
        self.table.lookup(h, cands, self.fallback)
    }
}

/// `mh`: Maglev lookup.
#[derive(Clone, Debug)]
pub struct MaglevSched {
    table: Arc<MaglevTable>,
    fallback: bool,
}

impl Scheduler for MaglevSched {
    fn uses_flow(&self) -> bool {
        true
    }
    fn pick(&mut self, cands: &[Candidate], _: &dyn Load, f: &Flow) -> Option<usize> {
        self.table.lookup(f.src, cands, self.fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cands(weights: &[u32]) -> Vec<Candidate> {
        weights.iter().enumerate().map(|(i, &w)| Candidate { slot: u16::try_from(i).unwrap(), weight: w }).collect()
    }

    struct Conns(HashMap<u16, (u32, u32)>);
    impl Load for Conns {
        fn conns(&self, slot: u16) -> (u32, u32) {
            self.0.get(&slot).copied().unwrap_or((0, 0))
        }
    }

    fn counts(s: &mut dyn Scheduler, c: &[Candidate], n: usize) -> Vec<usize> {
        let mut out = vec![0; c.len()];
        for _ in 0..n {
            out[s.pick(c, &NoLoad, &Flow::default()).unwrap()] += 1;
        }
        out
    }

    #[test]
    fn rr_cycles_and_skips_weight_zero() {
        let c = cands(&[1, 0, 5, 1]);
        let mut s = RoundRobin::default();
        let seq: Vec<usize> = (0..6).map(|_| s.pick(&c, &NoLoad, &Flow::default()).unwrap()).collect();
        assert_eq!(seq, [0, 2, 3, 0, 2, 3]);
        assert_eq!(s.pick(&cands(&[0, 0]), &NoLoad, &Flow::default()), None);
    }

    #[test]
    fn wrr_exact_counts_and_interleaving() {
        let c = cands(&[4, 3, 2]);
        let mut s = WeightedRoundRobin::default();
        assert_eq!(counts(&mut s, &c, 900), [400, 300, 200]);
        let mut s = WeightedRoundRobin::default();
        let seq: Vec<usize> = (0..9).map(|_| s.pick(&c, &NoLoad, &Flow::default()).unwrap()).collect();
        assert_eq!(seq, [0, 1, 2, 0, 1, 0, 2, 1, 0]);
        let c = cands(&[1, 2, 3, 0]);
        let mut s = WeightedRoundRobin::default();
        assert_eq!(counts(&mut s, &c, 600), [100, 200, 300, 0]);
    }

    #[test]
    fn lc_picks_least_loaded() {
        let c = cands(&[1, 1, 1]);
        let load = Conns(HashMap::from([(0, (3, 0)), (1, (1, 200)), (2, (1, 5))]));
        assert_eq!(LeastConn.pick(&c, &load, &Flow::default()), Some(2));
        let c0 = cands(&[1, 1, 0]);
        assert_eq!(LeastConn.pick(&c0, &load, &Flow::default()), Some(1));
    }

    #[test]
    fn wlc_weighs_overhead() {
        // overheads 512 and 1024 with weights 1 and 3: 1024/3 < 512/1.
        let c = cands(&[1, 3]);
        let load = Conns(HashMap::from([(0, (2, 0)), (1, (4, 0))]));
        assert_eq!(WeightedLeastConn.pick(&c, &load, &Flow::default()), Some(1));
        let load = Conns(HashMap::from([(0, (1, 0)), (1, (4, 0))]));
        assert_eq!(WeightedLeastConn.pick(&c, &load, &Flow::default()), Some(0));
        // Ties go to the first.
        assert_eq!(WeightedLeastConn.pick(&cands(&[2, 2]), &NoLoad, &Flow::default()), Some(0));
    }

    #[test]
    fn sed_and_nq() {
        let c = cands(&[1, 4]);
        // sed: (1+1)/1 = 2 vs (4+1)/4 = 1.25 -> second.
        let load = Conns(HashMap::from([(0, (1, 0)), (1, (4, 0))]));
        assert_eq!(ShortestExpectedDelay.pick(&c, &load, &Flow::default()), Some(1));
        // nq: the idle one wins even with a low weight.
        let load = Conns(HashMap::from([(0, (0, 9)), (1, (1, 0))]));
        assert_eq!(NeverQueue.pick(&c, &load, &Flow::default()), Some(0));
        let load = Conns(HashMap::from([(0, (1, 0)), (1, (4, 0))]));
        assert_eq!(NeverQueue.pick(&c, &load, &Flow::default()), Some(1));
    }

    #[test]
    fn least_connection_family_fills_evenly() {
        // Simulate: each pick adds an active connection to the chosen one.
        for spec in [SchedSpec::Lc, SchedSpec::Wlc, SchedSpec::Sed, SchedSpec::Nq] {
            let c = cands(&[1, 1, 2]);
            let mut load = Conns(HashMap::new());
            let mut s = spec.instantiate();
            for _ in 0..400 {
                let i = s.pick(&c, &load, &Flow::default()).unwrap();
                load.0.entry(c[i].slot).or_insert((0, 0)).0 += 1;
            }
            let got: Vec<u32> = (0..3).map(|i| load.0.get(&i).map_or(0, |x| x.0)).collect();
            match spec {
                SchedSpec::Lc => assert_eq!(got, [134, 133, 133], "{spec:?}"),
                _ => assert_eq!(got, [100, 100, 200], "{spec:?}"),
            }
        }
    }

    fn src_flow(src: u32, port: Option<u16>) -> Flow {
        let mut b = src.to_be_bytes().to_vec();
        if let Some(p) = port {
            b.extend_from_slice(&p.to_be_bytes());
        }
        Flow { src: stable_hash(&b, 0x0073_7263), dst: stable_hash(&[9, 9, 9, 9], 0x0064_7374) }
    }

    #[test]
    fn source_hashing_is_sticky_and_weighted() {
        let c = cands(&[1, 1, 2]);
        let ids: Vec<u64> = (0..3).collect();
        for kind in [SchedulerKind::Sh, SchedulerKind::Mh] {
            let spec = SchedSpec::build(kind, &c, &ids, 65537, false);
            let (mut a, mut b) = (spec.instantiate(), spec.instantiate());
            let mut counts = [0u32; 3];
            for src in 0..4000u32 {
                let f = src_flow(src, None);
                let x = a.pick(&c, &NoLoad, &f).unwrap();
                // The same source always gets the same server, on any core.
                assert_eq!(b.pick(&c, &NoLoad, &f), Some(x), "{kind}");
                assert_eq!(a.pick(&c, &NoLoad, &f), Some(x), "{kind}");
                counts[x] += 1;
            }
            // Weights 1:1:2 -> about 1000:1000:2000.
            for (i, want) in [1000.0, 1000.0, 2000.0].iter().enumerate() {
                assert!((f64::from(counts[i]) - want).abs() < 0.1 * want, "{kind}: {counts:?}");
            }
        }
    }

    #[test]
    fn hashing_on_the_port_spreads_one_client() {
        let c = cands(&[1, 1, 1]);
        let ids: Vec<u64> = (0..3).collect();
        let spec = SchedSpec::build(SchedulerKind::Mh, &c, &ids, 65537, false);
        let mut s = spec.instantiate();
        let without: std::collections::HashSet<usize> = (0..50u16).map(|_| s.pick(&c, &NoLoad, &src_flow(7, None)).unwrap()).collect();
        assert_eq!(without.len(), 1, "without the port, one client is one server");
        let with: std::collections::HashSet<usize> =
            (0..50u16).map(|p| s.pick(&c, &NoLoad, &src_flow(7, Some(40000 + p))).unwrap()).collect();
        assert_eq!(with.len(), 3, "with the port, one client's connections spread");
    }

    #[test]
    fn destination_hashing_follows_the_destination() {
        let c = cands(&[1, 1, 1]);
        let spec = SchedSpec::build(SchedulerKind::Dh, &c, &[0, 1, 2], 65537, false);
        let mut s = spec.instantiate();
        let f1 = Flow { src: 1, dst: stable_hash(&[198, 18, 9, 1], 1) };
        let f2 = Flow { src: 99, dst: f1.dst };
        assert_eq!(s.pick(&c, &NoLoad, &f1), s.pick(&c, &NoLoad, &f2));
    }

    #[test]
    fn hash_fallback_only_when_asked() {
        let c = cands(&[1, 1, 1]);
        let ids: Vec<u64> = (0..3).collect();
        for kind in [SchedulerKind::Sh, SchedulerKind::Dh, SchedulerKind::Mh] {
            // Tables built while all were up; then server 1 is drained.
            let strict = SchedSpec::build(kind, &c, &ids, 65537, false).instantiate();
            let lenient = SchedSpec::build(kind, &c, &ids, 65537, true).instantiate();
            let drained = cands(&[1, 0, 1]);
            let (mut strict, mut lenient) = (strict, lenient);
            let mut none = 0;
            for src in 0..300u32 {
                let f = src_flow(src, None);
                let f = Flow { dst: f.src, ..f };
                match strict.pick(&drained, &NoLoad, &f) {
                    None => none += 1,
                    Some(x) => assert_ne!(x, 1),
                }
                assert_ne!(lenient.pick(&drained, &NoLoad, &f), Some(1));
                assert!(lenient.pick(&drained, &NoLoad, &f).is_some(), "{kind} with fallback always finds one");
            }
            assert!(none > 50, "{kind}: without fallback the drained server's share finds nothing ({none})");
        }
    }

    #[test]
    fn weight_zero_gets_nothing_from_any_scheduler() {
        let c = cands(&[3, 0, 2]);
        let ids: Vec<u64> = (0..3).collect();
        for kind in SchedulerKind::ALL {
            let spec = SchedSpec::build(kind, &c, &ids, 65537, false);
            let mut s = spec.instantiate();
            for i in 0..3000u64 {
                let f = Flow { src: stable_hash(&i.to_le_bytes(), 1), dst: stable_hash(&i.to_le_bytes(), 2) };
                let p = s.pick(&c, &NoLoad, &f);
                assert_ne!(p, Some(1), "{kind} picked a weight-0 candidate");
            }
        }
    }
}
