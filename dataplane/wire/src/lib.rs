#![forbid(unsafe_code)]
//! Packet formats, with no DPDK in sight: the only code in rvs that
//! knows byte offsets.
//!
//! Two kinds of functions, and nothing in between:
//! * **parsers** read a header into a plain struct (`Ipv4Header::parse`,
//!   `TcpHeader::parse`, `Arp::parse`, `icmp::parse_quoted`, ...) after
//!   checking every length they rely on, or return a [`WireError`] that
//!   says what is wrong (the forwarder counts each as a drop reason);
//! * **writers and updaters** touch fields of bytes a parser already
//!   validated (`ipv4::rewrite`, [`l4::rewrite`], `ipv4::write_header`),
//!   through fixed-size arrays, so the compiler proves the bounds once per
//!   header rather than once per field, and never through casts to packed
//!   structs (which would create unaligned references).
//!
//! Modules, from the bottom up:
//! * [`buf`]: [`PacketBuf`], the byte-buffer contract every routine is
//!   written against (an mbuf in rvsd, a [`VecBuf`] in tests);
//! * [`addr`]: [`Ipv4`]/[`Ipv6`] and the one [`Family`] trait over both;
//!   [`ByFamily`] for per-family state;
//! * [`num`]: integer conversions that are exact or saturate by name;
//! * [`checksum`]: RFC 1071 sums, pseudo-headers, RFC 1624 updates;
//! * [`ether`], [`arp`], [`ip`], [`ipv4`], [`ipv6`], [`tcp`] (and its options,
//!   [`tcpopt`]), [`udp`],
//!   [`icmp`] (with neighbour discovery): one module per format;
//! * [`l4`]: the 5-tuple, the one NAT rewriter (packets and ICMP quotes),
//!   TCP resets;
//! * [`peek`]: the flow read ahead of validation (for prefetching) and the
//!   fast path's one-look check of a plain IPv4 frame;
//! * [`tunnel`]: IP-in-IP encapsulation.
pub mod addr;
pub mod arp;
pub mod buf;
pub mod checksum;
mod error;
pub mod ether;
pub mod icmp;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod l4;
pub mod num;
pub mod peek;
pub mod sync;
pub mod tcp;
pub mod tcpopt;
pub mod tunnel;
pub mod udp;
pub mod vrrp;

pub use addr::{ByFamily, Family, Ipv4, Ipv6, PerFamily};
pub use buf::{NicCsum, PacketBuf, VecBuf};
pub use error::WireError;
pub use ether::{MacAddr, MacParseError};

/// Reads a big-endian u16 at `at` (caller proved `at + 2 <= b.len()`).
#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    let mut w = [0; 2];
    w.copy_from_slice(&b[at..at + 2]);
    u16::from_be_bytes(w)
}

/// Writes a big-endian u16 at `at`.
#[inline(always)]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Reads a big-endian u32 at `at`.
#[inline(always)]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(w)
}

/// Writes a big-endian u32 at `at`.
#[inline(always)]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
