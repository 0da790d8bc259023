//! Per-core counters, written by one worker and read by management.
//!
//! Each worker owns a [`CoreStats`]; it is the only writer. A [`Counter`]
//! is an `AtomicU64` updated with a relaxed load and store (no
//! read-modify-write, so no locked instruction on the fast path); the
//! management thread sums the cores with relaxed loads. Gauges (active
//! sessions) are counters that also go down; summed across cores they are
//! read as wrapping differences. Management never writes here: "zeroing"
//! (`rvsadm -Z`) and slot reuse are done by remembering a base value.
use crate::DropReason;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A single-writer counter.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` (owner core only).
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    /// Adds one (owner core only).
    #[inline(always)]
    pub fn inc(&self) {
        self.add(1);
    }
    /// Subtracts one, for gauges (owner core only).
    #[inline(always)]
    pub fn dec(&self) {
        self.0.store(self.0.load(Relaxed).wrapping_sub(1), Relaxed);
    }
    /// Sets an absolute value, for gauges the owner recomputes.
    #[inline(always)]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }
    /// Reads the value (any thread).
    #[inline(always)]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Per real-server counters on one core (one cache line).
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct BackendStats {
    /// Sessions created.
    pub conns: Counter,
    /// Gauge: established TCP sessions.
    pub active: Counter,
    /// Gauge: other sessions (half-open, closing, UDP).
    pub inactive: Counter,
    /// Packets client -> real server.
    pub pkts_in: Counter,
    /// Packets real server -> client (NAT and full NAT only).
    pub pkts_out: Counter,
    /// Bytes client -> real server.
    pub bytes_in: Counter,
    /// Bytes real server -> client.
    pub bytes_out: Counter,
}

/// Per virtual-service counters on one core.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct ServiceStats {
    /// Sessions created.
    pub conns: Counter,
    /// Packets in.
    pub pkts_in: Counter,
    /// Packets out.
    pub pkts_out: Counter,
    /// Bytes in.
    pub bytes_in: Counter,
    /// Bytes out.
    pub bytes_out: Counter,
    /// New flows sent to the fallback ("sorry") server.
    pub fallback_conns: Counter,
    /// New flows forwarded without a session (table full, stateless policy).
    pub stateless: Counter,
}

/// Per-port counters on one core.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct PortCounters {
    /// Packets received.
    pub rx_pkts: Counter,
    /// Bytes received.
    pub rx_bytes: Counter,
    /// Packets transmitted.
    pub tx_pkts: Counter,
    /// Bytes transmitted.
    pub tx_bytes: Counter,
    /// Packets passed to the kernel interface.
    pub to_kernel: Counter,
    /// Packets from the kernel interface sent out of this port.
    pub from_kernel: Counter,
}

/// Most ports a configuration may have (validation refuses more).
pub use config::MAX_PORTS;

/// Buckets of the latency histogram: log-linear, eight per power of two
/// of nanoseconds (at most 12.5% wide), from 0 to about 2^34 ns.
pub const LATENCY_BUCKETS: usize = 256;

/// The latency bucket of `ns` nanoseconds.
#[inline]
pub fn latency_bucket(ns: u64) -> usize {
    let small = |x: u64| usize::try_from(x).unwrap_or(0);
    if ns < 8 {
        return small(ns);
    }
    let e = small(u64::from(ns.ilog2())); // 3..=63
    ((e - 2) * 8 + small((ns >> (e - 3)) & 7)).min(LATENCY_BUCKETS - 1)
}

/// The smallest latency in nanoseconds that falls in bucket `i`.
pub fn latency_floor(i: usize) -> u64 {
    let wide = |x: usize| u64::try_from(x).unwrap_or(u64::MAX);
    if i < 8 {
        return wide(i);
    }
    let (e, m) = (i / 8 + 2, wide(i % 8));
    (8 + m) << (e - 3)
}

/// Everything one worker counts.
#[derive(Debug)]
pub struct CoreStats {
    /// Packets by the time they spent in rvsd ([`latency_bucket`]; only
    /// with `dataplane.latency_histogram`).
    pub latency: Box<[Counter]>,
    /// Drops by reason.
    pub drops: [Counter; DropReason::COUNT],
    /// Per port.
    pub ports: [PortCounters; MAX_PORTS],
    /// Per backend slot.
    pub backends: Box<[BackendStats]>,
    /// Per service slot.
    pub services: Box<[ServiceStats]>,
    /// Gauge: IPv4 sessions in the table.
    pub sessions_v4: Counter,
    /// Gauge: IPv6 sessions in the table.
    pub sessions_v6: Counter,
    /// Sessions created.
    pub sessions_created: Counter,
    /// Sessions expired or removed.
    pub sessions_expired: Counter,
    /// A new SYN replaced a closing session on the same 5-tuple.
    pub sessions_reused: Counter,
    /// Packets handed to another core's ring.
    pub handover_out: Counter,
    /// Packets received from other cores' rings.
    pub handover_in: Counter,
    /// ICMP/ICMPv6 errors generated (time exceeded, too big).
    pub icmp_errors_sent: Counter,
    /// ICMP errors about sessions forwarded to the other party.
    pub icmp_errors_forwarded: Counter,
    /// ARP replies and neighbour advertisements sent.
    pub neigh_answers: Counter,
    /// ARP requests and neighbour solicitations sent.
    pub neigh_probes: Counter,
    /// Frames held until their next hop's MAC resolved.
    pub neigh_held: Counter,
    /// Packets forwarded by the fast path (the rest took the general one).
    pub fast_path: Counter,
    /// Poll-loop iterations.
    pub loops: Counter,
    /// Iterations that found no packet.
    pub idle_loops: Counter,
    /// Snapshot generation this core runs (for quiescence checks).
    pub generation: Counter,
    /// The snapshot generation at the start of this core's last complete
    /// sweep of its session tables: no session of a real server removed by
    /// that generation remains (management may reuse its slot).
    pub swept_generation: Counter,
    /// TCP resets sent for sessions whose real server was removed.
    pub resets_sent: Counter,
    /// New flows forwarded without a session (full table, stateless policy).
    pub stateless_flows: Counter,
    /// Verdicts on received frames (with the `verdict`-class drops, these
    /// add up to every frame this core received or was handed).
    pub frames: FrameCounters,
    /// Gratuitous ARPs and unsolicited neighbour advertisements sent.
    pub announcements: Counter,
    /// The last ARP/ND frame that claimed one of our addresses: address
    /// (IPv4 mapped into IPv6) in two halves, then MAC (low 48 bits) with
    /// the port in bits 48..56. Management logs it when `addr_conflict`
    /// grows.
    pub last_conflict: [Counter; 3],
    /// Session sync, this core's part.
    pub sync: SyncCounters,
    /// The SYN proxy.
    pub synproxy: SynproxyCounters,
}

/// SYN proxy counters of one core.
#[derive(Debug, Default)]
pub struct SynproxyCounters {
    /// SYNs answered with a cookie.
    pub syns: Counter,
    /// ACKs with a valid cookie (connections opened to a real server).
    pub cookies_valid: Counter,
    /// ACKs with no valid cookie.
    pub cookies_invalid: Counter,
    /// SYNs sent to a real server again (the client probed, or the timer
    /// found a second passed, while it had not answered).
    pub syns_resent: Counter,
    /// Real servers' handshakes the resend timer could not follow, its
    /// ring ([`crate::fwd::SYNPROXY_RESEND_RING`] per core) being full:
    /// only the client's window probes repeat their SYN.
    pub resend_ring_full: Counter,
    /// Window updates sent to clients (a real server answered).
    pub window_updates: Counter,
    /// Window updates that found no room (the client's probe opens it).
    pub updates_lost: Counter,
    /// Segments whose SACK blocks were translated.
    pub sack_translated: Counter,
}

/// Session sync counters of one core: what a master's core emitted and
/// what a backup's core installed from its peers.
#[derive(Debug, Default)]
pub struct SyncCounters {
    /// Records emitted (session changes and bulk transfer).
    pub emitted: Counter,
    /// Records lost because the core's sync buffer or queue was full.
    pub overflow: Counter,
    /// Records installed or applied (upserts and deletions).
    pub applied: Counter,
    /// Records refused, by reason ([`crate::fwd::SyncReject`]).
    pub rejected: [Counter; crate::fwd::SyncReject::COUNT],
}

/// What the forwarder did with the frames it was given, by verdict.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct FrameCounters {
    /// Forwarded (rewritten and sent on).
    pub forwarded: Counter,
    /// Answered in place (ARP and ND replies, echo replies).
    pub answered: Counter,
    /// Taken in with nothing to send (ARP replies learned).
    pub consumed: Counter,
    /// Passed to a kernel interface.
    pub to_kernel: Counter,
    /// Handed to the core that owns the flow.
    pub handed_over: Counter,
    /// Held until the next hop's MAC resolves.
    pub held: Counter,
}

impl CoreStats {
    /// Counters sized for `backends` backend slots and `services` service slots.
    pub fn new(backends: usize, services: usize) -> CoreStats {
        CoreStats {
            latency: (0..LATENCY_BUCKETS).map(|_| Counter::default()).collect(),
            drops: std::array::from_fn(|_| Counter::default()),
            ports: std::array::from_fn(|_| PortCounters::default()),
            backends: (0..backends).map(|_| BackendStats::default()).collect(),
            services: (0..services).map(|_| ServiceStats::default()).collect(),
            sessions_v4: Counter::default(),
            sessions_v6: Counter::default(),
            sessions_created: Counter::default(),
            sessions_expired: Counter::default(),
            sessions_reused: Counter::default(),
            handover_out: Counter::default(),
            handover_in: Counter::default(),
            icmp_errors_sent: Counter::default(),
            icmp_errors_forwarded: Counter::default(),
            neigh_answers: Counter::default(),
            neigh_probes: Counter::default(),
            neigh_held: Counter::default(),
            fast_path: Counter::default(),
            loops: Counter::default(),
            idle_loops: Counter::default(),
            generation: Counter::default(),
            swept_generation: Counter::default(),
            resets_sent: Counter::default(),
            stateless_flows: Counter::default(),
            frames: FrameCounters::default(),
            announcements: Counter::default(),
            last_conflict: std::array::from_fn(|_| Counter::default()),
            sync: SyncCounters::default(),
            synproxy: SynproxyCounters::default(),
        }
    }

    /// Counts a drop.
    #[inline(always)]
    pub fn count_drop(&self, r: DropReason) {
        self.drops[r.index()].inc();
    }

    /// The counters of port `p`, if the port can exist (a configuration
    /// has at most [`MAX_PORTS`]): a checked index, never another port's.
    #[inline(always)]
    pub fn port(&self, p: usize) -> Option<&PortCounters> {
        self.ports.get(p)
    }

    /// The session gauge of family `A`.
    #[inline(always)]
    pub fn sessions_of<A: rvs_wire::Family>(&self) -> &Counter {
        if A::V6 {
            &self.sessions_v6
        } else {
            &self.sessions_v4
        }
    }

    /// Records who claimed one of our addresses (see `last_conflict`).
    pub fn record_conflict(&self, addr: std::net::IpAddr, mac: [u8; 6], port: u8) {
        let a = match addr {
            std::net::IpAddr::V4(a) => a.to_ipv6_mapped(),
            std::net::IpAddr::V6(a) => a,
        };
        let v = u128::from(a);
        #[expect(clippy::cast_possible_truncation, reason = "splitting into halves")]
        {
            self.last_conflict[0].set((v >> 64) as u64);
            self.last_conflict[1].set(v as u64);
        }
        let m = mac.iter().fold(0u64, |x, &b| x << 8 | u64::from(b));
        self.last_conflict[2].set(m | u64::from(port) << 48);
    }

    /// The last recorded conflict: (address, MAC, port).
    pub fn last_conflict(&self) -> (std::net::IpAddr, [u8; 6], u8) {
        let v = u128::from(self.last_conflict[0].get()) << 64 | u128::from(self.last_conflict[1].get());
        let a = std::net::Ipv6Addr::from(v);
        let addr = a.to_ipv4_mapped().map_or(std::net::IpAddr::V6(a), std::net::IpAddr::V4);
        let w = self.last_conflict[2].get();
        let mac = std::array::from_fn(|i| w.to_be_bytes()[2 + i]);
        #[expect(clippy::cast_possible_truncation, reason = "the port is 8 bits")]
        let port = (w >> 48) as u8;
        (addr, mac, port)
    }
}

/// Sums a counter over cores as a signed value (gauges may have moved
/// between cores' halves: one core incremented, another never decrements,
/// but the sum of wrapping differences is exact).
pub fn sum_gauge<'a>(cores: impl IntoIterator<Item = &'a Counter>) -> i64 {
    #[expect(clippy::cast_possible_wrap, reason = "wrapping gauge arithmetic")]
    let s = cores.into_iter().fold(0u64, |a, c| a.wrapping_add(c.get())) as i64;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_ordered_and_tight() {
        let mut last = 0;
        for ns in (0..100_000u64).chain([1 << 20, 1 << 30, u64::MAX]) {
            let b = latency_bucket(ns);
            assert!(b >= last && b < LATENCY_BUCKETS, "{ns}");
            last = b;
            let lo = latency_floor(b);
            assert!(lo <= ns, "{ns}: bucket {b} starts at {lo}");
            if b + 1 < LATENCY_BUCKETS {
                let hi = latency_floor(b + 1);
                assert!(ns < hi && (hi - lo) * 8 <= hi.max(8), "{ns}: [{lo}, {hi})");
            }
        }
    }

    #[test]
    fn counters_and_gauges() {
        let s = CoreStats::new(4, 2);
        s.backends[1].active.inc();
        s.backends[1].active.inc();
        s.backends[1].active.dec();
        s.count_drop(DropReason::NoService);
        assert_eq!(s.backends[1].active.get(), 1);
        assert_eq!(s.drops[DropReason::NoService.index()].get(), 1);
        let a = Counter::default();
        a.dec();
        let b = Counter::default();
        b.inc();
        b.inc();
        assert_eq!(sum_gauge([&a, &b]), 1);
        assert_eq!(size_of::<BackendStats>(), 64);
        let mac = [2, 0, 0, 0, 0xab, 0xcd];
        s.record_conflict("198.18.0.100".parse().unwrap(), mac, 3);
        assert_eq!(s.last_conflict(), ("198.18.0.100".parse().unwrap(), mac, 3));
        s.record_conflict("2001:db8::1".parse().unwrap(), mac, 0);
        assert_eq!(s.last_conflict(), ("2001:db8::1".parse().unwrap(), mac, 0));
    }
}
