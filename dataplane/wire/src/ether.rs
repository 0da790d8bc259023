//! Ethernet II frames and MAC addresses.
use crate::WireError;
use std::fmt;

/// Length of an Ethernet II header.
pub const HEADER_LEN: usize = 14;

/// EtherType values rvs handles.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
}

/// A 48-bit MAC address.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// True for group (multicast and broadcast) addresses.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
    /// The IPv6 multicast MAC (RFC 2464): 33:33 + low 32 bits of the group.
    pub fn ipv6_multicast(group: &[u8; 16]) -> MacAddr {
        MacAddr([0x33, 0x33, group[12], group[13], group[14], group[15]])
    }
    /// Packs into the low 48 bits of a u64 (for atomic storage).
    pub fn to_u64(self) -> u64 {
        let b = self.0;
        u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    }
    /// Unpacks from the low 48 bits of a u64.
    pub fn from_u64(v: u64) -> MacAddr {
        let b = v.to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Text that is not a MAC address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (six hex octets, as 02:00:00:00:00:01)")]
pub struct MacParseError(pub String);

impl std::str::FromStr for MacAddr {
    type Err = MacParseError;
    /// Six octets of two hex digits each, separated by `:` (or `-`).
    fn from_str(s: &str) -> Result<Self, MacParseError> {
        let bad = || MacParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in &mut out {
            let p = parts.next().filter(|p| p.len() == 2).ok_or_else(bad)?;
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Checks a frame is long enough for an Ethernet header.
#[inline]
pub fn check(frame: &[u8]) -> Result<(), WireError> {
    if frame.len() < HEADER_LEN {
        Err(WireError::EthTruncated)
    } else {
        Ok(())
    }
}

/// Destination MAC (caller checked the length). One bounds check and one
/// 6-byte copy (six indexed bytes were six checks, and a call).
#[inline(always)]
pub fn dst(frame: &[u8]) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&frame[0..6]);
    MacAddr(m)
}

/// Source MAC (caller checked the length).
#[inline(always)]
pub fn src(frame: &[u8]) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&frame[6..12]);
    MacAddr(m)
}

/// EtherType.
#[inline]
pub fn ethertype(frame: &[u8]) -> u16 {
    super::be16(frame, 12)
}

/// Writes both MAC addresses.
#[inline(always)]
pub fn set_macs(frame: &mut [u8], dst: MacAddr, src: MacAddr) {
    frame[0..6].copy_from_slice(&dst.0);
    frame[6..12].copy_from_slice(&src.0);
}

/// Sets the EtherType.
#[inline]
pub fn set_ethertype(frame: &mut [u8], ethertype: u16) {
    frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// Writes a whole Ethernet header.
#[inline]
pub fn write_header(frame: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: u16) {
    set_macs(frame, dst, src);
    super::put16(frame, 12, ethertype);
}

/// Swaps source and destination MAC, setting the source to `ours`.
#[inline]
pub fn reply_macs(frame: &mut [u8], ours: MacAddr) {
    let peer = src(frame);
    set_macs(frame, peer, ours);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_roundtrips() {
        let m: MacAddr = "02:00:5e:10:00:01".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:5e:10:00:01");
        assert_eq!(MacAddr::from_u64(m.to_u64()), m);
        assert!(!m.is_multicast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!("02:00".parse::<MacAddr>().is_err());
        assert!("02:00:5e:10:00:01:02".parse::<MacAddr>().is_err());
        assert!("zz:00:5e:10:00:01".parse::<MacAddr>().is_err());
    }

    #[test]
    fn header_fields() {
        let mut f = [0u8; 14];
        write_header(&mut f, MacAddr([1; 6]), MacAddr([2; 6]), ethertype::IPV6);
        assert_eq!(dst(&f), MacAddr([1; 6]));
        assert_eq!(src(&f), MacAddr([2; 6]));
        assert_eq!(ethertype(&f), 0x86dd);
        reply_macs(&mut f, MacAddr([3; 6]));
        assert_eq!(dst(&f), MacAddr([2; 6]));
        assert_eq!(src(&f), MacAddr([3; 6]));
        assert_eq!(check(&f[..13]), Err(WireError::EthTruncated));
    }
}
