use super::state::{Ctx, Hint, Pkt, St, AHEAD, BURST};
use super::xmit::{commit, tunnel_overhead};
use super::{Forwarder, Verdict};
use crate::conn::State;
use crate::drop::DropReason;
use crate::session;
use crate::session::{Dir, FlowKey};
use crate::table::Mode;
use rvs_wire::ip::proto;
use rvs_wire::{checksum, ipv4, tcp, MacAddr, PacketBuf};

impl Forwarder {
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
pub(super) fn fast4<B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, in_port: u8, i: usize) -> Option<Result<Verdict, DropReason>> {
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
pub(super) enum LightKey {
    V4(FlowKey<u32>),
    V6(FlowKey<u128>),
}

/// Reads the 5-tuple of a plain IPv4 (no options, not a fragment) or IPv6
/// (no extension header) TCP/UDP frame from fixed offsets.
#[inline(always)]
pub(super) fn light_key(d: &[u8]) -> Option<LightKey> {
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
