//! Which worker core owns a flow, computed from any packet of it.
//!
//! With several workers each core keeps its own session table, so every
//! packet of a flow - the client's and the real server's replies alike -
//! must be processed by the core that created its session (its *owner*).
//! The NIC spreads packets over the cores' RX queues by RSS; a core that
//! receives a packet whose session it does not hold computes the owner
//! with the rules below and hands the packet over through a
//! single-producer/single-consumer ring (in the `dataplane` crate's `worker` module). A core that
//! finds the session in its own table never computes anything: the cost
//! falls on lookup misses only.
//!
//! Rules, by what the packet is (see [`crate::table::Steer`]):
//!
//! * **to a virtual service** (the client's direction): by default the RSS
//!   queue the NIC itself picks for the packet - the Toeplitz hash with
//!   rvs's key ([`RSS_KEY`]) over (source, destination, source port,
//!   destination port), then the redirection table rvs programs (entry
//!   `i` -> queue `i mod period mod cores`). On a NIC doing RSS with that
//!   key, client packets arrive at their owner and are never handed over;
//!   on one that does not (TAP), the same rule still gives one owner.
//!   Persistent services use the client network instead (a hash of the
//!   client address under the persistence netmask), so one core - holding
//!   the persistence template - sees all of a client's connections.
//! * **a NAT real server's reply** (source = a NAT real server's address
//!   and port): the snapshot maps (address, port, protocol) back to its
//!   service's VIP and port, and the owner is recomputed from the forward
//!   tuple (client, VIP, client port, VIP port). Where several services
//!   share a NAT real server the VIP is ambiguous, so those services use a
//!   hash of the client address and port (or the client network, when one
//!   of them is persistent) in both directions.
//! * **a full-NAT reply** (destination = a local address): each core owns
//!   a slice of the local port range; the destination port names it. Cores
//!   also pick local ports whose reply hashes, under the symmetric key, to
//!   their own queue ([`Steering::prefers_lport`]), so on an RSS NIC full-NAT
//!   replies arrive where they belong.
//! * **an ICMP error** is steered as the packet it quotes would be, seen
//!   from the other side.
//!
//! DR and tunnel services have no replies through rvs; they are steered
//! like any service so that a flow's packets meet one session even when
//! the NIC does not do RSS.
use rvs_wire::Family;

/// rvs's RSS key: the repeated 0x6d5a pattern makes the Toeplitz hash
/// symmetric (swapping source and destination gives the same hash), so a
/// full-NAT reply hashes like the packet it answers.
pub const RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
];

/// The longest Toeplitz input: IPv6 addresses and ports, 36 bytes.
const MAX_INPUT: usize = 36;

/// A software Toeplitz hash with a fixed key, by nibble tables: for each
/// of the 72 input nibble positions, the 16 possible contributions.
#[derive(Clone)]
pub struct Toeplitz {
    table: Box<[[u32; 16]; 2 * MAX_INPUT]>,
}

impl std::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Toeplitz")
    }
}

impl Toeplitz {
    /// Tables for `key` (40 bytes: enough for a 36-byte input).
    pub fn new(key: &[u8; 40]) -> Toeplitz {
        // window(i): the 32 key bits starting at bit i.
        let bit = |i: usize| (key[i / 8] >> (7 - i % 8)) & 1;
        let window = |i: usize| (0..32).fold(0u32, |w, j| (w << 1) | u32::from(bit(i + j)));
        let mut table = Box::new([[0u32; 16]; 2 * MAX_INPUT]);
        for (pos, row) in table.iter_mut().enumerate() {
            for (v, slot) in row.iter_mut().enumerate() {
                let mut h = 0;
                for b in 0..4 {
                    if v & (8 >> b) != 0 {
                        h ^= window(pos * 4 + b);
                    }
                }
                *slot = h;
            }
        }
        Toeplitz { table }
    }

    /// The hash of `input` (at most 36 bytes), as a NIC computes it.
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        let mut h = 0;
        for (i, &b) in input.iter().take(MAX_INPUT).enumerate() {
            h ^= self.table[2 * i][usize::from(b >> 4)] ^ self.table[2 * i + 1][usize::from(b & 15)];
        }
        h
    }

    /// The hash of a TCP/UDP tuple in the NIC's input order: source
    /// address, destination address, source port, destination port.
    #[inline]
    pub fn tuple<A: Family>(&self, src: A, dst: A, sport: u16, dport: u16) -> u32 {
        let mut b = [0u8; MAX_INPUT];
        let n = if A::V6 { 16 } else { 4 };
        src.write(&mut b[..n]);
        dst.write(&mut b[n..2 * n]);
        b[2 * n..2 * n + 2].copy_from_slice(&sport.to_be_bytes());
        b[2 * n + 2..2 * n + 4].copy_from_slice(&dport.to_be_bytes());
        self.hash(&b[..2 * n + 4])
    }
}

/// The redirection period on ports without a redirection table of their
/// own (virtual devices): the hash modulo this, then modulo the cores.
pub const DEFAULT_PERIOD: u16 = 128;

/// One core's view of how flows are spread over the cores.
#[derive(Clone, Debug)]
pub struct Steering {
    /// Number of workers.
    pub cores: u16,
    /// Redirection-table period (see the module documentation).
    pub period: u32,
    /// First port of the full-NAT local port range (all cores' slices).
    pub fnat_min: u16,
    /// Ports per core in the full-NAT range.
    pub fnat_per: u32,
    /// Whether the server-facing ports do RSS with [`RSS_KEY`] (then local
    /// ports are chosen so replies land on their owner's queue).
    pub hw_rss: bool,
    toeplitz: Toeplitz,
}

impl Steering {
    /// Steering over `cores` workers with redirection period `period`,
    /// full-NAT ports from `fnat_min`, `fnat_per` per core.
    pub fn new(cores: u16, period: u32, fnat_min: u16, fnat_per: u32, hw_rss: bool) -> Steering {
        Steering {
            cores: cores.max(1),
            period: period.max(1),
            fnat_min,
            fnat_per: fnat_per.max(1),
            hw_rss,
            toeplitz: Toeplitz::new(&RSS_KEY),
        }
    }

    /// The queue (core) RSS sends this tuple to.
    #[inline]
    pub fn rss<A: Family>(&self, src: A, dst: A, sport: u16, dport: u16) -> u16 {
        self.queue(self.toeplitz.tuple(src, dst, sport, dport))
    }

    /// The queue a hash lands on through the redirection table rvs programs.
    #[inline]
    pub fn queue(&self, h: u32) -> u16 {
        rvs_wire::num::rem_u16(u64::from(h % self.period), self.cores)
    }

    /// The core for a client network or client address and port.
    #[inline]
    pub fn client<A: Family>(&self, client: A, prefix: u8, port: Option<u16>) -> u16 {
        let x = client.mask(prefix).fold64() ^ u64::from(port.unwrap_or(0)).rotate_left(47);
        // A multiplicative mix; the top bits spread well.
        let m = x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (x >> 31);
        let m = m.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        rvs_wire::num::rem_u16(m >> 32, self.cores)
    }

    /// The core owning full-NAT local port `lport`, if in the range.
    #[inline]
    pub fn fnat_owner(&self, lport: u16) -> Option<u16> {
        let off = u32::from(lport.checked_sub(self.fnat_min)?);
        let core = off / self.fnat_per;
        u16::try_from(core).ok().filter(|&c| c < self.cores)
    }

    /// Whether a reply from `rs:rport` to `local:lport` would arrive on
    /// `core`'s queue (always true without hardware RSS).
    #[inline]
    pub fn prefers_lport<A: Family>(&self, core: u16, rs: A, rport: u16, local: A, lport: u16) -> bool {
        !self.hw_rss || self.rss(rs, local, rport, lport) == core
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_wire::{Ipv4, Ipv6};

    /// Microsoft's RSS verification key and vectors (also used by DPDK's
    /// thash tests): 66.9.149.187:2794 -> 161.142.100.80:1766.
    const MS_KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b,
        0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    #[test]
    fn matches_the_published_vectors() {
        let t = Toeplitz::new(&MS_KEY);
        let src = Ipv4(u32::from_be_bytes([66, 9, 149, 187]));
        let dst = Ipv4(u32::from_be_bytes([161, 142, 100, 80]));
        assert_eq!(t.tuple(src, dst, 2794, 1766), 0x51cc_c178);
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&src.to_be_bytes());
        b[4..].copy_from_slice(&dst.to_be_bytes());
        assert_eq!(t.hash(&b), 0x323e_8fc2);
        // 199.92.111.2:14230 -> 65.69.140.83:4739
        let (s2, d2) = (Ipv4(u32::from_be_bytes([199, 92, 111, 2])), Ipv4(u32::from_be_bytes([65, 69, 140, 83])));
        assert_eq!(t.tuple(s2, d2, 14230, 4739), 0xc626_b0ea);
        // IPv6: 3ffe:2501:200:1fff::7 -> 3ffe:2501:200:3::1, 2794 -> 1766
        let s6 = Ipv6(0x3ffe_2501_0200_1fff_0000_0000_0000_0007);
        let d6 = Ipv6(0x3ffe_2501_0200_0003_0000_0000_0000_0001);
        assert_eq!(t.tuple(s6, d6, 2794, 1766), 0x4020_7d3d);
    }

    #[test]
    fn rvs_key_is_symmetric() {
        let t = Toeplitz::new(&RSS_KEY);
        for i in 0..1000u16 {
            let w = u32::from(i);
            let (a, b) = (Ipv4(0xc612_0000 | w), Ipv4(0xc613_0000 ^ w.wrapping_mul(7919)));
            let (p, q) = (1024 + i, 80);
            assert_eq!(t.tuple(a, b, p, q), t.tuple(b, a, q, p));
            let (a6, b6) = (Ipv6(0x2001_0db8_u128 << 96 | u128::from(i)), Ipv6(0x2001_0db8_0001_u128 << 80 | u128::from(w * 3)));
            assert_eq!(t.tuple(a6, b6, p, q), t.tuple(b6, a6, q, p));
        }
    }

    #[test]
    fn owners_cover_every_core() {
        let s = Steering::new(3, 128, 1024, 1000, true);
        let mut seen = [0u32; 3];
        for i in 0..3000u32 {
            seen[usize::from(s.rss(Ipv4(0xc612_0000 | i), Ipv4(0xc612_0164), 40000, 80))] += 1;
            seen[usize::from(s.client(Ipv4(0xc612_0000 | i), 32, Some(5)))] += 1;
        }
        assert!(seen.iter().all(|&n| n > 1500), "{seen:?}");
        assert_eq!(s.fnat_owner(1023), None);
        assert_eq!(s.fnat_owner(1024), Some(0));
        assert_eq!(s.fnat_owner(2023), Some(0));
        assert_eq!(s.fnat_owner(2024), Some(1));
        assert_eq!(s.fnat_owner(4023), Some(2));
        assert_eq!(s.fnat_owner(4024), None);
        // A client network maps to one core whatever the host part.
        let c = s.client(Ipv4(0xc612_0105), 24, None);
        assert!((0..=255u32).all(|h| s.client(Ipv4(0xc612_0100 | h), 24, None) == c));
    }
}
