//! IPv4 and IPv6: validation and policy, and the TCP/UDP facts of a packet.
//!
//! What is dropped here, each under its own reason: multicast and
//! broadcast destinations (but neighbour discovery), martian sources, our
//! own addresses as source (the "land" attack; in ND it is a claim, judged
//! in [`super::l2`]), fragments, IPv4 options, UDP over IPv6 without a
//! checksum, and protocols rvs has no service for.
use super::flow::transport;
use super::icmp::{icmp4, icmp6};
use super::state::{Ctx, Pkt, St};
use super::Verdict;
use crate::drop::DropReason;
use crate::table::AddrKind;
use rvs_wire::ip::proto;
use rvs_wire::{ether, icmp, ipv4, ipv6, l4, tcp, udp, vrrp, Family, Ipv6, PacketBuf};

pub(super) fn ipv4_packet<B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, in_port: u8) -> Result<Verdict, DropReason> {
    const L3: usize = ether::HEADER_LEN;
    // A header checksum the NIC verified is not summed again (a wrong or
    // unchecked one is: rvs's sum decides).
    let h = ipv4::Ipv4Header::parse(&buf.data()[L3..], !buf.ip_csum_good())?;
    buf.truncate(L3 + h.total_len);
    if let Some(v) = to_ha_kernel(cx, in_port, h.proto, h.dst, &buf.data()[L3 + h.header_len..]) {
        return Ok(v);
    }
    if h.dst.is_multicast_or_broadcast() {
        return Err(DropReason::Multicast);
    }
    if h.src.is_martian_source() {
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
            let p = l4_facts(&buf.data()[l4..end], h.proto, l4, end, h.src, h.dst)?;
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
    if ipv6::is_other_multicast(&buf.data()[L3..]) && !is_vrrp6(&buf.data()[L3..]) {
        return Err(DropReason::Multicast);
    }
    let h = ipv6::Ipv6Header::parse(&buf.data()[L3..])?;
    if let Some(v) = to_ha_kernel(cx, in_port, h.proto, h.dst, &buf.data()[L3 + h.header_len..]) {
        return Ok(v);
    }
    buf.truncate(L3 + h.total_len);
    if h.src.is_martian_source() && !(h.src == Ipv6::UNSPECIFIED && h.proto == proto::ICMPV6) {
        return Err(DropReason::Ipv6BadSource);
    }
    let l4 = L3 + h.header_len;
    let end = L3 + h.total_len;
    // Our own address as source is martian, except in neighbour discovery,
    // where it is a claim judged as such (an address conflict).
    let nd = h.proto == proto::ICMPV6 && icmp::is_neighbor_discovery(&buf.data()[l4..end]);
    if !nd && cx.snap.addr_kind(h.src).is_some() {
        return Err(DropReason::OwnSource);
    }
    match h.proto {
        proto::TCP | proto::UDP => {
            let p = l4_facts(&buf.data()[l4..end], h.proto, l4, end, h.src, h.dst)?;
            if p.proto == proto::UDP && l4::checksum_field(&buf.data()[l4..end], proto::UDP) == 0 {
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

/// In a pair, what rvsd's HA threads read arrives on the HA port's kernel
/// interface: VRRP adverts (to the VRRP group or to our own address) and
/// sync datagrams to a multicast group. Everything else: None.
#[inline]
fn to_ha_kernel<A: Family>(cx: &Ctx<'_>, in_port: u8, l4proto: u8, dst: A, l4: &[u8]) -> Option<Verdict> {
    let ha = cx.snap.ha_port.filter(|&p| p == in_port)?;
    cx.snap.port(ha)?.kernel?;
    let ours = matches!(cx.snap.addr_kind(dst), Some(AddrKind::Own(_)));
    let group = dst.to_ip().is_multicast();
    let wanted = match l4proto {
        vrrp::PROTO => ours || group,
        proto::UDP => group && cx.snap.sync_port.is_some_and(|sp| l4.get(2..4) == Some(&sp.to_be_bytes()[..])),
        _ => false,
    };
    wanted.then_some(Verdict::Kernel(ha))
}

/// An IPv6 packet to a multicast group whose next header is VRRP.
fn is_vrrp6(ip: &[u8]) -> bool {
    ip.get(6) == Some(&vrrp::PROTO)
}

/// Validates the TCP/UDP header of `seg` (the L4 bytes) into a [`Pkt`].
#[inline]
pub(super) fn l4_facts<A: Family>(seg: &[u8], l4proto: u8, l4: usize, end: usize, src: A, dst: A) -> Result<Pkt<A>, DropReason> {
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
