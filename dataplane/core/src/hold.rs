//! Frames waiting for their next hop's MAC address.
//!
//! When a real server or gateway has not answered ARP or neighbour
//! discovery yet (a server just added, an entry that expired), dropping the
//! frame would cost the client a retransmission - a 1-second stall for a
//! SYN. Like the kernel's per-neighbour queue (`unres_qlen`), each worker
//! keeps a small, preallocated queue of such frames, already rewritten; the
//! worker sends them as soon as the neighbour resolves and drops them
//! (counted as `neigh_unresolved`) after [`HOLD_MS`] or when the queue is
//! full. Nothing here allocates after construction.
use rvs_wire::MacAddr;

/// How long a frame may wait (the kernel gives up after 3 probes, 1 s apart).
pub const HOLD_MS: u32 = 3_000;
/// Frames per worker.
pub const CAPACITY: usize = 256;
/// Frames per neighbour.
pub const PER_NEIGHBOUR: usize = 64;

#[derive(Debug)]
struct Held<T> {
    frame: T,
    neigh: u32,
    port: u8,
    since: u32,
}

/// A worker's held frames.
#[derive(Debug)]
pub struct HoldQueue<T> {
    held: Vec<Held<T>>,
    cap: usize,
    per_neigh: usize,
}

impl<T> Default for HoldQueue<T> {
    fn default() -> Self {
        Self::new(CAPACITY, PER_NEIGHBOUR)
    }
}

impl<T> HoldQueue<T> {
    /// A queue of `cap` frames, at most `per_neigh` for one neighbour.
    pub fn new(cap: usize, per_neigh: usize) -> Self {
        HoldQueue { held: Vec::with_capacity(cap), cap, per_neigh }
    }

    /// True when nothing waits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Holds a frame for `neigh`, to go out on `port`; gives it back when
    /// the queue (or this neighbour's share) is full.
    pub fn push(&mut self, frame: T, neigh: u32, port: u8, now: u32) -> Result<(), T> {
        if self.held.len() >= self.cap || self.held.iter().filter(|h| h.neigh == neigh).count() >= self.per_neigh {
            return Err(frame);
        }
        self.held.push(Held { frame, neigh, port, since: now });
        Ok(())
    }

    /// Hands every frame whose neighbour resolved to `out(frame,
    /// Some((port, mac)))` and every frame held too long to `out(frame,
    /// None)`; the rest keep their order.
    pub fn release(&mut self, now: u32, resolve: impl Fn(u32) -> Option<MacAddr>, mut out: impl FnMut(T, Option<(u8, MacAddr)>)) {
        let mut i = 0;
        while i < self.held.len() {
            let h = &self.held[i];
            if let Some(mac) = resolve(h.neigh) {
                let h = self.held.remove(i);
                out(h.frame, Some((h.port, mac)));
            } else if now.wrapping_sub(h.since) >= HOLD_MS {
                let h = self.held.remove(i);
                out(h.frame, None);
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_go_when_resolved_in_order_and_expire_otherwise() {
        let mut q: HoldQueue<u32> = HoldQueue::new(4, 2);
        q.push(1, 7, 0, 100).unwrap();
        q.push(2, 8, 1, 100).unwrap();
        q.push(3, 7, 0, 150).unwrap();
        assert_eq!(q.push(4, 7, 0, 150), Err(4), "per-neighbour share");
        q.push(5, 9, 1, 200).unwrap();
        assert_eq!(q.push(6, 10, 1, 200), Err(6), "capacity");
        let mac = MacAddr([2, 0, 0, 0, 0, 7]);
        let (mut sent, mut gone) = (Vec::new(), Vec::new());
        let release = |q: &mut HoldQueue<u32>, now, n: Option<u32>, sent: &mut Vec<_>, gone: &mut Vec<_>| {
            q.release(
                now,
                |x| (Some(x) == n).then_some(mac),
                |f, to| match to {
                    Some((p, m)) => sent.push((f, p, m)),
                    None => gone.push(f),
                },
            )
        };
        release(&mut q, 300, Some(7), &mut sent, &mut gone);
        assert_eq!(sent, vec![(1, 0, mac), (3, 0, mac)]);
        assert!(gone.is_empty());
        assert_eq!(q.len(), 2);
        release(&mut q, 100 + HOLD_MS, None, &mut sent, &mut gone);
        assert_eq!(gone, vec![2], "held since 100: expired");
        release(&mut q, 200 + HOLD_MS, None, &mut sent, &mut gone);
        assert_eq!(gone, vec![2, 5]);
        assert!(q.is_empty());
    }

    #[test]
    fn never_grows_past_its_capacity() {
        let mut q: HoldQueue<usize> = HoldQueue::default();
        let cap = q.held.capacity();
        for i in 0..10 * CAPACITY {
            let _ = q.push(i, u32::try_from(i % 100).unwrap(), 0, 0);
        }
        assert_eq!(q.len(), CAPACITY);
        assert_eq!(q.held.capacity(), cap, "no reallocation");
    }
}
