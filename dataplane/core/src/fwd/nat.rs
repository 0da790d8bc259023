use super::icmp::Quoted;
use super::state::Pkt;
use super::xmit::decrement_ttl;
use rvs_wire::ip::{proto, Addr};
use rvs_wire::{checksum, ether, ipv4, ipv6, tcp, udp, PacketBuf};

/// Rewrites source and/or destination address and port, with the TTL, and
/// updates the IP and L4 checksums incrementally.
#[inline(always)]
pub(super) fn nat_rewrite<A: Addr, B: PacketBuf>(buf: &mut B, p: &Pkt<A>, src: Option<(A, u16)>, dst: Option<(A, u16)>) {
    let d = buf.data_mut();
    decrement_ttl::<A>(d);
    let ip = &mut d[ether::HEADER_LEN..];
    let at = if p.proto == proto::TCP { tcp::CHECKSUM_AT } else { udp::CHECKSUM_AT };
    let seg_off = p.l4 - ether::HEADER_LEN;
    let mut c = u16::from_be_bytes([ip[seg_off + at], ip[seg_off + at + 1]]);
    let no_udp_sum = p.proto == proto::UDP && !A::V6 && c == 0;
    if let Some((a, port)) = src {
        if A::V6 {
            ipv6::set_src(ip, u128::from_be_bytes(a_bytes16(a)));
        } else {
            ipv4::set_src(ip, u32::from_be_bytes(a_bytes4(a)));
        }
        c = A::csum_update(c, p.src, a);
        c = checksum::update16(c, p.sport, port);
        ip[seg_off..seg_off + 2].copy_from_slice(&port.to_be_bytes());
    }
    if let Some((a, port)) = dst {
        if A::V6 {
            ipv6::set_dst(ip, u128::from_be_bytes(a_bytes16(a)));
        } else {
            ipv4::set_dst(ip, u32::from_be_bytes(a_bytes4(a)));
        }
        c = A::csum_update(c, p.dst, a);
        c = checksum::update16(c, p.dport, port);
        ip[seg_off + 2..seg_off + 4].copy_from_slice(&port.to_be_bytes());
    }
    if !no_udp_sum {
        if p.proto == proto::UDP && c == 0 {
            c = 0xffff;
        }
        ip[seg_off + at..seg_off + at + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// Rewrites the quoted packet's addresses and ports, keeping its IPv4
/// header checksum and (when quoted whole enough to include it) its L4
/// checksum consistent.
pub(super) fn rewrite_quoted<A: Addr>(d: &mut [u8], q: &Quoted<A>, src: Option<(A, u16)>, dst: Option<(A, u16)>) {
    let csum_at = q.l4 + if q.proto == proto::TCP { tcp::CHECKSUM_AT } else { udp::CHECKSUM_AT };
    let has_csum = csum_at + 2 <= q.end;
    let mut c = if has_csum { u16::from_be_bytes([d[csum_at], d[csum_at + 1]]) } else { 0 };
    let no_udp_sum = q.proto == proto::UDP && !A::V6 && c == 0;
    if let Some((a, port)) = src {
        if A::V6 {
            ipv6::set_src(&mut d[q.l3..], u128::from_be_bytes(a_bytes16(a)));
        } else {
            ipv4::set_src(&mut d[q.l3..], u32::from_be_bytes(a_bytes4(a)));
        }
        c = A::csum_update(c, q.src, a);
        c = checksum::update16(c, q.sport, port);
        d[q.l4..q.l4 + 2].copy_from_slice(&port.to_be_bytes());
    }
    if let Some((a, port)) = dst {
        if A::V6 {
            ipv6::set_dst(&mut d[q.l3..], u128::from_be_bytes(a_bytes16(a)));
        } else {
            ipv4::set_dst(&mut d[q.l3..], u32::from_be_bytes(a_bytes4(a)));
        }
        c = A::csum_update(c, q.dst, a);
        c = checksum::update16(c, q.dport, port);
        d[q.l4 + 2..q.l4 + 4].copy_from_slice(&port.to_be_bytes());
    }
    if has_csum && !no_udp_sum {
        if q.proto == proto::UDP && c == 0 {
            c = 0xffff;
        }
        d[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    }
}

pub(super) fn a_bytes4<A: Addr>(a: A) -> [u8; 4] {
    let mut b = [0u8; 4];
    if !A::V6 {
        a.write(&mut b);
    }
    b
}

pub(super) fn a_bytes16<A: Addr>(a: A) -> [u8; 16] {
    let mut b = [0u8; 16];
    if A::V6 {
        a.write(&mut b);
    }
    b
}
