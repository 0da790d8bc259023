//! The established-flow fast path: a burst's look-ahead lookups, the one-
//! look validation of plain IPv4 and IPv6 TCP/UDP frames, and the way on
//! to the flow stage for those it does not forward (a new flow's first
//! packet above all), so that they are not parsed a second time.
//!
//! IPv4 is tried first, inlined into [`Forwarder::process_at`]; IPv6 in
//! the call that follows when IPv4's fast path did not take the packet,
//! so that IPv4's own code stays as lean as it was without it.
use super::flow::transport;
use super::state::{Ctx, Hint, Pkt, St, AHEAD, BURST};
use super::xmit::commit;
use super::{Forwarder, Verdict};
use crate::conn::State;
use crate::drop::DropReason;
use crate::session;
use crate::session::{Dir, FlowKey};
use crate::table::Mode;
use rvs_wire::ip::proto;
use rvs_wire::peek::{self, PeekedFlow};
use rvs_wire::{ether, tcp, tunnel, Family, Ipv4, Ipv6, MacAddr, PacketBuf};

impl Forwarder {
    /// Looks the sessions of a burst up ahead of processing it (having
    /// placed the reply keys the last burst's new sessions left waiting,
    /// see `SessionTable::insert_hashed`): the flow
    /// key of every plain TCP/UDP packet is read, hashed and its index
    /// buckets prefetched; then, a few packets ahead of processing
    /// ([`AHEAD`]), each packet's bucket names its candidate entries, which
    /// are prefetched in turn. By the time [`Forwarder::process_at`]
    /// handles packet `i`, its bucket and entry lines are in cache (the
    /// memory latencies overlap with other packets' work). Packets that are not
    /// plain TCP/UDP, or whose lookup an earlier packet of the burst made
    /// stale, are simply looked up again.
    pub fn prepare<B: PacketBuf>(&mut self, pkts: &[B]) {
        // The last burst's new sessions' reply keys, whose buckets have
        // arrived by now (before any lookup of this burst is made).
        self.st.sessions.v4.place_pending();
        self.st.sessions.v6.place_pending();
        let n = pkts.len().min(BURST);
        let st = &mut self.st;
        st.burst_len = n;
        // Each hint's candidates are left as they are: the second stage
        // takes them before the packet is processed (`mods` says they are
        // not yet taken until then).
        for (b, (h4, h6)) in pkts.iter().zip(st.hints.v4.iter_mut().zip(st.hints.v6.iter_mut())) {
            match peek::peek_flow(b.data()) {
                Some(PeekedFlow::V4(key)) => {
                    let h = st.sessions.v4.hash(&key);
                    st.sessions.v4.prefetch(h);
                    set_hint(h4, key, h);
                    h6.valid = false;
                }
                Some(PeekedFlow::V6(key)) => {
                    let h = st.sessions.v6.hash(&key);
                    st.sessions.v6.prefetch(h);
                    set_hint(h6, key, h);
                    h4.valid = false;
                }
                None => {
                    h4.valid = false;
                    h6.valid = false;
                }
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
        let h4 = &mut st.hints.v4[i];
        if h4.valid {
            h4.cands = st.sessions.v4.candidates(h4.h);
            h4.mods = st.sessions.v4.mods();
            st.sessions.v4.prefetch_candidates(h4.h, &h4.cands);
            return;
        }
        let h6 = &mut st.hints.v6[i];
        if h6.valid {
            h6.cands = st.sessions.v6.candidates(h6.h);
            h6.mods = st.sessions.v6.mods();
            st.sessions.v6.prefetch_candidates(h6.h, &h6.cands);
        }
    }

    /// A plain IPv4 or IPv6 TCP/UDP packet the fast path did not forward - a new
    /// flow's first packet most often, or an expired or closing session's,
    /// the SYN proxy's handshake, an error to answer - goes on at the flow
    /// stage ([`transport`]) once it passed every check the general path
    /// makes before it ([`checked_flow`]): its headers are not parsed and
    /// checked a second time. None for anything else, unchanged: the
    /// general path from the start.
    #[inline]
    fn flow_stage<A: Family, B: PacketBuf>(&mut self, now: u32, buf: &mut B, in_port: u8, i: usize) -> Option<Verdict> {
        let cx = ctx!(self, now, self.steering.as_ref());
        let p = checked_flow::<A, B>(&cx, &self.st, buf, in_port, i)?;
        buf.truncate(p.end);
        self.st.hint_at = i;
        let v = transport(&cx, &mut self.st, buf, in_port, p).unwrap_or_else(Verdict::Drop);
        self.st.hint_at = usize::MAX;
        Some(self.tally(v))
    }

    /// Turns the fast path off or on (for tests comparing it with the
    /// general path; it is on by default).
    pub fn set_fast_path(&mut self, on: bool) {
        self.fast = on;
    }

    /// Processes packet `i` of the burst given to [`Forwarder::prepare`].
    #[inline]
    pub fn process_at<B: PacketBuf>(&mut self, now: u32, buf: &mut B, in_port: u8, i: usize) -> Verdict {
        if i + AHEAD < self.st.burst_len {
            self.candidates_for(i + AHEAD);
        }
        // A backup forwards nothing: its packets take the general path,
        // which says why they are dropped.
        if self.fast && !self.standby {
            let cx = ctx!(self, now, self.steering.as_ref());
            return match fast::<Ipv4, B>(&cx, &mut self.st, buf, in_port, i) {
                Some(r) => self.tally_fast(r),
                None => self.beyond_fast(now, buf, in_port, i, true),
            };
        }
        self.beyond_fast(now, buf, in_port, i, false)
    }

    /// Counts what the fast path did with a packet (forwarded: also in
    /// `fast_path`).
    #[inline(always)]
    fn tally_fast(&self, r: Result<Verdict, DropReason>) -> Verdict {
        match r {
            Ok(v) => {
                self.stats.fast_path.inc();
                self.tally(v)
            }
            Err(reason) => self.tally(Verdict::Drop(reason)),
        }
    }

    /// A packet the fast path did not forward: the flow stage when it
    /// takes it (`flow_stage`, tried when `checked` says the fast path
    /// ran), else the general path. Not inlined: it would weigh on the
    /// fast path's own code.
    #[inline(never)]
    fn beyond_fast<B: PacketBuf>(&mut self, now: u32, buf: &mut B, in_port: u8, i: usize, checked: bool) -> Verdict {
        if checked {
            if self.st.hints.v4.get(i).is_some_and(|h| h.valid) {
                if let Some(v) = self.flow_stage::<Ipv4, B>(now, buf, in_port, i) {
                    return v;
                }
            } else if self.st.hints.v6.get(i).is_some_and(|h| h.valid) {
                // IPv6's fast path: here, out of the way of IPv4's code.
                let cx = ctx!(self, now, self.steering.as_ref());
                if let Some(r) = fast::<Ipv6, B>(&cx, &mut self.st, buf, in_port, i) {
                    return self.tally_fast(r);
                }
                if let Some(v) = self.flow_stage::<Ipv6, B>(now, buf, in_port, i) {
                    return v;
                }
            }
        }
        self.st.hint_at = i;
        let v = self.process(now, buf, in_port);
        self.st.hint_at = usize::MAX;
        v
    }
}

/// Packet's hint from the first stage of [`Forwarder::prepare`]: its key
/// and hash, the candidates not yet taken.
#[inline(always)]
fn set_hint<A: Family>(hint: &mut Hint<A>, key: FlowKey<A>, h: u64) {
    hint.key = key;
    hint.h = h;
    hint.mods = u64::MAX;
    hint.valid = true;
}

/// The facts of packet `i` of the burst as the general path would have them
/// on reaching the flow stage ([`transport`]), when it is a plain IPv4 or
/// IPv6 TCP/UDP packet that passes every check the general path makes
/// before it: Ethernet (to our MAC or the pair's virtual one), the IP
/// header ([`plain`]: lengths, TTL, checksum; no options or extension
/// headers, not a fragment, no multicast destination), the source (not
/// martian, none of ours), the L4 header. A frame on a pair's HA port
/// (which may be for rvsd's HA threads) is left to the general path.
#[inline(always)]
fn checked_flow<A: Family, B: PacketBuf>(cx: &Ctx<'_>, st: &St, buf: &B, in_port: u8, i: usize) -> Option<Pkt<A>> {
    let hint = st.hints.get::<A>().get(i).filter(|h| h.valid)?;
    let key = hint.key;
    if cx.snap.ha_port == Some(in_port) {
        return None;
    }
    let plain = plain(cx, buf, in_port, &key)?;
    if cx.snap.addr_kind(key.src).is_some() {
        return None;
    }
    Some(plain_pkt(&key, &plain))
}

/// [`peek::plain_ipv4`] or [`peek::plain_ipv6`] for a frame to our port's
/// MAC (or the pair's virtual one), and a source that is not martian.
#[inline(always)]
fn plain<A: Family, B: PacketBuf>(cx: &Ctx<'_>, buf: &B, in_port: u8, key: &FlowKey<A>) -> Option<peek::Plain> {
    let port = cx.snap.port(in_port)?;
    // The master of a pair with a virtual MAC takes frames to it too.
    let to = match cx.snap.vmac {
        Some(v) if buf.data().get(..6) == Some(&v.0[..]) => v,
        _ => port.mac,
    };
    let plain =
        if A::V6 { peek::plain_ipv6(buf.data(), to, key.proto)? } else { peek::plain_ipv4(buf.data(), to, key.proto, buf.ip_csum_good())? };
    (!key.src.is_martian_source()).then_some(plain)
}

/// Where a plain frame's L4 header starts.
const fn plain_l4<A: Family>() -> usize {
    if A::V6 {
        peek::PLAIN_IPV6_L4
    } else {
        peek::PLAIN_IPV4_L4
    }
}

/// The facts of a plain TCP/UDP packet whose headers passed.
#[inline(always)]
fn plain_pkt<A: Family>(key: &FlowKey<A>, plain: &peek::Plain) -> Pkt<A> {
    Pkt {
        l4: plain_l4::<A>(),
        end: plain.end,
        src: key.src,
        dst: key.dst,
        proto: key.proto,
        sport: key.sport,
        dport: key.dport,
        tcp_flags: plain.tcp_flags,
    }
}

/// The fast path: a packet of an established IPv4 or IPv6 TCP or UDP
/// session, in the common case, forwarded with the fewest checks that keep
/// the general path's behaviour. It reads what [`Forwarder::prepare`]
/// found, checks everything the general path would (our MAC, the IP header
/// and IPv4's checksum, lengths, TTL, source, L4 header: [`plain`], which
/// takes the NIC's word for a good header checksum; the session's state
/// and its real server, the egress), and returns `None` - having changed
/// nothing - for anything else: other protocols, new flows, expired or
/// closing sessions, errors to count or answer (which go on at the flow
/// stage when their headers pass, see `Forwarder::flow_stage`, or take the
/// general path). Otherwise it commits exactly as the general path does
/// ([`commit`]). `fast_path_equals_general_path` (and its IPv6 twin) checks
/// the two agree packet for packet.
#[inline(always)]
pub(super) fn fast<A: Family, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    in_port: u8,
    i: usize,
) -> Option<Result<Verdict, DropReason>> {
    let hint = st.hints.get::<A>().get(i)?;
    if !hint.valid {
        return None;
    }
    let (key, h, hint_mods, hint_cands) = (hint.key, hint.h, hint.mods, hint.cands);
    let table = st.sessions.get::<A>();
    // A session created or ended since the candidates were taken (earlier
    // in this burst) makes them stale: take them again from the bucket,
    // which is in cache by now - except for a SYN without ACK, almost
    // always a new flow (as the one before it probably was), which goes
    // to the flow stage (`Forwarder::flow_stage`): no lookup spent on it here.
    let cands = if hint_mods == table.mods() {
        hint_cands
    } else if key.proto == proto::TCP
        && buf.data().get(plain_l4::<A>() + 13).is_none_or(|&f| f & (tcp::flags::SYN | tcp::flags::ACK) == tcp::flags::SYN)
    {
        return None;
    } else {
        table.candidates(h)
    };
    let plain = plain(cx, buf, in_port, &key)?;
    let (idx, dir) = table.verify(&key, h, &cands)?;
    let s = *table.get(idx);
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
    let p = plain_pkt(&key, &plain);
    Some(commit(cx, st, buf, idx, dir, &p, &s, b, out, out_port, dst_mac))
}
