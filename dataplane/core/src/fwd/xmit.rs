use super::icmp::{time_exceeded, too_big};
use super::nat::nat_rewrite;
use super::reset::{reset_reply_to_client, reset_to_sender};
use super::state::{Ctx, Fam, Pkt, St};
use super::sweep::{account_end, account_transition};
use super::Verdict;
use crate::conn;
use crate::conn::State;
use crate::drop::DropReason;
use crate::session::{Dir, Session};
use crate::table::{BackendView, Mode};
use rvs_wire::ip::{proto, Addr};
use rvs_wire::{ether, ipv4, ipv6, tcp, MacAddr, PacketBuf};
use std::net::IpAddr;

/// Forwards a packet of an existing session.
pub(super) fn forward<A: Fam, B: PacketBuf>(
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
pub(super) fn commit<A: Fam, B: PacketBuf>(
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
pub(super) fn tx_or_hold(port: u8, mac: Option<MacAddr>, neigh: u32) -> Verdict {
    match mac {
        Some(_) => Verdict::Tx(port),
        None => Verdict::Hold { port, neigh },
    }
}

/// Decrements the TTL (IPv4, with checksum) or hop limit (IPv6).
#[inline]
pub(super) fn decrement_ttl<A: Addr>(frame: &mut [u8]) {
    let ip = &mut frame[ether::HEADER_LEN..];
    if A::V6 {
        ipv6::decrement_hop_limit(ip);
    } else {
        ipv4::decrement_ttl(ip);
    }
}

/// Tunnel mode: wraps the IP packet in an outer IPv4 or IPv6 header to the
/// real server (RFC 2003 / RFC 2473). The outer TOS/traffic class is copied
/// from the inner header; DF is set on the outer IPv4 header when the inner
/// packet has DF or is IPv6. A packet that would exceed the egress MTU is
/// refused here; see [`too_big`] for the ICMP answer.
pub(super) fn encapsulate<A: Addr, B: PacketBuf>(cx: &Ctx<'_>, buf: &mut B, b: &BackendView, mtu: u16) -> Result<(), DropReason> {
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
pub(super) fn tunnel_overhead(rs: IpAddr) -> usize {
    if rs.is_ipv6() {
        ipv6::HEADER_LEN
    } else {
        ipv4::MIN_HEADER_LEN
    }
}
