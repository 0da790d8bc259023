//! UDP headers (RFC 768): validation and NAT rewrites.
use super::{be16, checksum, put16};
use crate::WireError;

/// Header length.
pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field.
pub const CHECKSUM_AT: usize = 6;

/// The fields of a validated UDP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpHeader {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Length field (header + data).
    pub len: usize,
    /// Checksum field (0 over IPv4 means "none").
    pub checksum: u16,
}

impl UdpHeader {
    /// Validates the header at the start of `seg` (the IP payload).
    #[inline]
    pub fn parse(seg: &[u8]) -> Result<UdpHeader, WireError> {
        let Some(h) = seg.get(..HEADER_LEN) else { return Err(WireError::UdpTruncated) };
        let len = usize::from(be16(h, 4));
        if len < HEADER_LEN || len > seg.len() {
            return Err(WireError::UdpBadLen);
        }
        Ok(UdpHeader { sport: be16(h, 0), dport: be16(h, 2), len, checksum: be16(h, 6) })
    }
}

/// Rewrites the source port, honouring a zero ("no") checksum.
#[inline]
pub fn set_sport(seg: &mut [u8], new: u16) {
    let old = be16(seg, 0);
    put16(seg, 0, new);
    let c = checksum::udp_update(be16(seg, CHECKSUM_AT), |c| checksum::update16(c, old, new));
    put16(seg, CHECKSUM_AT, c);
}

/// Rewrites the destination port, honouring a zero checksum.
#[inline]
pub fn set_dport(seg: &mut [u8], new: u16) {
    let old = be16(seg, 2);
    put16(seg, 2, new);
    let c = checksum::udp_update(be16(seg, CHECKSUM_AT), |c| checksum::update16(c, old, new));
    put16(seg, CHECKSUM_AT, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let mut s = vec![0x9c, 0x40, 0x23, 0x28, 0, 12, 0, 0, 1, 2, 3, 4];
        let h = UdpHeader::parse(&s).unwrap();
        assert_eq!((h.sport, h.dport, h.len), (40000, 9000, 12));
        assert_eq!(UdpHeader::parse(&s[..7]), Err(WireError::UdpTruncated));
        s[5] = 7;
        assert_eq!(UdpHeader::parse(&s), Err(WireError::UdpBadLen));
        s[5] = 13;
        assert_eq!(UdpHeader::parse(&s), Err(WireError::UdpBadLen));
    }

    #[test]
    fn zero_checksum_survives_rewrite() {
        let mut s = vec![0x9c, 0x40, 0x23, 0x28, 0, 8, 0, 0];
        set_dport(&mut s, 53);
        assert_eq!(be16(&s, CHECKSUM_AT), 0);
        assert_eq!(be16(&s, 2), 53);
    }
}
