//! The established-flow fast path: a burst's look-ahead lookups and the one-
//! look validation of plain IPv4 TCP/UDP frames.
use super::state::{Ctx, Hint, Pkt, St, AHEAD, BURST};
use super::xmit::commit;
use super::{Forwarder, Verdict};
use crate::conn::State;
use crate::drop::DropReason;
use crate::session;
use crate::session::Dir;
use crate::table::Mode;
use rvs_wire::ip::proto;
use rvs_wire::peek::{self, PeekedFlow};
use rvs_wire::{ether, tcp, tunnel, Family, MacAddr, PacketBuf};

impl Forwarder {
    /// Looks the sessions of a burst up ahead of processing it:
    /// [`Forwarder::prefetch_burst`] then [`Forwarder::begin_burst`] at
    /// once, with the candidate entries looked at [`AHEAD`] packets before
    /// each is processed. The memory latency of the index buckets overlaps
    /// the burst's first packets only; a caller that can hold one burst
    /// while it receives the next should use the two halves instead.
    pub fn prepare<B: PacketBuf>(&mut self, pkts: &[B]) {
        let slot = self.st.slot & 1;
        self.prefetch_burst(slot, pkts);
        self.start_burst(slot, AHEAD);
    }

    /// The first stage of the look-ahead, for the burst `pkts` in `slot`
    /// (0 or 1; the other slot's burst is kept): the flow key of every
    /// plain TCP/UDP packet is read, hashed, and its index bucket
    /// prefetched. Packets that are not plain TCP/UDP, or whose lookup is
    /// stale by the time they are processed (the table changed), are simply
    /// looked up again. The packets given to [`Forwarder::process_at`]
    /// after [`Forwarder::begin_burst`] of this slot must be `pkts`, in
    /// order.
    pub fn prefetch_burst<B: PacketBuf>(&mut self, slot: usize, pkts: &[B]) {
        let n = pkts.len().min(BURST);
        self.st.lens[slot & 1] = n;
        for (i, b) in pkts.iter().take(n).enumerate() {
            self.prefetch_one(slot, i, b);
        }
    }

    /// [`Forwarder::prefetch_burst`] one packet at a time, to spread the
    /// prefetches over other work: packet `i` of the burst `len` packets
    /// long in `slot`, which must be given in full, from 0 to `len - 1`,
    /// before the slot's [`Forwarder::begin_burst`].
    #[inline]
    pub fn prefetch_at<B: PacketBuf>(&mut self, slot: usize, i: usize, len: usize, b: &B) {
        self.st.lens[slot & 1] = len.min(BURST);
        if i < BURST {
            self.prefetch_one(slot, i, b);
        }
    }

    #[inline(always)]
    fn prefetch_one<B: PacketBuf>(&mut self, slot: usize, i: usize, b: &B) {
        let st = &mut self.st;
        let hints = &mut st.hints[slot & 1];
        let (Some(h4), Some(h6)) = (hints.v4.get_mut(i), hints.v6.get_mut(i)) else { return };
        h4.valid = false;
        h6.valid = false;
        match peek::peek_flow(b.data()) {
            Some(PeekedFlow::V4(key)) => {
                let h = st.sessions.v4.hash(&key);
                st.sessions.v4.prefetch(h);
                *h4 = Hint { key, h, cands: session::Candidates::default(), mods: u64::MAX, valid: true };
            }
            Some(PeekedFlow::V6(key)) => {
                let h = st.sessions.v6.hash(&key);
                st.sessions.v6.prefetch(h);
                *h6 = Hint { key, h, cands: session::Candidates::default(), mods: u64::MAX, valid: true };
            }
            None => {}
        }
    }

    /// The second stage, for the burst [`Forwarder::prefetch_burst`] put
    /// in `slot` a while ago (its buckets are in cache by now): every
    /// packet's bucket names its candidate entries, which are prefetched
    /// at once, and the burst becomes the one [`Forwarder::process_at`]
    /// works on. Holding a burst between the two stages (receive the next,
    /// prefetch its buckets, then begin this one) hides the buckets' memory
    /// latency behind a whole burst of work, and the entries' behind the
    /// rest of the stage.
    pub fn begin_burst(&mut self, slot: usize) {
        self.start_burst(slot & 1, BURST);
    }

    fn start_burst(&mut self, slot: usize, ahead: usize) {
        let st = &mut self.st;
        st.slot = slot;
        st.burst_len = st.lens[slot];
        st.ahead = ahead;
        for i in 0..st.burst_len.min(ahead) {
            self.candidates_for(i);
        }
    }

    /// The second stage for packet `i` of the current burst: its bucket
    /// (prefetched by the first stage a while ago) names the candidate
    /// entries, which are prefetched now.
    #[inline(always)]
    fn candidates_for(&mut self, i: usize) {
        let st = &mut self.st;
        let hints = &mut st.hints[st.slot & 1];
        let h4 = &mut hints.v4[i];
        if h4.valid {
            h4.cands = st.sessions.v4.candidates(h4.h);
            h4.mods = st.sessions.v4.mods();
            st.sessions.v4.prefetch_candidates(h4.h, &h4.cands);
            return;
        }
        let h6 = &mut hints.v6[i];
        if h6.valid {
            h6.cands = st.sessions.v6.candidates(h6.h);
            h6.mods = st.sessions.v6.mods();
            st.sessions.v6.prefetch_candidates(h6.h, &h6.cands);
        }
    }

    /// Turns the fast path off or on (for tests comparing it with the
    /// general path; it is on by default).
    pub fn set_fast_path(&mut self, on: bool) {
        self.fast = on;
    }

    /// Processes packet `i` of the burst given to [`Forwarder::prepare`].
    #[inline]
    pub fn process_at<B: PacketBuf>(&mut self, now: u32, buf: &mut B, in_port: u8, i: usize) -> Verdict {
        if i + self.st.ahead < self.st.burst_len {
            self.candidates_for(i + self.st.ahead);
        }
        // A backup forwards nothing: its packets take the general path,
        // which says why they are dropped.
        if self.fast && !self.standby {
            let cx = ctx!(self, now, self.steering.as_ref());
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
        let v = self.process(now, buf, in_port);
        self.st.hint_at = usize::MAX;
        v
    }
}

/// The fast path: a packet of an established IPv4 TCP or UDP session, in
/// the common case, forwarded with the fewest checks that keep the general
/// path's behaviour. It reads what [`Forwarder::prepare`] found, checks
/// everything the general path would (our MAC, IPv4 header and checksum,
/// lengths, TTL, source, L4 header: [`peek::plain_ipv4`]; the session's
/// state and its real server, the egress), and returns `None` - having
/// changed nothing - for anything else: other protocols, new flows,
/// expired or closing sessions, errors to count or answer. Otherwise it
/// commits exactly as the general path does ([`commit`]).
/// `fast_path_equals_general_path` checks the two agree packet for packet.
#[inline(always)]
pub(super) fn fast4<B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, in_port: u8, i: usize) -> Option<Result<Verdict, DropReason>> {
    let hint = st.hints[st.slot & 1].v4.get(i)?;
    if !hint.valid {
        return None;
    }
    let (key, h) = (hint.key, hint.h);
    // A session created or ended since the candidates were taken (earlier
    // in this burst) makes them stale: take them again from the bucket,
    // which is in cache by now - except for a SYN without ACK, almost
    // always a new flow (as the one before it probably was), which the
    // general path handles: no checks and lookup spent on it first.
    let cands = if hint.mods == st.sessions.v4.mods() {
        hint.cands
    } else if key.proto == proto::TCP
        && buf.data().get(peek::PLAIN_IPV4_L4 + 13).is_none_or(|&f| f & (tcp::flags::SYN | tcp::flags::ACK) == tcp::flags::SYN)
    {
        return None;
    } else {
        st.sessions.v4.candidates(h)
    };
    let port = cx.snap.port(in_port)?;
    // The master of a pair with a virtual MAC takes frames to it too.
    let to = match cx.snap.vmac {
        Some(v) if buf.data().get(..6) == Some(&v.0[..]) => v,
        _ => port.mac,
    };
    let plain = peek::plain_ipv4(buf.data(), to, key.proto)?;
    if key.dst.is_multicast_or_broadcast() || key.src.is_martian_source() {
        return None;
    }
    let (idx, dir) = st.sessions.v4.verify(&key, h, &cands)?;
    let s = *st.sessions.v4.get(idx);
    let state = s.state;
    if s.expired(cx.now)
        || state == State::Reset
        || (key.proto == proto::TCP
            && dir == Dir::Forward
            && plain.tcp_flags & (tcp::flags::SYN | tcp::flags::ACK) == tcp::flags::SYN
            && state.is_closing())
        || buf.l4_csum_bad()
        // The SYN proxy's handshake with the real server takes the general path.
        || (s.flags.contains(session::SessionFlags::SYNPROXY)
            && (s.flags.contains(session::SessionFlags::SPLICE_WAIT) || plain.tcp_flags & tcp::flags::SYN != 0))
    {
        return None;
    }
    let b = cx.snap.backend(s.backend)?;
    let (out_port, dst_mac) = match dir {
        Dir::Forward => (b.egress, Some(cx.snap.neigh.mac(b.neigh)?)),
        Dir::Reply => (s.client_port, Some(MacAddr(s.client_mac))),
    };
    let out = cx.snap.port(out_port)?;
    let ip_len = plain.end - ether::HEADER_LEN;
    if s.mode == Mode::Tunnel && dir == Dir::Forward && ip_len + tunnel::overhead(b.addr) > usize::from(out.mtu) {
        return None;
    }
    // Committed: from here on the packet is forwarded.
    buf.truncate(plain.end);
    let p = Pkt {
        l4: peek::PLAIN_IPV4_L4,
        end: plain.end,
        src: key.src,
        dst: key.dst,
        proto: key.proto,
        sport: key.sport,
        dport: key.dport,
        tcp_flags: plain.tcp_flags,
    };
    Some(commit(cx, st, buf, idx, dir, &p, &s, b, out, out_port, dst_mac))
}
