//! VRRP version 3 advertisements (RFC 5798, as updated by RFC 9568), for
//! IPv4 and IPv6, with rvs's optional authentication trailer.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! |(rsvd) |     Max Adver Int     |          Checksum             |
//! |                      IPvX address(es) ...                     |
//! ```
//!
//! The message travels in IP protocol 112 with TTL / hop limit 255 to
//! 224.0.0.18 or ff02::12 (or unicast to configured peers). The checksum
//! covers the message and the IP pseudo-header of its family.
//!
//! VRRPv3 has no authentication. rvs adds, when a shared key is
//! configured, a trailer after the addresses: the magic `RVSA`, a 64-bit
//! sequence number that only grows (nanoseconds since the epoch at the
//! sender: it survives restarts), and an HMAC-SHA256 tag over the message
//! up to and including the sequence number, with the checksum field zero.
//! A receiver with the key drops adverts without a valid tag and replays
//! (a sequence number not above the last one from that sender). The
//! trailer is counted in the IP length, so a router that knows nothing of
//! it (keepalived) sees a longer message whose address count still holds;
//! interoperating with one means leaving authentication off, as
//! keepalived's VRRPv3 has none.
use crate::addr::Family;
use crate::{be16, checksum, put16};
use std::net::IpAddr;

/// IP protocol number of VRRP.
pub const PROTO: u8 = 112;
/// The protocol version rvs speaks.
pub const VERSION: u8 = 3;
/// The only message type: advertisement.
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// TTL / hop limit every advertisement must arrive with (RFC 5798 5.1.1.3).
pub const TTL: u8 = 255;
/// The fixed part of a message.
pub const HEADER_LEN: usize = 8;
/// The IPv4 multicast group (224.0.0.18).
pub const GROUP_V4: [u8; 4] = [224, 0, 0, 18];
/// The IPv6 multicast group (ff02::12).
pub const GROUP_V6: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12];
/// Magic at the start of the authentication trailer.
pub const AUTH_MAGIC: [u8; 4] = *b"RVSA";
/// Length of an HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;
/// The authentication trailer: magic, sequence number, tag.
pub const TRAILER_LEN: usize = 4 + 8 + TAG_LEN;
/// The virtual router MAC of `vrid` (00:00:5e:00:01:VRID for IPv4,
/// 00:00:5e:00:02:VRID for IPv6).
pub fn virtual_mac(vrid: u8, v6: bool) -> crate::MacAddr {
    crate::MacAddr([0x00, 0x00, 0x5e, 0x00, if v6 { 0x02 } else { 0x01 }, vrid])
}

/// Why bytes are not an advertisement rvs accepts (each counted under
/// its own name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum VrrpError {
    /// Shorter than its header or its address list.
    #[error("truncated")]
    Truncated,
    /// Version field not 3.
    #[error("version is not 3")]
    Version,
    /// Type field not advertisement.
    #[error("type is not advertisement")]
    Type,
    /// The checksum does not verify.
    #[error("checksum does not verify")]
    Checksum,
    /// Arrived with a TTL or hop limit below 255 (it crossed a router).
    #[error("TTL or hop limit below 255")]
    Ttl,
    /// An interval of 0.
    #[error("advertisement interval of 0")]
    Interval,
    /// Bytes after the addresses that are not an authentication trailer.
    #[error("trailing bytes that are not an authentication trailer")]
    Trailer,
}

impl VrrpError {
    /// Every reason, in counter order.
    pub const ALL: [VrrpError; 7] = [
        VrrpError::Truncated,
        VrrpError::Version,
        VrrpError::Type,
        VrrpError::Checksum,
        VrrpError::Ttl,
        VrrpError::Interval,
        VrrpError::Trailer,
    ];

    /// The counter name.
    pub fn name(self) -> &'static str {
        match self {
            VrrpError::Truncated => "truncated",
            VrrpError::Version => "bad_version",
            VrrpError::Type => "bad_type",
            VrrpError::Checksum => "bad_checksum",
            VrrpError::Ttl => "bad_ttl",
            VrrpError::Interval => "bad_interval",
            VrrpError::Trailer => "bad_trailer",
        }
    }
}

/// The authentication trailer of a received advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    /// The sender's sequence number.
    pub seq: u64,
    /// Its HMAC-SHA256 tag.
    pub tag: [u8; TAG_LEN],
    /// How many bytes of the message the tag covers (everything before it).
    pub signed_len: usize,
}

/// An advertisement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    /// Virtual router id (1..=255).
    pub vrid: u8,
    /// Priority: 255 for the address owner, 0 for a master that stops.
    pub priority: u8,
    /// Advertisement interval, centiseconds (1..=4095).
    pub interval_cs: u16,
    /// The virtual addresses (all of the message's family).
    pub addrs: Vec<IpAddr>,
}

/// A parsed message: the advert and, when it has one, its trailer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The advertisement.
    pub advert: Advert,
    /// The authentication trailer, if present.
    pub trailer: Option<Trailer>,
}

/// Parses the VRRP message `msg` (the IP payload) that arrived from `src`
/// to `dst` with `ttl`.
pub fn parse<A: Family>(msg: &[u8], src: A, dst: A, ttl: u8) -> Result<Received, VrrpError> {
    let h: &[u8; HEADER_LEN] = msg.first_chunk().ok_or(VrrpError::Truncated)?;
    if h[0] >> 4 != VERSION {
        return Err(VrrpError::Version);
    }
    if h[0] & 0x0f != TYPE_ADVERTISEMENT {
        return Err(VrrpError::Type);
    }
    if ttl != TTL {
        return Err(VrrpError::Ttl);
    }
    let count = usize::from(h[3]);
    let end = HEADER_LEN + count * A::LEN;
    if msg.len() < end {
        return Err(VrrpError::Truncated);
    }
    if checksum::l4_checksum(A::pseudo_header(src, dst, PROTO, msg.len()), msg) != 0 {
        return Err(VrrpError::Checksum);
    }
    let interval_cs = be16(h, 4) & 0x0fff;
    if interval_cs == 0 {
        return Err(VrrpError::Interval);
    }
    let addrs = msg[HEADER_LEN..end].chunks_exact(A::LEN).filter_map(A::read).map(Family::to_ip).collect();
    let rest = &msg[end..];
    let trailer = match rest.len() {
        0 => None,
        TRAILER_LEN if rest[..4] == AUTH_MAGIC => {
            let mut seq = [0u8; 8];
            seq.copy_from_slice(&rest[4..12]);
            let mut tag = [0u8; TAG_LEN];
            tag.copy_from_slice(&rest[12..]);
            Some(Trailer { seq: u64::from_be_bytes(seq), tag, signed_len: end + 12 })
        }
        _ => return Err(VrrpError::Trailer),
    };
    Ok(Received { advert: Advert { vrid: h[1], priority: h[2], interval_cs, addrs }, trailer })
}

/// The bytes a trailer's tag covers, with the checksum field zero (the
/// checksum is computed after the tag and covers it).
pub fn signed_bytes(msg: &[u8], signed_len: usize) -> Vec<u8> {
    let mut v = msg.get(..signed_len).unwrap_or(msg).to_vec();
    if v.len() >= HEADER_LEN {
        put16(&mut v, 6, 0);
    }
    v
}

/// Encodes `adv` from `src` to `dst`, with the checksum; with `auth`, a
/// trailer with sequence number `auth.0` whose tag `auth.1` computes over
/// the bytes it is given.
pub fn encode<A: Family>(adv: &Advert, src: A, dst: A, auth: Option<(u64, &crate::sync::Signer<'_>)>) -> Vec<u8> {
    let addrs: Vec<A> = adv.addrs.iter().filter_map(|&a| A::from_ip(a)).take(255).collect();
    let mut m = vec![0u8; HEADER_LEN + addrs.len() * A::LEN];
    m[0] = (VERSION << 4) | TYPE_ADVERTISEMENT;
    m[1] = adv.vrid;
    m[2] = adv.priority;
    m[3] = crate::num::low_u16(addrs.len() as u64).to_le_bytes()[0];
    put16(&mut m, 4, adv.interval_cs & 0x0fff);
    for (i, a) in addrs.iter().enumerate() {
        a.write(&mut m[HEADER_LEN + i * A::LEN..]);
    }
    if let Some((seq, tag)) = auth {
        m.extend_from_slice(&AUTH_MAGIC);
        m.extend_from_slice(&seq.to_be_bytes());
        let t = tag(&m);
        m.extend_from_slice(&t);
    }
    let c = checksum::l4_checksum(A::pseudo_header(src, dst, PROTO, m.len()), &m);
    put16(&mut m, 6, c);
    m
}

/// RFC 5798 6.1: the skew of a backup of `priority`, in centiseconds.
pub fn skew_cs(priority: u8, master_interval_cs: u16) -> u32 {
    (256 - u32::from(priority)) * u32::from(master_interval_cs) / 256
}

/// RFC 5798 6.1: how long a backup waits without hearing the master
/// before it takes over, in centiseconds.
pub fn master_down_cs(priority: u8, master_interval_cs: u16) -> u32 {
    3 * u32::from(master_interval_cs) + skew_cs(priority, master_interval_cs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{Ipv4, Ipv6};

    fn v4(s: &str) -> Ipv4 {
        Ipv4::from(s.parse::<std::net::Ipv4Addr>().unwrap())
    }

    fn adv() -> Advert {
        Advert { vrid: 51, priority: 150, interval_cs: 10, addrs: vec!["198.18.0.100".parse().unwrap(), "198.18.0.101".parse().unwrap()] }
    }

    #[test]
    fn round_trip_v4_and_v6() {
        let (s, d) = (v4("198.18.0.2"), Ipv4::from(std::net::Ipv4Addr::from(GROUP_V4)));
        let m = encode(&adv(), s, d, None);
        assert_eq!(m.len(), 16);
        assert_eq!(&m[..6], &[0x31, 51, 150, 2, 0, 10]);
        let r = parse(&m, s, d, 255).unwrap();
        assert_eq!((r.advert, r.trailer), (adv(), None));
        let a6 = Advert { addrs: vec!["2001:db8::100".parse().unwrap()], ..adv() };
        let (s6, d6) = (Ipv6::from("fe80::1".parse::<std::net::Ipv6Addr>().unwrap()), Ipv6::from(std::net::Ipv6Addr::from(GROUP_V6)));
        let m = encode(&a6, s6, d6, None);
        assert_eq!(parse(&m, s6, d6, 255).unwrap().advert, a6);
        // The pseudo-header counts: the same bytes from another source fail.
        assert_eq!(parse(&m, Ipv6::from("fe80::2".parse::<std::net::Ipv6Addr>().unwrap()), d6, 255), Err(VrrpError::Checksum));
    }

    /// An advertisement laid out by hand from RFC 5798's figure: VRID 51,
    /// priority 100, interval 100 cs, one address 198.18.0.100, from
    /// 198.18.0.9 to 224.0.0.18 (the interoperability test with keepalived
    /// checks real ones).
    #[test]
    fn parses_a_hand_laid_advert() {
        let (s, d) = (v4("198.18.0.9"), v4("224.0.0.18"));
        let mut m = vec![0x31, 51, 100, 1, 0x00, 0x64, 0, 0, 198, 18, 0, 100];
        let c = checksum::l4_checksum(Ipv4::pseudo_header(s, d, PROTO, m.len()), &m);
        put16(&mut m, 6, c);
        let r = parse(&m, s, d, 255).unwrap();
        assert_eq!(r.advert.interval_cs, 100);
        assert_eq!(r.advert.addrs, vec!["198.18.0.100".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn malformations_each_have_a_reason() {
        let (s, d) = (v4("198.18.0.2"), v4("224.0.0.18"));
        let m = encode(&adv(), s, d, None);
        assert_eq!(parse(&m[..7], s, d, 255), Err(VrrpError::Truncated));
        assert_eq!(parse(&m[..12], s, d, 255), Err(VrrpError::Truncated));
        assert_eq!(parse(&m, s, d, 254), Err(VrrpError::Ttl));
        let mut bad = m.clone();
        bad[0] = 0x21;
        assert_eq!(parse(&bad, s, d, 255), Err(VrrpError::Version));
        bad[0] = 0x32;
        assert_eq!(parse(&bad, s, d, 255), Err(VrrpError::Type));
        let mut bad = m.clone();
        bad[2] ^= 1;
        assert_eq!(parse(&bad, s, d, 255), Err(VrrpError::Checksum));
        let mut long = m.clone();
        long.extend_from_slice(&[0; 3]);
        let c = checksum::l4_checksum(Ipv4::pseudo_header(s, d, PROTO, long.len()), &{
            let mut z = long.clone();
            put16(&mut z, 6, 0);
            z
        });
        put16(&mut long, 6, c);
        assert_eq!(parse(&long, s, d, 255), Err(VrrpError::Trailer));
        let zero = Advert { interval_cs: 0, ..adv() };
        assert_eq!(parse(&encode(&zero, s, d, None), s, d, 255), Err(VrrpError::Interval));
        // No input panics.
        for n in 0..m.len() {
            let _ = parse(&m[..n], s, d, 255);
        }
    }

    #[test]
    fn the_trailer_carries_sequence_and_tag_over_the_signed_bytes() {
        let (s, d) = (v4("198.18.0.2"), v4("224.0.0.18"));
        let tag = |b: &[u8]| {
            let mut t = [0u8; TAG_LEN];
            t[0] = checksum::checksum(b).to_be_bytes()[0];
            t[1] = u8::try_from(b.len()).unwrap();
            t
        };
        let m = encode(&adv(), s, d, Some((7, &tag)));
        assert_eq!(m.len(), 16 + TRAILER_LEN);
        let r = parse(&m, s, d, 255).unwrap();
        let t = r.trailer.unwrap();
        assert_eq!(t.seq, 7);
        // The receiver recomputes the tag over the same bytes.
        assert_eq!(tag(&signed_bytes(&m, t.signed_len)), t.tag);
    }

    #[test]
    fn timers_follow_rfc_5798() {
        // Priority 100, 1 s: skew 0.609 s, master down 3.609 s.
        assert_eq!(skew_cs(100, 100), 60);
        assert_eq!(master_down_cs(100, 100), 360);
        // 100 ms adverts: a dead master is noticed in about 0.34 s.
        assert_eq!(master_down_cs(100, 10), 36);
        assert_eq!(virtual_mac(51, false).0, [0, 0, 0x5e, 0, 1, 51]);
    }
}
