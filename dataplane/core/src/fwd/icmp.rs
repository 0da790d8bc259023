use super::flow::owner;
use super::l2::check_claim;
use super::nat::{a_bytes16, a_bytes4, rewrite_quoted};
use super::state::{Ctx, Fam, St};
use super::xmit::{encapsulate, tx_or_hold};
use super::Verdict;
use crate::drop::DropReason;
use crate::session::{Dir, FlowKey};
use crate::table::{AddrKind, Mode};
use rvs_wire::ip::{proto, Addr};
use rvs_wire::{ether, icmp, ipv4, ipv6, MacAddr, PacketBuf};

/// A packet too big for the tunnel: ICMP "fragmentation needed" (IPv4 with
/// DF) or "packet too big" (IPv6) back to the sender, announcing the egress
/// MTU less the tunnel overhead (RFC 2003 5.1, RFC 2473 7). An IPv4 packet
/// without DF that does not fit is dropped (`mtu_exceeded`): rvs does not
/// fragment.
pub(super) fn too_big<A: Addr, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    in_port: u8,
    mtu: usize,
) -> Result<Verdict, DropReason> {
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
pub(super) struct Quoted<A: Addr> {
    pub(super) l3: usize,
    pub(super) l4: usize,
    pub(super) end: usize,
    pub(super) proto: u8,
    pub(super) src: A,
    pub(super) dst: A,
    pub(super) sport: u16,
    pub(super) dport: u16,
}

/// Reads the IP header and the first 8 L4 bytes quoted in an ICMP error
/// starting at `at`. The quoted packet is usually truncated, so its total
/// length is not checked against the buffer; only TCP and UDP are matched.
pub(super) fn parse_quoted<A: Addr>(d: &[u8], at: usize, end: usize) -> Result<Quoted<A>, DropReason> {
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
pub(super) fn icmp_error<A: Fam, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    icmp_at: usize,
    end: usize,
) -> Result<Verdict, DropReason> {
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
pub(super) fn time_exceeded<A: Addr, B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, in_port: u8) -> Result<Verdict, DropReason> {
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

pub(super) fn echo6<B: PacketBuf>(buf: &mut B, mac: MacAddr, header_len: usize, in_port: u8) -> Result<Verdict, DropReason> {
    let d = buf.data_mut();
    icmp::echo_reply_v6(&mut d[ether::HEADER_LEN..], header_len);
    ether::reply_macs(d, mac);
    Ok(Verdict::Answer(in_port))
}
