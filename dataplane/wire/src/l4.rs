//! TCP and UDP as a balancer touches them: the flow's 5-tuple, the
//! checksum, the NAT rewrite of addresses and ports, and the bare reset
//! segment rvs answers with.
//!
//! [`rewrite`] is the one NAT rewriter: the forwarder uses it for every
//! packet it translates and, unchanged, for the packet quoted inside an
//! ICMP error (which may be cut short, so the L4 checksum is updated only
//! when the bytes hold it).
use crate::addr::Family;
use crate::ip::proto;
use crate::{checksum, ether, ipv4, ipv6, tcp, udp, MacAddr};
use std::net::IpAddr;

/// The identity of a TCP or UDP flow as one packet carries it (the key
/// of rvs's session tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FiveTuple<A: Family> {
    /// Source address.
    pub src: A,
    /// Destination address.
    pub dst: A,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// IP protocol (TCP or UDP).
    pub proto: u8,
}

/// Hashed as two words (IPv4) or three (IPv6) rather than field by field:
/// this hash runs for every packet.
impl<A: Family> std::hash::Hash for FiveTuple<A> {
    #[inline(always)]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        A::hash_pair(self.src, self.dst, h);
        h.write_u64((u64::from(self.sport) << 24) | (u64::from(self.dport) << 8) | u64::from(self.proto));
    }
}

impl<A: Family> FiveTuple<A> {
    /// The same flow seen from the other end.
    #[inline]
    #[must_use]
    pub fn reversed(&self) -> FiveTuple<A> {
        FiveTuple { src: self.dst, dst: self.src, sport: self.dport, dport: self.sport, proto: self.proto }
    }
}

/// Offset of the checksum in a TCP or UDP header.
#[inline(always)]
fn checksum_at(l4proto: u8) -> usize {
    if l4proto == proto::TCP {
        tcp::CHECKSUM_AT
    } else {
        udp::CHECKSUM_AT
    }
}

/// The checksum field of a TCP or UDP header (`seg` holds at least its
/// fixed part: validated by the caller).
#[inline]
pub fn checksum_field(seg: &[u8], l4proto: u8) -> u16 {
    let at = checksum_at(l4proto);
    seg.get(at..at + 2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
}

/// Verifies the checksum of the whole segment `seg` of flow `t` (a UDP
/// datagram over IPv4 without a checksum passes, RFC 768).
pub fn checksum_ok<A: Family>(seg: &[u8], t: &FiveTuple<A>) -> bool {
    if t.proto == proto::UDP && !A::V6 && checksum_field(seg, proto::UDP) == 0 {
        return true;
    }
    checksum::l4_checksum(A::pseudo_header(t.src, t.dst, t.proto, seg.len()), seg) == 0
}

/// Rewrites the source and/or destination address and port of the packet
/// whose IP header starts `ip` and whose L4 header starts at `l4` (from the
/// start of `ip`), with `old` the tuple it carries now. The IPv4 header
/// checksum and the L4 checksum are updated incrementally (RFC 1624); an
/// L4 checksum beyond the end of `ip` (a packet quoted short in an ICMP
/// error) is left alone, and a UDP-over-IPv4 datagram without one keeps
/// none. With `ttl` the TTL or hop limit is decremented too (the caller
/// checked it is above 1), in the same IPv4 header checksum update.
#[inline(always)]
pub fn rewrite<A: Family>(ip: &mut [u8], l4: usize, old: &FiveTuple<A>, src: Option<(A, u16)>, dst: Option<(A, u16)>, ttl: bool) {
    let at = l4 + checksum_at(old.proto);
    let has_sum = at + 2 <= ip.len();
    let c = if has_sum { u16::from_be_bytes([ip[at], ip[at + 1]]) } else { 0 };
    let no_udp_sum = old.proto == proto::UDP && !A::V6 && c == 0;
    // Every changed field's term, folded into the L4 checksum once; the
    // addresses' (the pseudo-header's) as the IP header's update made it.
    let mut delta = A::rewrite_ip(ip, src.map(|x| x.0), dst.map(|x| x.0), ttl);
    if let Some((_, port)) = src {
        delta += checksum::delta16(old.sport, port);
        ip[l4..l4 + 2].copy_from_slice(&port.to_be_bytes());
    }
    if let Some((_, port)) = dst {
        delta += checksum::delta16(old.dport, port);
        ip[l4 + 2..l4 + 4].copy_from_slice(&port.to_be_bytes());
    }
    if has_sum && !no_udp_sum {
        let mut c = checksum::apply(c, delta);
        // UDP sends a computed zero as all ones (RFC 768).
        if old.proto == proto::UDP && c == 0 {
            c = 0xffff;
        }
        ip[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// Writes, from the start of `frame`, a frame carrying a bare TCP segment
/// `src -> dst` (no options, no payload, window 0) with the given sequence
/// number, acknowledgement and flags; see [`write_tcp`]. Returns the
/// frame's length (54 or 74 bytes).
pub fn write_tcp_reset<A: Family>(
    frame: &mut [u8],
    to: MacAddr,
    from: MacAddr,
    src: (A, u16),
    dst: (A, u16),
    seq: u32,
    ack: u32,
    flags: u8,
) -> usize {
    write_tcp(frame, to, from, src, dst, TcpFields { seq, ack, flags, window: 0 }, &[])
}

/// The header fields of a segment [`write_tcp`] writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFields {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags.
    pub flags: u8,
    /// Window field.
    pub window: u16,
}

/// The length of the frame [`write_tcp`] writes with `options` bytes of
/// options.
pub fn tcp_frame_len<A: Family>(options: usize) -> usize {
    ether::HEADER_LEN + if A::V6 { ipv6::HEADER_LEN } else { ipv4::MIN_HEADER_LEN } + tcp::MIN_HEADER_LEN + options
}

/// Writes, from the start of `frame`, a frame carrying a TCP segment
/// `src -> dst` with no payload: Ethernet `from -> to`, an IPv4 header
/// (DF, TTL 64) or IPv6 header (hop limit 64), and the segment with
/// `options` (a multiple of 4 bytes, at most 40) and its checksum. Returns
/// the frame's length ([`tcp_frame_len`]); `frame` must be at least that
/// long.
pub fn write_tcp<A: Family>(
    frame: &mut [u8],
    to: MacAddr,
    from: MacAddr,
    src: (A, u16),
    dst: (A, u16),
    f: TcpFields,
    options: &[u8],
) -> usize {
    let options = &options[..options.len().min(40) / 4 * 4];
    let ip_len = if A::V6 { ipv6::HEADER_LEN } else { ipv4::MIN_HEADER_LEN };
    let l4 = ether::HEADER_LEN + ip_len;
    let seg_len = tcp::MIN_HEADER_LEN + options.len();
    let len = l4 + seg_len;
    let ethertype = if A::V6 { ether::ethertype::IPV6 } else { ether::ethertype::IPV4 };
    ether::write_header(frame, to, from, ethertype);
    let ip = &mut frame[ether::HEADER_LEN..];
    #[expect(clippy::cast_possible_truncation, reason = "at most 60 bytes of segment in an 80-byte packet")]
    match (src.0.to_ip(), dst.0.to_ip()) {
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            ipv6::write_header(ip, 0, 0, seg_len as u16, proto::TCP, 64, s.into(), d.into());
        }
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (ipv4::MIN_HEADER_LEN + seg_len) as u16;
            ipv4::write_header(ip, 0, total, 0, ipv4::FLAG_DF, 64, proto::TCP, s.into(), d.into());
        }
        _ => {}
    }
    let seg = &mut frame[l4..len];
    tcp::write_bare(seg, src.1, dst.1, f.seq, f.ack, f.flags);
    #[expect(clippy::cast_possible_truncation, reason = "at most 15 words")]
    {
        seg[12] = ((seg_len / 4) as u8) << 4;
    }
    seg[14..16].copy_from_slice(&f.window.to_be_bytes());
    seg[tcp::MIN_HEADER_LEN..].copy_from_slice(options);
    let c = checksum::l4_checksum(A::pseudo_header(src.0, dst.0, proto::TCP, seg_len), seg);
    seg[tcp::CHECKSUM_AT..tcp::CHECKSUM_AT + 2].copy_from_slice(&c.to_be_bytes());
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Ipv4;

    /// A UDP/IPv4 packet with a correct checksum, rewritten: still correct.
    #[test]
    fn rewrite_keeps_checksums_and_respects_short_quotes() {
        let src = Ipv4(0xc612_000a);
        let dst = Ipv4(0xc612_0064);
        let mut p = vec![0u8; 20 + 8 + 4];
        ipv4::write_header(&mut p, 0, 32, 1, 0, 64, proto::UDP, src, dst);
        p[20..22].copy_from_slice(&5353u16.to_be_bytes());
        p[22..24].copy_from_slice(&53u16.to_be_bytes());
        p[24..26].copy_from_slice(&12u16.to_be_bytes());
        p[28..32].copy_from_slice(b"ping");
        let t = FiveTuple { src, dst, sport: 5353, dport: 53, proto: proto::UDP };
        let c = checksum::l4_checksum(Ipv4::pseudo_header(src, dst, proto::UDP, 12), &p[20..]);
        p[26..28].copy_from_slice(&c.to_be_bytes());
        assert!(checksum_ok(&p[20..], &t));
        let new_dst = (Ipv4(0xc612_010b), 9000);
        rewrite(&mut p, 20, &t, None, Some(new_dst), true);
        let t2 = FiveTuple { dst: new_dst.0, dport: 9000, ..t };
        assert!(checksum_ok(&p[20..], &t2), "L4 checksum follows");
        assert_eq!(checksum::checksum(&p[..20]), 0, "IPv4 header checksum follows");
        assert_eq!(p[8], 63, "TTL decremented");
        // Quoted short (no checksum in the bytes): addresses and ports only.
        let mut q = p[..24].to_vec();
        rewrite(&mut q, 20, &t2, Some((Ipv4(1), 7)), None, false);
        assert_eq!((Ipv4::ip_src(&q), u16::from_be_bytes([q[20], q[21]])), (Ipv4(1), 7));
    }

    #[test]
    fn a_reset_frame_is_well_formed() {
        let mut f = vec![0xa5u8; 80];
        let n = write_tcp_reset(
            &mut f,
            MacAddr([2; 6]),
            MacAddr([4; 6]),
            (Ipv4(0xc612_0064), 80),
            (Ipv4(0xc612_000a), 4000),
            7,
            9,
            tcp::flags::RST,
        );
        assert_eq!(n, 54);
        let h = ipv4::Ipv4Header::parse(&f[14..n], true).unwrap();
        assert_eq!((h.total_len, h.proto, h.ttl), (40, proto::TCP, 64));
        let t = tcp::TcpHeader::parse(&f[34..n]).unwrap();
        assert_eq!((t.sport, t.dport, t.seq, t.ack, t.flags), (80, 4000, 7, 9, tcp::flags::RST));
        let tuple = FiveTuple { src: Ipv4(0xc612_0064), dst: Ipv4(0xc612_000a), sport: 80, dport: 4000, proto: proto::TCP };
        assert!(checksum_ok(&f[34..n], &tuple));
    }
}
