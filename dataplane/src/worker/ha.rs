//! A worker's part in an active/backup pair: its role, read once per loop
//! from what management's VRRP thread decided; the announcements when it
//! becomes master; session records to the sync thread and from it; bulk
//! transfers for a node that joins, and a slow refresh walk so a backup's
//! copies of long-lived sessions never expire while the master's live.
//!
//! Everything here is a relaxed atomic load or a lock-free queue
//! operation: a worker never waits for management and makes no system
//! call for the pair.
use super::Worker;
use crossbeam_queue::ArrayQueue;
use rvs_wire::sync::AnyRecord;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Records a worker's queue to the sync thread (and the sync thread's to
/// the worker) holds.
pub const SYNC_QUEUE: usize = 65_536;

/// Records applied per loop iteration at most (the rest wait in the queue).
const APPLY_PER_LOOP: usize = 1024;

/// Entries of the session tables a bulk transfer visits per loop.
const BULK_VISIT: usize = 8192;

/// What the workers share with management for the pair.
#[derive(Debug)]
pub struct HaShared {
    /// The node is active: master of the pair, or a single balancer.
    pub active: AtomicBool,
    /// Session sync is on.
    pub sync: bool,
    /// Per worker: records to the sync thread (the worker produces).
    pub out: Vec<ArrayQueue<AnyRecord>>,
    /// Per worker: records from the master (the sync thread produces).
    pub inq: Vec<ArrayQueue<AnyRecord>>,
    /// Incremented by the sync thread when a peer asks for the whole table.
    pub bulk_request: AtomicU64,
    /// Per worker: the bulk request it has finished.
    pub bulk_done: Vec<AtomicU64>,
    /// Announcements on becoming master: per address, how many at once.
    pub garp_count: u32,
    /// And the delay of the second round, milliseconds.
    pub garp_repeat_delay_ms: u32,
    /// A whole refresh walk of the tables takes this long, milliseconds
    /// (every established session is sent again once per walk).
    pub refresh_ms: u32,
}

impl HaShared {
    /// A single balancer: always active, no sync.
    pub fn single() -> HaShared {
        HaShared::pair(0, false, 0, 0, 0, true)
    }

    /// A node of a pair with `workers` workers, starting `active` or not.
    pub fn pair(workers: usize, sync: bool, garp_count: u32, garp_repeat_delay_ms: u32, refresh_ms: u32, active: bool) -> HaShared {
        let queues = |n: usize| (0..n).map(|_| ArrayQueue::new(SYNC_QUEUE)).collect();
        let n = if sync { workers } else { 0 };
        HaShared {
            active: AtomicBool::new(active),
            sync,
            out: queues(n),
            inq: queues(n),
            bulk_request: AtomicU64::new(0),
            bulk_done: (0..n).map(|_| AtomicU64::new(0)).collect(),
            garp_count,
            garp_repeat_delay_ms,
            refresh_ms: refresh_ms.max(1000),
        }
    }

    /// Whether every worker has finished bulk request `req`.
    pub fn bulk_finished(&self, req: u64) -> bool {
        self.bulk_done.iter().all(|d| d.load(Ordering::Acquire) >= req)
    }
}

/// A worker's own state for the pair.
#[derive(Debug, Default)]
pub(super) struct HaState {
    /// The role last applied.
    pub(super) active: bool,
    pub(super) bulk_cursor: usize,
    pub(super) refresh_cursor: usize,
    pub(super) refresh_at: Option<u32>,
}

impl Worker {
    /// The role management decided, applied when it changed: the
    /// forwarder's, and the announcements of what a new master owns.
    pub(super) fn ha_role(&mut self, now: u32) {
        let active = self.shared.ha.active.load(Ordering::Acquire);
        if active == self.ha.active {
            return;
        }
        self.ha.active = active;
        self.fwd.set_role(active, self.shared.ha.sync);
        if self.cfg.announcer {
            let how = super::originate::Announce {
                count: self.shared.ha.garp_count,
                interval_ms: 0,
                repeat_after_ms: Some(self.shared.ha.garp_repeat_delay_ms),
            };
            self.announcer.install(self.fwd.snapshot().announced(!active), how, now);
        }
    }

    /// Session records out (a master) and in (a backup), and the bulk and
    /// refresh walks. Returns the records applied (work done, for the idle
    /// back-off).
    pub(super) fn ha_sync(&mut self, now: u32) -> usize {
        if !self.shared.ha.sync {
            return 0;
        }
        let core = usize::from(self.fwd.core());
        let (Some(out), Some(inq)) = (self.shared.ha.out.get(core), self.shared.ha.inq.get(core)) else { return 0 };
        let mut lost = 0u64;
        for r in self.fwd.take_sync() {
            if out.push(r).is_err() {
                lost += 1;
            }
        }
        if lost > 0 {
            self.fwd.stats().sync.overflow.add(lost);
        }
        let mut applied = 0;
        while applied < APPLY_PER_LOOP {
            let Some(r) = inq.pop() else { break };
            let _ = self.fwd.apply_sync(now, &r);
            applied += 1;
        }
        if self.ha.active {
            self.bulk_step(now, core);
            self.refresh_step(now);
        }
        applied
    }

    /// Whether this worker's queue to the sync thread has room for a full
    /// sync buffer (walks wait for the sync thread rather than lose
    /// records).
    fn room(&self, core: usize) -> bool {
        self.shared.ha.out.get(core).is_some_and(|q| q.len() + rvs_core::fwd::SYNC_BUFFER <= q.capacity())
    }

    /// A peer asked for the whole table: walk it in bounded steps.
    fn bulk_step(&mut self, now: u32, core: usize) {
        let req = self.shared.ha.bulk_request.load(Ordering::Acquire);
        let Some(done) = self.shared.ha.bulk_done.get(core) else { return };
        if req <= done.load(Ordering::Relaxed) || !self.room(core) {
            return;
        }
        if self.fwd.bulk_sync(now, &mut self.ha.bulk_cursor, BULK_VISIT) {
            self.ha.bulk_cursor = 0;
            // Everything walked is in the buffer; it reaches the queue on
            // the next call, before the sync thread sees the request done.
            let mut lost = 0u64;
            for r in self.fwd.take_sync() {
                if self.shared.ha.out.get(core).is_none_or(|out| out.push(r).is_err()) {
                    lost += 1;
                }
            }
            self.fwd.stats().sync.overflow.add(lost);
            done.store(req, Ordering::Release);
        }
    }

    /// Every 100 ms, a share of the tables sent again, so that one walk
    /// takes `refresh_ms`.
    fn refresh_step(&mut self, now: u32) {
        if self.ha.refresh_at.is_some_and(|t| now.wrapping_sub(t) < super::HOUSEKEEPING_MS) {
            return;
        }
        let core = usize::from(self.fwd.core());
        if !self.room(core) {
            return;
        }
        self.ha.refresh_at = Some(now);
        let entries = self.fwd.session_entries();
        let visit = (entries as u64 * u64::from(super::HOUSEKEEPING_MS) / u64::from(self.shared.ha.refresh_ms)).max(1);
        if self.fwd.bulk_sync(now, &mut self.ha.refresh_cursor, rvs_wire::num::sat_usize(visit)) {
            self.ha.refresh_cursor = 0;
        }
    }
}
