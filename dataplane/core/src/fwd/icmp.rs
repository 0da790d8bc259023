//! ICMP and ICMPv6: errors about sessions forwarded to the other party
//! (translated as the session translates its packets), the errors rvs
//! itself sends (time exceeded, too big), echo answered for the VIPs and
//! rvs's addresses, and neighbour discovery.
use super::flow::owner;
use super::l2::check_claim;
use super::nat::{rewrite_quoted, NatRewrite};
use super::state::{Ctx, St};
use super::xmit::{encapsulate, tx_or_hold};
use super::Verdict;
use crate::drop::DropReason;
use crate::session::{Dir, Session};
use crate::table::{AddrKind, Mode};
use rvs_wire::{ether, icmp, ipv4, ipv6, tunnel, Family, Ipv4, Ipv6, MacAddr, PacketBuf};

/// A packet too big for the tunnel: ICMP "fragmentation needed" (IPv4 with
/// DF) or "packet too big" (IPv6) back to the sender, announcing the egress
/// MTU less the tunnel overhead (RFC 2003 5.1, RFC 2473 7). An IPv4 packet
/// without DF that does not fit is dropped (`mtu_exceeded`): rvs does not
/// fragment.
pub(super) fn too_big<A: Family, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    in_port: u8,
    mtu: usize,
) -> Result<Verdict, DropReason> {
    if !A::dont_fragment(&buf.data()[ether::HEADER_LEN..]) {
        return Err(DropReason::MtuExceeded);
    }
    let port = cx.snap.port(in_port).ok_or(DropReason::MtuExceeded)?;
    if !st.icmp.allow(cx.now) {
        return Err(DropReason::MtuExceeded);
    }
    let from = port.first::<A>().ok_or(DropReason::MtuExceeded)?;
    if !icmp::too_big(buf, port.mac, from, mtu) {
        return Err(DropReason::MtuExceeded);
    }
    cx.stats.icmp_errors_sent.inc();
    Ok(Verdict::Reply { port: in_port, reason: DropReason::MtuExceeded })
}

/// How an ICMP error about a session is translated on its way: the outer
/// header's new source and destination, and the quoted packet's
/// translation (the session's own, undone for the direction the quoted
/// packet travelled).
#[derive(Clone, Copy, Debug)]
struct ErrorPlan<A: Family> {
    outer_src: Option<A>,
    outer_dst: Option<A>,
    inner: NatRewrite<A>,
}

impl<A: Family> ErrorPlan<A> {
    /// The plan for an error that matched session `s` in direction `dir`
    /// (Forward: the error came from the client side and goes to the real
    /// server; Reply: it came from the server side and goes to the client).
    fn for_session(mode: Mode, dir: Dir, s: &Session<A>) -> Option<ErrorPlan<A>> {
        let rw = |src, dst| NatRewrite { src, dst };
        Some(match (mode, dir) {
            (Mode::Nat, Dir::Forward) => ErrorPlan { outer_src: None, outer_dst: Some(s.rs), inner: rw(Some((s.rs, s.rport)), None) },
            (Mode::FullNat, Dir::Forward) => {
                ErrorPlan { outer_src: Some(s.local), outer_dst: Some(s.rs), inner: rw(Some((s.rs, s.rport)), Some((s.local, s.lport))) }
            }
            (Mode::Dr | Mode::Tunnel, Dir::Forward) => ErrorPlan { outer_src: None, outer_dst: None, inner: NatRewrite::default() },
            (Mode::Nat, Dir::Reply) => ErrorPlan { outer_src: Some(s.vip), outer_dst: None, inner: rw(None, Some((s.vip, s.vport))) },
            (Mode::FullNat, Dir::Reply) => ErrorPlan {
                outer_src: Some(s.vip),
                outer_dst: Some(s.client),
                inner: rw(Some((s.client, s.cport)), Some((s.vip, s.vport))),
            },
            _ => return None,
        })
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
pub(super) fn icmp_error<A: Family, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    icmp_at: usize,
    end: usize,
) -> Result<Verdict, DropReason> {
    let q = icmp::parse_quoted::<A>(buf.data(), icmp_at + icmp::HEADER_LEN, end)?;
    let key = q.tuple.reversed();
    let t = st.sessions.get::<A>();
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
    let mode = s.mode;
    let (out_port, dst_mac) = match dir {
        Dir::Forward => (b.egress, cx.snap.neigh.mac(b.neigh)),
        Dir::Reply => (s.client_port, Some(MacAddr(s.client_mac))),
    };
    let out = cx.snap.port(out_port).ok_or(DropReason::NoRoute)?;
    if A::ttl(&buf.data()[ether::HEADER_LEN..]) <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    let plan = ErrorPlan::for_session(mode, dir, &s).ok_or(DropReason::IcmpErrorNoSession)?;
    let d = buf.data_mut();
    rewrite_quoted(d, &q, plan.inner);
    let ip = &mut d[ether::HEADER_LEN..];
    let _ = A::rewrite_ip(ip, plan.outer_src, plan.outer_dst, true);
    icmp::fill_checksum::<A>(d, ether::HEADER_LEN, icmp_at, end);
    if mode == Mode::Tunnel && dir == Dir::Forward {
        if buf.len() - ether::HEADER_LEN + tunnel::overhead(b.addr) > usize::from(out.mtu) {
            return Err(DropReason::MtuExceeded);
        }
        encapsulate::<A, B>(cx, buf, b)?;
    }
    ether::set_macs(buf.data_mut(), dst_mac.unwrap_or(MacAddr::ZERO), out.mac);
    cx.stats.icmp_errors_forwarded.inc();
    Ok(tx_or_hold(out_port, dst_mac, b.neigh))
}

/// Turns the packet into ICMP time exceeded back to its sender (rate
/// limited), counting the drop of the original.
pub(super) fn time_exceeded<A: Family, B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, in_port: u8) -> Result<Verdict, DropReason> {
    let port = cx.snap.port(in_port).ok_or(DropReason::TtlExceeded)?;
    if !st.icmp.allow(cx.now) {
        return Err(DropReason::TtlExceeded);
    }
    let from = port.first::<A>().ok_or(DropReason::TtlExceeded)?;
    if !icmp::time_exceeded(buf, port.mac, from) {
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
pub(super) fn unmatched_error(cx: &Ctx<'_>, kind: Option<AddrKind>, e: DropReason) -> Result<Verdict, DropReason> {
    match (e, kind) {
        (DropReason::IcmpErrorNoSession, Some(AddrKind::Own(p))) if cx.snap.port(p).and_then(|v| v.kernel).is_some() => {
            Ok(Verdict::Kernel(p))
        }
        _ => Err(e),
    }
}

pub(super) fn icmp4<B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    in_port: u8,
    h: &ipv4::Ipv4Header,
) -> Result<Verdict, DropReason> {
    let l4 = ether::HEADER_LEN + h.header_len;
    let end = ether::HEADER_LEN + h.total_len;
    let m = icmp::IcmpHeader::parse_v4(&buf.data()[l4..end])?;
    let kind = cx.snap.addr_kind(h.dst);
    // A backup answers and forwards nothing but for its own addresses.
    if cx.standby && !matches!(kind, Some(AddrKind::Own(_))) {
        return Err(DropReason::HaStandby);
    }
    if m.is_error_v4() {
        return icmp_error::<Ipv4, B>(cx, st, buf, l4, end).or_else(|e| unmatched_error(cx, kind, e));
    }
    match (m.ty, kind) {
        (icmp::v4::ECHO_REQUEST, Some(AddrKind::Vip | AddrKind::Local | AddrKind::Floating(_))) => echo4(cx, buf, in_port, h.header_len),
        (icmp::v4::ECHO_REQUEST, Some(AddrKind::Own(p))) => match cx.snap.port(p).and_then(|v| v.kernel) {
            Some(_) => Ok(Verdict::Kernel(p)),
            None => echo4(cx, buf, in_port, h.header_len),
        },
        (_, Some(AddrKind::Own(p))) if cx.snap.port(p).and_then(|v| v.kernel).is_some() => Ok(Verdict::Kernel(p)),
        (_, None) => Err(DropReason::NotForUs),
        _ => Err(DropReason::IcmpUnhandled),
    }
}

pub(super) fn echo4<B: PacketBuf>(cx: &Ctx<'_>, buf: &mut B, in_port: u8, header_len: usize) -> Result<Verdict, DropReason> {
    let mac = cx.snap.port(in_port).ok_or(DropReason::NotForUs)?.mac;
    let d = buf.data_mut();
    icmp::echo_reply_v4(&mut d[ether::HEADER_LEN..], header_len);
    ether::reply_macs(d, mac);
    Ok(Verdict::Answer(in_port))
}

pub(super) fn icmp6<B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    in_port: u8,
    h: &ipv6::Ipv6Header,
) -> Result<Verdict, DropReason> {
    let l4 = ether::HEADER_LEN + h.header_len;
    let end = ether::HEADER_LEN + h.total_len;
    let m = icmp::IcmpHeader::parse_v6(&buf.data()[l4..end], h.src, h.dst)?;
    let port = cx.snap.port(in_port).ok_or(DropReason::NotForUs)?;
    if m.is_error_v6() {
        let kind = cx.snap.addr_kind(h.dst);
        if cx.standby && !matches!(kind, Some(AddrKind::Own(_))) {
            return Err(DropReason::HaStandby);
        }
        return icmp_error::<Ipv6, B>(cx, st, buf, l4, end).or_else(|e| unmatched_error(cx, kind, e));
    }
    match m.ty {
        icmp::v6::NEIGHBOR_SOLICIT => {
            let ns = icmp::parse_neighbor(&buf.data()[l4..end], h.hop_limit)?;
            let peer_mac = ns.lla.unwrap_or_else(|| ether::src(buf.data()));
            if let Some(slot) = check_claim(cx, h.src, peer_mac, in_port)? {
                cx.snap.neigh.learn(slot, peer_mac, cx.now);
            }
            match cx.snap.addr_kind(ns.target) {
                Some(AddrKind::Vip | AddrKind::Local | AddrKind::Floating(_)) if cx.standby => return Err(DropReason::HaStandby),
                Some(AddrKind::Vip | AddrKind::Local) => {}
                Some(AddrKind::Own(p) | AddrKind::Floating(p)) if p == in_port => {}
                _ => return Err(DropReason::NdNotForUs),
            }
            // Answer in place: an NA with our link-layer address is 86 bytes.
            let need = 86usize;
            if buf.len() < need && !buf.append(need - buf.len()) {
                return Err(DropReason::NoHeadroom);
            }
            buf.truncate(need);
            let (to, to_mac, solicited) = if h.src == Ipv6::UNSPECIFIED {
                (ipv6::ALL_NODES, MacAddr::ipv6_multicast(&ipv6::ALL_NODES.to_be_bytes()), false)
            } else {
                (h.src, peer_mac, true)
            };
            icmp::write_neighbor_advert(buf.data_mut(), cx.snap.mac_for(ns.target, port), to_mac, ns.target, to, solicited);
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
            Some(AddrKind::Vip | AddrKind::Local | AddrKind::Floating(_)) if cx.standby => Err(DropReason::HaStandby),
            Some(AddrKind::Vip | AddrKind::Local | AddrKind::Floating(_)) => echo6(buf, port.mac, h.header_len, in_port),
            Some(AddrKind::Own(p)) => match cx.snap.port(p).and_then(|v| v.kernel) {
                Some(_) => Ok(Verdict::Kernel(p)),
                None => echo6(buf, port.mac, h.header_len, in_port),
            },
            None => Err(DropReason::NotForUs),
        },
        _ => Err(DropReason::IcmpUnhandled),
    }
}

pub(super) fn echo6<B: PacketBuf>(buf: &mut B, mac: MacAddr, header_len: usize, in_port: u8) -> Result<Verdict, DropReason> {
    let d = buf.data_mut();
    icmp::echo_reply_v6(&mut d[ether::HEADER_LEN..], header_len);
    ether::reply_macs(d, mac);
    Ok(Verdict::Answer(in_port))
}
