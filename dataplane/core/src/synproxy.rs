//! SYN cookies: the sequence number a SYN proxy answers a SYN with, which
//! carries everything it needs to open the connection later, so that a SYN
//! costs no memory at all.
//!
//! A cookie is 32 bits:
//!
//! | bits | what |
//! |------|------|
//! | 0-1  | the time counter (`now_ms >> 16`, a 65.5 s window) modulo 4 |
//! | 2-3  | the client's MSS, as an index into [`MSS_TABLE`] (rounded down) |
//! | 4-7  | the client's window scale (15: it sent none) |
//! | 8    | the client sent SACK-permitted |
//! | 9-31 | 23 bits of SipHash-2-4 under the proxy's key, over the 4-tuple, the client's ISN, the full time counter and bits 2-8 |
//!
//! Checking a cookie (the client's ACK acknowledges cookie + 1) recomputes
//! the MAC for the current window and the one before (whichever has the
//! cookie's low two bits), so a cookie is good for 65 to 131 seconds and
//! forging one takes 2^23 guesses per (4-tuple, ISN) on average. The key is
//! 128 bits drawn at start-up; it is the same on every core (a flow's ACK
//! may meet a different core's forwarder only after a restart, when every
//! outstanding cookie is void anyway).
//!
//! Timestamps are handled as Linux handles them with cookies: the
//! client's TSval is echoed, the proxy's own TSval is the millisecond
//! clock, and the ACK tells whether the client uses them (its TS option).
use rvs_wire::l4::FiveTuple;
use rvs_wire::Family;
use std::hash::Hasher;

/// The MSS values a cookie can carry (RFC 879's 536, IPv6's minimum MTU
/// less headers, and the common Ethernet values for IPv6 and IPv4).
pub const MSS_TABLE: [u16; 4] = [536, 1220, 1440, 1460];

/// Window scale value meaning "none".
const NO_WSCALE: u32 = 15;

/// The client's options a cookie carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// MSS (one of [`MSS_TABLE`]).
    pub mss: u16,
    /// Window scale shift.
    pub wscale: Option<u8>,
    /// SACK permitted.
    pub sack_perm: bool,
}

impl ClientOptions {
    /// The options of a SYN announcing `mss` (None: 536, RFC 9293's
    /// default), `wscale` and `sack_perm`, as a cookie can carry them.
    pub fn of_syn(mss: Option<u16>, wscale: Option<u8>, sack_perm: bool) -> ClientOptions {
        let m = mss.unwrap_or(536);
        let mss = MSS_TABLE.iter().rev().copied().find(|&t| t <= m).unwrap_or(MSS_TABLE[0]);
        ClientOptions { mss, wscale: wscale.map(|w| w.min(14)), sack_perm }
    }

    fn bits(self) -> u32 {
        let idx = MSS_TABLE.iter().position(|&t| t == self.mss).unwrap_or(0);
        #[expect(clippy::cast_possible_truncation, reason = "an index below 4")]
        let idx = idx as u32;
        (idx << 2) | (self.wscale.map_or(NO_WSCALE, u32::from) << 4) | (u32::from(self.sack_perm) << 8)
    }

    fn from_bits(c: u32) -> ClientOptions {
        let ws = (c >> 4) & 0xf;
        ClientOptions {
            mss: MSS_TABLE[((c >> 2) & 3) as usize],
            wscale: (ws != NO_WSCALE).then(|| u8::try_from(ws.min(14)).unwrap_or(14)),
            sack_perm: (c >> 8) & 1 == 1,
        }
    }
}

/// The key cookies are made and checked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieKey {
    k: [u64; 2],
}

/// The time counter of `now_ms`.
#[inline]
fn counter(now_ms: u32) -> u32 {
    now_ms >> 16
}

impl CookieKey {
    /// A key from 128 random bits.
    pub fn new(k0: u64, k1: u64) -> CookieKey {
        CookieKey { k: [k0, k1] }
    }

    /// The 23-bit MAC of a cookie.
    #[inline]
    fn mac<A: Family>(&self, t: &FiveTuple<A>, isn: u32, count: u32, bits: u32) -> u32 {
        #[expect(deprecated, reason = "std's SipHasher is SipHash-2-4, the keyed PRF SYN cookies need; no crate needed")]
        let mut h = std::hash::SipHasher::new_with_keys(self.k[0], self.k[1]);
        h.write_u128(t.src.key128());
        h.write_u128(t.dst.key128());
        h.write_u64((u64::from(t.sport) << 48) | (u64::from(t.dport) << 32) | u64::from(isn));
        h.write_u64((u64::from(count) << 32) | u64::from(bits));
        u32::try_from(h.finish() >> 41).unwrap_or(0)
    }

    /// The cookie for a SYN with tuple `t` (client to VIP), initial
    /// sequence number `isn` and options `o`, at `now_ms`.
    pub fn make<A: Family>(&self, t: &FiveTuple<A>, isn: u32, o: ClientOptions, now_ms: u32) -> u32 {
        let c = counter(now_ms);
        let bits = o.bits();
        (self.mac(t, isn, c, bits) << 9) | bits | (c & 3)
    }

    /// The client's options, when `cookie` is one this key made for tuple
    /// `t` and ISN `isn` in the current window or the one before.
    pub fn check<A: Family>(&self, t: &FiveTuple<A>, isn: u32, cookie: u32, now_ms: u32) -> Option<ClientOptions> {
        let now = counter(now_ms);
        let bits = cookie & 0x1fc;
        [now, now.wrapping_sub(1)]
            .into_iter()
            .find(|c| c & 3 == cookie & 3 && self.mac(t, isn, *c, bits) == cookie >> 9)
            .map(|_| ClientOptions::from_bits(cookie))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_wire::{Ipv4, Ipv6};

    fn t4() -> FiveTuple<Ipv4> {
        FiveTuple { src: Ipv4(0xc612_000a), dst: Ipv4(0xc612_0064), sport: 40000, dport: 80, proto: 6 }
    }

    #[test]
    fn a_cookie_carries_the_options_and_checks_for_two_windows() {
        let k = CookieKey::new(1, 2);
        let o = ClientOptions::of_syn(Some(1460), Some(7), true);
        let now = 5_000_000;
        let c = k.make(&t4(), 1234, o, now);
        assert_eq!(k.check(&t4(), 1234, c, now), Some(o));
        assert_eq!(k.check(&t4(), 1234, c, now + 65_536), Some(o), "the next window still accepts it");
        assert_eq!(k.check(&t4(), 1234, c, now + 2 * 65_536), None, "two windows later it is void");
        assert_eq!(k.check(&t4(), 1234, c, now.wrapping_sub(65_536)), None, "a cookie from the future is void");
        assert_eq!(k.check(&t4(), 1235, c, now), None, "another ISN");
        assert_eq!(k.check(&FiveTuple { sport: 40001, ..t4() }, 1234, c, now), None, "another port");
        assert_eq!(CookieKey::new(1, 3).check(&t4(), 1234, c, now), None, "another key");
        for bit in 0..32 {
            assert_eq!(k.check(&t4(), 1234, c ^ (1 << bit), now), None, "bit {bit} flipped");
        }
    }

    #[test]
    fn options_round_down_to_the_table() {
        assert_eq!(ClientOptions::of_syn(Some(1400), None, false).mss, 1220);
        assert_eq!(ClientOptions::of_syn(Some(9000), Some(20), false), ClientOptions { mss: 1460, wscale: Some(14), sack_perm: false });
        assert_eq!(ClientOptions::of_syn(None, None, false).mss, 536);
        assert_eq!(ClientOptions::of_syn(Some(100), None, false).mss, 536);
        let k = CookieKey::new(9, 9);
        let t = FiveTuple { src: Ipv6(0x2001_0db8 << 96 | 1), dst: Ipv6(0x2001_0db8 << 96 | 2), sport: 1, dport: 443, proto: 6 };
        for o in [
            ClientOptions::of_syn(Some(1440), Some(0), false),
            ClientOptions::of_syn(Some(536), None, true),
            ClientOptions::of_syn(Some(1220), Some(14), true),
        ] {
            assert_eq!(k.check(&t, 7, k.make(&t, 7, o, 1), 1), Some(o));
        }
    }

    #[test]
    fn forgeries_are_rare() {
        // 2^16 random cookies for one tuple: about 2^16 * 2 / 2^23 pass by
        // chance; far more would mean a weak MAC.
        let k = CookieKey::new(0x1234, 0x5678);
        let mut x = 0x9e37_79b9_u32;
        let mut ok = 0;
        for _ in 0..65_536 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            ok += u32::from(k.check(&t4(), 1, x, 1_000_000).is_some());
        }
        assert!(ok <= 4, "{ok} forged cookies passed");
    }
}
