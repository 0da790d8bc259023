//! Builders for well-formed test frames (unit tests, benchmarks, fuzz seeds).
//!
//! Golden tests do not use these: their packets come from an independent
//! script (scapy), so rvs is never checked against itself there.
use rvs_wire::ip::proto;
use rvs_wire::{checksum, ether, ipv4, ipv6, Family, Ipv4, Ipv6, MacAddr};

/// A TCP segment's variable parts.
#[derive(Clone, Copy, Debug)]
pub struct Tcp<'a> {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Flags.
    pub flags: u8,
    /// Sequence number.
    pub seq: u32,
    /// Payload.
    pub payload: &'a [u8],
}

fn tcp_segment(t: &Tcp<'_>) -> Vec<u8> {
    let mut s = vec![0u8; 20];
    s[0..2].copy_from_slice(&t.sport.to_be_bytes());
    s[2..4].copy_from_slice(&t.dport.to_be_bytes());
    s[4..8].copy_from_slice(&t.seq.to_be_bytes());
    s[12] = 5 << 4;
    s[13] = t.flags;
    s[14..16].copy_from_slice(&64240u16.to_be_bytes());
    s.extend_from_slice(t.payload);
    s
}

fn udp_datagram(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = vec![0u8; 8];
    s[0..2].copy_from_slice(&sport.to_be_bytes());
    s[2..4].copy_from_slice(&dport.to_be_bytes());
    let len = rvs_wire::num::sat_u16(8 + payload.len());
    s[4..6].copy_from_slice(&len.to_be_bytes());
    s.extend_from_slice(payload);
    s
}

fn frame_v4(src_mac: MacAddr, dst_mac: MacAddr, src: Ipv4, dst: Ipv4, l4proto: u8, mut seg: Vec<u8>) -> Vec<u8> {
    let csum_at = if l4proto == proto::TCP { 16 } else { 6 };
    let len = rvs_wire::num::sat_u16(seg.len());
    let c = checksum::l4_checksum(checksum::pseudo_v4(src.to_be_bytes(), dst.to_be_bytes(), l4proto, len), &seg);
    let c = if l4proto == proto::UDP && c == 0 { 0xffff } else { c };
    seg[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![0u8; 34];
    ether::write_header(&mut f, dst_mac, src_mac, ether::ethertype::IPV4);
    ipv4::write_header(&mut f[14..], 0, 20 + len, 0x1234, ipv4::FLAG_DF, 64, l4proto, src, dst);
    f.extend_from_slice(&seg);
    f
}

fn frame_v6(src_mac: MacAddr, dst_mac: MacAddr, src: Ipv6, dst: Ipv6, l4proto: u8, mut seg: Vec<u8>) -> Vec<u8> {
    let csum_at = if l4proto == proto::TCP { 16 } else { 6 };
    let len = rvs_wire::num::sat_u32(seg.len());
    let c = checksum::l4_checksum(ipv6::pseudo(src, dst, l4proto, len), &seg);
    let c = if l4proto == proto::UDP && c == 0 { 0xffff } else { c };
    seg[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![0u8; 54];
    ether::write_header(&mut f, dst_mac, src_mac, ether::ethertype::IPV6);
    ipv6::write_header(&mut f[14..], 0, 0, rvs_wire::num::sat_u16(seg.len()), l4proto, 64, src, dst);
    f.extend_from_slice(&seg);
    f
}

/// Ethernet + IPv4 + TCP with valid checksums.
pub fn tcp4(src_mac: MacAddr, dst_mac: MacAddr, src: impl Into<Ipv4>, dst: impl Into<Ipv4>, t: &Tcp<'_>) -> Vec<u8> {
    frame_v4(src_mac, dst_mac, src.into(), dst.into(), proto::TCP, tcp_segment(t))
}

/// Ethernet + IPv4 + UDP with valid checksums.
pub fn udp4(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: impl Into<Ipv4>,
    dst: impl Into<Ipv4>,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    frame_v4(src_mac, dst_mac, src.into(), dst.into(), proto::UDP, udp_datagram(sport, dport, payload))
}

/// Ethernet + IPv6 + TCP with valid checksums.
pub fn tcp6(src_mac: MacAddr, dst_mac: MacAddr, src: impl Into<Ipv6>, dst: impl Into<Ipv6>, t: &Tcp<'_>) -> Vec<u8> {
    frame_v6(src_mac, dst_mac, src.into(), dst.into(), proto::TCP, tcp_segment(t))
}

/// Ethernet + IPv6 + UDP with valid checksums.
pub fn udp6(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: impl Into<Ipv6>,
    dst: impl Into<Ipv6>,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    frame_v6(src_mac, dst_mac, src.into(), dst.into(), proto::UDP, udp_datagram(sport, dport, payload))
}

/// Ethernet + IPv4 + ICMP echo request.
pub fn ping4(src_mac: MacAddr, dst_mac: MacAddr, src: impl Into<Ipv4>, dst: impl Into<Ipv4>, id: u16, seq: u16) -> Vec<u8> {
    let mut f = vec![0u8; 34 + 16];
    ether::write_header(&mut f, dst_mac, src_mac, ether::ethertype::IPV4);
    ipv4::write_header(&mut f[14..], 0, 36, 1, 0, 64, proto::ICMP, src.into(), dst.into());
    let m = &mut f[34..];
    m[0] = rvs_wire::icmp::v4::ECHO_REQUEST;
    m[4..6].copy_from_slice(&id.to_be_bytes());
    m[6..8].copy_from_slice(&seq.to_be_bytes());
    m[8..16].copy_from_slice(b"rvs-ping");
    rvs_wire::icmp::fill_checksum_v4(m);
    f
}

/// Verifies every checksum of an Ethernet + IPv4/IPv6 + TCP/UDP frame.
pub fn checksums_ok(f: &[u8]) -> bool {
    match ether::ethertype(f) {
        ether::ethertype::IPV4 => {
            let Ok(h) = ipv4::Ipv4Header::parse(&f[14..], true) else { return false };
            let seg = &f[14 + h.header_len..14 + h.total_len];
            if h.proto == proto::UDP && seg[6..8] == [0, 0] {
                return true;
            }
            checksum::l4_checksum(Ipv4::pseudo_header(h.src, h.dst, h.proto, seg.len()), seg) == 0
        }
        ether::ethertype::IPV6 => {
            let Ok(h) = ipv6::Ipv6Header::parse(&f[14..]) else { return false };
            let seg = &f[14 + h.header_len..14 + h.total_len];
            checksum::l4_checksum(Ipv6::pseudo_header(h.src, h.dst, h.proto, seg.len()), seg) == 0
        }
        _ => false,
    }
}
