//! Mempools, owned mbufs and bursts of them.
use super::eal::{rte_errno, Eal};
use dpdk_sys as sys;
use rvs_wire::PacketBuf;
use std::ffi::CString;
use std::ptr::NonNull;

/// The headroom DPDK leaves in front of a packet (from its headers; a
/// build whose headroom does not fit the mbuf's 16-bit offset fails here).
const HEADROOM: u16 = {
    assert!(sys::RTE_PKTMBUF_HEADROOM <= u16::MAX as u32);
    #[expect(clippy::cast_possible_truncation, reason = "checked just above, at compile time")]
    let h = sys::RTE_PKTMBUF_HEADROOM as u16;
    h
};

/// Packets per RX/TX burst.
pub const BURST: usize = 32;

/// Why a pool could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MempoolError {
    /// The name contains a NUL.
    #[error("pool name {0:?} contains a NUL byte")]
    BadName(String),
    /// `rte_pktmbuf_pool_create` failed.
    #[error("cannot create mbuf pool of {n} x {data_room} bytes: {reason}")]
    Create {
        /// Mbufs asked for.
        n: u32,
        /// Bytes per mbuf.
        data_room: u16,
        /// errno text.
        reason: String,
    },
}

/// A packet-buffer pool (`rte_pktmbuf_pool_create`), shared by all lcores.
///
/// A pool lives for the rest of the process ([`Mempool::new`] returns a
/// `&'static Mempool`): every [`Mbuf`] points into one, and an mbuf may be
/// anywhere (a worker's burst, a ring, a NIC queue) when the rest of the
/// program shuts down, so no pool is ever freed while one could be alive.
/// Making one needs a running EAL:
///
/// ```compile_fail,E0061
/// // No Eal, no pool.
/// let pool = rvs_dpdk::Mempool::new("p", 1023, 32, 2176);
/// ```
#[derive(Debug)]
pub struct Mempool(NonNull<sys::rte_mempool>);

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe; the handle
// is only a pointer to shared memory managed by EAL.
unsafe impl Send for Mempool {}
// SAFETY: as above; every operation on a mempool is thread safe.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `n` mbufs with `data_room` bytes each (headroom
    /// included) and a per-lcore cache of `cache` mbufs. The pool lives
    /// until the process exits.
    pub fn new(eal: &Eal, name: &str, n: u32, cache: u32, data_room: u16) -> Result<&'static Mempool, MempoolError> {
        let _ = eal;
        let cname = CString::new(name).map_err(|_| MempoolError::BadName(name.to_string()))?;
        // SAFETY: EAL is running (we hold &Eal); the name is a valid C
        // string.
        let socket = crate::port::socket_or_any(unsafe { sys::rte_socket_id() });
        // SAFETY: as above; arguments are plain values.
        let p = unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        let p = NonNull::new(p).ok_or_else(|| MempoolError::Create { n, data_room, reason: rte_errno() })?;
        Ok(Box::leak(Box::new(Mempool(p))))
    }

    /// The raw pool pointer, for queue set-up.
    pub(crate) fn raw(&self) -> *mut sys::rte_mempool {
        self.0.as_ptr()
    }

    /// Allocates one mbuf (not for the per-packet path: use it for packets
    /// the dataplane originates, such as ARP requests).
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid for the life of the process.
        let m = unsafe { sys::rte_pktmbuf_alloc(self.0.as_ptr()) };
        NonNull::new(m).map(Mbuf)
    }

    /// Fills an empty burst with `n` (at most a burst) fresh mbufs in one
    /// call, or none: false when the pool has fewer. For packet generators.
    pub fn alloc_bulk(&self, b: &mut Burst, n: usize) -> bool {
        debug_assert!(b.is_empty());
        let n = n.min(BURST);
        let (ptrs, _) = b.raw_parts();
        #[expect(clippy::cast_possible_truncation, reason = "n <= BURST = 32")]
        let count = n as u32;
        // SAFETY: the pool is valid; `ptrs` has room for BURST pointers and
        // the call writes `n` of them, all or nothing.
        let rc = unsafe { sys::rte_pktmbuf_alloc_bulk(self.0.as_ptr(), ptrs, count) };
        if rc == 0 {
            b.set_len(n);
            true
        } else {
            false
        }
    }

    /// Mbufs currently free in the pool (approximate under concurrency).
    pub fn available(&self) -> u32 {
        // SAFETY: read-only query on a valid pool.
        unsafe { sys::rte_mempool_avail_count(self.0.as_ptr()) }
    }

    /// Mbufs currently allocated.
    pub fn in_use(&self) -> u32 {
        // SAFETY: read-only query on a valid pool.
        unsafe { sys::rte_mempool_in_use_count(self.0.as_ptr()) }
    }
}

/// An owned, single-segment packet buffer. Freed on drop.
#[derive(Debug)]
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an mbuf is owned by exactly one Mbuf value at a time; moving it
// to another lcore is how DPDK pipelines work.
unsafe impl Send for Mbuf {}

impl Mbuf {
    #[inline(always)]
    fn m(&self) -> &sys::rte_mbuf {
        // SAFETY: the pointer is a live mbuf owned by self.
        unsafe { self.0.as_ref() }
    }

    #[inline(always)]
    fn m_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: the pointer is a live mbuf owned exclusively by self.
        unsafe { self.0.as_mut() }
    }

    /// Gives up ownership (to a PMD or a ring).
    #[inline]
    pub fn into_raw(self) -> *mut sys::rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    /// True when the packet is in one segment (rvs drops chained mbufs).
    #[inline(always)]
    pub fn is_contiguous(&self) -> bool {
        self.m().nb_segs == 1
    }

    /// The port the packet arrived on.
    #[inline(always)]
    pub fn port(&self) -> u16 {
        self.m().port
    }

    /// RX offload flags (checksum verdicts, RSS hash present).
    #[inline(always)]
    pub fn ol_flags(&self) -> u64 {
        self.m().ol_flags
    }

    /// True when the NIC verified the IPv4 header checksum as good.
    #[inline(always)]
    pub fn ip_csum_good(&self) -> bool {
        self.m().ol_flags & sys::RVS_MBUF_F_RX_IP_CKSUM_MASK == sys::RVS_MBUF_F_RX_IP_CKSUM_GOOD
    }

    /// True when the NIC verified the L4 checksum as bad.
    #[inline(always)]
    pub fn l4_csum_bad(&self) -> bool {
        self.m().ol_flags & sys::RVS_MBUF_F_RX_L4_CKSUM_MASK == sys::RVS_MBUF_F_RX_L4_CKSUM_BAD
    }

    /// True when the NIC verified the L4 checksum as good.
    #[inline(always)]
    pub fn l4_csum_good(&self) -> bool {
        self.m().ol_flags & sys::RVS_MBUF_F_RX_L4_CKSUM_MASK == sys::RVS_MBUF_F_RX_L4_CKSUM_GOOD
    }

    /// Resets to an empty packet with the default headroom (for packets
    /// the dataplane builds).
    pub fn reset_empty(&mut self) {
        let m = self.m_mut();
        let headroom = HEADROOM.min(m.buf_len);
        m.data_off = headroom;
        m.data_len = 0;
        m.pkt_len = 0;
        m.nb_segs = 1;
        m.ol_flags = 0;
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; freeing returns it to its pool.
        unsafe { sys::rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl PacketBuf for Mbuf {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        let m = self.m();
        // SAFETY: data_off lies inside the mbuf's buf_len-byte buffer.
        let start = unsafe { m.buf_addr.cast::<u8>().add(usize::from(m.data_off)) };
        // SAFETY: a single-segment mbuf holds data_len initialised bytes at
        // buf_addr + data_off, inside its buffer; the slice borrows self, so
        // the mbuf outlives it.
        unsafe { std::slice::from_raw_parts(start, usize::from(m.data_len)) }
    }

    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.m_mut();
        // SAFETY: data_off lies inside the mbuf's buf_len-byte buffer.
        let start = unsafe { m.buf_addr.cast::<u8>().add(usize::from(m.data_off)) };
        // SAFETY: as in `data`, and the exclusive borrow of self makes the
        // slice the only access to the bytes.
        unsafe { std::slice::from_raw_parts_mut(start, usize::from(m.data_len)) }
    }

    #[inline(always)]
    fn headroom(&self) -> usize {
        usize::from(self.m().data_off)
    }

    #[inline(always)]
    fn tailroom(&self) -> usize {
        let m = self.m();
        usize::from(m.buf_len).saturating_sub(usize::from(m.data_off) + usize::from(m.data_len))
    }

    #[inline(always)]
    fn prepend(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else { return false };
        let m = self.m_mut();
        if n16 > m.data_off {
            return false;
        }
        m.data_off -= n16;
        m.data_len += n16;
        m.pkt_len += u32::from(n16);
        true
    }

    #[inline(always)]
    fn trim_front(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else { return false };
        let m = self.m_mut();
        if n16 > m.data_len {
            return false;
        }
        m.data_off += n16;
        m.data_len -= n16;
        m.pkt_len -= u32::from(n16);
        true
    }

    #[inline(always)]
    fn append(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        let Ok(n16) = u16::try_from(n) else { return false };
        let m = self.m_mut();
        m.data_len += n16;
        m.pkt_len += u32::from(n16);
        true
    }

    #[inline(always)]
    fn ip_csum_good(&self) -> bool {
        Mbuf::ip_csum_good(self)
    }

    #[inline(always)]
    fn l4_csum_bad(&self) -> bool {
        Mbuf::l4_csum_bad(self)
    }

    #[inline(always)]
    fn l4_csum_good(&self) -> bool {
        Mbuf::l4_csum_good(self)
    }

    #[inline(always)]
    fn truncate(&mut self, len: usize) {
        let m = self.m_mut();
        if let Ok(l) = u16::try_from(len) {
            if l < m.data_len {
                m.data_len = l;
                m.pkt_len = u32::from(l);
            }
        }
    }
}

/// Up to [`BURST`] owned mbufs, freed in bulk.
#[derive(Debug)]
pub struct Burst {
    ptrs: [*mut sys::rte_mbuf; BURST],
    len: usize,
}

// SAFETY: a Burst owns its mbufs like a Vec<Mbuf> would.
unsafe impl Send for Burst {}

impl Default for Burst {
    fn default() -> Self {
        Burst { ptrs: [std::ptr::null_mut(); BURST], len: 0 }
    }
}

impl Burst {
    /// An empty burst.
    pub fn new() -> Burst {
        Burst::default()
    }

    /// Number of mbufs held.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The held mbufs.
    #[inline(always)]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        let ptrs = &mut self.ptrs[..self.len];
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, which
        // has the layout of *mut rte_mbuf; the first `len` pointers are
        // non-null mbufs owned by this burst.
        unsafe { std::slice::from_raw_parts_mut(ptrs.as_mut_ptr().cast::<Mbuf>(), ptrs.len()) }
    }

    /// Adds an mbuf; gives it back when the burst is full.
    #[inline(always)]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == BURST {
            return Err(m);
        }
        self.ptrs[self.len] = m.into_raw();
        self.len += 1;
        Ok(())
    }

    /// Removes and returns every mbuf, in order. Whatever the iterator has
    /// not yielded when it is dropped is freed, so stopping early leaks
    /// nothing.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_> {
        let end = std::mem::take(&mut self.len);
        Drain { burst: self, next: 0, end }
    }

    /// Frees every mbuf with one bulk call.
    #[inline]
    pub fn free_all(&mut self) {
        if self.len == 0 {
            return;
        }
        #[expect(clippy::cast_possible_truncation, reason = "len <= BURST = 32")]
        let n = self.len as u32;
        // SAFETY: the first `len` pointers are mbufs owned by the burst.
        unsafe { sys::rte_pktmbuf_free_bulk(self.ptrs.as_mut_ptr(), n) };
        self.len = 0;
    }

    /// Raw access for rx/tx/ring calls: (pointer array, current length).
    pub(crate) fn raw_parts(&mut self) -> (*mut *mut sys::rte_mbuf, usize) {
        (self.ptrs.as_mut_ptr(), self.len)
    }

    /// Sets the length after a PMD filled the array.
    pub(crate) fn set_len(&mut self, n: usize) {
        debug_assert!(n <= BURST);
        self.len = n.min(BURST);
    }

    /// Drops the first `n` pointers (handed to a PMD), keeping the rest.
    pub(crate) fn consume_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.ptrs.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        self.free_all();
    }
}

/// The mbufs of a burst being taken out, in order (see [`Burst::drain`]).
#[derive(Debug)]
pub struct Drain<'a> {
    burst: &'a mut Burst,
    next: usize,
    end: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.end {
            return None;
        }
        let p = self.burst.ptrs[self.next];
        self.next += 1;
        // SAFETY: each of the first `end` pointers is a non-null mbuf
        // owned by the burst; the burst's length is already 0 and `next`
        // has moved past this one, so ownership moves to the yielded Mbuf
        // alone.
        Some(Mbuf(unsafe { NonNull::new_unchecked(p) }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Drain<'_> {}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        let rest = self.end - self.next;
        if rest == 0 {
            return;
        }
        let start = self.next;
        #[expect(clippy::cast_possible_truncation, reason = "rest <= BURST = 32")]
        let n = rest as u32;
        // SAFETY: pointers start..end are mbufs still owned by the drain
        // (not yielded; the burst's length is 0 so it will not free them).
        let rest_ptrs = self.burst.ptrs[start..self.end].as_mut_ptr();
        // SAFETY: (continued) `rest_ptrs` points at those `n` pointers.
        unsafe { sys::rte_pktmbuf_free_bulk(rest_ptrs, n) };
        self.next = self.end;
    }
}
