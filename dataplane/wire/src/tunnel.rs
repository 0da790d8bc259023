//! IP-in-IP encapsulation (RFC 2003, RFC 2473): the outer header of LVS's
//! tunnel mode.
use crate::ip::proto;
use crate::{ether, ipv4, ipv6, PacketBuf};
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
/// header has DF when the inner packet has DF or is IPv6. The Ethernet
/// header moves to the front with the outer EtherType; its MACs are left
/// for the caller to set.
pub fn encapsulate<B: PacketBuf>(buf: &mut B, inner_v6: bool, src: IpAddr, dst: IpAddr, ttl: u8) -> Result<(), EncapError> {
    let inner_len = buf.len() - ether::HEADER_LEN;
    let inner = &buf.data()[ether::HEADER_LEN..];
    let (tos, inner_df) = if inner_v6 { (ipv6::traffic_class(inner), true) } else { (ipv4::tos(inner), ipv4::dont_fragment(inner)) };
    let inner_proto = if inner_v6 { proto::IPV6 } else { proto::IPIP };
    let add = overhead(dst);
    if !buf.prepend(add) {
        return Err(EncapError::NoHeadroom);
    }
    let d = buf.data_mut();
    d.copy_within(add..add + ether::HEADER_LEN, 0);
    let outer = &mut d[ether::HEADER_LEN..];
    let ethertype = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(t)) => {
            let total = u16::try_from(inner_len + add).map_err(|_| EncapError::TooLong)?;
            let df = if inner_df { ipv4::FLAG_DF } else { 0 };
            ipv4::write_header(outer, tos, total, 0, df, ttl, inner_proto, s.into(), t.into());
            ether::ethertype::IPV4
        }
        (IpAddr::V6(s), IpAddr::V6(t)) => {
            let plen = u16::try_from(inner_len).map_err(|_| EncapError::TooLong)?;
            ipv6::write_header(outer, tos, 0, plen, inner_proto, ttl, s.into(), t.into());
            ether::ethertype::IPV6
        }
        _ => return Err(EncapError::Families),
    };
    ether::set_ethertype(d, ethertype);
    Ok(())
}
