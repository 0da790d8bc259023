use super::flow::transport;
use super::icmp::{icmp4, icmp6};
use super::state::{Ctx, Pkt, St};
use super::Verdict;
use crate::drop::DropReason;
use rvs_wire::ip::{proto, Addr};
use rvs_wire::{checksum, ether, icmp, ipv4, ipv6, tcp, udp, PacketBuf};

pub(super) fn ipv4_packet<B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, in_port: u8) -> Result<Verdict, DropReason> {
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

pub(super) fn ipv6_packet<B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, in_port: u8) -> Result<Verdict, DropReason> {
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

pub(super) fn checksum_field(seg: &[u8], proto: u8) -> u16 {
    let at = if proto == proto::TCP { tcp::CHECKSUM_AT } else { udp::CHECKSUM_AT };
    u16::from_be_bytes([seg[at], seg[at + 1]])
}

/// Validates the TCP/UDP header of `seg` (the L4 bytes) into a [`Pkt`].
#[inline]
pub(super) fn l4_facts<A: Addr>(seg: &[u8], l4proto: u8, l4: usize, end: usize, src: A, dst: A) -> Result<Pkt<A>, DropReason> {
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
pub(super) fn l4_checksum_ok<A: Addr>(seg: &[u8], p: &Pkt<A>) -> bool {
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
