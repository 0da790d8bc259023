//! Integer conversions that say what they do.
//!
//! A bare `u16::try_from(x).unwrap_or(0)` hides two different things: a
//! value that cannot be out of range (a remainder, a masked field) and a
//! value that can, silently replaced by one that may alias another slot or
//! counter. These functions keep the two apart: the `rem_`/`low_`
//! functions are exact by construction, the `sat_` functions clamp to the
//! target's range, by name, where a clamped value is the right answer (a
//! length in a header field that cannot hold more, a rate). Indices that
//! could be out of range are checked where they are used, never clamped.

/// `x % n` as a `u16` (exact: the remainder is below `n`); 0 when `n` is 0.
#[inline(always)]
pub fn rem_u16(x: u64, n: u16) -> u16 {
    if n == 0 {
        return 0;
    }
    #[expect(clippy::cast_possible_truncation, reason = "x % n < n <= u16::MAX")]
    let r = (x % u64::from(n)) as u16;
    r
}

/// `x % n` as a `usize` (exact: the remainder is below `n`); 0 when `n` is 0.
#[inline(always)]
pub fn rem_usize(x: u64, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    // usize is at most 64 bits on every target rvs builds for.
    #[expect(clippy::cast_possible_truncation, reason = "x % n < n, a usize")]
    let r = (x % n as u64) as usize;
    r
}

/// The low 16 bits of `x`.
#[inline(always)]
pub fn low_u16(x: u64) -> u16 {
    (x & 0xffff) as u16
}

/// Unsigned `x`, or `u16::MAX` if it is larger.
#[inline(always)]
pub fn sat_u16<T: TryInto<u16>>(x: T) -> u16 {
    x.try_into().unwrap_or(u16::MAX)
}

/// Unsigned `x`, or `u32::MAX` if it is larger.
#[inline(always)]
pub fn sat_u32<T: TryInto<u32>>(x: T) -> u32 {
    x.try_into().unwrap_or(u32::MAX)
}

/// Unsigned `x`, or `u64::MAX` if it is larger.
#[inline(always)]
pub fn sat_u64<T: TryInto<u64>>(x: T) -> u64 {
    x.try_into().unwrap_or(u64::MAX)
}

/// Unsigned `x`, or `usize::MAX` if it is larger.
#[inline(always)]
pub fn sat_usize<T: TryInto<usize>>(x: T) -> usize {
    x.try_into().unwrap_or(usize::MAX)
}

/// `x` clamped to `0..=u32::MAX` (a gauge that a race made negative
/// reads as 0).
#[inline(always)]
pub fn clamp_u32(x: i64) -> u32 {
    u32::try_from(x.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn remainders_are_exact(x: u64, n: u16) {
            prop_assume!(n > 0);
            prop_assert_eq!(u64::from(rem_u16(x, n)), x % u64::from(n));
            prop_assert_eq!(rem_usize(x, usize::from(n)) as u64, x % u64::from(n));
        }

        #[test]
        fn saturation_is_min(x: u64) {
            prop_assert_eq!(u64::from(sat_u32(x)), x.min(u64::from(u32::MAX)));
            prop_assert_eq!(low_u16(x), (x & 0xffff) as u16);
        }
    }

    #[test]
    fn edges() {
        assert_eq!(rem_u16(5, 0), 0);
        assert_eq!(sat_u16(70_000), u16::MAX);
        assert_eq!(clamp_u32(-3), 0);
        assert_eq!(clamp_u32(i64::MAX), u32::MAX);
        assert_eq!(sat_u64(u128::MAX), u64::MAX);
    }
}
