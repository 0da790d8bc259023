//! Every parser of rvs-wire on arbitrary bytes: Ethernet/IPv4/IPv6/TCP/
//! UDP/ICMP/ICMPv6/ND/ARP headers, quoted packets of ICMP errors, the fast
//! path's flow peek, VRRP adverts (both families), sync messages, TCP
//! options and the SYN proxy's in-place shift of a segment. Nothing may
//! panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_wire::{arp, icmp, ipv4, ipv6, peek, sync, tcp, tcpopt, udp, vrrp, Ipv4, Ipv6};

fuzz_target!(|d: &[u8]| {
    let _ = peek::peek_flow(d);
    let _ = arp::Arp::parse(d);
    let _ = ipv4::Ipv4Header::parse(d, true);
    let _ = ipv4::Ipv4Header::parse(d, false);
    let _ = ipv6::Ipv6Header::parse(d);
    let _ = tcp::TcpHeader::parse(d);
    let hl = usize::from(d.get(12).copied().unwrap_or(0) >> 4) * 4;
    let _ = tcpopt::TcpOptions::parse(d, hl);
    let mut seg = d.to_vec();
    let k = |i: usize| u32::from(d.get(i).copied().unwrap_or(0));
    let shift = tcpopt::Shift {
        seq: k(0) << 24 | k(5),
        ack: k(1) << 16,
        sack: k(2).wrapping_mul(0x0101_0101),
        tsval: k(3),
        tsecr: k(4).wrapping_neg(),
        window: d.get(13).map(|&w| (w & 0xf, w >> 4)),
    };
    let _ = tcpopt::shift(&mut seg, &shift);
    let _ = udp::UdpHeader::parse(d);
    let _ = icmp::IcmpHeader::parse_v4(d);
    let (a, b) = (Ipv6(0x2001_0db8 << 96 | 1), Ipv6(0x2001_0db8 << 96 | 2));
    let _ = icmp::IcmpHeader::parse_v6(d, a, b);
    let hop = d.first().copied().unwrap_or(255);
    let _ = icmp::parse_neighbor(d, hop);
    let at = usize::from(d.first().copied().unwrap_or(0)) % (d.len() + 1);
    let end = d.len() - usize::from(d.get(1).copied().unwrap_or(0)).min(d.len() - at);
    let _ = icmp::parse_quoted::<Ipv4>(d, at, end);
    let _ = icmp::parse_quoted::<Ipv6>(d, at, end);
    let _ = vrrp::parse(d, Ipv4(0xc612_0002), Ipv4(0xe000_0012), hop);
    let _ = vrrp::parse(d, Ipv6(0xfe80 << 112 | 2), Ipv6(0xff02 << 112 | 0x12), hop);
    let _ = sync::parse(d);
});
