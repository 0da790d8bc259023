#![forbid(unsafe_code)]
//! Packet formats, with no DPDK in sight.
//!
//! Each module is a zero-copy view over a byte slice in the style of
//! smoltcp's `wire`: `Xxx::new_checked(bytes)` validates every length the
//! other accessors rely on and returns a [`WireError`] on failure; after
//! that no accessor can panic. Fields are read and written at
//! fixed byte offsets through fixed-size arrays (never by casting bytes to a
//! packed struct, which would create unaligned references), so the compiler
//! proves the bounds once per header instead of once per field.
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
pub mod tcp;
pub mod tunnel;
pub mod udp;

pub use addr::{ByFamily, Family, Ipv4, Ipv6, PerFamily};
pub use buf::{PacketBuf, VecBuf};
pub use error::WireError;
pub use ether::{MacAddr, MacParseError};

/// Reads a big-endian u16 at `at` (caller proved `at + 2 <= b.len()`).
#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Writes a big-endian u16 at `at`.
#[inline(always)]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Reads a big-endian u32 at `at`.
#[inline(always)]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Writes a big-endian u32 at `at`.
#[inline(always)]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
