//! The worker poll loop: DPDK queues in, a [`Forwarder`] in the middle,
//! DPDK queues out.
//!
//! One loop iteration: pick up a newly published snapshot if the
//! generation changed (one relaxed load when it did not), read the clock,
//! then for each RX queue: receive a burst, prefetch its packet headers,
//! run each packet through the forwarder and sort it by verdict into a
//! per-port TX burst, a drop burst (freed in bulk) or a hand-over ring; flush
//! the TX bursts. Each iteration sweeps a bounded slice of the session
//! tables; every 100 ms (and on the first iteration) it sends the neighbour
//! probes that are due.
//!
//! With `idle_backoff_us` > 0 a worker that has seen no packet for that
//! long sleeps that long between polls (tests and shared machines); 0 polls
//! flat out, as a production appliance should.
use crate::dpdk::{self, Burst, Clock, Mbuf, Mempool, RxQueue, TxQueue};
use crate::fwd::{Forwarder, Verdict};
use crate::hold::HoldQueue;
use crate::net::PacketBuf;
use crate::stats::MAX_PORTS;
use crate::table::Snapshot;
use crate::DropReason;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Interval of neighbour probing, in milliseconds.
const HOUSEKEEPING_MS: u32 = 100;

/// What every worker shares with management.
#[derive(Debug)]
pub struct Shared {
    /// The published snapshot.
    pub snapshot: ArcSwap<Snapshot>,
    /// Generation of the published snapshot (checked once per iteration).
    pub generation: AtomicU64,
    /// Set to stop the workers.
    pub stop: AtomicBool,
    /// Incremented by management to ask every worker for a session dump.
    pub dump_request: AtomicU64,
    /// Per worker: the answer to a dump request.
    pub dumps: Vec<Mutex<Dump>>,
}

/// A worker's answer to a session dump request.
#[derive(Debug, Default)]
pub struct Dump {
    /// The request it answers.
    pub request: u64,
    /// True once complete.
    pub done: bool,
    /// The sessions.
    pub sessions: Vec<crate::fwd::SessionInfo>,
}

/// Most sessions one worker returns per dump.
pub const DUMP_MAX: usize = 100_000;

impl Shared {
    /// Shared state starting with `snap`.
    pub fn new(snap: Arc<Snapshot>, workers: usize) -> Shared {
        let g = snap.generation;
        Shared {
            snapshot: ArcSwap::new(snap),
            generation: AtomicU64::new(g),
            stop: AtomicBool::new(false),
            dump_request: AtomicU64::new(0),
            dumps: (0..workers).map(|_| Mutex::new(Dump::default())).collect(),
        }
    }

    /// Publishes a snapshot; workers switch to it between bursts.
    pub fn publish(&self, snap: Arc<Snapshot>) {
        let g = snap.generation;
        self.snapshot.store(snap);
        self.generation.store(g, Ordering::Release);
    }
}

/// The queues one worker owns.
#[derive(Debug)]
pub struct WorkerQueues {
    /// (port index, its RX queue for this worker).
    pub rx: Vec<(u8, RxQueue)>,
    /// TX queue for this worker, by port index.
    pub tx: Vec<TxQueue>,
    /// By port index: this worker's queues on the port's kernel interface
    /// (the exception path), when it has one.
    pub kernel: Vec<Option<(RxQueue, TxQueue)>>,
}

/// Tunables of the loop.
#[derive(Clone, Copy, Debug)]
pub struct LoopConfig {
    /// Idle back-off in microseconds (0: busy poll).
    pub idle_backoff_us: u32,
}

/// Runs the loop until `shared.stop` is set.
pub fn run(mut fwd: Forwarder, mut q: WorkerQueues, shared: Arc<Shared>, pool: Arc<Mempool>, clock: Clock, cfg: LoopConfig) {
    let stats = fwd.stats().clone();
    let nports = q.tx.len();
    let mut rx = Burst::new();
    let mut tx: Vec<Burst> = (0..nports).map(|_| Burst::new()).collect();
    let mut ktx: Vec<Burst> = (0..nports).map(|_| Burst::new()).collect();
    let mut tx_bytes = vec![0u64; nports];
    let mut dead = Burst::new();
    let mut seen_gen = shared.generation.load(Ordering::Acquire);
    let mut idle_since: Option<u32> = None;
    let mut housekeeping_at: Option<u32> = None;
    let mut probes = Vec::new();
    let mut verdicts = [Verdict::Consumed; dpdk::BURST];
    let core = usize::from(fwd.core());
    let mut dump_seen = 0u64;
    let mut dump_cursor = 0usize;
    let mut hold: HoldQueue<Mbuf> = HoldQueue::default();
    let mut swept_at = clock.now_ms();

    while !shared.stop.load(Ordering::Relaxed) {
        let g = shared.generation.load(Ordering::Acquire);
        if g != seen_gen {
            fwd.install(shared.snapshot.load_full());
            seen_gen = g;
        }
        let now = clock.now_ms();
        fwd.set_now(now);

        let mut got = 0usize;
        for (port, rxq) in &mut q.rx {
            let n = rxq.rx(&mut rx);
            if n == 0 {
                continue;
            }
            got += n;
            let pkts = rx.as_mut_slice();
            let mut bytes = 0u64;
            for m in pkts.iter() {
                bytes += m.len() as u64;
                if let Some(b) = m.data().first() {
                    dpdk::prefetch(b);
                }
            }
            let pc = &stats.ports[usize::from(*port) % MAX_PORTS];
            pc.rx_pkts.add(n as u64);
            pc.rx_bytes.add(bytes);
            fwd.prepare(pkts);
            for (i, (m, v)) in pkts.iter_mut().zip(verdicts.iter_mut()).enumerate() {
                *v = if m.is_contiguous() {
                    fwd.process_at(m, *port, i)
                } else {
                    stats.count_drop(DropReason::MultiSegment);
                    Verdict::Drop(DropReason::MultiSegment)
                };
            }
            for (m, v) in rx.drain().zip(verdicts.iter()) {
                match *v {
                    Verdict::Tx(p) if usize::from(p) < nports => {
                        let p = usize::from(p);
                        tx_bytes[p] += m.len() as u64;
                        if let Err(m) = tx[p].push(m) {
                            flush(&mut q.tx[p], &mut tx[p], &stats, p);
                            let _ = tx[p].push(m).map_err(|m| push_dead(&mut dead, m));
                        }
                    }
                    Verdict::Hold { port, neigh } if usize::from(port) < nports => {
                        if let Err(m) = hold.push(m, neigh, port, now) {
                            stats.count_drop(DropReason::NeighUnresolved);
                            push_dead(&mut dead, m);
                        } else {
                            stats.neigh_held.inc();
                            if let Some(n) = fwd.urgent_probe(neigh) {
                                send_probe(&fwd, &pool, &mut q.tx, &n, None);
                            }
                        }
                    }
                    Verdict::Kernel(p) if q.kernel.get(usize::from(p)).is_some_and(Option::is_some) => {
                        let p = usize::from(p);
                        stats.ports[p % MAX_PORTS].to_kernel.inc();
                        if let Err(m) = ktx[p].push(m) {
                            flush_kernel(&mut q.kernel[p], &mut ktx[p], &stats);
                            let _ = ktx[p].push(m).map_err(|m| push_dead(&mut dead, m));
                        }
                    }
                    _ => push_dead(&mut dead, m),
                }
            }
        }
        // The kernel's own traffic (health checks, management) leaves by
        // its port unchanged.
        for p in 0..nports {
            let Some((krx, _)) = q.kernel.get_mut(p).and_then(Option::as_mut) else { continue };
            let n = krx.rx(&mut rx);
            if n == 0 {
                continue;
            }
            got += n;
            stats.ports[p % MAX_PORTS].from_kernel.add(n as u64);
            for m in rx.drain() {
                tx_bytes[p] += m.len() as u64;
                if let Err(m) = tx[p].push(m) {
                    flush(&mut q.tx[p], &mut tx[p], &stats, p);
                    let _ = tx[p].push(m).map_err(|m| push_dead(&mut dead, m));
                }
            }
        }
        // Held frames whose next hop answered go out with this burst.
        if !hold.is_empty() {
            hold.release(
                now,
                |n| fwd.neighbour_mac(n),
                |mut m, to| {
                    let Some((p, mac)) = to else {
                        stats.count_drop(DropReason::NeighUnresolved);
                        push_dead(&mut dead, m);
                        return;
                    };
                    let p = usize::from(p);
                    if let Some(d) = m.data_mut().get_mut(..6) {
                        d.copy_from_slice(&mac.0);
                    }
                    tx_bytes[p] += m.len() as u64;
                    if let Err(m) = tx[p].push(m) {
                        flush(&mut q.tx[p], &mut tx[p], &stats, p);
                        let _ = tx[p].push(m).map_err(|m| push_dead(&mut dead, m));
                    }
                },
            );
        }
        for p in 0..nports {
            if !ktx[p].is_empty() {
                flush_kernel(&mut q.kernel[p], &mut ktx[p], &stats);
            }
            if !tx[p].is_empty() {
                flush(&mut q.tx[p], &mut tx[p], &stats, p);
            }
            if tx_bytes[p] != 0 {
                stats.ports[p % MAX_PORTS].tx_bytes.add(tx_bytes[p]);
                tx_bytes[p] = 0;
            }
        }
        dead.free_all();

        stats.loops.inc();
        // Expiry sweeps go by time, not by packets: at most once a
        // millisecond, a share of every table.
        if now != swept_at {
            fwd.sweep_elapsed(now.wrapping_sub(swept_at).min(100));
            swept_at = now;
        }
        // A session dump, in bounded steps between bursts.
        let req = shared.dump_request.load(Ordering::Relaxed);
        if req != dump_seen {
            if let Some(slot) = shared.dumps.get(core) {
                if let Ok(mut d) = slot.lock() {
                    if d.request != req {
                        *d = Dump { request: req, done: false, sessions: Vec::new() };
                        dump_cursor = 0;
                    }
                    if fwd.dump(&mut dump_cursor, 16_384, DUMP_MAX, &mut d.sessions) {
                        d.done = true;
                        dump_seen = req;
                    }
                }
            }
        }
        if housekeeping_at.is_none_or(|t| now.wrapping_sub(t) >= HOUSEKEEPING_MS) {
            housekeeping_at = Some(now);
            fwd.refresh_load();
            probes.clear();
            fwd.neighbour_probes(&mut probes);
            for (n, unicast) in &probes {
                send_probe(&fwd, &pool, &mut q.tx, n, *unicast);
            }
        }
        if got == 0 {
            stats.idle_loops.inc();
            if cfg.idle_backoff_us > 0 {
                let since = *idle_since.get_or_insert(now);
                if now.wrapping_sub(since).saturating_mul(1000) >= cfg.idle_backoff_us {
                    std::thread::sleep(Duration::from_micros(u64::from(cfg.idle_backoff_us)));
                }
            }
        } else {
            idle_since = None;
        }
    }
    for b in tx.iter_mut().chain(ktx.iter_mut()) {
        b.free_all();
    }
}

/// Sends a burst to a kernel interface; what it refuses is counted.
fn flush_kernel(q: &mut Option<(RxQueue, TxQueue)>, b: &mut Burst, stats: &crate::stats::CoreStats) {
    if let Some((_, ktx)) = q.as_mut() {
        ktx.tx(b);
    }
    for _ in 0..b.len() {
        stats.count_drop(DropReason::KernelPathFull);
    }
    b.free_all();
}

#[inline]
fn push_dead(dead: &mut Burst, m: Mbuf) {
    if let Err(m) = dead.push(m) {
        dead.free_all();
        let _ = dead.push(m);
    }
}

/// Sends a TX burst; what the queue refuses is freed and counted.
#[inline]
fn flush(q: &mut TxQueue, b: &mut Burst, stats: &crate::stats::CoreStats, port: usize) {
    let sent = q.tx(b);
    stats.ports[port % MAX_PORTS].tx_pkts.add(sent as u64);
    if !b.is_empty() {
        for _ in 0..b.len() {
            stats.count_drop(DropReason::TxFull);
        }
        b.free_all();
    }
}

fn send_probe(fwd: &Forwarder, pool: &Mempool, tx: &mut [TxQueue], n: &crate::table::NeighborRef, unicast: Option<crate::net::MacAddr>) {
    let Some(mut m) = pool.alloc() else { return };
    m.reset_empty();
    if !m.append(128) {
        return;
    }
    let Some((len, port)) = fwd.build_probe(n, unicast, m.data_mut()) else { return };
    m.truncate(len);
    let Some(q) = tx.get_mut(usize::from(port)) else { return };
    let mut b = Burst::new();
    if b.push(m).is_ok() {
        let sent = q.tx(&mut b);
        fwd.stats().ports[usize::from(port) % MAX_PORTS].tx_pkts.add(sent as u64);
    }
}
