//! Transmitting a packet of an existing session, per forwarding mode.
//!
//! [`forward`] decides (real server still there? egress, TTL, MTU, the
//! NIC's checksum verdict) before anything is written; [`commit`] then
//! updates the connection state and expiry, rewrites the packet as its
//! mode says, sets the MACs and counts it:
//!
//! | mode | client -> server | server -> client |
//! |------|------------------|------------------|
//! | NAT      | dst := RS:port ([`nat`]) | src := VIP:vport |
//! | full NAT | src := local:lport, dst := RS:port | src := VIP:vport, dst := client:cport |
//! | DR       | only the TTL and the MACs | (bypasses rvs) |
//! | tunnel   | an outer IP header to the RS ([`encapsulate`]) | (bypasses rvs) |
use super::icmp::{time_exceeded, too_big};
use super::nat::{self, NatRewrite};
use super::reset::{reset_reply_to_client, reset_to_sender};
use super::state::{Ctx, Pkt, St};
use super::sweep::{account_transition, end_session};
use super::Verdict;
use crate::conn::{self, State};
use crate::drop::DropReason;
use crate::session::{Dir, Session, SessionFlags};
use crate::table::{BackendView, Mode, PortView};
use rvs_wire::ip::proto;
use rvs_wire::tunnel::{self, EncapError};
use rvs_wire::{ether, tcp, Family, MacAddr, PacketBuf};

/// Forwards a packet of an existing session.
#[inline(always)]
pub(super) fn forward<A: Family, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    in_port: u8,
    idx: u32,
    dir: Dir,
    p: &Pkt<A>,
) -> Result<Verdict, DropReason> {
    let s = *st.sessions.get::<A>().get(idx);
    let Some(b) = cx.snap.backend(s.backend) else {
        // The real server was removed (and its service does not keep
        // removed servers' sessions): end the session, and tell a TCP
        // client at once with a reset rather than let it time out.
        end_session::<A>(cx, st, idx, &s);
        if p.proto == proto::TCP && p.tcp_flags & tcp::flags::RST == 0 {
            return match dir {
                Dir::Forward => reset_to_sender::<A, B>(cx, buf, in_port, p, DropReason::NoBackend),
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
    if A::ttl(&buf.data()[ether::HEADER_LEN..]) <= 1 {
        return time_exceeded::<A, B>(cx, st, buf, in_port);
    }
    if s.mode == Mode::Tunnel && dir == Dir::Forward {
        let overhead = tunnel::overhead(b.addr);
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
/// by the general path ([`forward`]) and the fast path
/// ([`super::fast::fast`]).
#[expect(clippy::too_many_arguments, reason = "what the two paths decided, passed on unchanged")]
#[inline(always)]
pub(super) fn commit<A: Family, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    idx: u32,
    dir: Dir,
    p: &Pkt<A>,
    s: &Session<A>,
    b: &BackendView,
    out: &PortView,
    out_port: u8,
    dst_mac: Option<MacAddr>,
) -> Result<Verdict, DropReason> {
    advance_state(cx, st, idx, dir, p, s);
    let len = buf.len() as u64;
    match (s.mode, dir) {
        (mode @ (Mode::Nat | Mode::FullNat), _) => {
            nat::rewrite(buf, p, NatRewrite::of_session(mode, dir, s));
            if s.flags.contains(SessionFlags::SYNPROXY) && !s.flags.contains(SessionFlags::SPLICE_WAIT) {
                splice::<A, B>(cx, buf, p, s, dir);
            }
        }
        (Mode::Dr, Dir::Forward) => decrement_ttl::<A>(buf.data_mut()),
        (Mode::Tunnel, Dir::Forward) => {
            decrement_ttl::<A>(buf.data_mut());
            encapsulate::<A, B>(cx, buf, b)?;
        }
        _ => return Err(DropReason::NotForUs),
    }
    ether::set_macs(buf.data_mut(), dst_mac.unwrap_or(MacAddr::ZERO), out.mac);
    account_packet(cx, s, b, dir, len);
    Ok(tx_or_hold(out_port, dst_mac, b.neigh))
}

/// Translates a packet of a spliced (SYN-proxied) connection between the
/// client's and the real server's sequence spaces (see [`super::synproxy`]).
#[inline]
fn splice<A: Family, B: PacketBuf>(cx: &Ctx<'_>, buf: &mut B, p: &Pkt<A>, s: &Session<A>, dir: Dir) {
    if let Some(seg) = buf.data_mut().get_mut(p.l4..p.end) {
        if rvs_wire::tcpopt::shift(seg, &super::synproxy::shift_of(s, dir)) {
            cx.stats.synproxy.sack_translated.inc();
        }
    }
}

/// The TCP state machine's step for this packet, the session's new
/// expiry, and the move of its gauges when it became (in)active.
#[inline(always)]
fn advance_state<A: Family>(cx: &Ctx<'_>, st: &mut St, idx: u32, dir: Dir, p: &Pkt<A>, s: &Session<A>) {
    let svc_timeouts = cx.snap.services.get(usize::from(s.service)).and_then(Option::as_ref).map(|v| &v.timeouts);
    let t = st.sessions.get_mut::<A>();
    let pressure = t.len() * 4 > t.capacity() * 3;
    let e = t.get_mut(idx);
    let old = e.state;
    let new = if p.proto == proto::TCP { conn::tcp_next(old, p.tcp_flags, dir, &mut e.flags) } else { old };
    e.state = new;
    if let Some(tm) = svc_timeouts {
        e.expires = cx.now.wrapping_add(new.timeout(tm, pressure));
    }
    // A UDP flow is synced when its client's packets reach the threshold.
    let threshold = cx.snap.sync_udp_threshold;
    let udp_synced_now = new == State::Udp && dir == Dir::Forward && e.sync_count < threshold && {
        e.sync_count += 1;
        e.sync_count == threshold
    };
    if new != old || udp_synced_now {
        let now_s = *e;
        if new != old {
            account_transition(cx, &mut st.load, s.backend, old, new);
        }
        super::sync::emit(cx, &mut st.sync, &now_s, rvs_wire::sync::Op::Upsert);
    }
}

/// Counts a forwarded packet of `len` bytes in its real server's and
/// service's counters (in: client to server; out: the replies).
#[inline(always)]
fn account_packet<A: Family>(cx: &Ctx<'_>, s: &Session<A>, b: &BackendView, dir: Dir, len: u64) {
    let forward = dir == Dir::Forward;
    if let Some(x) = cx.stats.backends.get(usize::from(b.slot)) {
        let (pkts, bytes) = if forward { (&x.pkts_in, &x.bytes_in) } else { (&x.pkts_out, &x.bytes_out) };
        pkts.inc();
        bytes.add(len);
    }
    if let Some(x) = cx.stats.services.get(usize::from(s.service)) {
        let (pkts, bytes) = if forward { (&x.pkts_in, &x.bytes_in) } else { (&x.pkts_out, &x.bytes_out) };
        pkts.inc();
        bytes.add(len);
    }
}

/// `Tx` when the next hop's MAC is known, `Hold` (until it resolves) when not.
#[inline]
pub(super) fn tx_or_hold(port: u8, mac: Option<MacAddr>, neigh: u32) -> Verdict {
    match mac {
        Some(_) => Verdict::Tx(port),
        None => Verdict::Hold { port, neigh },
    }
}

/// Decrements the TTL (IPv4, with checksum) or hop limit (IPv6) of the
/// IP packet in an Ethernet frame.
#[inline]
pub(super) fn decrement_ttl<A: Family>(frame: &mut [u8]) {
    A::decrement_ttl(&mut frame[ether::HEADER_LEN..]);
}

/// Tunnel mode: wraps the IP packet in an outer IPv4 or IPv6 header to the
/// real server (RFC 2003 / RFC 2473, see [`tunnel::encapsulate`]). Both
/// paths refused a packet the outer header would take beyond the egress
/// MTU before they committed (the general path answers it, see
/// [`too_big`]); the MACs are set after.
#[inline(always)]
pub(super) fn encapsulate<A: Family, B: PacketBuf>(cx: &Ctx<'_>, buf: &mut B, b: &BackendView) -> Result<(), DropReason> {
    let outer = b.tunnel.as_ref().ok_or(DropReason::NoRoute)?;
    outer.wrap(buf, A::V6, cx.tunnel_ttl).map_err(|e| match e {
        EncapError::NoHeadroom => DropReason::NoHeadroom,
        EncapError::TooLong => DropReason::MtuExceeded,
        EncapError::Families => DropReason::NoRoute,
    })
}
