//! The per-core forwarding engine: one packet in, one verdict out.
//!
//! [`Forwarder::process`] takes a frame in any [`PacketBuf`] and the index of
//! the port it arrived on, and returns a [`Verdict`]: transmit on a port
//! (the frame rewritten in place), hand to another core, pass to the kernel,
//! or drop for a counted [`DropReason`]. It has no I/O and no clock of its
//! own: every call takes `now` (milliseconds), which the worker loop reads
//! once per burst. This is what the DPDK worker runs, and what unit and
//! golden tests drive with byte buffers.
//!
//! Per packet: Ethernet -> ARP/ND (answer for VIPs and own addresses, learn
//! neighbours) or IPv4/IPv6 (validate) -> TCP/UDP (validate) -> session
//! lookup with the packet's own 5-tuple (which finds client packets and
//! real-server replies alike) -> on a miss, match a virtual service, check
//! that the packet may open a session, schedule a real server and insert
//! the session -> update the TCP state and expiry -> rewrite per mode:
//!
//! | mode | client -> server | server -> client |
//! |------|------------------|------------------|
//! | NAT      | dst := RS:port | src := VIP:vport |
//! | full NAT | src := local:lport, dst := RS:port | src := VIP:vport, dst := client:cport |
//! | DR       | dst MAC := RS's MAC | (bypasses rvs) |
//! | tunnel   | outer IP header to RS | (bypasses rvs) |
//!
//! Every rewrite decrements the TTL / hop limit (rvs routes); a packet that
//! would leave with TTL 0 is answered with ICMP time exceeded. Checksums are
//! updated incrementally (RFC 1624). Replies go back to the MAC address the
//! client's packets came from ("auto last hop"), so clients behind a router
//! need no route on rvs.
//!
//! # Stage by stage
//!
//! | file | what it does |
//! |------|--------------|
//! | [`l2`] | Ethernet, ARP, neighbour claims and the frames rvs originates (probes, announcements) |
//! | [`ip`] | IPv4/IPv6 validation and policy, the TCP/UDP facts of a packet |
//! | [`fast`] | the established-flow fast path (IPv4 and IPv6), the burst's look-ahead lookups, the way on to the flow stage |
//! | [`flow`] | session lookup, which core owns a flow, and the hand to admission |
//! | [`admit`] | a new flow: admission, scheduling, the session, accounting |
//! | [`persist`] | persistence templates (a client network's real server) |
//! | [`stateless`] | forwarding without a session when the table is full |
//! | [`fullnat`] | full-NAT local address and port allocation |
//! | [`xmit`] | forwarding a session's packet, per mode (NAT, full NAT, DR, tunnel) |
//! | [`nat`] | the one NAT rewriter, for packets and for packets quoted in ICMP errors |
//! | [`icmp`] | ICMP: errors along sessions, time exceeded, too big, echo, ND |
//! | [`reset`] | TCP resets to clients |
//! | [`sweep`] | expiry and the accounting of sessions that end |
//! | [`state`] | the per-core state and the per-packet context every stage shares |
/// The context of a packet processed by forwarder `$f` at `$now` with
/// steering `$steer`, borrowing the forwarder's fields one by one so that
/// `$f.st` stays free to be borrowed mutably beside it.
macro_rules! ctx {
    ($f:expr, $now:expr, $steer:expr) => {
        Ctx {
            snap: &$f.snap,
            stats: &$f.stats,
            now: $now,
            tunnel_ttl: $f.tunnel_ttl,
            steer: $steer,
            core: $f.core,
            standby: $f.standby,
            cookie: &$f.cookie,
        }
    };
}

mod admit;
mod explain;
mod fast;
mod flow;
mod fullnat;
mod icmp;
mod ip;
mod l2;
mod nat;
mod persist;
mod reset;
mod state;
mod stateless;
mod sweep;
mod sync;
mod synproxy;
mod xmit;

pub use explain::{CandidateView, ExplainQuery, Explanation, HashSlot};
pub use state::{BURST, EXTRA_FRAME, SWEEP_PERIOD_MS};
pub use sync::{record_owner, SyncReject, SYNC_BUFFER};
/// Handshakes with real servers the SYN proxy's resend timer follows at
/// once, per core (see `SynproxyCounters::resend_ring_full`).
pub const SYNPROXY_RESEND_RING: usize = synproxy::RESEND_RING;

use crate::drop::DropReason;
use crate::session::{Session, SessionFlags, SessionTable};
use crate::stats::CoreStats;
use crate::steer::Steering;
use crate::table::{Mode, Snapshot};
use l2::frame;
use rvs_wire::{ByFamily, Family, Ipv4, Ipv6, PacketBuf, VecBuf};
use state::{Ctx, Hint, LoadTable, RateLimit, St};
use std::net::IpAddr;
use std::sync::Arc;

/// What to do with a processed packet.
///
/// Each frame gets exactly one verdict, counted once by
/// [`Forwarder::tally`] (`stats.frames` and the drop counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forwarded: transmit the rewritten frame on this port.
    Tx(u8),
    /// Answered: the frame was turned into our answer (ARP or ND reply,
    /// echo reply); transmit it on this port.
    Answer(u8),
    /// Refused for `reason`, and the frame was turned into the error that
    /// tells the sender (ICMP time exceeded or too big, a TCP reset):
    /// transmit it on `port`. Counted as a drop for `reason`.
    Reply {
        /// Port to send the error on.
        port: u8,
        /// Why the original was refused.
        reason: DropReason,
    },
    /// Drop it for this reason.
    Drop(DropReason),
    /// Pass it to the kernel interface of this port.
    Kernel(u8),
    /// Another core owns its session: hand it over.
    Handover(u16),
    /// Rewritten for this port, but the next hop's MAC is not resolved yet:
    /// the worker holds the frame until neighbour `neigh` answers (as the
    /// kernel's ARP queue does) and then writes its MAC and sends it.
    Hold {
        /// Egress port.
        port: u8,
        /// Neighbour slot.
        neigh: u32,
    },
    /// Fully handled (e.g. an ARP reply that was learned); free it.
    Consumed,
}

/// A session as listed by `rvsadm -c`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// IP protocol.
    pub proto: u8,
    /// Client address and port.
    pub client: (IpAddr, u16),
    /// Virtual address and port.
    pub vip: (IpAddr, u16),
    /// Real server address and port.
    pub server: (IpAddr, u16),
    /// Full-NAT local address and port.
    pub local: Option<(IpAddr, u16)>,
    /// State name (ipvsadm's).
    pub state: &'static str,
    /// Milliseconds until expiry.
    pub expires_ms: u32,
    /// Forwarding mode.
    pub mode: Option<Mode>,
    /// The worker holding it.
    pub core: u16,
}

/// Static settings of one forwarder.
#[derive(Clone, Debug)]
pub struct ForwarderConfig {
    /// This worker's index (0-based).
    pub core: u16,
    /// Number of workers.
    pub cores: u16,
    /// IPv4 session capacity.
    pub sessions_v4: u32,
    /// IPv6 session capacity.
    pub sessions_v6: u32,
    /// Hash keys (random at start-up).
    pub seeds: [u64; 4],
    /// Tunnel outer TTL / hop limit.
    pub tunnel_ttl: u8,
    /// This core's full-NAT local port range (inclusive).
    pub fullnat_ports: (u16, u16),
    /// Most ICMP errors generated per second by this core.
    pub icmp_rate: u32,
    /// How flows are spread over the cores (None with one core).
    pub steering: Option<Steering>,
    /// The SYN proxy's cookie key (random at start-up, the same on every
    /// core).
    pub cookie_key: [u64; 2],
}

impl ForwarderConfig {
    /// Settings for a single-core forwarder with the given capacities.
    pub fn single(sessions_v4: u32, sessions_v6: u32, seeds: [u64; 4]) -> ForwarderConfig {
        ForwarderConfig {
            core: 0,
            cores: 1,
            sessions_v4,
            sessions_v6,
            seeds,
            tunnel_ttl: 64,
            fullnat_ports: (1024, 32767),
            icmp_rate: 1000,
            steering: None,
            cookie_key: [seeds[0] ^ 0x5350_524f_5859_4b31, seeds[2].rotate_left(17) ^ 0x636f_6f6b_6965_7321],
        }
    }
}

/// The per-core forwarding engine.
#[derive(Debug)]
pub struct Forwarder {
    snap: Arc<Snapshot>,
    stats: Arc<CoreStats>,
    /// Every worker's counters (this one's included), for load aggregation.
    peers: Vec<Arc<CoreStats>>,
    core: u16,
    cores: u16,
    tunnel_ttl: u8,
    /// Use the fast path (off only to compare it with the general path).
    fast: bool,
    steering: Option<Steering>,
    /// A backup's forwarder (see [`Forwarder::set_role`]).
    standby: bool,
    cookie: crate::synproxy::CookieKey,
    st: St,
    /// A frame the forwarder builds between bursts (the SYN proxy's timer).
    scratch: VecBuf,
}

impl Forwarder {
    /// A forwarder over `snap`, counting into `stats`.
    pub fn new(cfg: &ForwarderConfig, snap: Arc<Snapshot>, stats: Arc<CoreStats>) -> Forwarder {
        let nb = snap.backends.len();
        let ns = snap.services.len();
        let mut f = Forwarder {
            snap: snap.clone(),
            stats,
            peers: Vec::new(),
            core: cfg.core,
            cores: cfg.cores.max(1),
            tunnel_ttl: cfg.tunnel_ttl,
            fast: true,
            steering: cfg.steering.clone().filter(|s| s.cores > 1),
            standby: false,
            cookie: crate::synproxy::CookieKey::new(cfg.cookie_key[0], cfg.cookie_key[1]),
            st: St {
                sessions: ByFamily {
                    v4: SessionTable::new(cfg.sessions_v4, cfg.seeds),
                    v6: SessionTable::new(cfg.sessions_v6, [cfg.seeds[1], cfg.seeds[2], cfg.seeds[3], cfg.seeds[0]]),
                },
                templates: ByFamily {
                    v4: SessionTable::new(persistence_capacity(cfg.sessions_v4), [cfg.seeds[2], cfg.seeds[0], cfg.seeds[3], cfg.seeds[1]]),
                    v6: SessionTable::new(persistence_capacity(cfg.sessions_v6), [cfg.seeds[3], cfg.seeds[1], cfg.seeds[0], cfg.seeds[2]]),
                },
                pass_gen: [snap.generation; 2],
                swept_gen: [0; 2],
                passes: [0; 2],
                scheds: (0..ns).map(|_| None).collect(),
                load: LoadTable { gen: vec![0; nb], active: vec![0; nb], inactive: vec![0; nb], remote: vec![(0, 0); nb] },
                icmp: RateLimit { per_sec: cfg.icmp_rate.max(1), tokens: cfg.icmp_rate.max(1), last: 0 },
                fnat_range: cfg.fullnat_ports,
                fnat_next: cfg.fullnat_ports.0,
                fnat_local: 0,
                hints: ByFamily { v4: [Hint::default(); BURST], v6: [Hint::default(); BURST] },
                hint_at: usize::MAX,
                burst_len: 0,
                sync: sync::SyncOut::new(),
                extra: state::Extra::new(),
                resends: synproxy::Resends::new(),
            },
            scratch: VecBuf::new(&[]),
        };
        let (lo, hi) = cfg.fullnat_ports;
        f.st.sessions.v4.count_local_ports(lo, hi);
        f.st.sessions.v6.count_local_ports(lo, hi);
        f.install(snap);
        f
    }

    /// This worker's index.
    pub fn core(&self) -> u16 {
        self.core
    }

    /// The snapshot in use.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snap
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<CoreStats> {
        &self.stats
    }

    /// Switches to a new snapshot between bursts. Sessions are kept;
    /// per-service scheduler state is kept where the scheduler is unchanged.
    pub fn install(&mut self, snap: Arc<Snapshot>) {
        for (slot, svc) in snap.services.iter().enumerate() {
            let keep = matches!((svc, &self.st.scheds.get(slot)), (Some(s), Some(Some((sig, _)))) if *sig == s.sched_sig);
            if !keep {
                if let Some(x) = self.st.scheds.get_mut(slot) {
                    *x = svc.as_ref().map(|s| (s.sched_sig, s.sched.instantiate()));
                }
            }
        }
        for (slot, b) in snap.backends.iter().enumerate() {
            if let Some(b) = b {
                if self.st.load.gen.get(slot) != Some(&b.gen) {
                    self.st.load.gen[slot] = b.gen;
                    self.st.load.active[slot] = 0;
                    self.st.load.inactive[slot] = 0;
                }
            }
        }
        // Full-NAT local addresses get their port counts now, not at
        // their first session's insert (an allocation per address).
        for a in snap.locals::<Ipv4>() {
            self.st.sessions.v4.register_local(a);
        }
        for a in snap.locals::<Ipv6>() {
            self.st.sessions.v6.register_local(a);
        }
        self.stats.generation.set(snap.generation);
        self.snap = snap;
    }

    /// IPv4 sessions in use.
    pub fn sessions_v4(&self) -> usize {
        self.st.sessions.v4.len()
    }

    /// IPv6 sessions in use.
    pub fn sessions_v6(&self) -> usize {
        self.st.sessions.v6.len()
    }

    /// Entries of both session tables (what a full walk visits).
    pub fn session_entries(&self) -> usize {
        self.st.sessions.v4.capacity() + self.st.sessions.v6.capacity()
    }

    /// Copies sessions into `out` starting at entry `*cursor` (IPv4 entries
    /// first, then IPv6), visiting at most `visit` entries and stopping at
    /// `max` sessions in `out`. Returns true when the scan is complete.
    pub fn dump(&self, now: u32, cursor: &mut usize, visit: usize, max: usize, out: &mut Vec<SessionInfo>) -> bool {
        let n4 = self.st.sessions.v4.capacity();
        let total = n4 + self.st.sessions.v6.capacity();
        let end = (*cursor + visit).min(total);
        while *cursor < end && out.len() < max {
            let i = *cursor;
            *cursor += 1;
            if i < n4 {
                if let Some(s) = self.st.sessions.v4.entry_at(i) {
                    out.push(self.info(now, s));
                }
            } else if let Some(s) = self.st.sessions.v6.entry_at(i - n4) {
                out.push(self.info(now, s));
            }
        }
        *cursor >= total || out.len() >= max
    }

    fn info<A: Family>(&self, now: u32, s: &Session<A>) -> SessionInfo {
        let mode = Some(s.mode);
        let server = match self.snap.backend(s.backend) {
            Some(b) => (b.addr, b.port),
            None => (s.rs.to_ip(), s.rport),
        };
        SessionInfo {
            proto: s.proto,
            client: (s.client.to_ip(), s.cport),
            vip: (s.vip.to_ip(), s.vport),
            server,
            local: s.flags.contains(SessionFlags::FULL_NAT).then(|| (s.local.to_ip(), s.lport)),
            state: s.state.name(),
            expires_ms: s.expires.wrapping_sub(now).min(i32::MAX as u32),
            mode,
            core: self.core,
        }
    }

    /// IPv4 sessions, for listing (`rvsadm -c`).
    pub fn sessions4(&self) -> impl Iterator<Item = &Session<Ipv4>> {
        self.st.sessions.v4.iter().map(|(_, s)| s)
    }

    /// IPv6 sessions.
    pub fn sessions6(&self) -> impl Iterator<Item = &Session<Ipv6>> {
        self.st.sessions.v6.iter().map(|(_, s)| s)
    }

    /// Counts a frame's verdict (the only place verdicts are counted, so
    /// each frame is counted exactly once) and returns it.
    #[inline(always)]
    pub fn tally(&self, v: Verdict) -> Verdict {
        let f = &self.stats.frames;
        match v {
            Verdict::Tx(_) => f.forwarded.inc(),
            Verdict::Answer(_) => f.answered.inc(),
            Verdict::Reply { reason, .. } | Verdict::Drop(reason) => self.stats.count_drop(reason),
            Verdict::Kernel(_) => f.to_kernel.inc(),
            Verdict::Handover(_) => f.handed_over.inc(),
            Verdict::Hold { .. } => f.held.inc(),
            Verdict::Consumed => f.consumed.inc(),
        }
        v
    }

    /// Processes one frame that arrived on port `in_port` at time `now`
    /// (milliseconds, wrapping).
    #[inline]
    pub fn process<B: PacketBuf>(&mut self, now: u32, buf: &mut B, in_port: u8) -> Verdict {
        self.process_steered(now, buf, in_port, true)
    }

    /// Processes a frame another core handed over (it computed that this
    /// core owns the flow): processed here whatever this core would compute,
    /// so a packet never travels twice.
    #[inline]
    pub fn process_handed<B: PacketBuf>(&mut self, now: u32, buf: &mut B, in_port: u8) -> Verdict {
        self.process_steered(now, buf, in_port, false)
    }

    #[inline]
    fn process_steered<B: PacketBuf>(&mut self, now: u32, buf: &mut B, in_port: u8, steer: bool) -> Verdict {
        let cx = ctx!(self, now, if steer { self.steering.as_ref() } else { None });
        let v = frame(&cx, &mut self.st, buf, in_port).unwrap_or_else(Verdict::Drop);
        self.tally(v)
    }

    /// Hands the frames originated while processing the last packets
    /// (port, bytes: at most [`EXTRA_FRAME`] each) to `f`, to be sent after
    /// the burst's own; call after every burst.
    pub fn drain_extra(&mut self, mut f: impl FnMut(&CoreStats, u8, &[u8])) {
        let stats = &self.stats;
        self.st.extra.drain(|port, bytes| f(stats, port, bytes));
    }

    /// Gives this forwarder every worker's counters (its own included), so
    /// the least-connection schedulers can see the other cores' load.
    pub fn set_peers(&mut self, peers: Vec<Arc<CoreStats>>) {
        self.peers = peers;
    }

    /// Refreshes the other cores' connection counts (call every ~100 ms).
    pub fn refresh_load(&mut self) {
        for b in self.snap.backends.iter().flatten() {
            let slot = usize::from(b.slot);
            let (mut a, mut i) = (0i64, 0i64);
            for p in &self.peers {
                if Arc::ptr_eq(p, &self.stats) {
                    continue;
                }
                if let Some(c) = p.backends.get(slot) {
                    #[expect(clippy::cast_possible_wrap, reason = "gauges are read as wrapping differences")]
                    {
                        a += c.active.get() as i64;
                        i += c.inactive.get() as i64;
                    }
                }
            }
            if let Some(r) = self.st.load.remote.get_mut(slot) {
                *r = (rvs_wire::num::clamp_u32(a), rvs_wire::num::clamp_u32(i));
            }
        }
    }
}

/// Bytes a forwarder holds whatever its tables: the frames it originates
/// and the SYN proxy's handshakes in flight.
pub fn fixed_buffers_bytes() -> u64 {
    let extra = BURST * (EXTRA_FRAME + 2);
    let ring = synproxy::RESEND_RING * size_of::<synproxy::Pending>();
    (extra + ring + VecBuf::HEADROOM + VecBuf::ROOM) as u64
}

/// Persistence templates a core keeps beside `sessions` sessions.
pub fn persistence_capacity(sessions: u32) -> u32 {
    (sessions / 8).max(1024)
}

#[cfg(test)]
mod tests;
