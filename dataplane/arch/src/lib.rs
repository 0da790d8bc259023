//! CPU and OS helpers the fast path needs: a cache prefetch, the
//! time-stamp counter and a millisecond clock over it, and transparent
//! huge pages for large tables.
//!
//! They cannot be written without `unsafe` (intrinsics and `madvise`), so
//! they live here, in three blocks, and nowhere else: `rvs-wire` and
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
