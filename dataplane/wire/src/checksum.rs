//! Internet checksums: RFC 1071 sums, pseudo-headers, RFC 1624 updates.
//!
//! Sums are kept unfolded in a `u64` and folded once at the end; the ones'
//! complement sum is byte-order independent (RFC 1071 section 2(B)), so data
//! is summed in 32-bit native-endian words and converted once. NAT rewrites
//! never re-sum a packet: they apply [`update16`]/[`update32`]/[`update_bytes`]
//! (RFC 1624 eqn. 3, `HC' = ~(~HC + ~m + m')`), which stays correct for the
//! `0x0000`/`0xffff` corner RFC 1141's formula gets wrong.

/// Adds `data` to a running, unfolded ones' complement sum (RFC 1071).
/// The sum is over big-endian 16-bit words; an odd last byte is padded.
#[inline(always)]
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    // Eight bytes a step: one load and swap, its two 32-bit halves added.
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (v >> 32) + (v & 0xffff_ffff);
    }
    let mut rest = chunks.remainder();
    if let Some((c, tail)) = rest.split_first_chunk::<4>() {
        acc += u64::from(u32::from_be_bytes(*c));
        rest = tail;
    }
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        acc += u64::from(rest[i]) << 8;
    }
    acc
}

/// Folds an unfolded sum to 16 bits with end-around carry: the two 32-bit
/// halves added with their carry added back, then the two 16-bit halves of
/// that (an add and an add-with-carry each). Zero only for zero; otherwise
/// the one value in 1..=0xffff of the sum modulo 0xffff, as the four-step
/// shift-and-mask fold it replaced (`fold_is_the_shift_and_mask_fold`).
#[inline(always)]
pub fn fold(acc: u64) -> u16 {
    #[expect(clippy::cast_possible_truncation, reason = "the halves, on purpose")]
    let (lo, hi) = (acc as u32, (acc >> 32) as u32);
    let (s, c) = lo.overflowing_add(hi);
    // No overflow here: a carry out above leaves `s` at most 2^32 - 2.
    let s = s + u32::from(c);
    #[expect(clippy::cast_possible_truncation, reason = "the halves, on purpose")]
    let (lo, hi) = (s as u16, (s >> 16) as u16);
    let (v, c) = lo.overflowing_add(hi);
    v + u16::from(c)
}

/// The checksum field value for `data` (the complement of its folded sum).
#[inline(always)]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// True when a 20-byte IPv4 header (no options) verifies: the same answer
/// as `checksum(h) == 0`, in one pass of five native-endian 32-bit words
/// with no byte swaps (the sum is byte-order independent, and a verifying
/// sum folds to `0xffff` in either order).
#[inline(always)]
pub fn ipv4_header_ok(h: &[u8; 20]) -> bool {
    let w = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    fold(w(0) + w(4) + w(8) + w(12) + w(16)) == 0xffff
}

/// Unfolded sum of the IPv4 pseudo-header (RFC 793 / RFC 768).
#[inline(always)]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: u16) -> u64 {
    u64::from(u32::from_be_bytes(src)) + u64::from(u32::from_be_bytes(dst)) + u64::from(proto) + u64::from(l4_len)
}

/// Unfolded sum of the IPv6 pseudo-header (RFC 8200 section 8.1).
#[inline]
pub fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, l4_len: u32) -> u64 {
    sum(src, 0) + sum(dst, 0) + u64::from(next_header) + u64::from(l4_len >> 16) + u64::from(l4_len & 0xffff)
}

/// Full L4 checksum: pseudo-header sum plus the segment (whose checksum field
/// must be zero when computing, or as received when verifying: a correct
/// segment then folds to `0xffff` and this returns 0).
#[inline(always)]
pub fn l4_checksum(pseudo: u64, segment: &[u8]) -> u16 {
    !fold(sum(segment, pseudo))
}

/// RFC 1624 eqn. 3: the checksum after a 16-bit field changed from `old` to `new`.
#[inline(always)]
pub fn update16(cksum: u16, old: u16, new: u16) -> u16 {
    apply(cksum, delta16(old, new))
}

/// RFC 1624 for a 32-bit field (an IPv4 address), as two 16-bit updates.
#[inline(always)]
pub fn update32(cksum: u16, old: u32, new: u32) -> u16 {
    apply(cksum, delta32(old, new))
}

/// RFC 1624 for an arbitrary even-length field (an IPv6 address).
#[inline]
pub fn update_bytes(cksum: u16, old: &[u8], new: &[u8]) -> u16 {
    apply(cksum, delta_bytes(old, new))
}

/// RFC 1624 eqn. 3 for any number of changed fields at once:
/// `HC' = ~(~HC + sum of (~m + m'))`, where `delta` is the sum of the
/// fields' terms ([`delta16`], [`delta32`], [`delta_bytes`], added
/// unfolded). One fold however many fields changed.
#[inline(always)]
pub fn apply(cksum: u16, delta: u64) -> u16 {
    !fold(u64::from(!cksum) + delta)
}

/// The unfolded term `~m + m'` of a 16-bit field changing from `old` to
/// `new`, for [`apply`].
#[inline(always)]
pub fn delta16(old: u16, new: u16) -> u64 {
    u64::from(!old) + u64::from(new)
}

/// The term of a 32-bit field (its two 16-bit words), for [`apply`].
///
/// Added whole: a 32-bit word is its two 16-bit halves to a ones'
/// complement sum (2^16 is 1 modulo 0xffff), and [`fold`] folds it so; a
/// few instructions where taking the halves apart took ~20 (the result is
/// bit for bit the same, `delta32_is_its_halves`).
#[inline(always)]
pub fn delta32(old: u32, new: u32) -> u64 {
    u64::from(!old) + u64::from(new)
}

/// The term of an even-length field (an IPv6 address), for [`apply`].
#[inline]
pub fn delta_bytes(old: &[u8], new: &[u8]) -> u64 {
    debug_assert_eq!(old.len(), new.len());
    // ~m summed is the complement of the sum of m (ones' complement algebra).
    u64::from(!fold(sum(old, 0))) + sum(new, 0)
}

/// Updates a UDP-over-IPv4 checksum field, honouring RFC 768: a zero field
/// means "no checksum" and stays zero; a computed zero is sent as `0xffff`.
#[inline(always)]
pub fn udp_update(cksum: u16, f: impl FnOnce(u16) -> u16) -> u16 {
    if cksum == 0 {
        return 0;
    }
    match f(cksum) {
        0 => 0xffff,
        v => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_worked_example() {
        // RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn ipv4_header_example() {
        // A classic IPv4 header whose checksum is b861.
        let mut h =
            [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7];
        assert_eq!(checksum(&h), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert_eq!(checksum(&h), 0);
    }

    #[test]
    fn odd_length_is_padded() {
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56], 0)), 0x1234 + 0x5600);
    }

    #[test]
    fn rfc1624_corner_case() {
        // RFC 1624 section 4: a header summing to 0xcd7a with the field
        // changing 0x5555 -> 0x3285; eqn. 3 must yield 0x0000, not 0xffff.
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        assert_eq!(udp_update(0, |c| update16(c, 1, 2)), 0);
        assert_eq!(udp_update(0x1234, |_| 0), 0xffff);
    }

    fn with_field(data: &[u8], at: usize, v: &[u8]) -> Vec<u8> {
        let mut d = data.to_vec();
        d[at..at + v.len()].copy_from_slice(v);
        d
    }

    /// RFC 1071 as written: big-endian 16-bit words, the odd last byte
    /// padded, end-around carry folded at the end.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut acc = 0u64;
        for w in data.chunks(2) {
            acc += u64::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)]));
        }
        fold(acc)
    }

    proptest! {
        #[test]
        fn sum_is_rfc1071(data in prop::collection::vec(any::<u8>(), 0..300), start in any::<u32>()) {
            let start = u64::from(start);
            prop_assert_eq!(fold(sum(&data, 0)), reference_sum(&data));
            // Added to a running sum, it folds as the two sums added.
            let both = fold(u64::from(fold(start)) + u64::from(reference_sum(&data)));
            let got = fold(sum(&data, start));
            prop_assert!(got == both || (got ^ both) == 0xffff && (got == 0 || both == 0), "{got:#x} {both:#x}");
        }

        #[test]
        fn delta32_is_its_halves(ck in any::<u16>(), old in any::<u32>(), new in any::<u32>(), more in any::<u32>(), edge in 0u8..4) {
            // The halves, as RFC 1624 writes them; the same checksum out,
            // zero's encoding included, beside other fields' terms or not
            // (and at the edges: all ones to zero, equal values).
            let (old, new) = match edge {
                0 => (u32::MAX, 0),
                1 => (old, old),
                _ => (old, new),
            };
            let halves = u64::from(!(old >> 16) & 0xffff) + u64::from(!old & 0xffff) + u64::from(new >> 16) + u64::from(new & 0xffff);
            let extra = if edge == 3 { u64::from(more) } else { 0 };
            prop_assert_eq!(apply(ck, delta32(old, new) + extra), apply(ck, halves + extra));
        }

        #[test]
        fn fold_is_the_shift_and_mask_fold(x in any::<u64>(), small in any::<u32>(), edge in 0u8..6) {
            let reference = |mut acc: u64| {
                acc = (acc & 0xffff_ffff) + (acc >> 32);
                acc = (acc & 0xffff) + (acc >> 16);
                acc = (acc & 0xffff) + (acc >> 16);
                acc = (acc & 0xffff) + (acc >> 16);
                u16::try_from(acc).unwrap()
            };
            let x = match edge {
                0 => 0,
                1 => u64::MAX,
                2 => u64::from(small),
                3 => 0xffff_ffff_0000_0001,
                _ => x,
            };
            prop_assert_eq!(fold(x), reference(x));
        }

        #[test]
        fn sum_of_zeros_and_all_ones(n in 0usize..64) {
            prop_assert_eq!(fold(sum(&vec![0; n], 0)), 0);
            prop_assert_eq!(fold(sum(&vec![0xff; n], 0)), if n == 0 { 0 } else { reference_sum(&vec![0xff; n]) });
        }

        #[test]
        fn one_fold_for_many_fields_matches_full(data in prop::collection::vec(any::<u8>(), 40..41), a in any::<u32>(), b in any::<u16>(), c in any::<[u8; 16]>()) {
            // Three fields changed at once (a 32-bit, a 16-bit and a 16-byte
            // one), their terms added and folded once, as a NAT rewrite does.
            let before = checksum(&data);
            let mut after = with_field(&data, 0, &a.to_be_bytes());
            after = with_field(&after, 4, &b.to_be_bytes());
            after = with_field(&after, 8, &c);
            let d = delta32(u32::from_be_bytes([data[0], data[1], data[2], data[3]]), a)
                + delta16(u16::from_be_bytes([data[4], data[5]]), b)
                + delta_bytes(&data[8..24], &c);
            let inc = apply(before, d);
            let full = checksum(&after);
            prop_assert!(inc == full || (inc ^ full) == 0xffff && (inc == 0 || full == 0), "{inc:#x} {full:#x}");
        }

        #[test]
        fn ipv4_header_ok_is_checksum_zero(mut h in any::<[u8; 20]>(), fix in any::<bool>()) {
            if fix {
                h[10] = 0;
                h[11] = 0;
                let c = checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            prop_assert_eq!(ipv4_header_ok(&h), checksum(&h) == 0);
        }

        #[test]
        fn incremental16_matches_full(mut data in prop::collection::vec(any::<u8>(), 4..200), at in 0usize..100, new in any::<u16>()) {
            if data.len() % 2 == 1 { data.pop(); }
            let at = ((at * 2) % (data.len() - 1)) & !1;
            let before = checksum(&data);
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            let after = with_field(&data, at, &new.to_be_bytes());
            let full = checksum(&after);
            let inc = update16(before, old, new);
            // Ones' complement has two zeros; both encodings verify the same.
            prop_assert!(inc == full || (inc == 0xffff && full == 0) || (inc == 0 && full == 0xffff));
        }

        #[test]
        fn incremental32_and_bytes_match_full(data in prop::collection::vec(any::<u8>(), 40..41), new in any::<u32>(), new6 in any::<[u8; 16]>()) {
            let before = checksum(&data);
            let old = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
            let after = with_field(&data, 8, &new.to_be_bytes());
            let full = checksum(&after);
            let inc = update32(before, old, new);
            prop_assert!(inc == full || (inc ^ full) == 0xffff && (inc == 0 || full == 0));

            let after6 = with_field(&data, 16, &new6);
            let full6 = checksum(&after6);
            let inc6 = update_bytes(before, &data[16..32], &new6);
            prop_assert!(inc6 == full6 || (inc6 ^ full6) == 0xffff && (inc6 == 0 || full6 == 0));
        }

        #[test]
        fn verify_of_correct_segment_is_zero(seg in prop::collection::vec(any::<u8>(), 8..300), src in any::<[u8;4]>(), dst in any::<[u8;4]>()) {
            let mut seg = seg;
            seg[6] = 0; seg[7] = 0;
            #[expect(clippy::cast_possible_truncation, reason = "test lengths < 300")]
            let ph = pseudo_v4(src, dst, 17, seg.len() as u16);
            let c = l4_checksum(ph, &seg);
            seg[6..8].copy_from_slice(&c.to_be_bytes());
            prop_assert_eq!(l4_checksum(ph, &seg), 0);
        }
    }
}
