//! TCP options (RFC 9293 3.2, RFC 7323, RFC 2018): the parser, the writer
//! of a handshake's options, and the in-place shift of sequence numbers,
//! SACK blocks, timestamps and windows that a SYN proxy applies to every
//! segment of a connection it spliced.
//!
//! The parser never fails: malformed options (a length below 2, past the
//! header, a known option of the wrong length) end the walk, and what was
//! read before stays. That is what stacks do (Linux stops at the first bad
//! length), and the forwarder only needs the options it knows.
use super::{be16, be32, checksum, put16, put32};
use crate::tcp::{self, flags, CHECKSUM_AT, MIN_HEADER_LEN};

/// Option kinds rvs reads or writes.
pub mod kind {
    /// End of option list.
    pub const EOL: u8 = 0;
    /// No operation (padding).
    pub const NOP: u8 = 1;
    /// Maximum segment size (SYN only).
    pub const MSS: u8 = 2;
    /// Window scale (SYN only).
    pub const WSCALE: u8 = 3;
    /// SACK permitted (SYN only).
    pub const SACK_PERM: u8 = 4;
    /// SACK blocks.
    pub const SACK: u8 = 5;
    /// Timestamps.
    pub const TS: u8 = 8;
}

/// The largest window scale shift (RFC 7323 2.3).
pub const MAX_WSCALE: u8 = 14;

/// What a segment's options say, and where the ones a proxy rewrites are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    /// MSS option.
    pub mss: Option<u16>,
    /// Window scale shift (capped at [`MAX_WSCALE`], as RFC 7323 says).
    pub wscale: Option<u8>,
    /// SACK permitted.
    pub sack_perm: bool,
    /// Timestamps: (TSval, TSecr).
    pub ts: Option<(u32, u32)>,
    /// Offset of TSval in the segment (0: none).
    pub ts_at: usize,
    /// Offset of the first SACK block in the segment (0: none).
    pub sack_at: usize,
    /// Number of SACK blocks.
    pub sack_blocks: u8,
}

impl TcpOptions {
    /// Parses the options of the segment `seg` whose header is
    /// `header_len` bytes long (as [`tcp::TcpHeader::parse`] found it).
    pub fn parse(seg: &[u8], header_len: usize) -> TcpOptions {
        let mut o = TcpOptions::default();
        let end = header_len.min(seg.len());
        let mut i = MIN_HEADER_LEN;
        while i < end {
            let k = seg[i];
            if k == kind::EOL {
                break;
            }
            if k == kind::NOP {
                i += 1;
                continue;
            }
            let Some(&len) = seg.get(i + 1) else { break };
            let len = usize::from(len);
            if len < 2 || i + len > end {
                break;
            }
            match (k, len) {
                (kind::MSS, 4) => o.mss = Some(be16(seg, i + 2)),
                (kind::WSCALE, 3) => o.wscale = Some(seg[i + 2].min(MAX_WSCALE)),
                (kind::SACK_PERM, 2) => o.sack_perm = true,
                (kind::TS, 10) => {
                    o.ts = Some((be32(seg, i + 2), be32(seg, i + 6)));
                    o.ts_at = i + 2;
                }
                (kind::SACK, l) if l >= 10 && (l - 2) % 8 == 0 => {
                    o.sack_at = i + 2;
                    #[expect(clippy::cast_possible_truncation, reason = "at most 4 blocks fit in 40 bytes of options")]
                    let n = ((l - 2) / 8) as u8;
                    o.sack_blocks = n;
                }
                (kind::MSS | kind::WSCALE | kind::SACK_PERM | kind::TS | kind::SACK, _) => break,
                _ => {}
            }
            i += len;
        }
        o
    }
}

/// The options of a SYN or SYN-ACK rvs writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandshakeOptions {
    /// MSS to announce.
    pub mss: u16,
    /// Window scale to announce (None: no option, no scaling).
    pub wscale: Option<u8>,
    /// Announce SACK permitted.
    pub sack_perm: bool,
    /// Timestamps (TSval, TSecr) to carry.
    pub ts: Option<(u32, u32)>,
}

/// Longest option block [`write_handshake`] writes.
pub const HANDSHAKE_MAX: usize = 20;

/// Writes `o` as Linux lays them out (MSS; SACK-permitted with the
/// timestamps, or NOP-padded; NOP and window scale), a multiple of four
/// bytes long; returns the length.
pub fn write_handshake(out: &mut [u8; HANDSHAKE_MAX], o: &HandshakeOptions) -> usize {
    let mut n = 0;
    let mut put = |b: &[u8]| {
        out[n..n + b.len()].copy_from_slice(b);
        n += b.len();
    };
    let m = o.mss.to_be_bytes();
    put(&[kind::MSS, 4, m[0], m[1]]);
    match (o.sack_perm, o.ts) {
        (sack, Some((v, e))) => {
            if sack {
                put(&[kind::SACK_PERM, 2]);
            } else {
                put(&[kind::NOP, kind::NOP]);
            }
            put(&[kind::TS, 10]);
            put(&v.to_be_bytes());
            put(&e.to_be_bytes());
        }
        (true, None) => put(&[kind::NOP, kind::NOP, kind::SACK_PERM, 2]),
        (false, None) => {}
    }
    if let Some(ws) = o.wscale {
        put(&[kind::NOP, kind::WSCALE, 3, ws.min(MAX_WSCALE)]);
    }
    n
}

/// Writes NOP NOP TS(`tsval`, `tsecr`): the 12 bytes of a timestamped
/// segment's options.
pub fn write_timestamps(out: &mut [u8; 12], tsval: u32, tsecr: u32) {
    out[..4].copy_from_slice(&[kind::NOP, kind::NOP, kind::TS, 10]);
    out[4..8].copy_from_slice(&tsval.to_be_bytes());
    out[8..].copy_from_slice(&tsecr.to_be_bytes());
}

/// What [`shift`] adds to each field of a segment (wrapping), and how it
/// rescales the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shift {
    /// Added to the sequence number.
    pub seq: u32,
    /// Added to the acknowledgement number (when ACK is set).
    pub ack: u32,
    /// Added to both edges of every SACK block.
    pub sack: u32,
    /// Added to TSval.
    pub tsval: u32,
    /// Added to TSecr.
    pub tsecr: u32,
    /// The window field is `(w << from) >> to`, at most 65535 (None: as
    /// is). Not applied to SYN segments, whose window is never scaled.
    pub window: Option<(u8, u8)>,
}

/// Applies `s` to the TCP segment `seg` (a header that
/// [`tcp::TcpHeader::parse`] accepted), updating the checksum
/// incrementally. Returns true when it translated SACK blocks.
pub fn shift(seg: &mut [u8], s: &Shift) -> bool {
    let Ok(h) = tcp::TcpHeader::parse(seg) else { return false };
    let mut c = be16(seg, CHECKSUM_AT);
    let add32 = |seg: &mut [u8], at: usize, d: u32, c: &mut u16| {
        if d != 0 {
            let old = be32(seg, at);
            let new = old.wrapping_add(d);
            put32(seg, at, new);
            *c = checksum::update32(*c, old, new);
        }
    };
    add32(seg, 4, s.seq, &mut c);
    if h.flags & flags::ACK != 0 {
        add32(seg, 8, s.ack, &mut c);
    }
    if let Some((from, to)) = s.window.filter(|_| h.flags & flags::SYN == 0) {
        let old = be16(seg, 14);
        let w = (u32::from(old) << from.min(MAX_WSCALE)) >> to.min(MAX_WSCALE);
        let new = u16::try_from(w).unwrap_or(u16::MAX);
        put16(seg, 14, new);
        c = checksum::update16(c, old, new);
    }
    let mut sacked = false;
    if h.header_len > MIN_HEADER_LEN && (s.sack != 0 || s.tsval != 0 || s.tsecr != 0) {
        let o = TcpOptions::parse(seg, h.header_len);
        if o.ts_at != 0 {
            add32(seg, o.ts_at, s.tsval, &mut c);
            add32(seg, o.ts_at + 4, s.tsecr, &mut c);
        }
        if o.sack_at != 0 && s.sack != 0 {
            for b in 0..usize::from(o.sack_blocks) {
                add32(seg, o.sack_at + b * 8, s.sack, &mut c);
                add32(seg, o.sack_at + b * 8 + 4, s.sack, &mut c);
            }
            sacked = true;
        }
    }
    put16(seg, CHECKSUM_AT, c);
    sacked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{Family, Ipv4};
    use crate::checksum::l4_checksum;

    fn segment(opts: &[u8], fl: u8) -> Vec<u8> {
        let hl = MIN_HEADER_LEN + opts.len();
        let mut s = vec![0u8; hl + 5];
        tcp::write_bare(&mut s, 40000, 80, 1000, 2000, fl);
        #[expect(clippy::cast_possible_truncation, reason = "a test header")]
        {
            s[12] = ((hl / 4) as u8) << 4;
        }
        s[14..16].copy_from_slice(&1000u16.to_be_bytes());
        s[MIN_HEADER_LEN..hl].copy_from_slice(opts);
        s[hl..].copy_from_slice(b"hello");
        let c = l4_checksum(Ipv4::pseudo_header(Ipv4(1), Ipv4(2), 6, s.len()), &s);
        s[CHECKSUM_AT..CHECKSUM_AT + 2].copy_from_slice(&c.to_be_bytes());
        s
    }

    #[test]
    fn handshake_options_round_trip() {
        for o in [
            HandshakeOptions { mss: 1460, wscale: Some(7), sack_perm: true, ts: Some((5, 6)) },
            HandshakeOptions { mss: 536, wscale: None, sack_perm: false, ts: None },
            HandshakeOptions { mss: 1440, wscale: Some(14), sack_perm: true, ts: None },
            HandshakeOptions { mss: 1220, wscale: None, sack_perm: false, ts: Some((u32::MAX, 0)) },
        ] {
            let mut b = [0u8; HANDSHAKE_MAX];
            let n = write_handshake(&mut b, &o);
            assert_eq!(n % 4, 0);
            let s = segment(&b[..n], flags::SYN);
            let p = TcpOptions::parse(&s, MIN_HEADER_LEN + n);
            assert_eq!((p.mss, p.wscale, p.sack_perm, p.ts), (Some(o.mss), o.wscale, o.sack_perm, o.ts));
        }
    }

    #[test]
    fn malformed_options_end_the_walk_without_panicking() {
        // MSS, then a zero length: the walk keeps the MSS and stops.
        let s = segment(&[2, 4, 5, 0xb4, 8, 0, 1, 1], flags::SYN);
        assert_eq!(TcpOptions::parse(&s, 28).mss, Some(1460));
        // A length past the header.
        let s = segment(&[3, 9, 7, 0], flags::SYN);
        assert_eq!(TcpOptions::parse(&s, 24), TcpOptions::default());
        // A known kind with the wrong length.
        let s = segment(&[8, 6, 0, 0, 0, 0, 1, 1], flags::SYN);
        assert_eq!(TcpOptions::parse(&s, 28).ts, None);
        // Every byte pattern of a short option block parses.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let s = segment(&[a, b, a, b], flags::ACK);
                let _ = TcpOptions::parse(&s, 24);
                let _ = TcpOptions::parse(&s, 60);
            }
        }
    }

    #[test]
    fn shift_translates_every_field_and_keeps_the_checksum() {
        let mut opts = vec![kind::NOP, kind::NOP, kind::TS, 10, 0, 0, 0, 100, 0, 0, 0, 200];
        opts.extend([kind::NOP, kind::NOP, kind::SACK, 18]);
        for v in [3000u32, 4000, 5000, 6000] {
            opts.extend(v.to_be_bytes());
        }
        let mut s = segment(&opts, flags::ACK);
        let ph = Ipv4::pseudo_header(Ipv4(1), Ipv4(2), 6, s.len());
        let sh = Shift { seq: 1, ack: u32::MAX, sack: 10, tsval: 7, tsecr: 0u32.wrapping_sub(50), window: Some((7, 5)) };
        assert!(shift(&mut s, &sh));
        assert_eq!(l4_checksum(ph, &s), 0, "checksum follows");
        let h = tcp::TcpHeader::parse(&s).unwrap();
        assert_eq!((h.seq, h.ack), (1001, 1999));
        assert_eq!(be16(&s, 14), 4000, "window rescaled from shift 7 to 5");
        let o = TcpOptions::parse(&s, h.header_len);
        assert_eq!(o.ts, Some((107, 150)));
        assert_eq!((be32(&s, o.sack_at), be32(&s, o.sack_at + 12)), (3010, 6010));
        // A window that would not fit is clamped.
        let mut s = segment(&[], flags::ACK);
        shift(&mut s, &Shift { window: Some((14, 0)), ..Shift::default() });
        assert_eq!(be16(&s, 14), 0xffff);
        assert_eq!(l4_checksum(Ipv4::pseudo_header(Ipv4(1), Ipv4(2), 6, s.len()), &s), 0);
    }
}
