//! IPv6 headers (RFC 8200) and the extension-header policy.
//!
//! Policy, applied by [`Ipv6Header::parse`]:
//! * Destination options (60) are skipped, so the L4 header is found after
//!   them; they are forwarded unchanged.
//! * Fragment headers (44) make the packet a fragment ([`WireError::Fragment`]).
//! * Hop-by-hop (0) and routing (43) headers, AH/ESP and unknown headers are
//!   refused ([`WireError::Ipv6ExtHeader`]): a balancer must not act on a
//!   routing header, and rvs has no service for AH/ESP.
//! * At most [`MAX_EXT_HEADERS`] headers are walked: a long chain is refused.
use super::{be16, checksum, put16};
use crate::addr::Ipv6;
use crate::WireError;

/// Fixed header length.
pub const HEADER_LEN: usize = 40;
/// Longest extension chain walked before giving up.
pub const MAX_EXT_HEADERS: usize = 4;

/// Next-header values rvs names.
pub mod nh {
    /// Hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// Routing header.
    pub const ROUTING: u8 = 43;
    /// Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Destination options.
    pub const DEST_OPTS: u8 = 60;
    /// No next header.
    pub const NONE: u8 = 59;
}

/// The fields of a validated IPv6 header; offsets relative to its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Header {
    /// Header length including skipped extension headers (offset of L4).
    pub header_len: usize,
    /// Total length: 40 + payload length (bytes past it are padding).
    pub total_len: usize,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Hop limit.
    pub hop_limit: u8,
    /// The upper-layer protocol after the extension chain.
    pub proto: u8,
    /// Source address.
    pub src: Ipv6,
    /// Destination address.
    pub dst: Ipv6,
}

impl Ipv6Header {
    /// Validates the header and walks the extension chain per the module policy.
    #[inline]
    pub fn parse(p: &[u8]) -> Result<Ipv6Header, WireError> {
        let Some(h) = p.get(..HEADER_LEN) else { return Err(WireError::Ipv6Truncated) };
        if h[0] >> 4 != 6 {
            return Err(WireError::Ipv6BadVersion);
        }
        let total_len = HEADER_LEN + usize::from(be16(h, 4));
        if total_len > p.len() {
            return Err(WireError::Ipv6Truncated);
        }
        let mut proto = h[6];
        let mut off = HEADER_LEN;
        let mut walked = 0;
        loop {
            match proto {
                nh::DEST_OPTS => {
                    walked += 1;
                    if walked > MAX_EXT_HEADERS || off + 8 > total_len {
                        return Err(WireError::Ipv6ExtHeader);
                    }
                    let len = (usize::from(p[off + 1]) + 1) * 8;
                    if off + len > total_len {
                        return Err(WireError::Ipv6ExtHeader);
                    }
                    proto = p[off];
                    off += len;
                }
                nh::FRAGMENT => return Err(WireError::Fragment),
                nh::HOP_BY_HOP | nh::ROUTING | 50 | 51 | 135 | 139 | 140 | 253 | 254 => return Err(WireError::Ipv6ExtHeader),
                _ => break,
            }
        }
        let src = Ipv6(u128::from_be_bytes(h[8..24].try_into().map_err(|_| WireError::Ipv6Truncated)?));
        let dst = Ipv6(u128::from_be_bytes(h[24..40].try_into().map_err(|_| WireError::Ipv6Truncated)?));
        Ok(Ipv6Header {
            header_len: off,
            total_len,
            traffic_class: ((h[0] & 0x0f) << 4) | (h[1] >> 4),
            flow_label: (u32::from(h[1] & 0x0f) << 16) | u32::from(be16(h, 2)),
            hop_limit: h[7],
            proto,
            src,
            dst,
        })
    }
}

/// True for a source no host may use: unspecified, loopback, multicast.
#[inline]
pub fn is_martian_source(Ipv6(a): Ipv6) -> bool {
    a == 0 || a == 1 || (a >> 120) == 0xff
}

/// True for link-local unicast (fe80::/10).
#[inline]
pub fn is_link_local(Ipv6(a): Ipv6) -> bool {
    (a >> 118) == 0x3fa
}

/// The solicited-node multicast group of `a` (RFC 4291 2.7.1).
#[inline]
pub fn solicited_node(Ipv6(a): Ipv6) -> Ipv6 {
    Ipv6(0xff02_0000_0000_0000_0000_0001_ff00_0000 | (a & 0x00ff_ffff))
}

/// The source address of a validated header.
#[inline(always)]
pub fn src(h: &[u8]) -> Ipv6 {
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[8..24]);
    Ipv6(u128::from_be_bytes(b))
}

/// The destination address of a validated header.
#[inline(always)]
pub fn dst(h: &[u8]) -> Ipv6 {
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[24..40]);
    Ipv6(u128::from_be_bytes(b))
}

/// The traffic class of a validated header.
#[inline(always)]
pub fn traffic_class(h: &[u8]) -> u8 {
    ((h[0] & 0x0f) << 4) | (h[1] >> 4)
}

/// The all-nodes link-local multicast group, ff02::1.
pub const ALL_NODES: Ipv6 = Ipv6(0xff02 << 112 | 1);

/// True for a packet (at the start of `ip`, at least a fixed header plus
/// one byte) to a multicast group that is not neighbour discovery: rvs
/// listens to solicitations and unsolicited advertisements only (no
/// extension header before them), and to no other multicast.
#[inline]
pub fn is_other_multicast(ip: &[u8]) -> bool {
    let Some(h) = ip.first_chunk::<{ HEADER_LEN + 1 }>() else { return false };
    let nd =
        h[6] == crate::ip::proto::ICMPV6 && matches!(h[HEADER_LEN], crate::icmp::v6::NEIGHBOR_SOLICIT | crate::icmp::v6::NEIGHBOR_ADVERT);
    h[0] >> 4 == 6 && h[24] == 0xff && !nd
}

/// The hop limit of a validated header.
#[inline(always)]
pub fn hop_limit(h: &[u8]) -> u8 {
    h[7]
}

/// Rewrites the source address (no IPv6 header checksum exists).
#[inline(always)]
pub fn set_src(h: &mut [u8], new: Ipv6) {
    h[8..24].copy_from_slice(&new.0.to_be_bytes());
}

/// Rewrites the destination address.
#[inline(always)]
pub fn set_dst(h: &mut [u8], new: Ipv6) {
    h[24..40].copy_from_slice(&new.0.to_be_bytes());
}

/// Decrements the hop limit (caller checked it is above 1).
#[inline]
pub fn decrement_hop_limit(h: &mut [u8]) {
    h[7] = h[7].wrapping_sub(1);
}

/// Writes a fixed header with no extension headers.
pub fn write_header(
    h: &mut [u8],
    traffic_class: u8,
    flow_label: u32,
    payload_len: u16,
    next_header: u8,
    hop_limit: u8,
    src: Ipv6,
    dst: Ipv6,
) {
    h[0] = 0x60 | (traffic_class >> 4);
    let fl_hi = ((flow_label >> 16) & 0x0f) as u8;
    h[1] = (traffic_class << 4) | fl_hi;
    #[expect(clippy::cast_possible_truncation, reason = "low 16 bits of the flow label")]
    put16(h, 2, flow_label as u16);
    put16(h, 4, payload_len);
    h[6] = next_header;
    h[7] = hop_limit;
    set_src(h, src);
    set_dst(h, dst);
}

/// Unfolded pseudo-header sum for an L4 segment of `l4_len` bytes.
#[inline]
pub fn pseudo(src: Ipv6, dst: Ipv6, proto: u8, l4_len: u32) -> u64 {
    checksum::pseudo_v6(&src.0.to_be_bytes(), &dst.0.to_be_bytes(), proto, l4_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Ipv6;

    fn packet(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; HEADER_LEN];
        #[expect(clippy::cast_possible_truncation, reason = "test payloads are small")]
        write_header(&mut p, 0x12, 0xabcde, payload.len() as u16, next, 64, Ipv6(0x2001_0db8 << 96 | 2), Ipv6(0x2001_0db8 << 96 | 0x100));
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn parses_plain_header() {
        let p = packet(6, &[0; 20]);
        let h = Ipv6Header::parse(&p).unwrap();
        assert_eq!(h.header_len, 40);
        assert_eq!(h.total_len, 60);
        assert_eq!(h.proto, 6);
        assert_eq!(h.traffic_class, 0x12);
        assert_eq!(h.flow_label, 0xabcde);
        assert_eq!(h.hop_limit, 64);
        assert_eq!(h.dst.0 & 0xffff, 0x100);
    }

    #[test]
    fn skips_destination_options() {
        let mut payload = vec![17, 0, 1, 4, 0, 0, 0, 0]; // dest opts (8 bytes) then UDP
        payload.extend_from_slice(&[0; 8]);
        let p = packet(nh::DEST_OPTS, &payload);
        let h = Ipv6Header::parse(&p).unwrap();
        assert_eq!(h.header_len, 48);
        assert_eq!(h.proto, 17);
    }

    #[test]
    fn refuses_policy_headers_and_bad_chains() {
        assert_eq!(Ipv6Header::parse(&packet(nh::FRAGMENT, &[6, 0, 0, 1, 0, 0, 0, 0])), Err(WireError::Fragment));
        assert_eq!(Ipv6Header::parse(&packet(nh::ROUTING, &[6, 0, 0, 0, 0, 0, 0, 0])), Err(WireError::Ipv6ExtHeader));
        assert_eq!(Ipv6Header::parse(&packet(nh::HOP_BY_HOP, &[6, 0, 0, 0, 0, 0, 0, 0])), Err(WireError::Ipv6ExtHeader));
        // Dest-opts whose length runs past the payload.
        assert_eq!(Ipv6Header::parse(&packet(nh::DEST_OPTS, &[6, 4, 0, 0, 0, 0, 0, 0])), Err(WireError::Ipv6ExtHeader));
        // A chain of dest-opts longer than the limit.
        let mut chain = Vec::new();
        for _ in 0..5 {
            chain.extend_from_slice(&[nh::DEST_OPTS, 0, 1, 4, 0, 0, 0, 0]);
        }
        assert_eq!(Ipv6Header::parse(&packet(nh::DEST_OPTS, &chain)), Err(WireError::Ipv6ExtHeader));
        // Truncated: payload length past the buffer, short header, bad version.
        let mut p = packet(6, &[0; 20]);
        p.truncate(50);
        assert_eq!(Ipv6Header::parse(&p), Err(WireError::Ipv6Truncated));
        assert_eq!(Ipv6Header::parse(&p[..39]), Err(WireError::Ipv6Truncated));
        let mut p = packet(6, &[0; 20]);
        p[0] = 0x40;
        assert_eq!(Ipv6Header::parse(&p), Err(WireError::Ipv6BadVersion));
    }

    #[test]
    fn address_classes() {
        assert!(is_martian_source(Ipv6(0)));
        assert!(is_martian_source(Ipv6(1)));
        assert!(is_martian_source(Ipv6(0xff02 << 112)));
        assert!(!is_martian_source(Ipv6(0x2001_0db8 << 96)));
        assert!(is_link_local(Ipv6(0xfe80 << 112 | 1)));
        assert!(!is_link_local(Ipv6(0x2001_0db8 << 96)));
        assert_eq!(solicited_node(Ipv6(0x2001_0db8_0000_0000_0000_0000_0012_3456)), Ipv6(0xff02_0000_0000_0000_0000_0001_ff12_3456));
    }
}
