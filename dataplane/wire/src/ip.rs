//! What IPv4 and IPv6 have in common, as far as forwarding cares.
//!
//! Session tables and flow keys are generic over [`Addr`], implemented by
//! `u32` (IPv4) and `u128` (IPv6) holding the address as a big-endian number,
//! so an IPv4 session entry stays small (10 million of them must fit in
//! 100 bytes each) while IPv6 shares the same code.
use super::checksum;
use std::fmt::Debug;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol numbers rvs handles.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IPv4 in IP (RFC 2003).
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 in IP (RFC 2473 / 4213).
    pub const IPV6: u8 = 41;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

/// An IP address as a number: `u32` for IPv4, `u128` for IPv6.
pub trait Addr: Copy + Eq + Ord + Hash + Default + Debug + Send + Sync + 'static {
    /// Address length in bytes.
    const LEN: usize;
    /// True for IPv6.
    const V6: bool;
    /// Converts to a std address.
    fn to_ip(self) -> IpAddr;
    /// Converts from a std address of the same family.
    fn from_ip(ip: IpAddr) -> Option<Self>;
    /// Keeps the top `prefix` bits (a netmask).
    fn mask(self, prefix: u8) -> Self;
    /// Updates an L4 checksum (which covers the address in its pseudo-header)
    /// for the address changing from `old` to `new`.
    fn csum_update(cksum: u16, old: Self, new: Self) -> u16;
    /// Writes the address in network order into `out` (`LEN` bytes).
    fn write(self, out: &mut [u8]);
    /// Low 64 bits mixed with the high ones, for hashing on an address.
    fn fold64(self) -> u64;
    /// Feeds two addresses to a hasher in as few words as possible (one
    /// for IPv4, two for IPv6): the session table's per-packet hash.
    fn hash_pair<H: std::hash::Hasher>(a: Self, b: Self, h: &mut H);
}

impl Addr for u32 {
    const LEN: usize = 4;
    const V6: bool = false;
    #[inline]
    fn to_ip(self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self))
    }
    #[inline]
    fn from_ip(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V4(a) => Some(u32::from(a)),
            IpAddr::V6(_) => None,
        }
    }
    #[inline]
    fn mask(self, prefix: u8) -> Self {
        match prefix {
            0 => 0,
            p if p >= 32 => self,
            p => self & (u32::MAX << (32 - u32::from(p))),
        }
    }
    #[inline(always)]
    fn csum_update(cksum: u16, old: Self, new: Self) -> u16 {
        checksum::update32(cksum, old, new)
    }
    #[inline(always)]
    fn write(self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.to_be_bytes());
    }
    #[inline]
    fn fold64(self) -> u64 {
        u64::from(self)
    }
    #[inline(always)]
    fn hash_pair<H: std::hash::Hasher>(a: Self, b: Self, h: &mut H) {
        h.write_u64((u64::from(a) << 32) | u64::from(b));
    }
}

impl Addr for u128 {
    const LEN: usize = 16;
    const V6: bool = true;
    #[inline]
    fn to_ip(self) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(self))
    }
    #[inline]
    fn from_ip(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V6(a) => Some(u128::from(a)),
            IpAddr::V4(_) => None,
        }
    }
    #[inline]
    fn mask(self, prefix: u8) -> Self {
        match prefix {
            0 => 0,
            p if p >= 128 => self,
            p => self & (u128::MAX << (128 - u32::from(p))),
        }
    }
    #[inline]
    fn csum_update(cksum: u16, old: Self, new: Self) -> u16 {
        checksum::update_bytes(cksum, &old.to_be_bytes(), &new.to_be_bytes())
    }
    #[inline]
    fn write(self, out: &mut [u8]) {
        out[..16].copy_from_slice(&self.to_be_bytes());
    }
    #[inline]
    #[expect(clippy::cast_possible_truncation, reason = "folding halves on purpose")]
    fn fold64(self) -> u64 {
        (self as u64) ^ ((self >> 64) as u64).rotate_left(17)
    }
    #[inline(always)]
    fn hash_pair<H: std::hash::Hasher>(a: Self, b: Self, h: &mut H) {
        h.write_u128(a);
        h.write_u128(b);
    }
}

/// An IP prefix (address and length) of either family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// Network address (host bits may be set; `contains` masks).
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub len: u8,
}

impl Prefix {
    /// True when `ip` lies in this prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => u32::from(n).mask(self.len) == u32::from(a).mask(self.len),
            (IpAddr::V6(n), IpAddr::V6(a)) => u128::from(n).mask(self.len) == u128::from(a).mask(self.len),
            _ => false,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(0xc612_0102u32.mask(24), 0xc612_0100);
        assert_eq!(0xc612_0102u32.mask(0), 0);
        assert_eq!(0xc612_0102u32.mask(32), 0xc612_0102);
        assert_eq!((u128::MAX).mask(64), u128::MAX << 64);
        let p = Prefix { addr: "198.18.1.1".parse().unwrap(), len: 24 };
        assert!(p.contains("198.18.1.200".parse().unwrap()));
        assert!(!p.contains("198.18.2.1".parse().unwrap()));
        assert!(!p.contains("2001:db8::1".parse().unwrap()));
        let p6 = Prefix { addr: "2001:db8:1::1".parse().unwrap(), len: 64 };
        assert!(p6.contains("2001:db8:1::ff".parse().unwrap()));
    }

    #[test]
    fn roundtrips() {
        let a: IpAddr = "2001:db8::7".parse().unwrap();
        assert_eq!(u128::from_ip(a).unwrap().to_ip(), a);
        assert!(u32::from_ip(a).is_none());
        let mut b = [0u8; 4];
        0x0102_0304u32.write(&mut b);
        assert_eq!(b, [1, 2, 3, 4]);
    }
}
