//! TCP headers (RFC 9293): validation and NAT rewrites.
use super::{be16, be32, checksum, put16};
use crate::WireError;

/// Minimum header length.
pub const MIN_HEADER_LEN: usize = 20;
/// Offset of the checksum field.
pub const CHECKSUM_AT: usize = 16;

/// TCP flag bits.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// The fields of a validated TCP header that forwarding uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpHeader {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Header length in bytes (data offset x 4).
    pub header_len: usize,
    /// Flags (low 8 bits: CWR ECE URG ACK PSH RST SYN FIN).
    pub flags: u8,
}

impl TcpHeader {
    /// Validates the header at the start of `seg` (the whole L4 segment).
    #[inline]
    pub fn parse(seg: &[u8]) -> Result<TcpHeader, WireError> {
        let Some(h) = seg.get(..MIN_HEADER_LEN) else { return Err(WireError::TcpTruncated) };
        let header_len = usize::from(h[12] >> 4) * 4;
        if header_len < MIN_HEADER_LEN || header_len > seg.len() {
            return Err(WireError::TcpBadHeaderLen);
        }
        Ok(TcpHeader { sport: be16(h, 0), dport: be16(h, 2), seq: be32(h, 4), ack: be32(h, 8), header_len, flags: h[13] })
    }

    /// True for a plain SYN (connection request): SYN without ACK.
    #[inline]
    pub fn is_syn(&self) -> bool {
        self.flags & (flags::SYN | flags::ACK) == flags::SYN
    }

    /// True for flag combinations no stack sends: none of SYN/ACK/RST, or
    /// SYN together with FIN or RST.
    #[inline]
    pub fn flags_invalid(&self) -> bool {
        let f = self.flags;
        f & (flags::SYN | flags::ACK | flags::RST) == 0 || (f & flags::SYN != 0 && f & (flags::FIN | flags::RST) != 0)
    }
}

/// Writes a bare 20-byte header (no options) into `seg`, checksum zero.
pub fn write_bare(seg: &mut [u8], sport: u16, dport: u16, seq: u32, ack: u32, flags: u8) {
    let h = &mut seg[..MIN_HEADER_LEN];
    h.fill(0);
    put16(h, 0, sport);
    put16(h, 2, dport);
    h[4..8].copy_from_slice(&seq.to_be_bytes());
    h[8..12].copy_from_slice(&ack.to_be_bytes());
    // Data offset: five 32-bit words.
    h[12] = 5 << 4;
    h[13] = flags;
}

/// Rewrites the source port, updating the checksum.
#[inline]
pub fn set_sport(seg: &mut [u8], new: u16) {
    let old = be16(seg, 0);
    put16(seg, 0, new);
    let c = checksum::update16(be16(seg, CHECKSUM_AT), old, new);
    put16(seg, CHECKSUM_AT, c);
}

/// Rewrites the destination port, updating the checksum.
#[inline]
pub fn set_dport(seg: &mut [u8], new: u16) {
    let old = be16(seg, 2);
    put16(seg, 2, new);
    let c = checksum::update16(be16(seg, CHECKSUM_AT), old, new);
    put16(seg, CHECKSUM_AT, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(off: u8, fl: u8) -> Vec<u8> {
        let mut s = vec![0u8; 24];
        put16(&mut s, 0, 40000);
        put16(&mut s, 2, 80);
        s[12] = off << 4;
        s[13] = fl;
        s
    }

    #[test]
    fn parses_and_classifies() {
        let h = TcpHeader::parse(&seg(5, flags::SYN)).unwrap();
        assert_eq!((h.sport, h.dport, h.header_len), (40000, 80, 20));
        assert!(h.is_syn());
        assert!(!h.flags_invalid());
        assert!(!TcpHeader::parse(&seg(5, flags::SYN | flags::ACK)).unwrap().is_syn());
        assert!(TcpHeader::parse(&seg(5, flags::SYN | flags::FIN)).unwrap().flags_invalid());
        assert!(TcpHeader::parse(&seg(5, flags::FIN)).unwrap().flags_invalid());
        assert!(TcpHeader::parse(&seg(6, flags::ACK)).is_ok());
    }

    #[test]
    fn refuses_bad_lengths() {
        assert_eq!(TcpHeader::parse(&seg(5, 0)[..19]), Err(WireError::TcpTruncated));
        assert_eq!(TcpHeader::parse(&seg(4, flags::ACK)), Err(WireError::TcpBadHeaderLen));
        assert_eq!(TcpHeader::parse(&seg(7, flags::ACK)), Err(WireError::TcpBadHeaderLen));
    }

    #[test]
    fn port_rewrite_keeps_checksum() {
        let mut s = seg(5, flags::ACK);
        let ph = checksum::pseudo_v4([1, 2, 3, 4], [5, 6, 7, 8], 6, 24);
        let c = checksum::l4_checksum(ph, &s);
        put16(&mut s, CHECKSUM_AT, c);
        set_dport(&mut s, 8080);
        set_sport(&mut s, 1234);
        assert_eq!(checksum::l4_checksum(ph, &s), 0);
    }
}
