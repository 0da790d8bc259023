//! The per-core state ([`St`]) and the per-packet context ([`Ctx`]) every
//! stage shares.
use crate::sched::{Load, Scheduler};
use crate::session;
use crate::session::{FlowKey, SessionTable};
use crate::stats::CoreStats;
use crate::steer::Steering;
use crate::table::Snapshot;
use rvs_wire::{ByFamily, Family, PerFamily};

/// Per-backend connection counts as this core sees them (for the
/// least-connection schedulers), tagged with the backend generation so a
/// reused slot starts from zero.
#[derive(Debug)]
pub(super) struct LoadTable {
    pub(super) gen: Vec<u16>,
    pub(super) active: Vec<u32>,
    pub(super) inactive: Vec<u32>,
    /// The other cores' counts, refreshed every housekeeping period from
    /// their counters (relaxed loads; no lock, no shared write).
    pub(super) remote: Vec<(u32, u32)>,
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
pub(super) struct RateLimit {
    pub(super) per_sec: u32,
    pub(super) tokens: u32,
    pub(super) last: u32,
}

impl RateLimit {
    pub(super) fn allow(&mut self, now: u32) -> bool {
        let elapsed = now.wrapping_sub(self.last);
        if elapsed >= 1000 / self.per_sec.max(1) {
            let add = u64::from(elapsed) * u64::from(self.per_sec) / 1000;
            self.tokens = rvs_wire::num::sat_u32(u64::from(self.tokens) + add).min(self.per_sec);
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
pub(super) struct Ctx<'a> {
    pub(super) snap: &'a Snapshot,
    pub(super) stats: &'a CoreStats,
    pub(super) now: u32,
    pub(super) tunnel_ttl: u8,
    /// Steering, with several cores (None: this core owns every flow, or
    /// the packet was handed over and must be processed here).
    pub(super) steer: Option<&'a Steering>,
    pub(super) core: u16,
    /// This node is a backup: it forwards nothing to the virtual
    /// addresses and answers no ARP/ND for them.
    pub(super) standby: bool,
    /// The SYN proxy's cookie key.
    pub(super) cookie: &'a crate::synproxy::CookieKey,
}

/// Mutable per-core state.
#[derive(Debug)]
pub(super) struct St {
    /// The sessions.
    pub(super) sessions: ByFamily<TablesOf>,
    /// Persistence templates: (client network, VIP, port, protocol) ->
    /// real server; `rport` counts the sessions created under a template.
    pub(super) templates: ByFamily<TablesOf>,
    /// Per family: generation at the start of the current sweep pass, the
    /// one at the start of the last complete pass, and passes seen.
    pub(super) pass_gen: [u64; 2],
    pub(super) swept_gen: [u64; 2],
    pub(super) passes: [u64; 2],
    pub(super) scheds: Vec<Option<(u64, Box<dyn Scheduler>)>>,
    pub(super) load: LoadTable,
    pub(super) icmp: RateLimit,
    pub(super) fnat_range: (u16, u16),
    pub(super) fnat_next: u16,
    pub(super) fnat_local: usize,
    /// Lookups made ahead for the packets of the current burst (see
    /// [`Forwarder::prepare`]) and which one is being processed.
    pub(super) hints: ByFamily<HintsOf>,
    pub(super) hint_at: usize,
    pub(super) burst_len: usize,
    /// Session changes for the backups.
    pub(super) sync: super::sync::SyncOut,
    /// Frames originated while processing the burst.
    pub(super) extra: Extra,
    /// The SYN proxy's handshakes with real servers in flight.
    pub(super) resends: super::synproxy::Resends,
}

/// Room for one originated frame (a TCP segment with options).
pub const EXTRA_FRAME: usize = 128;

/// Frames the forwarder originates beside its verdicts (the SYN proxy's
/// window updates), preallocated: at most one per packet of a burst. The
/// worker sends them after each burst ([`super::Forwarder::drain_extra`]).
#[derive(Debug)]
pub(super) struct Extra {
    frames: Box<[[u8; EXTRA_FRAME]; BURST]>,
    meta: [(u8, u8); BURST],
    n: usize,
}

impl Extra {
    pub(super) fn new() -> Extra {
        Extra { frames: Box::new([[0; EXTRA_FRAME]; BURST]), meta: [(0, 0); BURST], n: 0 }
    }

    /// The next free frame, if any (written, then [`Extra::commit`]ted).
    pub(super) fn slot(&mut self) -> Option<&mut [u8; EXTRA_FRAME]> {
        self.frames.get_mut(self.n)
    }

    /// Keeps the frame just written into [`Extra::slot`]: `len` bytes for
    /// port `port`.
    pub(super) fn commit(&mut self, port: u8, len: usize) {
        if let (Some(m), Ok(len)) = (self.meta.get_mut(self.n), u8::try_from(len)) {
            *m = (port, len);
            self.n += 1;
        }
    }

    /// Hands every frame to `f` (port, bytes) and empties the list.
    pub(super) fn drain(&mut self, mut f: impl FnMut(u8, &[u8])) {
        for i in 0..self.n {
            let (port, len) = self.meta[i];
            f(port, &self.frames[i][..usize::from(len)]);
        }
        self.n = 0;
    }
}

/// The packets of a burst, at most.
pub const BURST: usize = 32;

/// How many packets ahead of the one being processed the session entries
/// are prefetched.
pub(super) const AHEAD: usize = 6;

/// Every session table is swept in full once per this many milliseconds.
pub const SWEEP_PERIOD_MS: u32 = 10_000;

/// A session lookup made ahead of processing one packet of a burst: its
/// key, hash and result, valid while the table's modification count is
/// still `mods`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Hint<A: Family> {
    pub(super) key: FlowKey<A>,
    pub(super) h: u64,
    pub(super) cands: session::Candidates,
    pub(super) mods: u64,
    pub(super) valid: bool,
}

/// Session tables, one per family (see [`rvs_wire::ByFamily`]).
#[derive(Debug)]
pub(super) struct TablesOf;

impl PerFamily for TablesOf {
    type Of<A: Family> = SessionTable<A>;
}

/// The look-ahead lookups of a burst, one array per family.
#[derive(Debug)]
pub(super) struct HintsOf;

impl PerFamily for HintsOf {
    type Of<A: Family> = [Hint<A>; BURST];
}

/// The validated L3/L4 facts of a TCP or UDP packet. Offsets are from the
/// start of the frame.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pkt<A: Family> {
    pub(super) l4: usize,
    pub(super) end: usize,
    pub(super) src: A,
    pub(super) dst: A,
    pub(super) proto: u8,
    pub(super) sport: u16,
    pub(super) dport: u16,
    pub(super) tcp_flags: u8,
}

impl<A: Family> Pkt<A> {
    /// The packet's 5-tuple.
    #[inline(always)]
    pub(super) fn tuple(&self) -> FlowKey<A> {
        FlowKey { src: self.src, dst: self.dst, sport: self.sport, dport: self.dport, proto: self.proto }
    }
}
