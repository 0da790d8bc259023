//! What IPv4 and IPv6 have in common, as far as forwarding cares: protocol
//! numbers and prefixes. The addresses themselves and the trait over both
//! families are in [`crate::addr`].
use crate::addr::{Family, Ipv4, Ipv6};
use std::net::IpAddr;

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
            (IpAddr::V4(n), IpAddr::V4(a)) => Ipv4::from(n).mask(self.len) == Ipv4::from(a).mask(self.len),
            (IpAddr::V6(n), IpAddr::V6(a)) => Ipv6::from(n).mask(self.len) == Ipv6::from(a).mask(self.len),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_contain_their_addresses() {
        let p = Prefix { addr: "198.18.1.1".parse().unwrap(), len: 24 };
        assert!(p.contains("198.18.1.200".parse().unwrap()));
        assert!(!p.contains("198.18.2.1".parse().unwrap()));
        assert!(!p.contains("2001:db8::1".parse().unwrap()));
        let p6 = Prefix { addr: "2001:db8:1::1".parse().unwrap(), len: 64 };
        assert!(p6.contains("2001:db8:1::ff".parse().unwrap()));
    }
}
