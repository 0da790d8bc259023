//! IPv4 headers (RFC 791): validation, field access and NAT-safe updates.
use super::{be16, be32, checksum, put16, put32};
use crate::addr::Ipv4;
use crate::WireError;

/// Minimum (option-less) header length.
pub const MIN_HEADER_LEN: usize = 20;
/// The DF flag within the flags/fragment-offset field.
pub const FLAG_DF: u16 = 0x4000;
/// The MF flag.
pub const FLAG_MF: u16 = 0x2000;
/// Fragment offset mask.
pub const OFFSET_MASK: u16 = 0x1fff;

/// The fields of a validated IPv4 header. Offsets are relative to the start
/// of the IPv4 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Header length in bytes (IHL x 4), 20..=60.
    pub header_len: usize,
    /// Total length in bytes (header + payload); the bytes past it in the
    /// buffer are Ethernet padding.
    pub total_len: usize,
    /// Type of service / DSCP+ECN.
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Flags and fragment offset, as on the wire.
    pub flags_frag: u16,
    /// Time to live.
    pub ttl: u8,
    /// Payload protocol.
    pub proto: u8,
    /// Source address.
    pub src: Ipv4,
    /// Destination address.
    pub dst: Ipv4,
}

impl Ipv4Header {
    /// Validates the header at the start of `p` (which may carry trailing
    /// Ethernet padding). With `verify_checksum`, a header that does not sum
    /// to zero is refused.
    #[inline]
    pub fn parse(p: &[u8], verify_checksum: bool) -> Result<Ipv4Header, WireError> {
        let Some(h) = p.get(..MIN_HEADER_LEN) else { return Err(WireError::Ipv4Truncated) };
        if h[0] >> 4 != 4 {
            return Err(WireError::Ipv4BadVersion);
        }
        let header_len = usize::from(h[0] & 0x0f) * 4;
        if header_len < MIN_HEADER_LEN || header_len > p.len() {
            return Err(WireError::Ipv4BadHeaderLen);
        }
        let total_len = usize::from(be16(h, 2));
        if total_len < header_len || total_len > p.len() {
            return Err(WireError::Ipv4BadTotalLen);
        }
        if verify_checksum {
            let sums_to_zero = match h.first_chunk::<MIN_HEADER_LEN>() {
                Some(h20) if header_len == MIN_HEADER_LEN => checksum::ipv4_header_ok(h20),
                _ => checksum::checksum(&p[..header_len]) == 0,
            };
            if !sums_to_zero {
                return Err(WireError::Ipv4BadChecksum);
            }
        }
        Ok(Ipv4Header {
            header_len,
            total_len,
            tos: h[1],
            ident: be16(h, 4),
            flags_frag: be16(h, 6),
            ttl: h[8],
            proto: h[9],
            src: Ipv4(be32(h, 12)),
            dst: Ipv4(be32(h, 16)),
        })
    }

    /// True for any fragment (first, middle or last).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_frag & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// True when the DF bit is set.
    #[inline]
    pub fn dont_fragment(&self) -> bool {
        self.flags_frag & FLAG_DF != 0
    }
}

/// True for a source address no host may use (RFC 1122 3.2.1.3 / RFC 1812
/// 5.3.7): unspecified, loopback, multicast, class E and limited broadcast.
#[inline]
pub fn is_martian_source(a: Ipv4) -> bool {
    let first = a.0 >> 24;
    a.0 == 0 || first == 127 || first >= 224
}

/// The source address of a validated header.
#[inline(always)]
pub fn src(h: &[u8]) -> Ipv4 {
    Ipv4(be32(h, 12))
}

/// The destination address of a validated header.
#[inline(always)]
pub fn dst(h: &[u8]) -> Ipv4 {
    Ipv4(be32(h, 16))
}

/// The TOS byte of a validated header.
#[inline(always)]
pub fn tos(h: &[u8]) -> u8 {
    h[1]
}

/// True when the DF flag of a validated header is set.
#[inline(always)]
pub fn dont_fragment(h: &[u8]) -> bool {
    be16(h, 6) & FLAG_DF != 0
}

/// The TTL of a validated header.
#[inline(always)]
pub fn ttl(h: &[u8]) -> u8 {
    h[8]
}

/// Rewrites the source and/or destination address and, with `ttl`,
/// decrements the TTL (the caller checked it is above 1): the header
/// checksum is updated once for all of them (RFC 1624, [`checksum::apply`]).
/// Returns the addresses' own term, which a TCP or UDP checksum takes too
/// (its pseudo-header holds them).
#[inline(always)]
pub fn rewrite(h: &mut [u8], src: Option<Ipv4>, dst: Option<Ipv4>, ttl: bool) -> u64 {
    let mut addrs = 0;
    if let Some(a) = src {
        addrs += checksum::delta32(be32(h, 12), a.0);
        put32(h, 12, a.0);
    }
    if let Some(a) = dst {
        addrs += checksum::delta32(be32(h, 16), a.0);
        put32(h, 16, a.0);
    }
    let mut delta = addrs;
    if ttl {
        let old = be16(h, 8);
        h[8] = h[8].wrapping_sub(1);
        delta += checksum::delta16(old, be16(h, 8));
    }
    let c = checksum::apply(be16(h, 10), delta);
    put16(h, 10, c);
    addrs
}

/// Decrements the TTL by one, updating the checksum. The caller has
/// checked that the TTL is above 1.
#[inline(always)]
pub fn decrement_ttl(h: &mut [u8]) {
    let _ = rewrite(h, None, None, true);
}

/// Writes a 20-byte header without options and computes its checksum.
pub fn write_header(h: &mut [u8], tos: u8, total_len: u16, ident: u16, flags_frag: u16, ttl: u8, proto: u8, src: Ipv4, dst: Ipv4) {
    h[0] = 0x45;
    h[1] = tos;
    put16(h, 2, total_len);
    put16(h, 4, ident);
    put16(h, 6, flags_frag);
    h[8] = ttl;
    h[9] = proto;
    put16(h, 10, 0);
    put32(h, 12, src.0);
    put32(h, 16, dst.0);
    let c = checksum::checksum(&h[..MIN_HEADER_LEN]);
    put16(h, 10, c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Ipv4;

    /// 198.18.0.2 -> 198.18.0.100, TCP, 40 bytes total, DF, TTL 64.
    pub(crate) const HDR: [u8; 20] =
        [0x45, 0x00, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 198, 18, 0, 2, 198, 18, 0, 100];

    fn valid() -> Vec<u8> {
        let mut h = HDR.to_vec();
        let c = checksum::checksum(&h);
        put16(&mut h, 10, c);
        h.resize(40, 0);
        h
    }

    #[test]
    fn parses_valid_header_and_ignores_padding() {
        let mut p = valid();
        p.extend_from_slice(&[0; 6]); // Ethernet padding
        let h = Ipv4Header::parse(&p, true).unwrap();
        assert_eq!(h.header_len, 20);
        assert_eq!(h.total_len, 40);
        assert_eq!(h.proto, 6);
        assert_eq!(h.src, Ipv4(u32::from_be_bytes([198, 18, 0, 2])));
        assert!(h.dont_fragment());
        assert!(!h.is_fragment());
    }

    #[test]
    fn refuses_each_malformation() {
        let p = valid();
        assert_eq!(Ipv4Header::parse(&p[..19], true), Err(WireError::Ipv4Truncated));
        let mut v = p.clone();
        v[0] = 0x65;
        assert_eq!(Ipv4Header::parse(&v, false), Err(WireError::Ipv4BadVersion));
        let mut v = p.clone();
        v[0] = 0x44; // IHL 4
        assert_eq!(Ipv4Header::parse(&v, false), Err(WireError::Ipv4BadHeaderLen));
        let mut v = p.clone();
        v[0] = 0x4f; // IHL 15 = 60 bytes > 40
        v.truncate(40);
        assert_eq!(Ipv4Header::parse(&v[..30], false), Err(WireError::Ipv4BadHeaderLen));
        let mut v = p.clone();
        put16(&mut v, 2, 41); // total length past the end
        assert_eq!(Ipv4Header::parse(&v, false), Err(WireError::Ipv4BadTotalLen));
        let mut v = p.clone();
        put16(&mut v, 2, 19); // total length below the header
        assert_eq!(Ipv4Header::parse(&v, false), Err(WireError::Ipv4BadTotalLen));
        let mut v = p.clone();
        v[11] ^= 1;
        assert_eq!(Ipv4Header::parse(&v, true), Err(WireError::Ipv4BadChecksum));
        assert!(Ipv4Header::parse(&v, false).is_ok());
    }

    #[test]
    fn rewrites_keep_checksum_valid() {
        let mut p = valid();
        let _ = rewrite(&mut p, None, Some(Ipv4(u32::from_be_bytes([198, 18, 1, 11]))), false);
        let _ = rewrite(&mut p, Some(Ipv4(u32::from_be_bytes([198, 18, 1, 1]))), None, false);
        decrement_ttl(&mut p);
        let h = Ipv4Header::parse(&p, true).unwrap();
        assert_eq!(h.ttl, 63);
        assert_eq!(h.dst, Ipv4(u32::from_be_bytes([198, 18, 1, 11])));
        // All at once, one checksum update.
        let mut q = valid();
        let _ = rewrite(&mut q, Some(Ipv4(u32::from_be_bytes([198, 18, 1, 1]))), Some(Ipv4(u32::from_be_bytes([198, 18, 1, 11]))), true);
        assert_eq!(q, p);
        assert!(Ipv4Header::parse(&q, true).is_ok());
    }

    #[test]
    fn martians() {
        assert!(is_martian_source(Ipv4(0)));
        assert!(is_martian_source(Ipv4(u32::from_be_bytes([127, 0, 0, 1]))));
        assert!(is_martian_source(Ipv4(u32::from_be_bytes([224, 0, 0, 1]))));
        assert!(is_martian_source(Ipv4(u32::MAX)));
        assert!(!is_martian_source(Ipv4(u32::from_be_bytes([198, 18, 0, 2]))));
    }

    #[test]
    fn writes_header_with_checksum() {
        let mut h = [0xa5u8; 20];
        write_header(&mut h, 0, 40, 7, FLAG_DF, 64, 4, Ipv4(1), Ipv4(2));
        assert_eq!(checksum::checksum(&h), 0);
        let p = Ipv4Header::parse(&[&h[..], &[0u8; 20][..]].concat(), true).unwrap();
        assert_eq!(p.proto, 4);
    }
}
