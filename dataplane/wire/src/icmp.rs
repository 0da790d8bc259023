//! ICMP (RFC 792) and ICMPv6 (RFC 4443) with neighbour discovery (RFC 4861).
//!
//! Three jobs: answering echo requests to a VIP in place, reading the packet
//! quoted in an error (so it can be matched to a session and forwarded), and
//! turning a packet rvs cannot forward into the ICMP error that reports it
//! (time exceeded, fragmentation needed, packet too big), in place.
use super::{be16, be32, checksum, ether, ipv4, ipv6, put16, put32, MacAddr, PacketBuf};
use crate::addr::{Family, Ipv4, Ipv6};
use crate::l4::FiveTuple;
use crate::WireError;

/// ICMP header length (type, code, checksum, 4 bytes of "rest").
pub const HEADER_LEN: usize = 8;

/// ICMPv4 types.
pub mod v4 {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACH: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 12;
    /// Code of DEST_UNREACH: fragmentation needed and DF set.
    pub const CODE_FRAG_NEEDED: u8 = 4;
    /// Largest ICMPv4 error datagram (RFC 1812 4.3.2.3).
    pub const MAX_ERROR_LEN: usize = 576;
}

/// ICMPv6 types.
pub mod v6 {
    /// Destination unreachable.
    pub const DEST_UNREACH: u8 = 1;
    /// Packet too big.
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Router solicitation.
    pub const ROUTER_SOLICIT: u8 = 133;
    /// Router advertisement.
    pub const ROUTER_ADVERT: u8 = 134;
    /// Neighbour solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbour advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// Largest ICMPv6 error datagram (the IPv6 minimum MTU).
    pub const MAX_ERROR_LEN: usize = 1280;
}

/// A validated ICMP or ICMPv6 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpHeader {
    /// Message type.
    pub ty: u8,
    /// Code.
    pub code: u8,
    /// The 4 bytes after the checksum (echo id/seq, MTU, pointer...).
    pub rest: u32,
}

impl IcmpHeader {
    /// Validates an ICMPv4 message (the whole IP payload) and its checksum.
    #[inline]
    pub fn parse_v4(msg: &[u8]) -> Result<IcmpHeader, WireError> {
        if msg.len() < HEADER_LEN {
            return Err(WireError::IcmpTruncated);
        }
        if checksum::checksum(msg) != 0 {
            return Err(WireError::IcmpBadChecksum);
        }
        Ok(IcmpHeader { ty: msg[0], code: msg[1], rest: be32(msg, 4) })
    }

    /// Validates an ICMPv6 message and its pseudo-header checksum.
    #[inline]
    pub fn parse_v6(msg: &[u8], src: Ipv6, dst: Ipv6) -> Result<IcmpHeader, WireError> {
        if msg.len() < HEADER_LEN {
            return Err(WireError::IcmpTruncated);
        }
        let len = u32::try_from(msg.len()).map_err(|_| WireError::IcmpTruncated)?;
        if checksum::l4_checksum(ipv6::pseudo(src, dst, super::ip::proto::ICMPV6, len), msg) != 0 {
            return Err(WireError::IcmpBadChecksum);
        }
        Ok(IcmpHeader { ty: msg[0], code: msg[1], rest: be32(msg, 4) })
    }

    /// True for ICMPv4 error messages that quote a packet.
    #[inline]
    pub fn is_error_v4(&self) -> bool {
        matches!(self.ty, v4::DEST_UNREACH | v4::TIME_EXCEEDED | v4::PARAM_PROBLEM)
    }

    /// True for ICMPv6 error messages (types below 128) that quote a packet.
    #[inline]
    pub fn is_error_v6(&self) -> bool {
        matches!(self.ty, v6::DEST_UNREACH | v6::PACKET_TOO_BIG | v6::TIME_EXCEEDED | v6::PARAM_PROBLEM)
    }
}

/// Turns an ICMPv4 echo request (`ip` = IPv4 header + message) into the
/// reply, in place: addresses swapped, type 0, TTL reset, checksums updated.
pub fn echo_reply_v4(ip: &mut [u8], header_len: usize) {
    let src = be32(ip, 12);
    let dst = be32(ip, 16);
    put32(ip, 12, dst);
    put32(ip, 16, src);
    ip[8] = 64;
    put16(ip, 10, 0);
    let c = checksum::checksum(&ip[..header_len]);
    put16(ip, 10, c);
    let msg = &mut ip[header_len..];
    let old = be16(msg, 0);
    msg[0] = v4::ECHO_REPLY;
    let c = checksum::update16(be16(msg, 2), old, be16(msg, 0));
    put16(msg, 2, c);
}

/// Turns an ICMPv6 echo request into the reply in place (the pseudo-header
/// sum is unchanged by swapping the addresses, so only the type changes).
pub fn echo_reply_v6(ip: &mut [u8], header_len: usize) {
    let src: [u8; 16] = ip[8..24].try_into().unwrap_or([0; 16]);
    let dst: [u8; 16] = ip[24..40].try_into().unwrap_or([0; 16]);
    ip[8..24].copy_from_slice(&dst);
    ip[24..40].copy_from_slice(&src);
    ip[7] = 64;
    let msg = &mut ip[header_len..];
    let old = be16(msg, 0);
    msg[0] = v6::ECHO_REPLY;
    let c = checksum::update16(be16(msg, 2), old, be16(msg, 0));
    put16(msg, 2, c);
}

/// Recomputes an ICMPv4 message checksum from scratch.
pub fn fill_checksum_v4(msg: &mut [u8]) {
    put16(msg, 2, 0);
    let c = checksum::checksum(msg);
    put16(msg, 2, c);
}

/// Recomputes an ICMPv6 message checksum from scratch.
pub fn fill_checksum_v6(msg: &mut [u8], src: Ipv6, dst: Ipv6) {
    put16(msg, 2, 0);
    let len = crate::num::sat_u32(msg.len());
    let c = checksum::l4_checksum(ipv6::pseudo(src, dst, super::ip::proto::ICMPV6, len), msg);
    put16(msg, 2, c);
}

/// Recomputes the checksum of the ICMP(v6) message at `frame[icmp_at..end]`
/// inside the IP packet whose header starts at `l3` (ICMPv6 covers a
/// pseudo-header of that packet's addresses).
pub fn fill_checksum<A: Family>(frame: &mut [u8], l3: usize, icmp_at: usize, end: usize) {
    if A::V6 {
        let (src, dst) = (ipv6::src(&frame[l3..]), ipv6::dst(&frame[l3..]));
        fill_checksum_v6(&mut frame[icmp_at..end], src, dst);
    } else {
        fill_checksum_v4(&mut frame[icmp_at..end]);
    }
}

/// The packet quoted in an ICMP error: where its headers are in the frame
/// and the flow it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quoted<A: Family> {
    /// Offset of its IP header.
    pub l3: usize,
    /// Offset of its L4 header.
    pub l4: usize,
    /// End of the quote (the quoted packet is usually cut short).
    pub end: usize,
    /// Its flow.
    pub tuple: FiveTuple<A>,
}

/// Reads the IP header and the first 8 L4 bytes quoted at `frame[at..end]`.
/// The quoted packet is usually truncated, so its total length is not
/// checked against the quote; only TCP and UDP are matched.
pub fn parse_quoted<A: Family>(frame: &[u8], at: usize, end: usize) -> Result<Quoted<A>, WireError> {
    let bad = WireError::IcmpQuoteMalformed;
    let q = frame.get(at..end).ok_or(bad)?;
    let (hlen, l4proto) = if A::V6 {
        if q.len() < ipv6::HEADER_LEN || q[0] >> 4 != 6 {
            return Err(bad);
        }
        (ipv6::HEADER_LEN, q[6])
    } else {
        if q.len() < ipv4::MIN_HEADER_LEN || q[0] >> 4 != 4 {
            return Err(bad);
        }
        let hlen = usize::from(q[0] & 0x0f) * 4;
        if hlen < ipv4::MIN_HEADER_LEN {
            return Err(bad);
        }
        (hlen, q[9])
    };
    if q.len() < hlen + 8 || !(l4proto == crate::ip::proto::TCP || l4proto == crate::ip::proto::UDP) {
        return Err(bad);
    }
    let l4 = &q[hlen..];
    let tuple = FiveTuple { src: A::ip_src(q), dst: A::ip_dst(q), sport: be16(l4, 0), dport: be16(l4, 2), proto: l4proto };
    Ok(Quoted { l3: at, l4: at + hlen, end, tuple })
}

/// True when `msg` (an ICMPv6 message) is neighbour discovery: a
/// solicitation or an advertisement.
#[inline]
pub fn is_neighbor_discovery(msg: &[u8]) -> bool {
    matches!(msg.first(), Some(&(v6::NEIGHBOR_SOLICIT | v6::NEIGHBOR_ADVERT)))
}

/// Turns the packet in `buf` into ICMP(v6) time exceeded from `from` back
/// to its sender (see [`error_v4`] / [`error_v6`]). False when it cannot.
pub fn time_exceeded<A: Family, B: PacketBuf>(buf: &mut B, ours: MacAddr, from: A) -> bool {
    match from.to_ip() {
        std::net::IpAddr::V6(a) => error_v6(buf, ours, a.into(), v6::TIME_EXCEEDED, 0, 0),
        std::net::IpAddr::V4(a) => error_v4(buf, ours, a.into(), v4::TIME_EXCEEDED, 0, 0),
    }
}

/// Turns the packet in `buf` into ICMP "fragmentation needed" (IPv4) or
/// ICMPv6 "packet too big" from `from`, announcing `mtu` (at least IPv6's
/// minimum of 1280). False when it cannot.
pub fn too_big<A: Family, B: PacketBuf>(buf: &mut B, ours: MacAddr, from: A, mtu: usize) -> bool {
    match from.to_ip() {
        std::net::IpAddr::V6(a) => {
            let mtu = crate::num::sat_u32(mtu.max(v6::MAX_ERROR_LEN));
            error_v6(buf, ours, a.into(), v6::PACKET_TOO_BIG, 0, mtu)
        }
        std::net::IpAddr::V4(a) => {
            // The next-hop MTU field is 16 bits (RFC 1191).
            let mtu = u32::from(crate::num::sat_u16(mtu));
            error_v4(buf, ours, a.into(), v4::DEST_UNREACH, v4::CODE_FRAG_NEEDED, mtu)
        }
    }
}

/// Replaces the packet in `buf` (Ethernet + IPv4, already validated) by an
/// ICMPv4 error about it, sent from `from` back to the packet's source:
/// `[eth][ip from->src][icmp ty/code rest][original ip header + data]`,
/// at most 576 bytes of IP. The Ethernet addresses are swapped (the error
/// goes back to the MAC the packet came from) with `ours` as source.
/// Returns false (buffer unchanged) when there is no headroom.
pub fn error_v4<B: PacketBuf>(buf: &mut B, ours: MacAddr, from: Ipv4, ty: u8, code: u8, rest: u32) -> bool {
    const GROW: usize = ipv4::MIN_HEADER_LEN + HEADER_LEN;
    let eth_len = ether::HEADER_LEN;
    let Ok(orig) = ipv4::Ipv4Header::parse(&buf.data()[eth_len..], false) else { return false };
    let peer_mac = ether::src(buf.data());
    let quoted = orig.total_len.min(v4::MAX_ERROR_LEN - GROW);
    buf.truncate(eth_len + orig.total_len);
    if !buf.prepend(GROW) {
        return false;
    }
    buf.truncate(eth_len + GROW + quoted);
    let d = buf.data_mut();
    ether::write_header(d, peer_mac, ours, ether::ethertype::IPV4);
    let total = crate::num::sat_u16(GROW + quoted);
    ipv4::write_header(&mut d[eth_len..], 0, total, 0, 0, 64, super::ip::proto::ICMP, from, orig.src);
    let msg = &mut d[eth_len + ipv4::MIN_HEADER_LEN..];
    msg[0] = ty;
    msg[1] = code;
    put32(msg, 4, rest);
    fill_checksum_v4(msg);
    true
}

/// The IPv6 counterpart of [`error_v4`]: at most 1280 bytes of IPv6.
pub fn error_v6<B: PacketBuf>(buf: &mut B, ours: MacAddr, from: Ipv6, ty: u8, code: u8, rest: u32) -> bool {
    const GROW: usize = ipv6::HEADER_LEN + HEADER_LEN;
    let eth_len = ether::HEADER_LEN;
    let d = buf.data();
    if d.len() < eth_len + ipv6::HEADER_LEN {
        return false;
    }
    let total_len = ipv6::HEADER_LEN + usize::from(be16(d, eth_len + 4));
    let src = ipv6::src(&d[eth_len..]);
    let peer_mac = ether::src(d);
    let quoted = total_len.min(d.len() - eth_len).min(v6::MAX_ERROR_LEN - GROW);
    buf.truncate(eth_len + total_len);
    if !buf.prepend(GROW) {
        return false;
    }
    buf.truncate(eth_len + GROW + quoted);
    let d = buf.data_mut();
    ether::write_header(d, peer_mac, ours, ether::ethertype::IPV6);
    let plen = crate::num::sat_u16(HEADER_LEN + quoted);
    ipv6::write_header(&mut d[eth_len..], 0, 0, plen, super::ip::proto::ICMPV6, 64, from, src);
    let msg = &mut d[eth_len + ipv6::HEADER_LEN..];
    msg[0] = ty;
    msg[1] = code;
    put32(msg, 4, rest);
    fill_checksum_v6(msg, from, src);
    true
}

/// A parsed neighbour solicitation or advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborMsg {
    /// The target address.
    pub target: Ipv6,
    /// The link-layer address option (source LLA for NS, target LLA for NA).
    pub lla: Option<MacAddr>,
    /// NA flags byte (R=0x80, S=0x40, O=0x20); 0 for NS.
    pub flags: u8,
}

/// Parses NS/NA (RFC 4861 4.3/4.4) including validation of the hop limit
/// (must be 255) and the option lengths.
pub fn parse_neighbor(msg: &[u8], hop_limit: u8) -> Result<NeighborMsg, WireError> {
    if hop_limit != 255 || msg.len() < 24 || msg[1] != 0 {
        return Err(WireError::NdMalformed);
    }
    let target = Ipv6(u128::from_be_bytes(msg[8..24].try_into().map_err(|_| WireError::NdMalformed)?));
    let want_opt = if msg[0] == v6::NEIGHBOR_SOLICIT { 1 } else { 2 };
    let mut lla = None;
    let mut off = 24;
    while off < msg.len() {
        if off + 2 > msg.len() {
            return Err(WireError::NdMalformed);
        }
        let len = usize::from(msg[off + 1]) * 8;
        if len == 0 || off + len > msg.len() {
            return Err(WireError::NdMalformed);
        }
        if msg[off] == want_opt && len == 8 {
            lla = Some(MacAddr([msg[off + 2], msg[off + 3], msg[off + 4], msg[off + 5], msg[off + 6], msg[off + 7]]));
        }
        off += len;
    }
    let flags = if msg[0] == v6::NEIGHBOR_ADVERT { msg[4] } else { 0 };
    Ok(NeighborMsg { target, lla, flags })
}

/// Writes a whole Ethernet + IPv6 + neighbour advertisement frame (solicited,
/// override, with the target link-layer option) into `frame`; returns its
/// length (86 bytes).
pub fn write_neighbor_advert(frame: &mut [u8], ours: MacAddr, to_mac: MacAddr, target: Ipv6, to: Ipv6, solicited: bool) -> usize {
    const MSG: usize = 32;
    let total = ether::HEADER_LEN + ipv6::HEADER_LEN + MSG;
    ether::write_header(frame, to_mac, ours, ether::ethertype::IPV6);
    ipv6::write_header(&mut frame[ether::HEADER_LEN..], 0, 0, 32, super::ip::proto::ICMPV6, 255, target, to);
    let msg = &mut frame[ether::HEADER_LEN + ipv6::HEADER_LEN..total];
    msg.fill(0);
    msg[0] = v6::NEIGHBOR_ADVERT;
    msg[4] = if solicited { 0x60 } else { 0x20 };
    msg[8..24].copy_from_slice(&target.to_be_bytes());
    msg[24] = 2;
    msg[25] = 1;
    msg[26..32].copy_from_slice(&ours.0);
    fill_checksum_v6(msg, target, to);
    total
}

/// Writes a neighbour solicitation for `target` from `src` (multicast to its
/// solicited-node group unless `unicast_mac` is given, to re-confirm a known
/// neighbour); returns the frame length (86 bytes).
pub fn write_neighbor_solicit(frame: &mut [u8], ours: MacAddr, src: Ipv6, target: Ipv6, unicast_mac: Option<MacAddr>) -> usize {
    const MSG: usize = 32;
    let total = ether::HEADER_LEN + ipv6::HEADER_LEN + MSG;
    let (dst_ip, dst_mac) = match unicast_mac {
        Some(m) => (target, m),
        None => {
            let g = ipv6::solicited_node(target);
            (g, MacAddr::ipv6_multicast(&g.to_be_bytes()))
        }
    };
    ether::write_header(frame, dst_mac, ours, ether::ethertype::IPV6);
    ipv6::write_header(&mut frame[ether::HEADER_LEN..], 0, 0, 32, super::ip::proto::ICMPV6, 255, src, dst_ip);
    let msg = &mut frame[ether::HEADER_LEN + ipv6::HEADER_LEN..total];
    msg.fill(0);
    msg[0] = v6::NEIGHBOR_SOLICIT;
    msg[8..24].copy_from_slice(&target.to_be_bytes());
    msg[24] = 1;
    msg[25] = 1;
    msg[26..32].copy_from_slice(&ours.0);
    fill_checksum_v6(msg, src, dst_ip);
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{Ipv4, Ipv6};
    use crate::VecBuf;

    fn echo_request_v4() -> Vec<u8> {
        let mut ip = vec![0u8; 20 + 12];
        ipv4::write_header(&mut ip, 0, 32, 1, 0, 64, 1, Ipv4(0xc612_0002), Ipv4(0xc612_0064));
        let msg = &mut ip[20..];
        msg[0] = v4::ECHO_REQUEST;
        put16(msg, 4, 0x1234);
        put16(msg, 6, 1);
        msg[8..12].copy_from_slice(b"ping");
        fill_checksum_v4(msg);
        ip
    }

    #[test]
    fn echo_reply_v4_in_place() {
        let mut ip = echo_request_v4();
        let h = IcmpHeader::parse_v4(&ip[20..]).unwrap();
        assert_eq!(h.ty, v4::ECHO_REQUEST);
        echo_reply_v4(&mut ip, 20);
        let iph = ipv4::Ipv4Header::parse(&ip, true).unwrap();
        assert_eq!((iph.src, iph.dst), (Ipv4(0xc612_0064), Ipv4(0xc612_0002)));
        let r = IcmpHeader::parse_v4(&ip[20..]).unwrap();
        assert_eq!(r.ty, v4::ECHO_REPLY);
        assert_eq!(r.rest, 0x1234_0001);
        assert_eq!(&ip[28..32], b"ping");
    }

    #[test]
    fn icmp_bad_checksum_and_truncation() {
        let mut ip = echo_request_v4();
        ip[30] ^= 0xff;
        assert_eq!(IcmpHeader::parse_v4(&ip[20..]), Err(WireError::IcmpBadChecksum));
        assert_eq!(IcmpHeader::parse_v4(&ip[20..27]), Err(WireError::IcmpTruncated));
    }

    #[test]
    fn echo_reply_v6_in_place() {
        let (a, b) = (Ipv6(0x2001_0db8u128 << 96 | 2), Ipv6(0x2001_0db8u128 << 96 | 0x100));
        let mut ip = vec![0u8; 40 + 12];
        ipv6::write_header(&mut ip, 0, 0, 12, 58, 64, a, b);
        ip[40] = v6::ECHO_REQUEST;
        fill_checksum_v6(&mut ip[40..], a, b);
        assert!(IcmpHeader::parse_v6(&ip[40..], a, b).is_ok());
        echo_reply_v6(&mut ip, 40);
        let r = IcmpHeader::parse_v6(&ip[40..], b, a).unwrap();
        assert_eq!(r.ty, v6::ECHO_REPLY);
    }

    #[test]
    fn builds_time_exceeded_v4() {
        let ours = MacAddr([2, 0, 0, 0, 0, 1]);
        let peer = MacAddr([2, 0, 0, 0, 0, 2]);
        let mut frame = vec![0u8; 14];
        ether::write_header(&mut frame, ours, peer, ether::ethertype::IPV4);
        frame.extend_from_slice(&echo_request_v4());
        frame.extend_from_slice(&[0; 10]); // padding must not be quoted
        let mut b = VecBuf::new(&frame);
        assert!(error_v4(&mut b, ours, Ipv4(0xc612_0001), v4::TIME_EXCEEDED, 0, 0));
        let d = b.data();
        assert_eq!(ether::dst(d), peer);
        let ip = ipv4::Ipv4Header::parse(&d[14..], true).unwrap();
        assert_eq!((ip.src, ip.dst, ip.proto, ip.total_len), (Ipv4(0xc612_0001), Ipv4(0xc612_0002), 1, 20 + 8 + 32));
        let h = IcmpHeader::parse_v4(&d[34..]).unwrap();
        assert_eq!(h.ty, v4::TIME_EXCEEDED);
        assert_eq!(&d[42..74], &echo_request_v4()[..]);
        assert_eq!(d.len(), 14 + 60);
    }

    #[test]
    fn error_v4_caps_at_576() {
        let mut ip = vec![0u8; 1400];
        ipv4::write_header(&mut ip, 0, 1400, 1, ipv4::FLAG_DF, 64, 6, Ipv4(1), Ipv4(2));
        let mut frame = vec![0u8; 14];
        frame.extend_from_slice(&ip);
        let mut b = VecBuf::new(&frame);
        assert!(error_v4(&mut b, MacAddr::ZERO, Ipv4(3), v4::DEST_UNREACH, v4::CODE_FRAG_NEEDED, 1480));
        assert_eq!(b.len(), 14 + 576);
        let iph = ipv4::Ipv4Header::parse(&b.data()[14..], true).unwrap();
        assert_eq!(iph.total_len, 576);
        assert!(IcmpHeader::parse_v4(&b.data()[34..]).is_ok());
    }

    #[test]
    fn builds_packet_too_big_v6() {
        let (a, b) = (Ipv6(0x2001_0db8u128 << 96 | 2), Ipv6(0x2001_0db8u128 << 96 | 0x100));
        let mut frame = vec![0u8; 14 + 40 + 1400];
        ipv6::write_header(&mut frame[14..], 0, 0, 1400, 6, 64, a, b);
        let mut buf = VecBuf::new(&frame);
        assert!(error_v6(&mut buf, MacAddr::ZERO, b, v6::PACKET_TOO_BIG, 0, 1280));
        assert_eq!(buf.len(), 14 + 1280);
        let ip = ipv6::Ipv6Header::parse(&buf.data()[14..]).unwrap();
        assert_eq!((ip.src, ip.dst, ip.proto), (b, a, 58));
        let h = IcmpHeader::parse_v6(&buf.data()[54..], b, a).unwrap();
        assert_eq!((h.ty, h.rest), (v6::PACKET_TOO_BIG, 1280));
    }

    #[test]
    fn neighbor_roundtrip() {
        let ours = MacAddr([2, 0, 0, 0, 0, 1]);
        let (src, target) = (Ipv6(0x2001_0db8u128 << 96 | 1), Ipv6(0x2001_0db8u128 << 96 | 0x11));
        let mut f = [0xa5u8; 128];
        let n = write_neighbor_solicit(&mut f, ours, src, target, None);
        let ip = ipv6::Ipv6Header::parse(&f[14..n]).unwrap();
        assert_eq!(ip.dst, ipv6::solicited_node(target));
        assert_eq!(ether::dst(&f), MacAddr::ipv6_multicast(&ip.dst.to_be_bytes()));
        assert!(IcmpHeader::parse_v6(&f[54..n], ip.src, ip.dst).is_ok());
        let ns = parse_neighbor(&f[54..n], ip.hop_limit).unwrap();
        assert_eq!((ns.target, ns.lla), (target, Some(ours)));

        let n = write_neighbor_advert(&mut f, ours, MacAddr([2; 6]), target, src, true);
        let ip = ipv6::Ipv6Header::parse(&f[14..n]).unwrap();
        assert!(IcmpHeader::parse_v6(&f[54..n], ip.src, ip.dst).is_ok());
        let na = parse_neighbor(&f[54..n], 255).unwrap();
        assert_eq!((na.target, na.lla, na.flags), (target, Some(ours), 0x60));
        assert_eq!(parse_neighbor(&f[54..n], 64), Err(WireError::NdMalformed));
        let mut bad = f;
        bad[54 + 25] = 0; // zero-length option
        assert_eq!(parse_neighbor(&bad[54..n], 255), Err(WireError::NdMalformed));
    }
}
