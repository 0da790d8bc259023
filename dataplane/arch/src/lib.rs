//! CPU and OS helpers the fast path needs: a cache prefetch, the
//! time-stamp counter and a millisecond clock over it, an eight-way
//! SIMD compare for hash-bucket signatures, and transparent huge pages
//! for large tables.
//!
//! They cannot be written without `unsafe` (intrinsics and `madvise`), so
//! they live here, in four blocks, and nowhere else: `rvs-wire` and
//! `rvs-core` forbid `unsafe` outright and use these. Nothing here knows
//! DPDK; the clock's frequency is passed in (rvsd takes the one EAL
//! measured).
/// Prefetches the cache line holding `r` into all cache levels.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint with no architectural effect; the
    // pointer comes from a valid reference and SSE is baseline on x86_64.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// Bit `i` set when `v[i] == x`: the eight signatures of a session-table
/// bucket compared at once (SSE2: two 4-lane compares and their sign
/// masks, where the plain loop took 20-80 instructions as the compiler
/// laid it out in each caller).
#[inline(always)]
pub fn eq_mask8(v: &[u32; 8], x: u32) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_castsi128_ps, _mm_cmpeq_epi32, _mm_loadu_si128, _mm_movemask_ps, _mm_set1_epi32};
        #[expect(clippy::cast_possible_wrap, reason = "the bits, compared as they are")]
        let x = x as i32;
        #[expect(
            clippy::multiple_unsafe_ops_per_block,
            reason = "one compare of two loaded halves: the intrinsics are unsafe only as SSE2 functions"
        )]
        // SAFETY: the two unaligned 16-byte loads read v[0..4] and v[4..8],
        // inside the 32 bytes `v` refers to; the rest are SSE2 register
        // operations, and SSE2 is part of every x86_64 CPU.
        let (lo, hi) = unsafe {
            let k = _mm_set1_epi32(x);
            let a = _mm_loadu_si128(v.as_ptr().cast());
            let b = _mm_loadu_si128(v.as_ptr().add(4).cast());
            (_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(a, k))), _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(b, k))))
        };
        #[expect(clippy::cast_sign_loss, reason = "two 4-bit masks")]
        let m = (lo | (hi << 4)) as u32;
        m
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut m = 0u32;
        for (i, &s) in v.iter().enumerate() {
            m |= u32::from(s == x) << i;
        }
        m
    }
}

/// Reads the CPU time-stamp counter (invariant TSC on every x86_64 CPU DPDK
/// supports).
#[inline(always)]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC has no preconditions and only reads a counter.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        // Saturates after 584 years.
        t.as_nanos().try_into().unwrap_or(u64::MAX)
    }
}

/// Asks the kernel to back the vector's allocation with transparent huge
/// pages (large session tables otherwise spend their lookups in TLB misses).
/// Call before the memory is first touched. Best effort: errors are ignored.
pub fn advise_hugepages<T>(v: &mut Vec<T>) {
    let bytes = v.capacity() * size_of::<T>();
    if bytes < (2 << 20) {
        return;
    }
    let page = 4096usize;
    let start = v.as_mut_ptr() as usize;
    let aligned = start.next_multiple_of(page);
    let len = (start + bytes).saturating_sub(aligned) & !(page - 1);
    if len == 0 {
        return;
    }
    // SAFETY: the range lies inside the vector's own allocation (page
    // aligned inwards); MADV_HUGEPAGE changes only how pages are backed,
    // never their contents or validity.
    let _ = unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
}

/// A millisecond clock from the TSC, shared by workers and management so
/// that timestamps they exchange (neighbour entries) agree.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: u64,
    per_ms: u64,
}

impl Clock {
    /// A clock starting now, with the TSC frequency EAL measured.
    pub fn new(tsc_hz: u64) -> Clock {
        Clock { start: tsc(), per_ms: (tsc_hz / 1000).max(1) }
    }

    /// Milliseconds since the clock started, wrapping at 2^32 (49 days):
    /// consumers compare ticks with wrapping arithmetic.
    #[inline]
    pub fn now_ms(&self) -> u32 {
        #[expect(clippy::cast_possible_truncation, reason = "wrapping millisecond ticks by design")]
        let ms = ((tsc().wrapping_sub(self.start)) / self.per_ms) as u32;
        ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eq_mask8_is_the_plain_compare() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..10_000 {
            // Few distinct values, so that several lanes match.
            let v: [u32; 8] = std::array::from_fn(|_| (rnd() % 4) as u32 | (0x8000_0000 * (rnd() % 2) as u32));
            let k = v[(rnd() % 8) as usize] ^ if rnd() % 4 == 0 { 1 } else { 0 };
            let want = v.iter().enumerate().fold(0u32, |m, (i, &s)| m | (u32::from(s == k) << i));
            assert_eq!(eq_mask8(&v, k), want, "{v:x?} {k:x}");
        }
        assert_eq!(eq_mask8(&[7; 8], 7), 0xff);
        assert_eq!(eq_mask8(&[u32::MAX, 0, 0, 0, 0, 0, 0, u32::MAX], u32::MAX), 0x81);
    }

    #[test]
    fn helpers_do_not_crash() {
        let x = [0u64; 8];
        prefetch(&x);
        let a = tsc();
        let b = tsc();
        assert!(b >= a);
        let mut v: Vec<u64> = Vec::with_capacity(1 << 20);
        advise_hugepages(&mut v);
        v.resize(1 << 20, 7);
        assert_eq!(v[12345], 7);
    }
}
