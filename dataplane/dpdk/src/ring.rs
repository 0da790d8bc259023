//! Single-producer single-consumer rings of mbufs between two cores.
use super::eal::rte_errno;
use super::mbuf::Burst;
use dpdk_sys as sys;
use std::ffi::CString;
use std::ptr::NonNull;

/// An SPSC `rte_ring` carrying mbufs from one core to another.
#[derive(Debug)]
pub struct MbufRing(NonNull<sys::rte_ring>);

// SAFETY: an rte_ring is shared memory designed for cross-core use; the SPSC
// discipline (one producer, one consumer) is kept by construction: rvs gives
// each (from, to) core pair its own ring.
unsafe impl Send for MbufRing {}
// SAFETY: as above.
unsafe impl Sync for MbufRing {}

const RING_F_SP_ENQ: u32 = 1;
const RING_F_SC_DEQ: u32 = 2;

impl MbufRing {
    /// A ring of `size` slots (a power of two; one slot stays empty).
    pub fn new(name: &str, size: u32) -> Result<MbufRing, String> {
        let cname = CString::new(name).map_err(|_| format!("ring name {name:?} contains NUL"))?;
        // SAFETY: EAL is running; the name is a valid C string.
        let socket = i32::try_from(unsafe { sys::rte_socket_id() }).unwrap_or(-1);
        // SAFETY: as above, with plain-value arguments.
        let r = unsafe { sys::rte_ring_create(cname.as_ptr(), size, socket, RING_F_SP_ENQ | RING_F_SC_DEQ) };
        NonNull::new(r).map(MbufRing).ok_or_else(|| format!("cannot create ring {name} of {size}: {}", rte_errno()))
    }

    /// Moves as many mbufs of `b` as fit into the ring (producer side);
    /// the rest stay in `b`. Returns how many moved.
    #[inline]
    pub fn enqueue(&self, b: &mut Burst) -> usize {
        let (ptrs, len) = b.raw_parts();
        let n = u32::try_from(len).unwrap_or(0);
        // SAFETY: ptrs holds `len` owned mbufs; the ring takes ownership of
        // the ones it accepts, which `consume_front` then forgets. Only the
        // single producer core calls enqueue on this ring.
        let done =
            unsafe { sys::rte_ring_enqueue_burst(self.0.as_ptr(), ptrs.cast::<*mut std::ffi::c_void>(), n, std::ptr::null_mut()) } as usize;
        b.consume_front(done);
        done
    }

    /// Fills `b` (which must be empty) from the ring (consumer side).
    #[inline]
    pub fn dequeue(&self, b: &mut Burst) -> usize {
        debug_assert!(b.is_empty());
        let (ptrs, _) = b.raw_parts();
        let n = u32::try_from(super::BURST).unwrap_or(32);
        // SAFETY: ptrs has room for BURST pointers; dequeued mbufs become
        // owned by the burst. Only the single consumer core calls dequeue.
        let got =
            unsafe { sys::rte_ring_dequeue_burst(self.0.as_ptr(), ptrs.cast::<*mut std::ffi::c_void>(), n, std::ptr::null_mut()) } as usize;
        b.set_len(got);
        got
    }

    /// Mbufs waiting in the ring.
    pub fn count(&self) -> u32 {
        // SAFETY: read-only query on a valid ring.
        unsafe { sys::rte_ring_count(self.0.as_ptr()) }
    }
}

impl Drop for MbufRing {
    fn drop(&mut self) {
        let mut b = Burst::new();
        while self.dequeue(&mut b) > 0 {
            b.free_all();
        }
        // SAFETY: both cores using the ring have stopped (rings are dropped
        // after the workers are joined) and it is now empty.
        unsafe { sys::rte_ring_free(self.0.as_ptr()) }
    }
}
