//! IP-in-IP encapsulation (RFC 2003, RFC 2473): the outer header of LVS's
//! tunnel mode.
use crate::ip::proto;
use crate::{checksum, ether, ipv4, ipv6, PacketBuf};
use std::net::IpAddr;

/// Why a packet could not be wrapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncapError {
    /// No room before the packet for the outer header.
    #[error("no buffer headroom for the outer header")]
    NoHeadroom,
    /// The outer source and destination are of different families.
    #[error("outer source and destination of different families")]
    Families,
    /// The result would exceed an IP length field.
    #[error("packet too long to wrap")]
    TooLong,
}

/// Bytes an outer header to `rs` adds.
pub fn overhead(rs: IpAddr) -> usize {
    if rs.is_ipv6() {
        ipv6::HEADER_LEN
    } else {
        ipv4::MIN_HEADER_LEN
    }
}

/// Wraps the IP packet of the Ethernet frame in `buf` (IPv6 when
/// `inner_v6`) in an outer IPv4 or IPv6 header `src -> dst` with hop limit
/// `ttl`. The outer TOS / traffic class is the inner one; the outer IPv4
/// header has DF when the inner packet has DF or is IPv6. The frame
/// starts with an Ethernet header of the outer EtherType whose MACs are
/// *not* the inner frame's (not moved: forwarding writes both anyway); the
/// caller sets them.
pub fn encapsulate<B: PacketBuf>(buf: &mut B, inner_v6: bool, src: IpAddr, dst: IpAddr, ttl: u8) -> Result<(), EncapError> {
    Outer::new(src, dst)?.wrap(buf, inner_v6, ttl)
}

/// The outer header to one real server, made once (when the
/// configuration is compiled): its addresses are fixed, and so is the
/// IPv4 header's sum over them, so wrapping a packet writes the prepared
/// bytes and fills in what varies per packet (length, TOS, DF, hop limit,
/// inner protocol), with one fold for the checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outer {
    /// The header with every per-packet field zero (IPv4: 20 bytes used).
    hdr: [u8; ipv6::HEADER_LEN],
    /// IPv4: the unfolded sum of `hdr`'s first 20 bytes.
    sum: u32,
    v6: bool,
}

impl Outer {
    /// The outer header `src -> dst` (both of one family).
    pub fn new(src: IpAddr, dst: IpAddr) -> Result<Outer, EncapError> {
        let mut hdr = [0u8; ipv6::HEADER_LEN];
        let v6 = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(t)) => {
                hdr[0] = 0x45;
                hdr[12..16].copy_from_slice(&s.octets());
                hdr[16..20].copy_from_slice(&t.octets());
                false
            }
            (IpAddr::V6(s), IpAddr::V6(t)) => {
                hdr[0] = 0x60;
                hdr[8..24].copy_from_slice(&s.octets());
                hdr[24..40].copy_from_slice(&t.octets());
                true
            }
            _ => return Err(EncapError::Families),
        };
        let sum = u32::from(checksum::fold(checksum::sum(&hdr[..ipv4::MIN_HEADER_LEN], 0)));
        Ok(Outer { hdr, sum, v6 })
    }

    /// Bytes this header adds.
    #[inline(always)]
    pub fn overhead(&self) -> usize {
        if self.v6 {
            ipv6::HEADER_LEN
        } else {
            ipv4::MIN_HEADER_LEN
        }
    }

    /// Wraps the IP packet of the Ethernet frame in `buf` (IPv6 when
    /// `inner_v6`) in this header with hop limit `ttl`, as [`encapsulate`]
    /// says.
    #[inline(always)]
    pub fn wrap<B: PacketBuf>(&self, buf: &mut B, inner_v6: bool, ttl: u8) -> Result<(), EncapError> {
        let inner = &buf.data()[ether::HEADER_LEN..];
        let inner_len = inner.len();
        let (tos, inner_df) = if inner_v6 { (ipv6::traffic_class(inner), true) } else { (ipv4::tos(inner), ipv4::dont_fragment(inner)) };
        let inner_proto = if inner_v6 { proto::IPV6 } else { proto::IPIP };
        let add = self.overhead();
        let total = u16::try_from(inner_len + if self.v6 { 0 } else { add }).map_err(|_| EncapError::TooLong)?;
        if !buf.prepend(add) {
            return Err(EncapError::NoHeadroom);
        }
        let d = buf.data_mut();
        let outer = &mut d[ether::HEADER_LEN..ether::HEADER_LEN + add];
        // Copies of a constant size, which compile to a few moves.
        let ethertype = if self.v6 {
            outer[..ipv6::HEADER_LEN].copy_from_slice(&self.hdr);
            outer[0] = 0x60 | (tos >> 4);
            outer[1] = tos << 4;
            outer[4..6].copy_from_slice(&total.to_be_bytes());
            outer[6] = inner_proto;
            outer[7] = ttl;
            ether::ethertype::IPV6
        } else {
            let df = if inner_df { ipv4::FLAG_DF } else { 0 };
            outer[..ipv4::MIN_HEADER_LEN].copy_from_slice(&self.hdr[..ipv4::MIN_HEADER_LEN]);
            outer[1] = tos;
            outer[2..4].copy_from_slice(&total.to_be_bytes());
            outer[6..8].copy_from_slice(&df.to_be_bytes());
            outer[8] = ttl;
            outer[9] = inner_proto;
            // The prepared sum plus the words the per-packet fields are in.
            let words = u64::from(tos) + u64::from(total) + u64::from(df) + (u64::from(ttl) << 8 | u64::from(inner_proto));
            let c = !checksum::fold(u64::from(self.sum) + words);
            outer[10..12].copy_from_slice(&c.to_be_bytes());
            ether::ethertype::IPV4
        };
        ether::set_ethertype(d, ethertype);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VecBuf;
    use proptest::prelude::*;

    /// The outer header written field by field, the checksum summed in
    /// full: what a prepared header must equal.
    fn reference(buf: &mut VecBuf, inner_v6: bool, src: IpAddr, dst: IpAddr, ttl: u8) {
        let inner_len = buf.len() - ether::HEADER_LEN;
        let inner = buf.data()[ether::HEADER_LEN..].to_vec();
        let (tos, df) = if inner_v6 { (ipv6::traffic_class(&inner), true) } else { (ipv4::tos(&inner), ipv4::dont_fragment(&inner)) };
        let next = if inner_v6 { proto::IPV6 } else { proto::IPIP };
        let add = overhead(dst);
        assert!(buf.prepend(add));
        let d = buf.data_mut();
        d.copy_within(add..add + ether::HEADER_LEN, 0);
        let outer = &mut d[ether::HEADER_LEN..];
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(t)) => {
                let total = u16::try_from(inner_len + add).unwrap();
                ipv4::write_header(outer, tos, total, 0, if df { ipv4::FLAG_DF } else { 0 }, ttl, next, s.into(), t.into());
                ether::set_ethertype(d, ether::ethertype::IPV4);
            }
            (IpAddr::V6(s), IpAddr::V6(t)) => {
                ipv6::write_header(outer, tos, 0, u16::try_from(inner_len).unwrap(), next, ttl, s.into(), t.into());
                ether::set_ethertype(d, ether::ethertype::IPV6);
            }
            _ => unreachable!(),
        }
    }

    /// An Ethernet frame holding an inner IPv4 (TOS, DF) or IPv6 (traffic
    /// class) packet of `len` bytes.
    fn frame(inner_v6: bool, tos: u8, df: bool, len: usize) -> VecBuf {
        let mut f = vec![0u8; ether::HEADER_LEN + len];
        f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
        let ip = &mut f[ether::HEADER_LEN..];
        if inner_v6 {
            ip[0] = 0x60 | (tos >> 4);
            ip[1] = tos << 4;
        } else {
            ip[0] = 0x45;
            ip[1] = tos;
            ip[6] = if df { 0x40 } else { 0 };
        }
        VecBuf::with_room(&f, 64, 2048)
    }

    proptest! {
        #[test]
        fn a_prepared_header_writes_what_the_full_one_does(
            v6_outer: bool, inner_v6: bool, tos: u8, df: bool, ttl: u8, len in 20usize..1500,
            a: [u8; 16], b: [u8; 16],
        ) {
            let (src, dst) = if v6_outer {
                (IpAddr::from(a), IpAddr::from(b))
            } else {
                (IpAddr::from([a[0], a[1], a[2], a[3]]), IpAddr::from([b[0], b[1], b[2], b[3]]))
            };
            let mut want = frame(inner_v6, tos, df, len);
            reference(&mut want, inner_v6, src, dst, ttl);
            let mut got = frame(inner_v6, tos, df, len);
            Outer::new(src, dst).unwrap().wrap(&mut got, inner_v6, ttl).unwrap();
            // The MACs are the caller's to set (`wrap` does not move them).
            prop_assert_eq!(&got.data()[12..], &want.data()[12..]);
            if !v6_outer {
                prop_assert_eq!(checksum::checksum(&got.data()[14..34]), 0);
            }
        }
    }

    #[test]
    fn mixed_families_and_no_headroom_are_refused() {
        let (v4, v6): (IpAddr, IpAddr) = ("198.18.0.1".parse().unwrap(), "2001:db8::1".parse().unwrap());
        assert_eq!(Outer::new(v4, v6), Err(EncapError::Families));
        let mut tight = VecBuf::with_room(frame(false, 0, true, 40).data(), 10, 100);
        assert_eq!(Outer::new(v4, v4).unwrap().wrap(&mut tight, false, 64), Err(EncapError::NoHeadroom));
    }
}
