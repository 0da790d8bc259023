//! Single-producer single-consumer rings of mbufs between two cores.
//!
//! [`ring`] makes an `rte_ring` with the single-producer and
//! single-consumer flags and returns its two ends. The flags are a promise
//! to DPDK that one thread enqueues and one dequeues; the types keep it:
//! each end is `Send` (it moves to its core) but not `Sync`, and both
//! operations take `&mut self`, so one end cannot be used from two threads
//! at once.
//!
//! ```compile_fail,E0277
//! fn shared<T: Sync>(_: &T) {}
//! fn check(p: &rvs_dpdk::RingProducer) {
//!     shared(p); // a producer is not Sync: no two threads enqueue at once
//! }
//! ```
//!
//! The ring is freed when both ends are gone, after the mbufs still in it
//! are freed.
use super::eal::{rte_errno, Eal};
use super::mbuf::{Burst, BURST};
use dpdk_sys as sys;
use std::cell::Cell;
use std::ffi::CString;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

/// Why a ring could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// The name contains a NUL.
    #[error("ring name {0:?} contains a NUL byte")]
    BadName(String),
    /// `rte_ring_create` failed.
    #[error("cannot create ring {name} of {size} slots: {reason}")]
    Create {
        /// Its name.
        name: String,
        /// Slots asked for.
        size: u32,
        /// errno text.
        reason: String,
    },
}

/// The ring both ends share; freed when the last end goes.
#[derive(Debug)]
struct RingInner(NonNull<sys::rte_ring>);

// SAFETY: an rte_ring is shared memory designed for cross-core use; the
// single-producer/single-consumer discipline is kept by the two ends'
// types (one of each, neither Sync, both &mut).
unsafe impl Send for RingInner {}
// SAFETY: as above: RingInner itself is only read (its pointer) by the
// ends, each confined to one thread at a time.
unsafe impl Sync for RingInner {}

impl Drop for RingInner {
    fn drop(&mut self) {
        let mut b = Burst::new();
        loop {
            let (ptrs, _) = b.raw_parts();
            #[expect(clippy::cast_possible_truncation, reason = "BURST is 32")]
            let n = BURST as u32;
            // SAFETY: both ends are gone (this is the last reference), so
            // this thread is the only one touching the ring; ptrs has room
            // for BURST pointers and the dequeued mbufs become the burst's.
            let got = unsafe { sys::rte_ring_dequeue_burst(self.0.as_ptr(), ptrs.cast(), n, std::ptr::null_mut()) } as usize;
            if got == 0 {
                break;
            }
            b.set_len(got);
            b.free_all();
        }
        // SAFETY: nothing else references the ring, and it is now empty.
        unsafe { sys::rte_ring_free(self.0.as_ptr()) }
    }
}

/// The producing end of a hand-over ring (one core).
#[derive(Debug)]
pub struct RingProducer {
    ring: Arc<RingInner>,
    _not_sync: PhantomData<Cell<()>>,
}

/// The consuming end of a hand-over ring (one core).
#[derive(Debug)]
pub struct RingConsumer {
    ring: Arc<RingInner>,
    _not_sync: PhantomData<Cell<()>>,
}

/// Makes an SPSC ring of `size` slots (a power of two; one slot stays
/// empty) and returns its two ends.
pub fn ring(eal: &Eal, name: &str, size: u32) -> Result<(RingProducer, RingConsumer), RingError> {
    let _ = eal;
    let cname = CString::new(name).map_err(|_| RingError::BadName(name.to_string()))?;
    // SAFETY: EAL is running (we hold &Eal).
    let socket = crate::port::socket_or_any(unsafe { sys::rte_socket_id() });
    // SAFETY: EAL is running; the name is a valid C string; plain-value
    // arguments; the flags are the SPSC ones the two ends enforce.
    let r = unsafe { sys::rte_ring_create(cname.as_ptr(), size, socket, sys::RVS_RING_F_SP_ENQ | sys::RVS_RING_F_SC_DEQ) };
    let r = NonNull::new(r).ok_or_else(|| RingError::Create { name: name.to_string(), size, reason: rte_errno() })?;
    let inner = Arc::new(RingInner(r));
    Ok((RingProducer { ring: inner.clone(), _not_sync: PhantomData }, RingConsumer { ring: inner, _not_sync: PhantomData }))
}

impl RingProducer {
    /// Moves as many mbufs of `b` as fit into the ring; the rest stay in
    /// `b`. Returns how many moved.
    #[inline]
    pub fn enqueue(&mut self, b: &mut Burst) -> usize {
        let (ptrs, len) = b.raw_parts();
        #[expect(clippy::cast_possible_truncation, reason = "len <= BURST = 32")]
        let n = len as u32;
        // SAFETY: ptrs holds `len` owned mbufs; the ring takes ownership of
        // the ones it accepts, which `consume_front` then forgets. This is
        // the ring's only producer (one RingProducer per ring, &mut self).
        let done = unsafe { sys::rte_ring_enqueue_burst(self.ring.0.as_ptr(), ptrs.cast(), n, std::ptr::null_mut()) } as usize;
        b.consume_front(done);
        done
    }
}

impl RingConsumer {
    /// Fills `b` (which must be empty) from the ring. Returns the count.
    #[inline]
    pub fn dequeue(&mut self, b: &mut Burst) -> usize {
        debug_assert!(b.is_empty());
        b.free_all();
        let (ptrs, _) = b.raw_parts();
        #[expect(clippy::cast_possible_truncation, reason = "BURST is 32")]
        let n = BURST as u32;
        // SAFETY: ptrs has room for BURST pointers (the burst is empty);
        // dequeued mbufs become owned by the burst. This is the ring's only
        // consumer (one RingConsumer per ring, &mut self).
        let got = unsafe { sys::rte_ring_dequeue_burst(self.ring.0.as_ptr(), ptrs.cast(), n, std::ptr::null_mut()) } as usize;
        b.set_len(got);
        got
    }

    /// Mbufs waiting in the ring.
    pub fn count(&self) -> u32 {
        // SAFETY: read-only query on a valid ring.
        unsafe { sys::rte_ring_count(self.ring.0.as_ptr()) }
    }
}
