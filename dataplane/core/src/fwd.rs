//! The per-core forwarding engine: one packet in, one verdict out.
//!
//! [`Forwarder::process`] takes a frame in any [`PacketBuf`] and the index of
//! the port it arrived on, and returns a [`Verdict`]: transmit on a port
//! (the frame rewritten in place), hand to another core, pass to the kernel,
//! or drop for a counted [`DropReason`]. It has no I/O and no clock of its
//! own: the worker loop sets the time with [`Forwarder::set_now`] once per
//! burst. This is what the DPDK worker runs, and what unit and golden tests
//! drive with byte buffers.
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
use crate::conn::{self, State};
use crate::drop::DropReason;
use crate::sched::{stable_hash, Flow, Load, Scheduler};
use crate::session::{self, Dir, FlowKey, Session, SessionTable, FLAG_FULLNAT, FLAG_HAS_REPLY};
use crate::stats::{CoreStats, Counter};
use crate::steer::Steering;
use crate::table::{AddrKind, BackendView, Family, Mode, NeighborRef, ServiceView, Snapshot, Steer};
use config::WhenFull;
use rvs_wire::ip::{proto, Addr};
use rvs_wire::{arp, checksum, ether, icmp, ipv4, ipv6, tcp, udp, MacAddr, PacketBuf};
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

impl Verdict {
    /// The port to transmit on, for the verdicts that send the frame.
    #[inline]
    pub fn tx_port(self) -> Option<u8> {
        match self {
            Verdict::Tx(p) | Verdict::Answer(p) | Verdict::Reply { port: p, .. } => Some(p),
            _ => None,
        }
    }
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
        }
    }
}

/// Per-backend connection counts as this core sees them (for the
/// least-connection schedulers), tagged with the backend generation so a
/// reused slot starts from zero.
#[derive(Debug)]
struct LoadTable {
    gen: Vec<u16>,
    active: Vec<u32>,
    inactive: Vec<u32>,
    /// The other cores' counts, refreshed every housekeeping period from
    /// their counters (relaxed loads; no lock, no shared write).
    remote: Vec<(u32, u32)>,
}

impl Load for LoadTable {
    #[inline]
    fn conns(&self, slot: u16) -> (u32, u32) {
        let i = usize::from(slot);
        let (ra, ri) = self.remote.get(i).copied().unwrap_or((0, 0));
        (self.active.get(i).copied().unwrap_or(0).saturating_add(ra), self.inactive.get(i).copied().unwrap_or(0).saturating_add(ri))
    }
}

/// A token bucket limiting generated ICMP errors.
#[derive(Debug)]
struct RateLimit {
    per_sec: u32,
    tokens: u32,
    last: u32,
}

impl RateLimit {
    fn allow(&mut self, now: u32) -> bool {
        let elapsed = now.wrapping_sub(self.last);
        if elapsed >= 1000 / self.per_sec.max(1) {
            let add = u64::from(elapsed) * u64::from(self.per_sec) / 1000;
            self.tokens = u32::try_from((u64::from(self.tokens) + add).min(u64::from(self.per_sec))).unwrap_or(self.per_sec);
            self.last = now;
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

/// Read-only context of one packet.
struct Ctx<'a> {
    snap: &'a Snapshot,
    stats: &'a CoreStats,
    now: u32,
    tunnel_ttl: u8,
    /// Steering, with several cores (None: this core owns every flow, or
    /// the packet was handed over and must be processed here).
    steer: Option<&'a Steering>,
    core: u16,
}

/// Mutable per-core state.
#[derive(Debug)]
struct St {
    s4: SessionTable<u32>,
    s6: SessionTable<u128>,
    /// Persistence templates: (client network, VIP, port, protocol) ->
    /// real server; `rport` counts the sessions created under a template.
    p4: SessionTable<u32>,
    p6: SessionTable<u128>,
    /// Per family: generation at the start of the current sweep pass, the
    /// one at the start of the last complete pass, and passes seen.
    pass_gen: [u64; 2],
    swept_gen: [u64; 2],
    passes: [u64; 2],
    scheds: Vec<Option<(u64, Box<dyn Scheduler>)>>,
    load: LoadTable,
    icmp: RateLimit,
    fnat_range: (u16, u16),
    fnat_next: u16,
    fnat_local: usize,
    /// Lookups made ahead for the packets of the current burst (see
    /// [`Forwarder::prepare`]) and which one is being processed.
    hints4: [Hint<u32>; BURST],
    hints6: [Hint<u128>; BURST],
    hint_at: usize,
    burst_len: usize,
}

/// The packets of a burst, at most.
pub const BURST: usize = 32;

/// How many packets ahead of the one being processed the session entries
/// are prefetched.
const AHEAD: usize = 6;

/// Every session table is swept in full once per this many milliseconds.
pub const SWEEP_PERIOD_MS: u32 = 10_000;

/// A session lookup made ahead of processing one packet of a burst: its
/// key, hash and result, valid while the table's modification count is
/// still `mods`.
#[derive(Clone, Copy, Debug, Default)]
struct Hint<A: Addr> {
    key: FlowKey<A>,
    h: u64,
    cands: session::Candidates,
    mods: u64,
    valid: bool,
}

/// Family-specific pieces of per-core state.
trait Fam: Family {
    fn table(st: &mut St) -> &mut SessionTable<Self>;
    fn table_ref(st: &St) -> &SessionTable<Self>;
    fn persist(st: &mut St) -> &mut SessionTable<Self>;
    fn load_persist(st: &mut St) -> (&mut LoadTable, &mut SessionTable<Self>);
    fn gauge(stats: &CoreStats) -> &Counter;
    fn hints(st: &mut St) -> &mut [Hint<Self>; BURST];
}

impl Fam for u32 {
    #[inline(always)]
    fn table(st: &mut St) -> &mut SessionTable<u32> {
        &mut st.s4
    }
    #[inline(always)]
    fn table_ref(st: &St) -> &SessionTable<u32> {
        &st.s4
    }
    #[inline(always)]
    fn persist(st: &mut St) -> &mut SessionTable<u32> {
        &mut st.p4
    }
    #[inline(always)]
    fn load_persist(st: &mut St) -> (&mut LoadTable, &mut SessionTable<u32>) {
        (&mut st.load, &mut st.p4)
    }
    #[inline(always)]
    fn gauge(stats: &CoreStats) -> &Counter {
        &stats.sessions_v4
    }
    #[inline(always)]
    fn hints(st: &mut St) -> &mut [Hint<u32>; BURST] {
        &mut st.hints4
    }
}

impl Fam for u128 {
    #[inline(always)]
    fn table(st: &mut St) -> &mut SessionTable<u128> {
        &mut st.s6
    }
    #[inline(always)]
    fn table_ref(st: &St) -> &SessionTable<u128> {
        &st.s6
    }
    #[inline(always)]
    fn persist(st: &mut St) -> &mut SessionTable<u128> {
        &mut st.p6
    }
    #[inline(always)]
    fn load_persist(st: &mut St) -> (&mut LoadTable, &mut SessionTable<u128>) {
        (&mut st.load, &mut st.p6)
    }
    #[inline(always)]
    fn gauge(stats: &CoreStats) -> &Counter {
        &stats.sessions_v6
    }
    #[inline(always)]
    fn hints(st: &mut St) -> &mut [Hint<u128>; BURST] {
        &mut st.hints6
    }
}

/// The validated L3/L4 facts of a TCP or UDP packet. Offsets are from the
/// start of the frame.
#[derive(Clone, Copy, Debug)]
struct Pkt<A: Addr> {
    l4: usize,
    end: usize,
    src: A,
    dst: A,
    proto: u8,
    sport: u16,
    dport: u16,
    tcp_flags: u8,
}

/// The per-core forwarding engine.
#[derive(Debug)]
pub struct Forwarder {
    snap: Arc<Snapshot>,
    stats: Arc<CoreStats>,
    /// Every worker's counters (this one's included), for load aggregation.
    peers: Vec<Arc<CoreStats>>,
    now: u32,
    core: u16,
    cores: u16,
    tunnel_ttl: u8,
    /// Use the fast path (off only to compare it with the general path).
    fast: bool,
    steering: Option<Steering>,
    st: St,
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
            now: 0,
            core: cfg.core,
            cores: cfg.cores.max(1),
            tunnel_ttl: cfg.tunnel_ttl,
            fast: true,
            steering: cfg.steering.clone().filter(|s| s.cores > 1),
            st: St {
                s4: SessionTable::new(cfg.sessions_v4, cfg.seeds),
                s6: SessionTable::new(cfg.sessions_v6, [cfg.seeds[1], cfg.seeds[2], cfg.seeds[3], cfg.seeds[0]]),
                p4: SessionTable::new(persistence_capacity(cfg.sessions_v4), [cfg.seeds[2], cfg.seeds[0], cfg.seeds[3], cfg.seeds[1]]),
                p6: SessionTable::new(persistence_capacity(cfg.sessions_v6), [cfg.seeds[3], cfg.seeds[1], cfg.seeds[0], cfg.seeds[2]]),
                pass_gen: [snap.generation; 2],
                swept_gen: [0; 2],
                passes: [0; 2],
                scheds: (0..ns).map(|_| None).collect(),
                load: LoadTable { gen: vec![0; nb], active: vec![0; nb], inactive: vec![0; nb], remote: vec![(0, 0); nb] },
                icmp: RateLimit { per_sec: cfg.icmp_rate.max(1), tokens: cfg.icmp_rate.max(1), last: 0 },
                fnat_range: cfg.fullnat_ports,
                fnat_next: cfg.fullnat_ports.0,
                fnat_local: 0,
                hints4: [Hint::default(); BURST],
                hints6: [Hint::default(); BURST],
                hint_at: usize::MAX,
                burst_len: 0,
            },
        };
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

    /// Sets the current time (milliseconds, wrapping); call once per burst.
    #[inline]
    pub fn set_now(&mut self, now: u32) {
        self.now = now;
    }

    /// The current time.
    pub fn now(&self) -> u32 {
        self.now
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
        self.stats.generation.set(snap.generation);
        self.snap = snap;
    }

    /// IPv4 sessions in use.
    pub fn sessions_v4(&self) -> usize {
        self.st.s4.len()
    }

    /// IPv6 sessions in use.
    pub fn sessions_v6(&self) -> usize {
        self.st.s6.len()
    }

    /// Memory held by both session tables.
    pub fn session_memory(&self) -> usize {
        self.st.s4.memory_bytes() + self.st.s6.memory_bytes()
    }

    /// Copies sessions into `out` starting at entry `*cursor` (IPv4 entries
    /// first, then IPv6), visiting at most `visit` entries and stopping at
    /// `max` sessions in `out`. Returns true when the scan is complete.
    pub fn dump(&self, cursor: &mut usize, visit: usize, max: usize, out: &mut Vec<SessionInfo>) -> bool {
        let n4 = self.st.s4.capacity();
        let total = n4 + self.st.s6.capacity();
        let end = (*cursor + visit).min(total);
        while *cursor < end && out.len() < max {
            let i = *cursor;
            *cursor += 1;
            if i < n4 {
                if let Some(s) = self.st.s4.entry_at(i) {
                    out.push(self.info(s));
                }
            } else if let Some(s) = self.st.s6.entry_at(i - n4) {
                out.push(self.info(s));
            }
        }
        *cursor >= total || out.len() >= max
    }

    fn info<A: Addr>(&self, s: &Session<A>) -> SessionInfo {
        let mode = Mode::from_u8(s.mode);
        let server = match self.snap.backend(s.backend) {
            Some(b) => (b.addr, b.port),
            None => (s.rs.to_ip(), s.rport),
        };
        SessionInfo {
            proto: s.proto,
            client: (s.client.to_ip(), s.cport),
            vip: (s.vip.to_ip(), s.vport),
            server,
            local: (s.flags & FLAG_FULLNAT != 0).then(|| (s.local.to_ip(), s.lport)),
            state: State::from_u8(s.state).map_or("NONE", State::name),
            expires_ms: s.expires.wrapping_sub(self.now).min(i32::MAX as u32),
            mode,
            core: self.core,
        }
    }

    /// IPv4 sessions, for listing (`rvsadm -c`).
    pub fn sessions4(&self) -> impl Iterator<Item = &Session<u32>> {
        self.st.s4.iter().map(|(_, s)| s)
    }

    /// IPv6 sessions, for listing.
    pub fn sessions6(&self) -> impl Iterator<Item = &Session<u128>> {
        self.st.s6.iter().map(|(_, s)| s)
    }

    /// Looks the sessions of a burst up ahead of processing it: the flow
    /// key of every plain TCP/UDP packet is read, hashed and its index
    /// buckets prefetched; then, a few packets ahead of processing
    /// ([`AHEAD`]), each packet's bucket names its candidate entries, which
    /// are prefetched in turn. By the time [`Forwarder::process_at`]
    /// handles packet `i`, its bucket and entry lines are in cache (the
    /// memory latencies overlap with other packets' work). Packets that are not
    /// plain TCP/UDP, or whose lookup an earlier packet of the burst made
    /// stale, are simply looked up again.
    pub fn prepare<B: PacketBuf>(&mut self, pkts: &[B]) {
        let n = pkts.len().min(BURST);
        self.st.burst_len = n;
        for (i, b) in pkts.iter().take(n).enumerate() {
            self.st.hints4[i].valid = false;
            self.st.hints6[i].valid = false;
            match light_key(b.data()) {
                Some(LightKey::V4(key)) => {
                    let h = self.st.s4.hash(&key);
                    self.st.s4.prefetch(h);
                    self.st.hints4[i] = Hint { key, h, cands: session::Candidates::default(), mods: u64::MAX, valid: true };
                }
                Some(LightKey::V6(key)) => {
                    let h = self.st.s6.hash(&key);
                    self.st.s6.prefetch(h);
                    self.st.hints6[i] = Hint { key, h, cands: session::Candidates::default(), mods: u64::MAX, valid: true };
                }
                None => {}
            }
        }
        for i in 0..n.min(AHEAD) {
            self.candidates_for(i);
        }
    }

    /// The second stage for packet `i`: its bucket (prefetched by the
    /// first stage a while ago) names the candidate entries, which are
    /// prefetched now, [`AHEAD`] packets before `i` is processed.
    #[inline(always)]
    fn candidates_for(&mut self, i: usize) {
        let st = &mut self.st;
        let h4 = &mut st.hints4[i];
        if h4.valid {
            h4.cands = st.s4.candidates(h4.h);
            h4.mods = st.s4.mods();
            st.s4.prefetch_candidates(h4.h, &h4.cands);
            return;
        }
        let h6 = &mut st.hints6[i];
        if h6.valid {
            h6.cands = st.s6.candidates(h6.h);
            h6.mods = st.s6.mods();
            st.s6.prefetch_candidates(h6.h, &h6.cands);
        }
    }

    /// Turns the fast path off or on (for tests comparing it with the
    /// general path; it is on by default).
    pub fn set_fast_path(&mut self, on: bool) {
        self.fast = on;
    }

    /// Processes packet `i` of the burst given to [`Forwarder::prepare`].
    #[inline]
    pub fn process_at<B: PacketBuf>(&mut self, buf: &mut B, in_port: u8, i: usize) -> Verdict {
        if i + AHEAD < self.st.burst_len {
            self.candidates_for(i + AHEAD);
        }
        if self.fast {
            let cx = Ctx {
                snap: &self.snap,
                stats: &self.stats,
                now: self.now,
                tunnel_ttl: self.tunnel_ttl,
                steer: self.steering.as_ref(),
                core: self.core,
            };
            match fast4(&cx, &mut self.st, buf, in_port, i) {
                Some(Ok(v)) => {
                    self.stats.fast_path.inc();
                    return self.tally(v);
                }
                Some(Err(reason)) => return self.tally(Verdict::Drop(reason)),
                None => {}
            }
        }
        self.st.hint_at = i;
        let v = self.process(buf, in_port);
        self.st.hint_at = usize::MAX;
        v
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

    /// Processes one frame that arrived on port `in_port`.
    #[inline]
    pub fn process<B: PacketBuf>(&mut self, buf: &mut B, in_port: u8) -> Verdict {
        self.process_steered(buf, in_port, true)
    }

    /// Processes a frame another core handed over (it computed that this
    /// core owns the flow): processed here whatever this core would compute,
    /// so a packet never travels twice.
    #[inline]
    pub fn process_handed<B: PacketBuf>(&mut self, buf: &mut B, in_port: u8) -> Verdict {
        self.process_steered(buf, in_port, false)
    }

    #[inline]
    fn process_steered<B: PacketBuf>(&mut self, buf: &mut B, in_port: u8, steer: bool) -> Verdict {
        let cx = Ctx {
            snap: &self.snap,
            stats: &self.stats,
            now: self.now,
            tunnel_ttl: self.tunnel_ttl,
            steer: if steer { self.steering.as_ref() } else { None },
            core: self.core,
        };
        let v = frame(&cx, &mut self.st, buf, in_port).unwrap_or_else(Verdict::Drop);
        self.tally(v)
    }

    /// Periodic work between bursts: expire up to `budget` sessions of each
    /// table. Returns how many expired.
    pub fn sweep(&mut self, budget: usize) -> usize {
        self.sweep_tables([budget; 4])
    }

    /// The sweep for `ms` milliseconds of time: every table is visited in
    /// full once per [`SWEEP_PERIOD_MS`], in steps proportional to its size
    /// (a few entries per millisecond, not per packet).
    pub fn sweep_elapsed(&mut self, ms: u32) -> usize {
        let share = |cap: usize| (cap * ms as usize).div_ceil(SWEEP_PERIOD_MS as usize).max(1);
        let st = &self.st;
        let b = [share(st.s4.capacity()), share(st.s6.capacity()), share(st.p4.capacity()), share(st.p6.capacity())];
        self.sweep_tables(b)
    }

    fn sweep_tables(&mut self, budget: [usize; 4]) -> usize {
        let cx = Ctx { snap: &self.snap, stats: &self.stats, now: self.now, tunnel_ttl: self.tunnel_ttl, steer: None, core: self.core };
        let (st, now) = (&mut self.st, self.now);
        // Sessions expire, and sessions of removed real servers go too (so
        // their slots can be reused once every core has swept), TCP ones
        // leaving a tombstone that resets the client's next segment.
        let (load, p4, p6) = (&mut st.load, &mut st.p4, &mut st.p6);
        let mut n = st.s4.sweep_by(budget[0], |s| sweep_decide(&cx, load, p4, s), |_, _| {});
        n += st.s6.sweep_by(budget[1], |s| sweep_decide(&cx, load, p6, s), |_, _| {});
        if n > 0 {
            cx.stats.sessions_v4.set(st.s4.len() as u64);
            cx.stats.sessions_v6.set(st.s6.len() as u64);
        }
        // Persistence templates go when expired and childless.
        st.p4.sweep_by(budget[2], |t| t.rport == 0 && t.expired(now), |_, _| {});
        st.p6.sweep_by(budget[3], |t| t.rport == 0 && t.expired(now), |_, _| {});
        // Record complete passes over both session tables.
        let g = cx.snap.generation;
        for (i, passes) in [st.s4.sweep_passes(), st.s6.sweep_passes()].into_iter().enumerate() {
            if passes != st.passes[i] {
                st.passes[i] = passes;
                st.swept_gen[i] = st.pass_gen[i];
                st.pass_gen[i] = g;
            }
        }
        cx.stats.swept_generation.set(st.swept_gen[0].min(st.swept_gen[1]));
        n
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
                *r = (u32::try_from(a.max(0)).unwrap_or(u32::MAX), u32::try_from(i.max(0)).unwrap_or(u32::MAX));
            }
        }
    }

    /// Neighbours this core should probe now (it owns slots `slot % cores`).
    pub fn neighbour_probes(&self, out: &mut Vec<(NeighborRef, Option<MacAddr>)>) {
        for n in &self.snap.neighbors {
            if n.slot % u32::from(self.cores) != u32::from(self.core) {
                continue;
            }
            if let Some(unicast) = self.snap.neigh.probe_due(n.slot, self.now) {
                out.push((*n, unicast));
            }
        }
    }

    /// The resolved MAC of a neighbour slot.
    #[inline]
    pub fn neighbour_mac(&self, slot: u32) -> Option<MacAddr> {
        self.snap.neigh.mac(slot)
    }

    /// A frame waits for neighbour `slot`: the neighbour to probe right
    /// now, unless one was probed moments ago (by any worker).
    pub fn urgent_probe(&self, slot: u32) -> Option<NeighborRef> {
        let n = self.snap.neighbors.iter().find(|n| n.slot == slot)?;
        self.snap.neigh.urgent_probe(slot, self.now).then_some(*n)
    }

    /// Writes the announcement of `addr` on `port` into `frame` (at least
    /// 128 bytes): a gratuitous ARP request (sender and target `addr`, to
    /// broadcast) or an unsolicited neighbour advertisement (override, to
    /// all nodes). Returns its length, or None for an unknown port.
    pub fn build_announcement(&self, addr: IpAddr, port: u8, frame: &mut [u8]) -> Option<usize> {
        let p = self.snap.port(port)?;
        let len = match addr {
            IpAddr::V4(a) => arp::write_request(frame, p.mac, a, a, MacAddr::BROADCAST),
            IpAddr::V6(a) => {
                let all_nodes = 0xff02_u128 << 112 | 1;
                let to_mac = MacAddr::ipv6_multicast(&all_nodes.to_be_bytes());
                icmp::write_neighbor_advert(frame, p.mac, to_mac, u128::from(a), all_nodes, false)
            }
        };
        self.stats.announcements.inc();
        Some(len)
    }

    /// Writes the ARP request or neighbour solicitation for a probe into
    /// `frame` (at least 128 bytes); returns (length, egress port) or None
    /// when the port has no address of the neighbour's family.
    pub fn build_probe(&self, n: &NeighborRef, unicast: Option<MacAddr>, frame: &mut [u8]) -> Option<(usize, u8)> {
        let port = self.snap.port(n.port)?;
        let len = match n.addr {
            IpAddr::V4(t) => {
                let src = port.source_for(n.addr)?;
                let IpAddr::V4(src) = src else { return None };
                arp::write_request(frame, port.mac, src, t, unicast.unwrap_or(MacAddr::BROADCAST))
            }
            IpAddr::V6(t) => {
                let IpAddr::V6(src) = port.source_for(n.addr)? else { return None };
                icmp::write_neighbor_solicit(frame, port.mac, u128::from(src), u128::from(t), unicast)
            }
        };
        self.stats.neigh_probes.inc();
        Some((len, n.port))
    }
}

/// Persistence templates a core keeps beside `sessions` sessions.
pub fn persistence_capacity(sessions: u32) -> u32 {
    (sessions / 8).max(1024)
}

/// Session kept as a tombstone: no backend.
const NO_BACKEND: u32 = u32::MAX;

/// What the sweep does with one session: true to remove it (accounted
/// here). A live TCP session whose real server was removed becomes a
/// tombstone: accounted as ended now, no longer referring to the server,
/// kept for `tcp_close` to reset the client's next segment.
fn sweep_decide<A: Addr>(cx: &Ctx<'_>, load: &mut LoadTable, persist: &mut SessionTable<A>, s: &mut Session<A>) -> bool {
    let tomb = s.state == State::Reset as u8;
    if s.expired(cx.now) {
        if !tomb {
            account_end(cx, load, persist, s);
        }
        return true;
    }
    if tomb || cx.snap.backend(s.backend).is_some() {
        return false;
    }
    account_end(cx, load, persist, s);
    let state = State::from_u8(s.state).unwrap_or(State::Close);
    if s.proto == proto::TCP && !state.is_closing() {
        s.state = State::Reset as u8;
        s.backend = NO_BACKEND;
        let close = cx.snap.services.get(usize::from(s.service)).and_then(Option::as_ref).map_or(10_000, |v| v.timeouts.tcp_close);
        s.expires = cx.now.wrapping_add(close);
        return false;
    }
    true
}

/// Undoes a session's contribution to gauges and load when it ends, and
/// releases its persistence template. Exact even for removed real servers:
/// their slots are only reused once every core has swept their sessions out.
fn account_end<A: Addr>(cx: &Ctx<'_>, load: &mut LoadTable, persist: &mut SessionTable<A>, s: &Session<A>) {
    cx.stats.sessions_expired.inc();
    if let Some((timeout, prefix)) = cx.snap.services.get(usize::from(s.service)).and_then(Option::as_ref).and_then(|v| v.persistence) {
        let key = template_key(s.client, s.vip, s.vport, s.proto, prefix);
        if let Some((t, _)) = persist.lookup(&key, persist.hash(&key)) {
            let tpl = persist.get_mut(t);
            tpl.rport = tpl.rport.saturating_sub(1);
            if tpl.rport == 0 {
                // A session that timed out ended at its expiry, whenever the
                // sweep notices it.
                let ended = if s.expired(cx.now) { s.expires } else { cx.now };
                tpl.expires = ended.wrapping_add(timeout);
            }
        }
    }
    let slot = usize::from(s.backend_slot());
    let active = State::from_u8(s.state).is_some_and(State::is_active);
    if let Some(b) = cx.stats.backends.get(slot) {
        if active {
            b.active.dec();
            load.active[slot] = load.active[slot].saturating_sub(1);
        } else {
            b.inactive.dec();
            load.inactive[slot] = load.inactive[slot].saturating_sub(1);
        }
    }
}

/// Moves a session's gauges from one state to another.
fn account_transition(cx: &Ctx<'_>, load: &mut LoadTable, tag: u32, from: State, to: State) {
    if from.is_active() == to.is_active() {
        return;
    }
    let slot = usize::from(u16::try_from(tag & 0xffff).unwrap_or(0));
    let Some(b) = cx.stats.backends.get(slot) else { return };
    if to.is_active() {
        b.inactive.dec();
        b.active.inc();
        load.inactive[slot] = load.inactive[slot].saturating_sub(1);
        load.active[slot] += 1;
    } else {
        b.active.dec();
        b.inactive.inc();
        load.active[slot] = load.active[slot].saturating_sub(1);
        load.inactive[slot] += 1;
    }
}

fn frame<B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, in_port: u8) -> Result<Verdict, DropReason> {
    let d = buf.data();
    ether::check(d)?;
    let port = cx.snap.port(in_port).ok_or(DropReason::NotForUs)?;
    let dst = ether::dst(d);
    if dst != port.mac && !dst.is_multicast() {
        return Err(DropReason::EthNotForUs);
    }
    match ether::ethertype(d) {
        ether::ethertype::IPV4 => ipv4_packet(cx, st, buf, in_port),
        ether::ethertype::IPV6 => ipv6_packet(cx, st, buf, in_port),
        ether::ethertype::ARP => arp_packet(cx, buf, in_port),
        _ => Err(DropReason::EthUnsupported),
    }
}

/// What an ARP or ND message's claim "`addr` is at `mac`", received on
/// `in_port`, may teach us. A claim to a VIP, a local or an own address by
/// someone else is a conflict (a second master, or an attack): refused,
/// counted and recorded for management to log. A known neighbour is
/// learned only from the port whose network holds it (a gateway only on
/// its port): claims from elsewhere are poisoning attempts, refused.
/// Returns the neighbour slot to learn, if any.
fn check_claim<A: Family>(cx: &Ctx<'_>, addr: A, mac: MacAddr, in_port: u8) -> Result<Option<u32>, DropReason> {
    if addr == A::default() {
        return Ok(None);
    }
    if cx.snap.addr_kind(addr).is_some() {
        if cx.snap.is_own_mac(mac) {
            return Ok(None); // our own announcement, seen again
        }
        cx.stats.record_conflict(addr.to_ip(), mac.0, in_port);
        return Err(DropReason::AddrConflict);
    }
    match cx.snap.neigh_entry(addr) {
        Some((slot, port)) if port == in_port => Ok(Some(slot)),
        Some(_) => Err(DropReason::NeighWrongPort),
        None => Ok(None),
    }
}

fn arp_packet<B: PacketBuf>(cx: &Ctx<'_>, buf: &mut B, in_port: u8) -> Result<Verdict, DropReason> {
    let a = arp::Arp::parse(&buf.data()[ether::HEADER_LEN..])?;
    if let Some(slot) = check_claim(cx, u32::from(a.spa), a.sha, in_port)? {
        cx.snap.neigh.learn(slot, a.sha, cx.now);
    }
    if a.op != arp::OP_REQUEST {
        // A reply to one of our own addresses answers the kernel's request
        // when the port has a kernel interface.
        return Ok(match cx.snap.addr_kind(u32::from(a.tpa)) {
            Some(AddrKind::Own(p)) if p == in_port && cx.snap.port(p).and_then(|v| v.kernel).is_some() => Verdict::Kernel(p),
            _ => Verdict::Consumed,
        });
    }
    match cx.snap.addr_kind(u32::from(a.tpa)) {
        Some(AddrKind::Vip | AddrKind::Local) => {}
        Some(AddrKind::Own(p)) if p == in_port => {}
        _ => return Err(DropReason::ArpNotForUs),
    }
    let mac = cx.snap.port(in_port).map(|p| p.mac).ok_or(DropReason::ArpNotForUs)?;
    arp::answer_in_place(buf.data_mut(), &a, mac);
    cx.stats.neigh_answers.inc();
    Ok(Verdict::Answer(in_port))
}

fn ipv4_packet<B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, in_port: u8) -> Result<Verdict, DropReason> {
    const L3: usize = ether::HEADER_LEN;
    let h = ipv4::Ipv4Header::parse(&buf.data()[L3..], true)?;
    buf.truncate(L3 + h.total_len);
    if h.dst >> 28 == 0xe || h.dst == u32::MAX {
        return Err(DropReason::Multicast);
    }
    if ipv4::is_martian_source(h.src) {
        return Err(DropReason::Ipv4BadSource);
    }
    if cx.snap.addr_kind(h.src).is_some() {
        return Err(DropReason::OwnSource);
    }
    if h.is_fragment() {
        return Err(DropReason::Fragment);
    }
    if h.header_len != ipv4::MIN_HEADER_LEN {
        return Err(DropReason::IpOptions);
    }
    let l4 = L3 + h.header_len;
    let end = L3 + h.total_len;
    match h.proto {
        proto::TCP | proto::UDP => {
            let p = l4_facts::<u32>(&buf.data()[l4..end], h.proto, l4, end, h.src, h.dst)?;
            transport(cx, st, buf, in_port, p)
        }
        proto::ICMP => icmp4(cx, st, buf, in_port, &h),
        proto::IPIP | proto::IPV6 if cx.snap.addr_kind(h.dst).is_some() => Err(DropReason::IpipUnexpected),
        _ if cx.snap.addr_kind(h.dst).is_some() => Err(DropReason::UnknownProtocol),
        _ => Err(DropReason::NotForUs),
    }
}

fn ipv6_packet<B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, in_port: u8) -> Result<Verdict, DropReason> {
    const L3: usize = ether::HEADER_LEN;
    // Of all multicast, rvs only listens to neighbour discovery with no
    // extension header: solicitations (sent to solicited-node groups) and
    // unsolicited advertisements (to all nodes), which are claims to judge
    // (a neighbour's new MAC, or someone else claiming our address).
    let d = &buf.data()[L3..];
    if d.len() > ipv6::HEADER_LEN
        && d[0] >> 4 == 6
        && d[24] == 0xff
        && !(d[6] == proto::ICMPV6 && matches!(d[ipv6::HEADER_LEN], icmp::v6::NEIGHBOR_SOLICIT | icmp::v6::NEIGHBOR_ADVERT))
    {
        return Err(DropReason::Multicast);
    }
    let h = ipv6::Ipv6Header::parse(&buf.data()[L3..])?;
    buf.truncate(L3 + h.total_len);
    if ipv6::is_martian_source(h.src) && !(h.src == 0 && h.proto == proto::ICMPV6) {
        return Err(DropReason::Ipv6BadSource);
    }
    let l4 = L3 + h.header_len;
    let end = L3 + h.total_len;
    // Our own address as source is martian, except in neighbour discovery,
    // where it is a claim judged as such (an address conflict).
    let nd =
        h.proto == proto::ICMPV6 && buf.data().get(l4).is_some_and(|&t| t == icmp::v6::NEIGHBOR_SOLICIT || t == icmp::v6::NEIGHBOR_ADVERT);
    if !nd && cx.snap.addr_kind(h.src).is_some() {
        return Err(DropReason::OwnSource);
    }
    match h.proto {
        proto::TCP | proto::UDP => {
            let p = l4_facts::<u128>(&buf.data()[l4..end], h.proto, l4, end, h.src, h.dst)?;
            if p.proto == proto::UDP && checksum_field(&buf.data()[l4..end], proto::UDP) == 0 {
                return Err(DropReason::UdpBadChecksum); // RFC 8200 8.1: mandatory over IPv6
            }
            transport(cx, st, buf, in_port, p)
        }
        proto::ICMPV6 => icmp6(cx, st, buf, in_port, &h),
        proto::IPIP | proto::IPV6 if cx.snap.addr_kind(h.dst).is_some() => Err(DropReason::IpipUnexpected),
        _ if cx.snap.addr_kind(h.dst).is_some() => Err(DropReason::UnknownProtocol),
        _ => Err(DropReason::NotForUs),
    }
}

/// The fast path: a packet of an established IPv4 TCP or UDP session, in
/// the common case, forwarded with the fewest checks that keep the general
/// path's behaviour. It reads what [`Forwarder::prepare`] found, checks
/// everything the general path would (our MAC, IPv4 header and checksum,
/// lengths, TTL, source, L4 header, the session's state and its real
/// server, the egress), and returns `None` - having changed nothing - for
/// anything else: other protocols, new flows, expired or closing sessions,
/// errors to count or answer. Otherwise it commits exactly as the general
/// path does ([`commit`]). `fast_path_equals_general_path` checks the two
/// agree packet for packet.
#[inline(always)]
fn fast4<B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, in_port: u8, i: usize) -> Option<Result<Verdict, DropReason>> {
    let hint = st.hints4.get(i)?;
    if !hint.valid || hint.mods != st.s4.mods() {
        return None;
    }
    let (key, h, cands) = (hint.key, hint.h, hint.cands);
    let d = buf.data();
    let port = cx.snap.port(in_port)?;
    // prepare() saw Ethernet/IPv4 without options, TCP or UDP, no fragment.
    // A fixed-size view of the headers needs no bounds checks.
    let f: &[u8; 42] = d.first_chunk()?;
    if f[0..6] != port.mac.0 {
        return None;
    }
    let tl = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let ip: &[u8; 20] = f[14..34].try_into().ok()?;
    if tl < 28 || 14 + tl > d.len() || ip[8] <= 1 || checksum::checksum(ip) != 0 {
        return None;
    }
    if key.dst >> 28 == 0xe || key.dst == u32::MAX || ipv4::is_martian_source(key.src) {
        return None;
    }
    let end = 14 + tl;
    let tcp_flags = if key.proto == proto::TCP {
        let t: &[u8; 54] = d.first_chunk()?;
        let hl = usize::from(t[46] >> 4) * 4;
        if tl < 40 || hl < 20 || 34 + hl > end {
            return None;
        }
        t[47]
    } else {
        if usize::from(u16::from_be_bytes([f[38], f[39]])) != tl - 20 {
            return None;
        }
        0
    };
    let (idx, dir) = st.s4.verify(&key, h, &cands)?;
    let s = *st.s4.get(idx);
    let state = State::from_u8(s.state)?;
    if s.expired(cx.now)
        || state == State::Reset
        || (key.proto == proto::TCP
            && dir == Dir::Forward
            && tcp_flags & (tcp::flags::SYN | tcp::flags::ACK) == tcp::flags::SYN
            && state.is_closing())
        || buf.l4_csum_bad()
    {
        return None;
    }
    let b = cx.snap.backend(s.backend)?;
    let (out_port, dst_mac) = match dir {
        Dir::Forward => (b.egress, Some(cx.snap.neigh.mac(b.neigh)?)),
        Dir::Reply => (s.client_port, Some(MacAddr(s.client_mac))),
    };
    let out = cx.snap.port(out_port)?;
    if s.mode == Mode::Tunnel as u8 && dir == Dir::Forward && tl + tunnel_overhead(b.addr) > usize::from(out.mtu) {
        return None;
    }
    // Committed: from here on the packet is forwarded.
    buf.truncate(end);
    let p = Pkt { l4: 34, end, src: key.src, dst: key.dst, proto: key.proto, sport: key.sport, dport: key.dport, tcp_flags };
    Some(commit(cx, st, buf, idx, dir, &p, &s, b, out, out_port, dst_mac))
}

/// A flow key read without validation (for prefetching only; the packet
/// is validated when it is processed).
enum LightKey {
    V4(FlowKey<u32>),
    V6(FlowKey<u128>),
}

/// Reads the 5-tuple of a plain IPv4 (no options, not a fragment) or IPv6
/// (no extension header) TCP/UDP frame from fixed offsets.
#[inline(always)]
fn light_key(d: &[u8]) -> Option<LightKey> {
    // Fixed-size views: the indexing below needs no bounds checks.
    let h: &[u8; 38] = d.first_chunk()?;
    let be16 = |a: [u8; 2]| u16::from_be_bytes(a);
    match (h[12], h[13], h[14]) {
        (0x08, 0x00, 0x45) if (h[23] == proto::TCP || h[23] == proto::UDP) && be16([h[20], h[21]]) & 0x3fff == 0 => {
            Some(LightKey::V4(FlowKey {
                src: u32::from_be_bytes([h[26], h[27], h[28], h[29]]),
                dst: u32::from_be_bytes([h[30], h[31], h[32], h[33]]),
                sport: be16([h[34], h[35]]),
                dport: be16([h[36], h[37]]),
                proto: h[23],
            }))
        }
        (0x86, 0xdd, v) if v >> 4 == 6 => {
            let h: &[u8; 58] = d.first_chunk()?;
            if h[20] != proto::TCP && h[20] != proto::UDP {
                return None;
            }
            let a = |at: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&h[at..at + 16]);
                u128::from_be_bytes(b)
            };
            Some(LightKey::V6(FlowKey { src: a(22), dst: a(38), sport: be16([h[54], h[55]]), dport: be16([h[56], h[57]]), proto: h[20] }))
        }
        _ => None,
    }
}

fn checksum_field(seg: &[u8], proto: u8) -> u16 {
    let at = if proto == proto::TCP { tcp::CHECKSUM_AT } else { udp::CHECKSUM_AT };
    u16::from_be_bytes([seg[at], seg[at + 1]])
}

/// Validates the TCP/UDP header of `seg` (the L4 bytes) into a [`Pkt`].
#[inline]
fn l4_facts<A: Addr>(seg: &[u8], l4proto: u8, l4: usize, end: usize, src: A, dst: A) -> Result<Pkt<A>, DropReason> {
    if l4proto == proto::TCP {
        let t = tcp::TcpHeader::parse(seg)?;
        Ok(Pkt { l4, end, src, dst, proto: l4proto, sport: t.sport, dport: t.dport, tcp_flags: t.flags })
    } else {
        let u = udp::UdpHeader::parse(seg)?;
        if u.len != seg.len() {
            return Err(DropReason::UdpBadLen);
        }
        Ok(Pkt { l4, end, src, dst, proto: l4proto, sport: u.sport, dport: u.dport, tcp_flags: 0 })
    }
}

/// Verifies the L4 checksum in software.
fn l4_checksum_ok<A: Addr>(seg: &[u8], p: &Pkt<A>) -> bool {
    if p.proto == proto::UDP && !A::V6 && checksum_field(seg, proto::UDP) == 0 {
        return true; // no checksum over IPv4
    }
    let len = seg.len();
    let ph = if A::V6 {
        let (mut s, mut d) = ([0u8; 16], [0u8; 16]);
        p.src.write(&mut s);
        p.dst.write(&mut d);
        checksum::pseudo_v6(&s, &d, p.proto, u32::try_from(len).unwrap_or(u32::MAX))
    } else {
        let (mut s, mut d) = ([0u8; 4], [0u8; 4]);
        p.src.write(&mut s);
        p.dst.write(&mut d);
        checksum::pseudo_v4(s, d, p.proto, u16::try_from(len).unwrap_or(u16::MAX))
    };
    checksum::l4_checksum(ph, seg) == 0
}

/// TCP and UDP: find the session or make one, then forward.
fn transport<A: Fam, B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, in_port: u8, p: Pkt<A>) -> Result<Verdict, DropReason> {
    let key = FlowKey { src: p.src, dst: p.dst, sport: p.sport, dport: p.dport, proto: p.proto };
    // The lookup made ahead for this packet, when it is still valid.
    let at = st.hint_at;
    let hint = A::hints(st).get(at).copied().filter(|x| x.valid && x.key == key);
    let table = A::table(st);
    let (h, found) = match hint {
        Some(x) if x.mods == table.mods() => (x.h, table.verify(&key, x.h, &x.cands)),
        Some(x) => (x.h, table.lookup(&key, x.h)),
        None => {
            let h = table.hash(&key);
            (h, table.lookup(&key, h))
        }
    };
    if let Some((idx, dir)) = found {
        let s = *table.get(idx);
        let state = State::from_u8(s.state).unwrap_or(State::Close);
        let reuse = p.proto == proto::TCP
            && dir == Dir::Forward
            && p.tcp_flags & (tcp::flags::SYN | tcp::flags::ACK) == tcp::flags::SYN
            && state.is_closing();
        if s.expired(cx.now) || reuse {
            table.remove(idx);
            if s.state != State::Reset as u8 {
                let (load, persist) = A::load_persist(st);
                account_end(cx, load, persist, &s);
            }
            A::gauge(cx.stats).set(A::table_ref(st).len() as u64);
            if reuse {
                cx.stats.sessions_reused.inc();
            }
        } else {
            return forward(cx, st, buf, in_port, idx, dir, &p);
        }
    }
    // Not ours? Another core owns the flow (see `steer`).
    if let Some(o) = cx.steer.and_then(|sv| owner(cx.snap, sv, &key)) {
        if o != cx.core {
            return Ok(Verdict::Handover(o));
        }
    }
    let Some(svc) = cx.snap.service(p.dst, p.dport, p.proto) else {
        return match cx.snap.addr_kind(p.dst) {
            Some(AddrKind::Vip) => Err(DropReason::NoService),
            Some(AddrKind::Own(port)) => match cx.snap.port(port).and_then(|pv| pv.kernel) {
                Some(_) => Ok(Verdict::Kernel(port)),
                None => Err(DropReason::LocalUnhandled),
            },
            Some(AddrKind::Local) => Err(DropReason::LocalUnhandled),
            None if p.proto == proto::TCP => Err(DropReason::TcpNoSession),
            None => Err(DropReason::NotForUs),
        };
    };
    // A packet that cannot leave (TTL) must not open a session.
    if buf.data()[ether::HEADER_LEN + if A::V6 { 7 } else { 8 }] <= 1 {
        return time_exceeded::<A, B>(cx, st, buf, in_port);
    }
    match new_session(cx, st, buf, in_port, &p, svc, h) {
        Ok(idx) => forward(cx, st, buf, in_port, idx, Dir::Forward, &p),
        // With the stateless policy, a flow that got no session (its SYN
        // came while the table was full) keeps being forwarded by Maglev.
        Err(e @ (DropReason::SessionTableFull | DropReason::TcpNoSession)) if svc.when_full == WhenFull::Stateless => {
            stateless(cx, st, buf, in_port, &p, svc).map_err(|r| if r == DropReason::SessionTableFull { e } else { r })
        }
        Err(e) => Err(e),
    }
}

/// Creates the session for the first packet of a flow to `svc`.
fn new_session<A: Fam, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &B,
    in_port: u8,
    p: &Pkt<A>,
    svc: &ServiceView,
    hf: u64,
) -> Result<u32, DropReason> {
    let state = if p.proto == proto::TCP {
        let t = tcp::TcpHeader { sport: p.sport, dport: p.dport, seq: 0, ack: 0, header_len: 20, flags: p.tcp_flags };
        if t.flags_invalid() {
            return Err(DropReason::TcpBadFlags);
        }
        if !t.is_syn() && !svc.sloppy_tcp {
            return Err(DropReason::TcpNoSession);
        }
        if t.is_syn() {
            State::SynRecv
        } else {
            State::Established
        }
    } else {
        State::Udp
    };
    if buf.l4_csum_bad() || (!buf.l4_csum_good() && !l4_checksum_ok(&buf.data()[p.l4..p.end], p)) {
        return Err(if p.proto == proto::TCP { DropReason::TcpBadChecksum } else { DropReason::UdpBadChecksum });
    }

    // A full table: refuse the flow, or (DR and tunnel services with the
    // stateless policy) forward it by Maglev hash of its 5-tuple, which
    // every packet of the flow hashes alike.
    let table = A::table_ref(st);
    if table.len() >= table.capacity() {
        return Err(DropReason::SessionTableFull);
    }

    // Persistence: a live template for the client's network decides.
    let tpl_key = svc.persistence.map(|(_, prefix)| template_key(p.src, p.dst, p.dport, p.proto, prefix));
    let mut chosen: Option<&BackendView> = None;
    if let Some(k) = &tpl_key {
        let pt = A::persist(st);
        if let Some((t, _)) = pt.lookup(k, pt.hash(k)) {
            let tpl = *pt.get(t);
            let live = tpl.rport > 0 || !tpl.expired(cx.now);
            // A template whose server is down, drained or gone is dropped
            // (IPVS's expire_quiescent_template), not obeyed.
            match cx.snap.backend(tpl.backend).filter(|b| live && b.effective_weight > 0 && !b.retired && b.service == svc.slot) {
                Some(b) => chosen = Some(b),
                None => pt.remove(t),
            }
        }
    }
    let b = match chosen {
        Some(b) => b,
        None => {
            let Some(Some((_, sched))) = st.scheds.get_mut(usize::from(svc.slot)) else { return Err(DropReason::NoBackend) };
            let flow = if sched.uses_flow() { flow_hashes(p, svc.hash_port) } else { Flow::default() };
            let pick = sched.pick(&svc.cands, &st.load, &flow).ok_or(DropReason::NoBackend)?;
            svc.backends
                .get(pick)
                .and_then(|&slot| cx.snap.backends.get(usize::from(slot)))
                .and_then(Option::as_ref)
                .ok_or(DropReason::NoBackend)?
        }
    };

    let mut s = Session {
        client: p.src,
        vip: p.dst,
        rs: A::from_ip(b.addr).unwrap_or_default(),
        local: A::default(),
        cport: p.sport,
        vport: p.dport,
        rport: b.port,
        lport: 0,
        expires: 0,
        backend: b.tag(),
        service: svc.slot,
        proto: p.proto,
        state: state as u8,
        mode: b.mode as u8,
        flags: 0,
        client_port: in_port,
        reserved: 0,
        client_mac: ether::src(buf.data()).0,
    };
    match b.mode {
        Mode::Nat => s.flags |= FLAG_HAS_REPLY,
        Mode::FullNat => {
            s.flags |= FLAG_HAS_REPLY | FLAG_FULLNAT;
            let (local, lport) = alloc_local_port::<A>(cx, st, svc, b, p.proto)?;
            s.local = local;
            s.lport = lport;
        }
        Mode::Dr | Mode::Tunnel => {}
    }
    let table = A::table(st);
    // The reply key's buckets are a cache miss away: ask for them now and
    // finish the session meanwhile.
    let hr = (s.flags & FLAG_HAS_REPLY != 0).then(|| {
        let hr = table.hash(&s.reply_key());
        table.prefetch(hr);
        hr
    });
    let pressure = table.len() * 4 > table.capacity() * 3;
    s.expires = cx.now.wrapping_add(state.timeout(&svc.timeouts, pressure));
    let idx = match table.insert_hashed(s, hf, hr) {
        Ok(i) => i,
        Err(session::InsertError::Full | session::InsertError::IndexOverflow) => return Err(DropReason::SessionTableFull),
    };
    if let Some(k) = tpl_key {
        let timeout = svc.persistence.map_or(0, |(t, _)| t);
        let pt = A::persist(st);
        match pt.lookup(&k, pt.hash(&k)) {
            Some((t, _)) => {
                let tpl = pt.get_mut(t);
                tpl.rport = tpl.rport.saturating_add(1);
                tpl.expires = cx.now.wrapping_add(timeout);
            }
            None => {
                let tpl = Session {
                    client: k.src,
                    vip: k.dst,
                    vport: k.dport,
                    proto: k.proto,
                    backend: b.tag(),
                    service: svc.slot,
                    state: State::Established as u8,
                    rport: 1,
                    expires: cx.now.wrapping_add(timeout),
                    ..Session::default()
                };
                // A full template table only costs persistence for this client.
                let _ = pt.insert(tpl);
            }
        }
    }
    A::gauge(cx.stats).set(A::table_ref(st).len() as u64);
    cx.stats.sessions_created.inc();
    let slot = usize::from(b.slot);
    if let Some(bs) = cx.stats.backends.get(slot) {
        bs.conns.inc();
        if state.is_active() {
            bs.active.inc();
            st.load.active[slot] += 1;
        } else {
            bs.inactive.inc();
            st.load.inactive[slot] += 1;
        }
    }
    if let Some(ss) = cx.stats.services.get(usize::from(svc.slot)) {
        ss.conns.inc();
        if b.fallback {
            ss.fallback_conns.inc();
        }
    }
    Ok(idx)
}

/// The persistence template key of a client for a service.
#[inline]
fn template_key<A: Addr>(client: A, vip: A, vport: u16, l4proto: u8, prefix: u8) -> FlowKey<A> {
    FlowKey { src: client.mask(prefix), dst: vip, sport: 0, dport: vport, proto: l4proto }
}

/// Forwards a new flow without a session (the table is full and the service
/// is `when_full = "stateless"`): the real server comes from a Maglev table
/// over the flow's 5-tuple, so the flow's later packets, which find no
/// session either, land on the same server. DR and tunnel only: NAT replies
/// need a session (or a route and MAC for the client), so NAT and full-NAT
/// services refuse instead.
fn stateless<A: Fam, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    in_port: u8,
    p: &Pkt<A>,
    svc: &ServiceView,
) -> Result<Verdict, DropReason> {
    let Some(table) = &svc.stateless else { return Err(DropReason::SessionTableFull) };
    let mut k = [0u8; 37];
    p.src.write(&mut k);
    p.dst.write(&mut k[16..]);
    k[32..34].copy_from_slice(&p.sport.to_be_bytes());
    k[34..36].copy_from_slice(&p.dport.to_be_bytes());
    k[36] = p.proto;
    let pick = table.lookup(stable_hash(&k, 0x5354_4154), &svc.cands, true).ok_or(DropReason::NoBackend)?;
    let b = svc
        .backends
        .get(pick)
        .and_then(|&slot| cx.snap.backends.get(usize::from(slot)))
        .and_then(Option::as_ref)
        .ok_or(DropReason::NoBackend)?;
    if !matches!(b.mode, Mode::Dr | Mode::Tunnel) {
        return Err(DropReason::SessionTableFull);
    }
    let mac = cx.snap.neigh.mac(b.neigh);
    let out = cx.snap.port(b.egress).ok_or(DropReason::NoRoute)?;
    if b.mode == Mode::Tunnel {
        let overhead = tunnel_overhead(b.addr);
        if buf.len() - ether::HEADER_LEN + overhead > usize::from(out.mtu) {
            return too_big::<A, B>(cx, st, buf, in_port, usize::from(out.mtu).saturating_sub(overhead));
        }
        decrement_ttl::<A>(buf.data_mut());
        encapsulate::<A, B>(cx, buf, b, out.mtu)?;
    } else {
        decrement_ttl::<A>(buf.data_mut());
    }
    ether::set_macs(buf.data_mut(), mac.unwrap_or(MacAddr::ZERO), out.mac);
    cx.stats.stateless_flows.inc();
    if let Some(ss) = cx.stats.services.get(usize::from(svc.slot)) {
        ss.stateless.inc();
        ss.pkts_in.inc();
        ss.bytes_in.add(buf.len() as u64);
    }
    Ok(tx_or_hold(b.egress, mac, b.neigh))
}

/// Answers a client's TCP segment with a reset from the VIP, in place
/// (RFC 9293 3.10.7.1: with the segment's ACK as sequence number, or
/// acknowledging it when it carried no ACK).
fn reset_to_sender<A: Addr, B: PacketBuf>(cx: &Ctx<'_>, buf: &mut B, in_port: u8, p: &Pkt<A>) -> Result<Verdict, DropReason> {
    let port = cx.snap.port(in_port).ok_or(DropReason::NoBackend)?;
    let t = tcp::TcpHeader::parse(&buf.data()[p.l4..p.end])?;
    let seg_len = u32::try_from(p.end - p.l4 - t.header_len).unwrap_or(0)
        + u32::from(t.flags & tcp::flags::SYN != 0)
        + u32::from(t.flags & tcp::flags::FIN != 0);
    let (seq, ack, flags) = if t.flags & tcp::flags::ACK != 0 {
        (t.ack, 0, tcp::flags::RST)
    } else {
        (0, t.seq.wrapping_add(seg_len), tcp::flags::RST | tcp::flags::ACK)
    };
    let peer = ether::src(buf.data());
    write_reset(buf, p.l4, (p.dst, p.dport), (p.src, p.sport), seq, ack, flags, peer, port.mac);
    cx.stats.resets_sent.inc();
    Ok(Verdict::Reply { port: in_port, reason: DropReason::NoBackend })
}

/// Turns a real server's segment for a session whose server was removed
/// into a reset to the client, from the VIP, carrying the server's sequence
/// number (what the client expects next): the client learns at once instead
/// of waiting for a reply that will not come.
fn reset_reply_to_client<A: Addr, B: PacketBuf>(cx: &Ctx<'_>, buf: &mut B, s: &Session<A>, p: &Pkt<A>) -> Result<Verdict, DropReason> {
    let port = cx.snap.port(s.client_port).ok_or(DropReason::NoBackend)?;
    let t = tcp::TcpHeader::parse(&buf.data()[p.l4..p.end])?;
    write_reset(buf, p.l4, (s.vip, s.vport), (s.client, s.cport), t.seq, 0, tcp::flags::RST, MacAddr(s.client_mac), port.mac);
    cx.stats.resets_sent.inc();
    Ok(Verdict::Reply { port: s.client_port, reason: DropReason::NoBackend })
}

/// Rewrites the frame in place into a bare TCP segment `src -> dst` with the
/// given sequence, acknowledgement and flags (IPv4 DF, TTL 64).
#[allow(clippy::too_many_arguments)]
fn write_reset<A: Addr, B: PacketBuf>(
    buf: &mut B,
    l4: usize,
    src: (A, u16),
    dst: (A, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    to: MacAddr,
    from: MacAddr,
) {
    buf.truncate(l4 + tcp::MIN_HEADER_LEN);
    let d = buf.data_mut();
    ether::set_macs(d, to, from);
    let ip = &mut d[ether::HEADER_LEN..];
    if A::V6 {
        ipv6::write_header(ip, 0, 0, 20, proto::TCP, 64, u128::from_be_bytes(a_bytes16(src.0)), u128::from_be_bytes(a_bytes16(dst.0)));
    } else {
        ipv4::write_header(
            ip,
            0,
            40,
            0,
            ipv4::FLAG_DF,
            64,
            proto::TCP,
            u32::from_be_bytes(a_bytes4(src.0)),
            u32::from_be_bytes(a_bytes4(dst.0)),
        );
    }
    let seg = &mut d[l4..l4 + tcp::MIN_HEADER_LEN];
    seg.fill(0);
    seg[0..2].copy_from_slice(&src.1.to_be_bytes());
    seg[2..4].copy_from_slice(&dst.1.to_be_bytes());
    seg[4..8].copy_from_slice(&seq.to_be_bytes());
    seg[8..12].copy_from_slice(&ack.to_be_bytes());
    seg[12] = 5 << 4;
    seg[13] = flags;
    let ph = if A::V6 {
        checksum::pseudo_v6(&a_bytes16(src.0), &a_bytes16(dst.0), proto::TCP, 20)
    } else {
        checksum::pseudo_v4(a_bytes4(src.0), a_bytes4(dst.0), proto::TCP, 20)
    };
    let c = checksum::l4_checksum(ph, seg);
    seg[tcp::CHECKSUM_AT..tcp::CHECKSUM_AT + 2].copy_from_slice(&c.to_be_bytes());
}

/// Hashes a scheduler may use: source (and port) and destination, stable
/// across restarts and balancers.
fn flow_hashes<A: Addr>(p: &Pkt<A>, with_port: bool) -> Flow {
    let mut b = [0u8; 18];
    p.src.write(&mut b);
    let n = if with_port {
        b[A::LEN..A::LEN + 2].copy_from_slice(&p.sport.to_be_bytes());
        A::LEN + 2
    } else {
        A::LEN
    };
    let src = stable_hash(&b[..n], 0x0073_7263);
    let mut d = [0u8; 16];
    p.dst.write(&mut d);
    Flow { src, dst: stable_hash(&d[..A::LEN], 0x647374) }
}

/// Picks a full-NAT local address and port whose reply key is free. The
/// core's port range is walked from a cursor, taking the service's local
/// addresses in turn at each port (else the egress port's address of the
/// real server's family), so every address's ports are used evenly.
fn alloc_local_port<A: Fam>(cx: &Ctx<'_>, st: &mut St, svc: &ServiceView, b: &BackendView, l4proto: u8) -> Result<(A, u16), DropReason> {
    let rs = A::from_ip(b.addr).ok_or(DropReason::LocalPortsExhausted)?;
    let fallback =
        if svc.locals.is_empty() { cx.snap.port(b.egress).and_then(|p| p.source_for(b.addr)).and_then(A::from_ip) } else { None };
    let nlocals = if svc.locals.is_empty() { usize::from(fallback.is_some()) } else { svc.locals.len() };
    if nlocals == 0 {
        return Err(DropReason::LocalPortsExhausted);
    }
    let (lo, hi) = st.fnat_range;
    let span = (usize::from(hi - lo) + 1) * nlocals;
    // With several cores on RSS NICs, prefer a port whose reply the NIC
    // sends to this core (a free one that does not is kept in reserve).
    let mut spare = None;
    let mut passed = 0;
    for _ in 0..span.min(4096) {
        let li = st.fnat_local % nlocals;
        let port = st.fnat_next;
        st.fnat_local = li + 1;
        if st.fnat_local == nlocals {
            st.fnat_local = 0;
            st.fnat_next = if port >= hi { lo } else { port + 1 };
        }
        let local = match fallback {
            Some(a) => a,
            None => match svc.locals.get(li).and_then(|&a| A::from_ip(a)) {
                Some(a) => a,
                None => continue, // an address of the other family
            },
        };
        let key = FlowKey { src: rs, dst: local, sport: b.port, dport: port, proto: l4proto };
        let t = A::table_ref(st);
        if t.lookup(&key, t.hash(&key)).is_none() {
            if cx.steer.is_none_or(|sv| sv.prefers_lport(cx.core, rs, b.port, local, port)) {
                return Ok((local, port));
            }
            spare = spare.or(Some((local, port)));
        }
        if spare.is_some() {
            passed += 1;
            if passed >= 16 {
                break;
            }
        }
    }
    spare.ok_or(DropReason::LocalPortsExhausted)
}

/// The core owning the flow of a packet with this tuple, when it belongs
/// to a flow rvs balances (see [`crate::steer`] for the rules).
fn owner<A: Family>(snap: &Snapshot, sv: &Steering, k: &FlowKey<A>) -> Option<u16> {
    const FULL: u8 = u8::MAX;
    if let Some(svc) = snap.service(k.dst, k.dport, k.proto) {
        return Some(match svc.steer {
            Steer::Rss => sv.rss(k.src, k.dst, k.sport, k.dport),
            Steer::ClientNet(p) => sv.client(k.src, p, None),
            Steer::Client => sv.client(k.src, FULL, Some(k.sport)),
        });
    }
    if snap.is_local(k.dst) {
        if let Some(o) = sv.fnat_owner(k.dport) {
            return Some(o);
        }
    }
    let r = snap.nat_reply(k.src, k.sport, k.proto)?;
    Some(match r.steer {
        Steer::Rss => sv.rss(k.dst, r.vip, k.dport, r.vport),
        Steer::ClientNet(p) => sv.client(k.dst, p, None),
        Steer::Client => sv.client(k.dst, FULL, Some(k.dport)),
    })
}

/// Forwards a packet of an existing session.
fn forward<A: Fam, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    in_port: u8,
    idx: u32,
    dir: Dir,
    p: &Pkt<A>,
) -> Result<Verdict, DropReason> {
    let s = *A::table_ref(st).get(idx);
    let Some(b) = cx.snap.backend(s.backend) else {
        // The real server was removed (and its service does not keep
        // removed servers' sessions): end the session, and tell a TCP
        // client at once with a reset rather than let it time out.
        A::table(st).remove(idx);
        if s.state != State::Reset as u8 {
            let (load, persist) = A::load_persist(st);
            account_end(cx, load, persist, &s);
        }
        A::gauge(cx.stats).set(A::table_ref(st).len() as u64);
        if p.proto == proto::TCP && p.tcp_flags & tcp::flags::RST == 0 {
            return match dir {
                Dir::Forward => reset_to_sender::<A, B>(cx, buf, in_port, p),
                Dir::Reply => reset_reply_to_client::<A, B>(cx, buf, &s, p),
            };
        }
        return Err(DropReason::NoBackend);
    };
    // Forwarding decision first: nothing is written before we know the
    // packet can go.
    let (out_port, dst_mac) = match dir {
        Dir::Forward => (b.egress, cx.snap.neigh.mac(b.neigh)),
        Dir::Reply => (s.client_port, Some(MacAddr(s.client_mac))),
    };
    let out = cx.snap.port(out_port).ok_or(DropReason::NoRoute)?;
    let ttl_at = ether::HEADER_LEN + if A::V6 { 7 } else { 8 };
    if buf.data()[ttl_at] <= 1 {
        return time_exceeded::<A, B>(cx, st, buf, in_port);
    }
    if s.mode == Mode::Tunnel as u8 && dir == Dir::Forward {
        let overhead = tunnel_overhead(b.addr);
        if buf.len() - ether::HEADER_LEN + overhead > usize::from(out.mtu) {
            return too_big::<A, B>(cx, st, buf, in_port, usize::from(out.mtu).saturating_sub(overhead));
        }
    }
    // The L4 checksum is verified when a session is created; afterwards the
    // rewrite updates it incrementally (RFC 1624), which keeps a wrong one
    // wrong for the receiver to drop. A NIC's verdict costs nothing to use.
    if buf.l4_csum_bad() {
        return Err(if p.proto == proto::TCP { DropReason::TcpBadChecksum } else { DropReason::UdpBadChecksum });
    }
    commit(cx, st, buf, idx, dir, p, &s, b, out, out_port, dst_mac)
}

/// Everything forwarding an existing session's packet changes, once every
/// check passed: state and expiry, the rewrite, MACs and counters. Shared
/// by the general path ([`forward`]) and the fast path ([`fast4`]).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn commit<A: Fam, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    idx: u32,
    dir: Dir,
    p: &Pkt<A>,
    s: &Session<A>,
    b: &BackendView,
    out: &crate::table::PortView,
    out_port: u8,
    dst_mac: Option<MacAddr>,
) -> Result<Verdict, DropReason> {
    let svc_timeouts = cx.snap.services.get(usize::from(s.service)).and_then(Option::as_ref).map(|v| &v.timeouts);
    // State and expiry.
    let t = A::table(st);
    let pressure = t.len() * 4 > t.capacity() * 3;
    let e = t.get_mut(idx);
    let old = State::from_u8(e.state).unwrap_or(State::Close);
    let new = if p.proto == proto::TCP { conn::tcp_next(old, p.tcp_flags, dir, &mut e.flags) } else { old };
    e.state = new as u8;
    if let Some(tm) = svc_timeouts {
        e.expires = cx.now.wrapping_add(new.timeout(tm, pressure));
    }
    if new != old {
        account_transition(cx, &mut st.load, s.backend, old, new);
    }

    let len = buf.len() as u64;
    let bs = cx.stats.backends.get(usize::from(b.slot));
    let ss = cx.stats.services.get(usize::from(s.service));
    match (Mode::from_u8(s.mode), dir) {
        (Some(Mode::Nat), Dir::Forward) => nat_rewrite(buf, p, None, Some((s.rs, s.rport))),
        (Some(Mode::Nat), Dir::Reply) => nat_rewrite(buf, p, Some((s.vip, s.vport)), None),
        (Some(Mode::FullNat), Dir::Forward) => nat_rewrite(buf, p, Some((s.local, s.lport)), Some((s.rs, s.rport))),
        (Some(Mode::FullNat), Dir::Reply) => nat_rewrite(buf, p, Some((s.vip, s.vport)), Some((s.client, s.cport))),
        (Some(Mode::Dr), Dir::Forward) => decrement_ttl::<A>(buf.data_mut()),
        (Some(Mode::Tunnel), Dir::Forward) => {
            decrement_ttl::<A>(buf.data_mut());
            encapsulate::<A, B>(cx, buf, b, out.mtu)?;
        }
        _ => return Err(DropReason::NotForUs),
    }
    ether::set_macs(buf.data_mut(), dst_mac.unwrap_or(MacAddr::ZERO), out.mac);
    match dir {
        Dir::Forward => {
            if let Some(bs) = bs {
                bs.pkts_in.inc();
                bs.bytes_in.add(len);
            }
            if let Some(ss) = ss {
                ss.pkts_in.inc();
                ss.bytes_in.add(len);
            }
        }
        Dir::Reply => {
            if let Some(bs) = bs {
                bs.pkts_out.inc();
                bs.bytes_out.add(len);
            }
            if let Some(ss) = ss {
                ss.pkts_out.inc();
                ss.bytes_out.add(len);
            }
        }
    }
    Ok(tx_or_hold(out_port, dst_mac, b.neigh))
}

/// `Tx` when the next hop's MAC is known, `Hold` (until it resolves) when not.
#[inline]
fn tx_or_hold(port: u8, mac: Option<MacAddr>, neigh: u32) -> Verdict {
    match mac {
        Some(_) => Verdict::Tx(port),
        None => Verdict::Hold { port, neigh },
    }
}

/// Decrements the TTL (IPv4, with checksum) or hop limit (IPv6).
#[inline]
fn decrement_ttl<A: Addr>(frame: &mut [u8]) {
    let ip = &mut frame[ether::HEADER_LEN..];
    if A::V6 {
        ipv6::decrement_hop_limit(ip);
    } else {
        ipv4::decrement_ttl(ip);
    }
}

/// Rewrites source and/or destination address and port, with the TTL, and
/// updates the IP and L4 checksums incrementally.
#[inline(always)]
fn nat_rewrite<A: Addr, B: PacketBuf>(buf: &mut B, p: &Pkt<A>, src: Option<(A, u16)>, dst: Option<(A, u16)>) {
    let d = buf.data_mut();
    decrement_ttl::<A>(d);
    let ip = &mut d[ether::HEADER_LEN..];
    let at = if p.proto == proto::TCP { tcp::CHECKSUM_AT } else { udp::CHECKSUM_AT };
    let seg_off = p.l4 - ether::HEADER_LEN;
    let mut c = u16::from_be_bytes([ip[seg_off + at], ip[seg_off + at + 1]]);
    let no_udp_sum = p.proto == proto::UDP && !A::V6 && c == 0;
    if let Some((a, port)) = src {
        if A::V6 {
            ipv6::set_src(ip, u128::from_be_bytes(a_bytes16(a)));
        } else {
            ipv4::set_src(ip, u32::from_be_bytes(a_bytes4(a)));
        }
        c = A::csum_update(c, p.src, a);
        c = checksum::update16(c, p.sport, port);
        ip[seg_off..seg_off + 2].copy_from_slice(&port.to_be_bytes());
    }
    if let Some((a, port)) = dst {
        if A::V6 {
            ipv6::set_dst(ip, u128::from_be_bytes(a_bytes16(a)));
        } else {
            ipv4::set_dst(ip, u32::from_be_bytes(a_bytes4(a)));
        }
        c = A::csum_update(c, p.dst, a);
        c = checksum::update16(c, p.dport, port);
        ip[seg_off + 2..seg_off + 4].copy_from_slice(&port.to_be_bytes());
    }
    if !no_udp_sum {
        if p.proto == proto::UDP && c == 0 {
            c = 0xffff;
        }
        ip[seg_off + at..seg_off + at + 2].copy_from_slice(&c.to_be_bytes());
    }
}

fn a_bytes4<A: Addr>(a: A) -> [u8; 4] {
    let mut b = [0u8; 4];
    if !A::V6 {
        a.write(&mut b);
    }
    b
}

fn a_bytes16<A: Addr>(a: A) -> [u8; 16] {
    let mut b = [0u8; 16];
    if A::V6 {
        a.write(&mut b);
    }
    b
}

/// Tunnel mode: wraps the IP packet in an outer IPv4 or IPv6 header to the
/// real server (RFC 2003 / RFC 2473). The outer TOS/traffic class is copied
/// from the inner header; DF is set on the outer IPv4 header when the inner
/// packet has DF or is IPv6. A packet that would exceed the egress MTU is
/// refused here; see [`too_big`] for the ICMP answer.
fn encapsulate<A: Addr, B: PacketBuf>(cx: &Ctx<'_>, buf: &mut B, b: &BackendView, mtu: u16) -> Result<(), DropReason> {
    let src = b.tunnel_src.ok_or(DropReason::NoRoute)?;
    let inner_len = buf.len() - ether::HEADER_LEN;
    let d = buf.data();
    let (tos, inner_df) = if A::V6 {
        let ip = &d[ether::HEADER_LEN..];
        (((ip[0] & 0x0f) << 4) | (ip[1] >> 4), true)
    } else {
        let ip = &d[ether::HEADER_LEN..];
        (ip[1], u16::from_be_bytes([ip[6], ip[7]]) & ipv4::FLAG_DF != 0)
    };
    let inner_proto = if A::V6 { proto::IPV6 } else { proto::IPIP };
    let overhead = tunnel_overhead(b.addr);
    if inner_len + overhead > usize::from(mtu) {
        return Err(DropReason::MtuExceeded);
    }
    if !buf.prepend(overhead) {
        return Err(DropReason::NoHeadroom);
    }
    let d = buf.data_mut();
    d.copy_within(overhead..overhead + ether::HEADER_LEN, 0);
    let outer = &mut d[ether::HEADER_LEN..];
    match (src, b.addr) {
        (IpAddr::V4(s), IpAddr::V4(t)) => {
            let total = u16::try_from(inner_len + overhead).map_err(|_| DropReason::MtuExceeded)?;
            let df = if inner_df { ipv4::FLAG_DF } else { 0 };
            ipv4::write_header(outer, tos, total, 0, df, cx.tunnel_ttl, inner_proto, u32::from(s), u32::from(t));
            d[12..14].copy_from_slice(&ether::ethertype::IPV4.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(t)) => {
            let plen = u16::try_from(inner_len).map_err(|_| DropReason::MtuExceeded)?;
            ipv6::write_header(outer, tos, 0, plen, inner_proto, cx.tunnel_ttl, u128::from(s), u128::from(t));
            d[12..14].copy_from_slice(&ether::ethertype::IPV6.to_be_bytes());
        }
        _ => return Err(DropReason::NoRoute),
    }
    Ok(())
}

/// Bytes a tunnel adds: an outer IPv4 or IPv6 header.
fn tunnel_overhead(rs: IpAddr) -> usize {
    if rs.is_ipv6() {
        ipv6::HEADER_LEN
    } else {
        ipv4::MIN_HEADER_LEN
    }
}

/// A packet too big for the tunnel: ICMP "fragmentation needed" (IPv4 with
/// DF) or "packet too big" (IPv6) back to the sender, announcing the egress
/// MTU less the tunnel overhead (RFC 2003 5.1, RFC 2473 7). An IPv4 packet
/// without DF that does not fit is dropped (`mtu_exceeded`): rvs does not
/// fragment.
fn too_big<A: Addr, B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, in_port: u8, mtu: usize) -> Result<Verdict, DropReason> {
    let df = A::V6 || u16::from_be_bytes([buf.data()[ether::HEADER_LEN + 6], buf.data()[ether::HEADER_LEN + 7]]) & ipv4::FLAG_DF != 0;
    if !df {
        return Err(DropReason::MtuExceeded);
    }
    let port = cx.snap.port(in_port).ok_or(DropReason::MtuExceeded)?;
    if !st.icmp.allow(cx.now) {
        return Err(DropReason::MtuExceeded);
    }
    let ok = if A::V6 {
        let from = port.first::<u128>().ok_or(DropReason::MtuExceeded)?;
        let mtu = u32::try_from(mtu.max(icmp::v6::MAX_ERROR_LEN)).unwrap_or(1280);
        icmp::error_v6(buf, port.mac, from, icmp::v6::PACKET_TOO_BIG, 0, mtu)
    } else {
        let from = port.first::<u32>().ok_or(DropReason::MtuExceeded)?;
        icmp::error_v4(buf, port.mac, from, icmp::v4::DEST_UNREACH, icmp::v4::CODE_FRAG_NEEDED, u32::try_from(mtu & 0xffff).unwrap_or(0))
    };
    if !ok {
        return Err(DropReason::MtuExceeded);
    }
    cx.stats.icmp_errors_sent.inc();
    Ok(Verdict::Reply { port: in_port, reason: DropReason::MtuExceeded })
}

/// The packet quoted in an ICMP error (offsets from the frame start).
#[derive(Clone, Copy, Debug)]
struct Quoted<A: Addr> {
    l3: usize,
    l4: usize,
    end: usize,
    proto: u8,
    src: A,
    dst: A,
    sport: u16,
    dport: u16,
}

/// Reads the IP header and the first 8 L4 bytes quoted in an ICMP error
/// starting at `at`. The quoted packet is usually truncated, so its total
/// length is not checked against the buffer; only TCP and UDP are matched.
fn parse_quoted<A: Addr>(d: &[u8], at: usize, end: usize) -> Result<Quoted<A>, DropReason> {
    let q = d.get(at..end).ok_or(DropReason::IcmpErrorBadInner)?;
    let (hlen, l4proto, src, dst) = if A::V6 {
        if q.len() < ipv6::HEADER_LEN || q[0] >> 4 != 6 {
            return Err(DropReason::IcmpErrorBadInner);
        }
        let src = u128::from_be_bytes(q[8..24].try_into().map_err(|_| DropReason::IcmpErrorBadInner)?);
        let dst = u128::from_be_bytes(q[24..40].try_into().map_err(|_| DropReason::IcmpErrorBadInner)?);
        (ipv6::HEADER_LEN, q[6], A::from_ip(src.to_ip()), A::from_ip(dst.to_ip()))
    } else {
        if q.len() < ipv4::MIN_HEADER_LEN || q[0] >> 4 != 4 {
            return Err(DropReason::IcmpErrorBadInner);
        }
        let hlen = usize::from(q[0] & 0x0f) * 4;
        if hlen < ipv4::MIN_HEADER_LEN {
            return Err(DropReason::IcmpErrorBadInner);
        }
        let src = u32::from_be_bytes([q[12], q[13], q[14], q[15]]);
        let dst = u32::from_be_bytes([q[16], q[17], q[18], q[19]]);
        (hlen, q[9], A::from_ip(src.to_ip()), A::from_ip(dst.to_ip()))
    };
    if q.len() < hlen + 8 || !(l4proto == proto::TCP || l4proto == proto::UDP) {
        return Err(DropReason::IcmpErrorBadInner);
    }
    let (Some(src), Some(dst)) = (src, dst) else { return Err(DropReason::IcmpErrorBadInner) };
    let l4 = &q[hlen..];
    Ok(Quoted {
        l3: at,
        l4: at + hlen,
        end,
        proto: l4proto,
        src,
        dst,
        sport: u16::from_be_bytes([l4[0], l4[1]]),
        dport: u16::from_be_bytes([l4[2], l4[3]]),
    })
}

/// Rewrites the quoted packet's addresses and ports, keeping its IPv4
/// header checksum and (when quoted whole enough to include it) its L4
/// checksum consistent.
fn rewrite_quoted<A: Addr>(d: &mut [u8], q: &Quoted<A>, src: Option<(A, u16)>, dst: Option<(A, u16)>) {
    let csum_at = q.l4 + if q.proto == proto::TCP { tcp::CHECKSUM_AT } else { udp::CHECKSUM_AT };
    let has_csum = csum_at + 2 <= q.end;
    let mut c = if has_csum { u16::from_be_bytes([d[csum_at], d[csum_at + 1]]) } else { 0 };
    let no_udp_sum = q.proto == proto::UDP && !A::V6 && c == 0;
    if let Some((a, port)) = src {
        if A::V6 {
            ipv6::set_src(&mut d[q.l3..], u128::from_be_bytes(a_bytes16(a)));
        } else {
            ipv4::set_src(&mut d[q.l3..], u32::from_be_bytes(a_bytes4(a)));
        }
        c = A::csum_update(c, q.src, a);
        c = checksum::update16(c, q.sport, port);
        d[q.l4..q.l4 + 2].copy_from_slice(&port.to_be_bytes());
    }
    if let Some((a, port)) = dst {
        if A::V6 {
            ipv6::set_dst(&mut d[q.l3..], u128::from_be_bytes(a_bytes16(a)));
        } else {
            ipv4::set_dst(&mut d[q.l3..], u32::from_be_bytes(a_bytes4(a)));
        }
        c = A::csum_update(c, q.dst, a);
        c = checksum::update16(c, q.dport, port);
        d[q.l4 + 2..q.l4 + 4].copy_from_slice(&port.to_be_bytes());
    }
    if has_csum && !no_udp_sum {
        if q.proto == proto::UDP && c == 0 {
            c = 0xffff;
        }
        d[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// Forwards an ICMP/ICMPv6 error about a session to the other party.
///
/// The quoted packet, reversed, is a session key: an error from the client
/// side (a router in front of the client complaining about a packet rvs or
/// the real server sent to the client) quotes `VIP -> client` and matches the
/// session's forward key, so it goes to the real server; an error from the
/// server side (NAT and full NAT) quotes what rvs sent to the real server and
/// matches the reply key, so it goes to the client. Outer and quoted headers
/// are translated exactly as the session translates its packets, and every
/// checksum (outer IPv4 header, ICMP, quoted IPv4 header, quoted L4 when
/// present) is kept valid. An error is never answered with an error.
fn icmp_error<A: Fam, B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, icmp_at: usize, end: usize) -> Result<Verdict, DropReason> {
    let q = parse_quoted::<A>(buf.data(), icmp_at + icmp::HEADER_LEN, end)?;
    let key = FlowKey { src: q.dst, dst: q.src, sport: q.dport, dport: q.sport, proto: q.proto };
    let t = A::table_ref(st);
    let Some((idx, dir)) = t.lookup(&key, t.hash(&key)) else {
        // The quoted packet, seen from the other side, is a packet of the
        // flow: its owner is the flow's.
        return match cx.steer.and_then(|sv| owner(cx.snap, sv, &key)) {
            Some(o) if o != cx.core => Ok(Verdict::Handover(o)),
            _ => Err(DropReason::IcmpErrorNoSession),
        };
    };
    let s = *t.get(idx);
    if s.expired(cx.now) {
        return Err(DropReason::IcmpErrorNoSession);
    }
    let b = cx.snap.backend(s.backend).ok_or(DropReason::NoBackend)?;
    let mode = Mode::from_u8(s.mode).ok_or(DropReason::NotForUs)?;
    let (out_port, dst_mac) = match dir {
        Dir::Forward => (b.egress, cx.snap.neigh.mac(b.neigh)),
        Dir::Reply => (s.client_port, Some(MacAddr(s.client_mac))),
    };
    let out = cx.snap.port(out_port).ok_or(DropReason::NoRoute)?;
    let ttl_at = ether::HEADER_LEN + if A::V6 { 7 } else { 8 };
    if buf.data()[ttl_at] <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    #[derive(Default)]
    struct Plan<A> {
        outer_src: Option<A>,
        outer_dst: Option<A>,
        inner_src: Option<(A, u16)>,
        inner_dst: Option<(A, u16)>,
    }
    let plan: Plan<A> = match (mode, dir) {
        (Mode::Nat, Dir::Forward) => Plan { outer_dst: Some(s.rs), inner_src: Some((s.rs, s.rport)), ..Plan::default() },
        (Mode::FullNat, Dir::Forward) => {
            Plan { outer_src: Some(s.local), outer_dst: Some(s.rs), inner_src: Some((s.rs, s.rport)), inner_dst: Some((s.local, s.lport)) }
        }
        (Mode::Dr | Mode::Tunnel, Dir::Forward) => Plan::default(),
        (Mode::Nat, Dir::Reply) => Plan { outer_src: Some(s.vip), inner_dst: Some((s.vip, s.vport)), ..Plan::default() },
        (Mode::FullNat, Dir::Reply) => Plan {
            outer_src: Some(s.vip),
            outer_dst: Some(s.client),
            inner_src: Some((s.client, s.cport)),
            inner_dst: Some((s.vip, s.vport)),
        },
        _ => return Err(DropReason::IcmpErrorNoSession),
    };
    let d = buf.data_mut();
    rewrite_quoted(d, &q, plan.inner_src, plan.inner_dst);
    let ip = &mut d[ether::HEADER_LEN..];
    if A::V6 {
        ipv6::decrement_hop_limit(ip);
        if let Some(a) = plan.outer_src {
            ipv6::set_src(ip, u128::from_be_bytes(a_bytes16(a)));
        }
        if let Some(a) = plan.outer_dst {
            ipv6::set_dst(ip, u128::from_be_bytes(a_bytes16(a)));
        }
        let src = u128::from_be_bytes(ip[8..24].try_into().unwrap_or([0; 16]));
        let dst = u128::from_be_bytes(ip[24..40].try_into().unwrap_or([0; 16]));
        icmp::fill_checksum_v6(&mut d[icmp_at..end], src, dst);
    } else {
        ipv4::decrement_ttl(ip);
        if let Some(a) = plan.outer_src {
            ipv4::set_src(ip, u32::from_be_bytes(a_bytes4(a)));
        }
        if let Some(a) = plan.outer_dst {
            ipv4::set_dst(ip, u32::from_be_bytes(a_bytes4(a)));
        }
        icmp::fill_checksum_v4(&mut d[icmp_at..end]);
    }
    if mode == Mode::Tunnel && dir == Dir::Forward {
        encapsulate::<A, B>(cx, buf, b, out.mtu)?;
    }
    ether::set_macs(buf.data_mut(), dst_mac.unwrap_or(MacAddr::ZERO), out.mac);
    cx.stats.icmp_errors_forwarded.inc();
    Ok(tx_or_hold(out_port, dst_mac, b.neigh))
}

/// Turns the packet into ICMP time exceeded back to its sender (rate
/// limited), counting the drop of the original.
fn time_exceeded<A: Addr, B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, in_port: u8) -> Result<Verdict, DropReason> {
    let port = cx.snap.port(in_port).ok_or(DropReason::TtlExceeded)?;
    if !st.icmp.allow(cx.now) {
        return Err(DropReason::TtlExceeded);
    }
    let ok = if A::V6 {
        let from = port.first::<u128>().ok_or(DropReason::TtlExceeded)?;
        icmp::error_v6(buf, port.mac, from, icmp::v6::TIME_EXCEEDED, 0, 0)
    } else {
        let from = port.first::<u32>().ok_or(DropReason::TtlExceeded)?;
        icmp::error_v4(buf, port.mac, from, icmp::v4::TIME_EXCEEDED, 0, 0)
    };
    if !ok {
        return Err(DropReason::TtlExceeded);
    }
    cx.stats.icmp_errors_sent.inc();
    // The original is dropped (counted once, as ttl_exceeded); the frame
    // now carries the error back to its sender.
    Ok(Verdict::Reply { port: in_port, reason: DropReason::TtlExceeded })
}

/// An ICMP error not matching a session goes to the kernel when it is for
/// one of the balancer's own addresses (its own connections), else is
/// dropped.
fn unmatched_error(cx: &Ctx<'_>, kind: Option<AddrKind>, e: DropReason) -> Result<Verdict, DropReason> {
    match (e, kind) {
        (DropReason::IcmpErrorNoSession, Some(AddrKind::Own(p))) if cx.snap.port(p).and_then(|v| v.kernel).is_some() => {
            Ok(Verdict::Kernel(p))
        }
        _ => Err(e),
    }
}

fn icmp4<B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, in_port: u8, h: &ipv4::Ipv4Header) -> Result<Verdict, DropReason> {
    let l4 = ether::HEADER_LEN + h.header_len;
    let end = ether::HEADER_LEN + h.total_len;
    let m = icmp::IcmpHeader::parse_v4(&buf.data()[l4..end])?;
    let kind = cx.snap.addr_kind(h.dst);
    if m.is_error_v4() {
        return icmp_error::<u32, B>(cx, st, buf, l4, end).or_else(|e| unmatched_error(cx, kind, e));
    }
    match (m.ty, kind) {
        (icmp::v4::ECHO_REQUEST, Some(AddrKind::Vip | AddrKind::Local)) => echo4(cx, buf, in_port, h.header_len),
        (icmp::v4::ECHO_REQUEST, Some(AddrKind::Own(p))) => match cx.snap.port(p).and_then(|v| v.kernel) {
            Some(_) => Ok(Verdict::Kernel(p)),
            None => echo4(cx, buf, in_port, h.header_len),
        },
        (_, Some(AddrKind::Own(p))) if cx.snap.port(p).and_then(|v| v.kernel).is_some() => Ok(Verdict::Kernel(p)),
        (_, None) => Err(DropReason::NotForUs),
        _ => Err(DropReason::IcmpUnhandled),
    }
}

fn echo4<B: PacketBuf>(cx: &Ctx<'_>, buf: &mut B, in_port: u8, header_len: usize) -> Result<Verdict, DropReason> {
    let mac = cx.snap.port(in_port).ok_or(DropReason::NotForUs)?.mac;
    let d = buf.data_mut();
    icmp::echo_reply_v4(&mut d[ether::HEADER_LEN..], header_len);
    ether::reply_macs(d, mac);
    Ok(Verdict::Answer(in_port))
}

fn icmp6<B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, in_port: u8, h: &ipv6::Ipv6Header) -> Result<Verdict, DropReason> {
    let l4 = ether::HEADER_LEN + h.header_len;
    let end = ether::HEADER_LEN + h.total_len;
    let m = icmp::IcmpHeader::parse_v6(&buf.data()[l4..end], h.src, h.dst)?;
    let port = cx.snap.port(in_port).ok_or(DropReason::NotForUs)?;
    if m.is_error_v6() {
        let kind = cx.snap.addr_kind(h.dst);
        return icmp_error::<u128, B>(cx, st, buf, l4, end).or_else(|e| unmatched_error(cx, kind, e));
    }
    match m.ty {
        icmp::v6::NEIGHBOR_SOLICIT => {
            let ns = icmp::parse_neighbor(&buf.data()[l4..end], h.hop_limit)?;
            let peer_mac = ns.lla.unwrap_or_else(|| ether::src(buf.data()));
            if let Some(slot) = check_claim(cx, h.src, peer_mac, in_port)? {
                cx.snap.neigh.learn(slot, peer_mac, cx.now);
            }
            match cx.snap.addr_kind(ns.target) {
                Some(AddrKind::Vip | AddrKind::Local) => {}
                Some(AddrKind::Own(p)) if p == in_port => {}
                _ => return Err(DropReason::NdNotForUs),
            }
            // Answer in place: an NA with our link-layer address is 86 bytes.
            let need = 86usize;
            if buf.len() < need && !buf.append(need - buf.len()) {
                return Err(DropReason::NoHeadroom);
            }
            buf.truncate(need);
            let (to, to_mac, solicited) = if h.src == 0 {
                let all_nodes = 0xff02_u128 << 112 | 1;
                (all_nodes, MacAddr::ipv6_multicast(&all_nodes.to_be_bytes()), false)
            } else {
                (h.src, peer_mac, true)
            };
            icmp::write_neighbor_advert(buf.data_mut(), port.mac, to_mac, ns.target, to, solicited);
            cx.stats.neigh_answers.inc();
            Ok(Verdict::Answer(in_port))
        }
        icmp::v6::NEIGHBOR_ADVERT => {
            let na = icmp::parse_neighbor(&buf.data()[l4..end], h.hop_limit)?;
            let claimed = na.lla.unwrap_or_else(|| ether::src(buf.data()));
            if let (Some(slot), Some(mac)) = (check_claim(cx, na.target, claimed, in_port)?, na.lla) {
                cx.snap.neigh.learn(slot, mac, cx.now);
            }
            Ok(match cx.snap.addr_kind(h.dst) {
                Some(AddrKind::Own(p)) if p == in_port && port.kernel.is_some() => Verdict::Kernel(p),
                _ => Verdict::Consumed,
            })
        }
        icmp::v6::ECHO_REQUEST => match cx.snap.addr_kind(h.dst) {
            Some(AddrKind::Vip | AddrKind::Local) => echo6(buf, port.mac, h.header_len, in_port),
            Some(AddrKind::Own(p)) => match cx.snap.port(p).and_then(|v| v.kernel) {
                Some(_) => Ok(Verdict::Kernel(p)),
                None => echo6(buf, port.mac, h.header_len, in_port),
            },
            None => Err(DropReason::NotForUs),
        },
        _ => Err(DropReason::IcmpUnhandled),
    }
}

fn echo6<B: PacketBuf>(buf: &mut B, mac: MacAddr, header_len: usize, in_port: u8) -> Result<Verdict, DropReason> {
    let d = buf.data_mut();
    icmp::echo_reply_v6(&mut d[ether::HEADER_LEN..], header_len);
    ether::reply_macs(d, mac);
    Ok(Verdict::Answer(in_port))
}

#[cfg(test)]
#[path = "fwd_tests.rs"]
mod tests;
