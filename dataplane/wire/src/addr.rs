//! IP addresses as forwarding handles them, and the one trait over both
//! families.
//!
//! [`Ipv4`] and [`Ipv6`] hold an address as a big-endian number (`u32`,
//! `u128`), so an IPv4 session entry stays small (10 million of them fit
//! in 84 bytes each) while IPv6 shares the same code. [`Family`] is what
//! generic code needs of an address: conversions, masks, checksum updates,
//! and the per-family IP header operations (source, destination, TTL), so
//! that no caller branches on the family or knows where a field sits.
//!
//! State that exists once per family (session tables, lookup maps) is held
//! in a [`ByFamily`], and generic code reaches its own family's half with
//! [`Family::of`] / [`Family::of_mut`]: one trait serves addresses and the
//! per-family state alike.
use crate::{checksum, ipv4, ipv6};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 address, as the number its four bytes spell big-endian.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Ipv4(pub u32);

/// An IPv6 address, as the number its sixteen bytes spell big-endian.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Ipv6(pub u128);

impl fmt::Display for Ipv4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ipv4Addr::from(self.0).fmt(f)
    }
}

impl fmt::Debug for Ipv4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Ipv6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ipv6Addr::from(self.0).fmt(f)
    }
}

impl fmt::Debug for Ipv6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Ipv4 {
    /// The address's four bytes.
    #[inline(always)]
    pub fn to_be_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }

    /// Multicast (224/4) or the limited broadcast: never a flow's
    /// destination.
    #[inline]
    pub fn is_multicast_or_broadcast(self) -> bool {
        self.0 >> 28 == 0xe || self.0 == u32::MAX
    }
}

impl Ipv6 {
    /// The address's sixteen bytes.
    #[inline(always)]
    pub fn to_be_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl std::ops::Add<u32> for Ipv4 {
    type Output = Ipv4;
    /// The address `n` after this one (wrapping): for generating test and
    /// benchmark address ranges.
    fn add(self, n: u32) -> Ipv4 {
        Ipv4(self.0.wrapping_add(n))
    }
}

impl std::ops::Add<u128> for Ipv6 {
    type Output = Ipv6;
    /// The address `n` after this one (wrapping).
    fn add(self, n: u128) -> Ipv6 {
        Ipv6(self.0.wrapping_add(n))
    }
}

impl From<u32> for Ipv4 {
    /// The address a big-endian number spells.
    fn from(n: u32) -> Self {
        Ipv4(n)
    }
}

impl From<u128> for Ipv6 {
    /// The address a big-endian number spells.
    fn from(n: u128) -> Self {
        Ipv6(n)
    }
}

impl From<Ipv4Addr> for Ipv4 {
    fn from(a: Ipv4Addr) -> Self {
        Ipv4(u32::from(a))
    }
}

impl From<Ipv6Addr> for Ipv6 {
    fn from(a: Ipv6Addr) -> Self {
        Ipv6(u128::from(a))
    }
}

/// A type-level function from an address family to a type: `Of<Ipv4>` and
/// `Of<Ipv6>` are what a [`ByFamily`] holds.
pub trait PerFamily {
    /// The type held for family `A`.
    type Of<A: Family>;
}

/// One value per address family, e.g. a session table for each.
pub struct ByFamily<F: PerFamily> {
    /// The IPv4 half.
    pub v4: F::Of<Ipv4>,
    /// The IPv6 half.
    pub v6: F::Of<Ipv6>,
}

impl<F: PerFamily> fmt::Debug for ByFamily<F>
where
    F::Of<Ipv4>: fmt::Debug,
    F::Of<Ipv6>: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByFamily").field("v4", &self.v4).field("v6", &self.v6).finish()
    }
}

impl<F: PerFamily> Clone for ByFamily<F>
where
    F::Of<Ipv4>: Clone,
    F::Of<Ipv6>: Clone,
{
    fn clone(&self) -> Self {
        ByFamily { v4: self.v4.clone(), v6: self.v6.clone() }
    }
}

impl<F: PerFamily> Default for ByFamily<F>
where
    F::Of<Ipv4>: Default,
    F::Of<Ipv6>: Default,
{
    fn default() -> Self {
        ByFamily { v4: Default::default(), v6: Default::default() }
    }
}

impl<F: PerFamily> ByFamily<F> {
    /// Family `A`'s half.
    #[inline(always)]
    pub fn get<A: Family>(&self) -> &F::Of<A> {
        A::of(self)
    }

    /// Family `A`'s half, writable.
    #[inline(always)]
    pub fn get_mut<A: Family>(&mut self) -> &mut F::Of<A> {
        A::of_mut(self)
    }
}

/// What forwarding code needs of an IP address of either family.
pub trait Family: Copy + Eq + Ord + Hash + Default + fmt::Debug + fmt::Display + Send + Sync + 'static {
    /// Address length in bytes.
    const LEN: usize;
    /// True for IPv6.
    const V6: bool;
    /// The all-zero (unspecified) address.
    const UNSPECIFIED: Self;

    /// This family's half of a [`ByFamily`].
    fn of<F: PerFamily>(b: &ByFamily<F>) -> &F::Of<Self>;
    /// This family's half of a [`ByFamily`], writable.
    fn of_mut<F: PerFamily>(b: &mut ByFamily<F>) -> &mut F::Of<Self>;

    /// Converts to a std address.
    fn to_ip(self) -> IpAddr;
    /// Converts from a std address of the same family.
    fn from_ip(ip: IpAddr) -> Option<Self>;
    /// Keeps the top `prefix` bits (a netmask).
    #[must_use]
    fn mask(self, prefix: u8) -> Self;
    /// The RFC 1624 term of the address changing from `old` to `new` in
    /// an L4 checksum, which covers it in its pseudo-header (to add to the
    /// other changed fields' and apply once: [`checksum::apply`]).
    fn csum_delta(old: Self, new: Self) -> u64;
    /// Writes the address in network order into `out[..LEN]`.
    fn write(self, out: &mut [u8]);
    /// Reads an address from `b[..LEN]` (None when `b` is shorter).
    fn read(b: &[u8]) -> Option<Self>;
    /// Low 64 bits mixed with the high ones, for hashing on an address.
    fn fold64(self) -> u64;
    /// The address as an integer (IPv4's 32 bits, zero-extended): a key
    /// for per-family ordered structures.
    fn key128(self) -> u128;
    /// Feeds two addresses to a hasher in as few words as possible (one
    /// for IPv4, two for IPv6): the session table's per-packet hash.
    fn hash_pair<H: Hasher>(a: Self, b: Self, h: &mut H);
    /// A source no host may use (unspecified, loopback, multicast, ...).
    fn is_martian_source(self) -> bool;
    /// The unfolded checksum sum of the L4 pseudo-header.
    fn pseudo_header(src: Self, dst: Self, proto: u8, l4_len: usize) -> u64;

    /// The source of the IP header at the start of `ip` (validated).
    fn ip_src(ip: &[u8]) -> Self;
    /// The destination of the IP header at the start of `ip`.
    fn ip_dst(ip: &[u8]) -> Self;
    /// Rewrites the source and/or destination of the IP header at the
    /// start of `ip` and, with `ttl`, decrements the TTL or hop limit (the
    /// caller checked it is above 1), keeping the IPv4 header checksum
    /// right (one update for all). Returns the changed addresses' RFC 1624
    /// term ([`checksum::apply`]), which a checksum over a pseudo-header
    /// (TCP, UDP, ICMPv6) takes too.
    fn rewrite_ip(ip: &mut [u8], src: Option<Self>, dst: Option<Self>, ttl: bool) -> u64;
    /// The TTL or hop limit.
    fn ttl(ip: &[u8]) -> u8;
    /// Decrements the TTL (with the checksum) or hop limit; the caller
    /// has checked it is above 1.
    fn decrement_ttl(ip: &mut [u8]);
    /// True when the packet may not be fragmented on its way: IPv4 with
    /// DF, and every IPv6 packet (routers never fragment IPv6).
    fn dont_fragment(ip: &[u8]) -> bool;
}

impl Family for Ipv4 {
    const LEN: usize = 4;
    const V6: bool = false;
    const UNSPECIFIED: Self = Ipv4(0);

    #[inline(always)]
    fn of<F: PerFamily>(b: &ByFamily<F>) -> &F::Of<Self> {
        &b.v4
    }
    #[inline(always)]
    fn of_mut<F: PerFamily>(b: &mut ByFamily<F>) -> &mut F::Of<Self> {
        &mut b.v4
    }
    #[inline]
    fn to_ip(self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self.0))
    }
    #[inline]
    fn from_ip(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V4(a) => Some(Ipv4(u32::from(a))),
            IpAddr::V6(_) => None,
        }
    }
    #[inline]
    fn mask(self, prefix: u8) -> Self {
        Ipv4(match prefix {
            0 => 0,
            p if p >= 32 => self.0,
            p => self.0 & (u32::MAX << (32 - u32::from(p))),
        })
    }
    #[inline(always)]
    fn csum_delta(old: Self, new: Self) -> u64 {
        checksum::delta32(old.0, new.0)
    }
    #[inline(always)]
    fn write(self, out: &mut [u8]) {
        if let Some(o) = out.get_mut(..4) {
            o.copy_from_slice(&self.0.to_be_bytes());
        }
    }
    #[inline(always)]
    fn read(b: &[u8]) -> Option<Self> {
        b.first_chunk::<4>().map(|a| Ipv4(u32::from_be_bytes(*a)))
    }
    #[inline]
    fn key128(self) -> u128 {
        u128::from(self.0)
    }
    #[inline]
    fn fold64(self) -> u64 {
        u64::from(self.0)
    }
    #[inline(always)]
    fn hash_pair<H: Hasher>(a: Self, b: Self, h: &mut H) {
        h.write_u64((u64::from(a.0) << 32) | u64::from(b.0));
    }
    #[inline]
    fn is_martian_source(self) -> bool {
        ipv4::is_martian_source(self)
    }
    #[inline]
    fn pseudo_header(src: Self, dst: Self, proto: u8, l4_len: usize) -> u64 {
        checksum::pseudo_v4(src.to_be_bytes(), dst.to_be_bytes(), proto, crate::num::sat_u16(l4_len))
    }
    #[inline(always)]
    fn ip_src(ip: &[u8]) -> Self {
        ipv4::src(ip)
    }
    #[inline(always)]
    fn ip_dst(ip: &[u8]) -> Self {
        ipv4::dst(ip)
    }
    #[inline(always)]
    fn rewrite_ip(ip: &mut [u8], src: Option<Self>, dst: Option<Self>, ttl: bool) -> u64 {
        ipv4::rewrite(ip, src, dst, ttl)
    }
    #[inline(always)]
    fn ttl(ip: &[u8]) -> u8 {
        ipv4::ttl(ip)
    }
    #[inline(always)]
    fn decrement_ttl(ip: &mut [u8]) {
        ipv4::decrement_ttl(ip);
    }
    #[inline(always)]
    fn dont_fragment(ip: &[u8]) -> bool {
        ipv4::dont_fragment(ip)
    }
}

impl Family for Ipv6 {
    const LEN: usize = 16;
    const V6: bool = true;
    const UNSPECIFIED: Self = Ipv6(0);

    #[inline(always)]
    fn of<F: PerFamily>(b: &ByFamily<F>) -> &F::Of<Self> {
        &b.v6
    }
    #[inline(always)]
    fn of_mut<F: PerFamily>(b: &mut ByFamily<F>) -> &mut F::Of<Self> {
        &mut b.v6
    }
    #[inline]
    fn to_ip(self) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(self.0))
    }
    #[inline]
    fn from_ip(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V6(a) => Some(Ipv6(u128::from(a))),
            IpAddr::V4(_) => None,
        }
    }
    #[inline]
    fn mask(self, prefix: u8) -> Self {
        Ipv6(match prefix {
            0 => 0,
            p if p >= 128 => self.0,
            p => self.0 & (u128::MAX << (128 - u32::from(p))),
        })
    }
    #[inline]
    fn csum_delta(old: Self, new: Self) -> u64 {
        checksum::delta_bytes(&old.0.to_be_bytes(), &new.0.to_be_bytes())
    }
    #[inline]
    fn write(self, out: &mut [u8]) {
        if let Some(o) = out.get_mut(..16) {
            o.copy_from_slice(&self.0.to_be_bytes());
        }
    }
    #[inline(always)]
    fn read(b: &[u8]) -> Option<Self> {
        b.first_chunk::<16>().map(|a| Ipv6(u128::from_be_bytes(*a)))
    }
    #[inline]
    fn key128(self) -> u128 {
        self.0
    }
    #[expect(clippy::cast_possible_truncation, reason = "folding halves on purpose")]
    #[inline]
    fn fold64(self) -> u64 {
        (self.0 as u64) ^ ((self.0 >> 64) as u64).rotate_left(17)
    }
    #[inline(always)]
    fn hash_pair<H: Hasher>(a: Self, b: Self, h: &mut H) {
        h.write_u128(a.0);
        h.write_u128(b.0);
    }
    #[inline]
    fn is_martian_source(self) -> bool {
        ipv6::is_martian_source(self)
    }
    #[inline]
    fn pseudo_header(src: Self, dst: Self, proto: u8, l4_len: usize) -> u64 {
        checksum::pseudo_v6(&src.0.to_be_bytes(), &dst.0.to_be_bytes(), proto, crate::num::sat_u32(l4_len))
    }
    #[inline(always)]
    fn ip_src(ip: &[u8]) -> Self {
        ipv6::src(ip)
    }
    #[inline(always)]
    fn ip_dst(ip: &[u8]) -> Self {
        ipv6::dst(ip)
    }
    #[inline(always)]
    fn rewrite_ip(ip: &mut [u8], src: Option<Self>, dst: Option<Self>, ttl: bool) -> u64 {
        let mut addrs = 0;
        if let Some(a) = src {
            addrs += Self::csum_delta(ipv6::src(ip), a);
            ipv6::set_src(ip, a);
        }
        if let Some(a) = dst {
            addrs += Self::csum_delta(ipv6::dst(ip), a);
            ipv6::set_dst(ip, a);
        }
        if ttl {
            ipv6::decrement_hop_limit(ip);
        }
        addrs
    }
    #[inline(always)]
    fn ttl(ip: &[u8]) -> u8 {
        ipv6::hop_limit(ip)
    }
    #[inline(always)]
    fn decrement_ttl(ip: &mut [u8]) {
        ipv6::decrement_hop_limit(ip);
    }
    #[inline(always)]
    fn dont_fragment(_: &[u8]) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_roundtrips() {
        assert_eq!(Ipv4(0xc612_0102).mask(24), Ipv4(0xc612_0100));
        assert_eq!(Ipv4(0xc612_0102).mask(0), Ipv4(0));
        assert_eq!(Ipv4(0xc612_0102).mask(32), Ipv4(0xc612_0102));
        assert_eq!(Ipv6(u128::MAX).mask(64), Ipv6(u128::MAX << 64));
        let a: IpAddr = "2001:db8::7".parse().unwrap();
        assert_eq!(Ipv6::from_ip(a).unwrap().to_ip(), a);
        assert!(Ipv4::from_ip(a).is_none());
        let mut b = [0u8; 4];
        Ipv4(0x0102_0304).write(&mut b);
        assert_eq!(b, [1, 2, 3, 4]);
        assert_eq!(Ipv4::read(&b), Some(Ipv4(0x0102_0304)));
        assert_eq!(Ipv6::read(&b), None);
        assert_eq!(Ipv4(0xc612_0001).to_string(), "198.18.0.1");
    }

    struct Names;
    impl PerFamily for Names {
        type Of<A: Family> = Vec<A>;
    }

    #[test]
    fn by_family_selects_each_half() {
        let mut b: ByFamily<Names> = ByFamily::default();
        b.get_mut::<Ipv4>().push(Ipv4(1));
        b.get_mut::<Ipv6>().push(Ipv6(2));
        fn first<A: Family>(b: &ByFamily<Names>) -> A {
            b.get::<A>()[0]
        }
        assert_eq!((first::<Ipv4>(&b), first::<Ipv6>(&b)), (Ipv4(1), Ipv6(2)));
    }
}
