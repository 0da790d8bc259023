//! Reading a frame's flow ahead of validating it, and the fast path's
//! one-look validation of a plain IPv4 TCP/UDP frame.
//!
//! A worker reads the 5-tuple of every packet of a burst before processing
//! any ([`peek_flow`]), to prefetch their sessions; nothing is trusted from
//! that read, and each packet is validated when it is processed - in full
//! by the general path, or by [`plain_ipv4`] or [`plain_ipv6`] when the
//! fast path takes it.
//! Both read fixed offsets through fixed-size arrays, so the compiler
//! proves every bound once.
use crate::addr::{Ipv4, Ipv6};
use crate::ip::proto;
use crate::l4::FiveTuple;
use crate::{checksum, ether, ipv4, ipv6, MacAddr};

/// The flow a frame seems to belong to (unvalidated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeekedFlow {
    /// An IPv4 TCP or UDP packet without options, not a fragment.
    V4(FiveTuple<Ipv4>),
    /// An IPv6 TCP or UDP packet without extension headers.
    V6(FiveTuple<Ipv6>),
}

/// Reads the 5-tuple of a plain IPv4 (no options, not a fragment) or IPv6
/// (no extension header) TCP/UDP frame from fixed offsets, or None.
#[inline(always)]
pub fn peek_flow(frame: &[u8]) -> Option<PeekedFlow> {
    let h: &[u8; 38] = frame.first_chunk()?;
    let be16 = |a: [u8; 2]| u16::from_be_bytes(a);
    let ethertype = be16([h[12], h[13]]);
    if ethertype == ether::ethertype::IPV4 && h[14] == 0x45 {
        // Version 4, five-word header; TCP or UDP; MF and offset zero.
        let l4proto = h[23];
        let fragment = be16([h[20], h[21]]) & (ipv4::FLAG_MF | ipv4::OFFSET_MASK) != 0;
        if (l4proto != proto::TCP && l4proto != proto::UDP) || fragment {
            return None;
        }
        return Some(PeekedFlow::V4(FiveTuple {
            src: Ipv4(u32::from_be_bytes([h[26], h[27], h[28], h[29]])),
            dst: Ipv4(u32::from_be_bytes([h[30], h[31], h[32], h[33]])),
            sport: be16([h[34], h[35]]),
            dport: be16([h[36], h[37]]),
            proto: l4proto,
        }));
    }
    if ethertype == ether::ethertype::IPV6 && h[14] >> 4 == 6 {
        let h: &[u8; 58] = frame.first_chunk()?;
        let l4proto = h[20];
        if l4proto != proto::TCP && l4proto != proto::UDP {
            return None;
        }
        let a = |at: usize| {
            let mut b = [0u8; 16];
            b.copy_from_slice(&h[at..at + 16]);
            Ipv6(u128::from_be_bytes(b))
        };
        return Some(PeekedFlow::V6(FiveTuple {
            src: a(22),
            dst: a(38),
            sport: be16([h[54], h[55]]),
            dport: be16([h[56], h[57]]),
            proto: l4proto,
        }));
    }
    None
}

/// What the fast path needs of a plain IPv4 or IPv6 TCP/UDP frame it
/// validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plain {
    /// End of the IP packet in the frame (what follows is padding).
    pub end: usize,
    /// TCP flags (0 for UDP).
    pub tcp_flags: u8,
}

/// Offset of the L4 header in a plain IPv4 frame.
pub const PLAIN_IPV4_L4: usize = ether::HEADER_LEN + ipv4::MIN_HEADER_LEN;
/// Offset of the L4 header in a plain IPv6 frame (no extension header).
pub const PLAIN_IPV6_L4: usize = ether::HEADER_LEN + ipv6::HEADER_LEN;

/// Validates, in one look, a frame [`peek_flow`] read as IPv4 TCP/UDP of
/// protocol `l4proto`: addressed to `to`; total length inside the frame;
/// TTL above 1 (it will be decremented); header checksum right (summed
/// here unless `csum_verified`: the NIC found it right); a destination
/// neither multicast nor broadcast; a TCP data offset inside the packet or
/// a UDP length matching it. None sends the frame to the general path,
/// which says why.
#[inline(always)]
pub fn plain_ipv4(frame: &[u8], to: MacAddr, l4proto: u8, csum_verified: bool) -> Option<Plain> {
    let f: &[u8; 42] = frame.first_chunk()?;
    if f[0..6] != to.0 {
        return None;
    }
    let tl = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let ip: &[u8; 20] = f[14..34].try_into().ok()?;
    if tl < 28 || ether::HEADER_LEN + tl > frame.len() || ip[8] <= 1 {
        return None;
    }
    if !csum_verified && !checksum::ipv4_header_ok(ip) {
        return None;
    }
    if Ipv4(u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]])).is_multicast_or_broadcast() {
        return None;
    }
    let end = ether::HEADER_LEN + tl;
    let tcp_flags = if l4proto == proto::TCP {
        let t: &[u8; 54] = frame.first_chunk()?;
        let hl = usize::from(t[46] >> 4) * 4;
        if tl < 40 || hl < 20 || PLAIN_IPV4_L4 + hl > end {
            return None;
        }
        t[47]
    } else {
        if usize::from(u16::from_be_bytes([f[38], f[39]])) != tl - 20 {
            return None;
        }
        0
    };
    Some(Plain { end, tcp_flags })
}

/// Validates, in one look, a frame [`peek_flow`] read as IPv6 TCP/UDP of
/// protocol `l4proto` (so with no extension header): addressed to `to`;
/// payload inside the frame; hop limit above 1; a destination that is not
/// multicast; a TCP data offset inside the packet, or a UDP length matching
/// it and a checksum present (mandatory over IPv6). None sends the frame to
/// the general path, which says why.
#[inline(always)]
pub fn plain_ipv6(frame: &[u8], to: MacAddr, l4proto: u8) -> Option<Plain> {
    const L4: usize = PLAIN_IPV6_L4;
    let f: &[u8; L4 + 8] = frame.first_chunk()?;
    if f[0..6] != to.0 {
        return None;
    }
    let payload = usize::from(u16::from_be_bytes([f[18], f[19]]));
    let end = L4 + payload;
    if end > frame.len() || f[ether::HEADER_LEN + 7] <= 1 || f[ether::HEADER_LEN + 24] == 0xff {
        return None;
    }
    let tcp_flags = if l4proto == proto::TCP {
        let t: &[u8; L4 + 20] = frame.first_chunk()?;
        let hl = usize::from(t[L4 + 12] >> 4) * 4;
        if payload < 20 || hl < 20 || L4 + hl > end {
            return None;
        }
        t[L4 + 13]
    } else {
        if payload < 8 || usize::from(u16::from_be_bytes([f[L4 + 4], f[L4 + 5]])) != payload || f[L4 + 6..L4 + 8] == [0, 0] {
            return None;
        }
        0
    };
    Some(Plain { end, tcp_flags })
}
