//! The worker poll loop: DPDK queues in, a [`Forwarder`] in the middle,
//! DPDK queues out.
//!
//! One loop iteration: pick up a newly published snapshot if the
//! generation changed (one relaxed load when it did not), read the clock,
//! then for each RX queue: receive a burst, prefetch its packet headers,
//! run each packet through the forwarder and sort it by verdict into a
//! per-port TX burst, a drop burst (freed in bulk) or a hand-over burst to
//! the core that owns the packet's flow ([`rvs_core::steer`]); then process
//! what other cores handed over (never handed on again); flush the TX
//! bursts and move the hand-over bursts into their SPSC rings. Each iteration sweeps a bounded slice of the session
//! tables; every 100 ms (and on the first iteration) it sends the neighbour
//! probes that are due.
//!
//! With `idle_backoff_us` > 0 a worker that has seen no packet for that
//! long sleeps that long between polls (tests and shared machines); 0 polls
//! flat out, as a production appliance should.
use arc_swap::ArcSwap;
use rvs_arch::Clock;
use rvs_core::fwd::{Forwarder, Verdict};
use rvs_core::hold::HoldQueue;
use rvs_core::stats::MAX_PORTS;
use rvs_core::table::Snapshot;
use rvs_core::DropReason;
use rvs_dpdk::{self as dpdk, Burst, Eal, Mbuf, Mempool, RingConsumer, RingProducer, RxQueue, TxQueue};
use rvs_wire::PacketBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Interval of neighbour probing, in milliseconds.
const HOUSEKEEPING_MS: u32 = 100;

/// Entries of each table visited per loop iteration while management
/// waits for freed slots.
const EXPEDITED_SWEEP: usize = 32_768;

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
    /// Set by management when it needs slots freed up to this snapshot
    /// generation now: each worker then sweeps its tables in large steps
    /// until its `swept_generation` reaches it (instead of the steady
    /// sweep's ten seconds per pass).
    pub sweep_request: AtomicU64,
}

/// A worker's answer to a session dump request.
#[derive(Debug, Default)]
pub struct Dump {
    /// The request it answers.
    pub request: u64,
    /// True once complete.
    pub done: bool,
    /// The sessions.
    pub sessions: Vec<rvs_core::fwd::SessionInfo>,
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
            sweep_request: AtomicU64::new(0),
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
    /// Hand-over rings to each other core, by core index (None for this
    /// one); this worker is their only producer.
    pub handoff_out: Vec<Option<RingProducer>>,
    /// Hand-over rings from the other cores; this worker is their only
    /// consumer.
    pub handoff_in: Vec<RingConsumer>,
    /// Port index by DPDK port id (for handed-over mbufs, which carry the
    /// id of the port they arrived on).
    pub port_index: Vec<Option<u8>>,
}

/// The hand-over rings of one worker: its producer end towards each other
/// core (None for itself) and its consumer ends from the others.
pub type HandoffEnds = (Vec<Option<RingProducer>>, Vec<RingConsumer>);

/// Hand-over rings for `workers` cores, one SPSC ring per ordered pair
/// (`from` -> `to`) of `size` slots, returned as each worker's ends.
pub fn handoff_rings(eal: &Eal, workers: usize, size: u32) -> Result<Vec<HandoffEnds>, dpdk::RingError> {
    let mut ends: Vec<HandoffEnds> = (0..workers).map(|_| ((0..workers).map(|_| None).collect(), Vec::new())).collect();
    for from in 0..workers {
        for to in (0..workers).filter(|&to| to != from) {
            let (p, c) = dpdk::ring(eal, &format!("rvs_hand_{from}_{to}"), size)?;
            ends[from].0[to] = Some(p);
            ends[to].1.push(c);
        }
    }
    Ok(ends)
}

/// Where processed packets go: per-port TX bursts, kernel bursts, bursts
/// to other cores, and the bulk-free burst.
struct Out {
    tx: Vec<Burst>,
    ktx: Vec<Burst>,
    tx_bytes: Vec<u64>,
    hand: Vec<Burst>,
    dead: Burst,
}

/// Tunables of the loop.
#[derive(Clone, Copy, Debug)]
pub struct LoopConfig {
    /// Idle back-off in microseconds (0: busy poll).
    pub idle_backoff_us: u32,
    /// This worker announces the balancer's addresses (one worker does).
    pub announcer: bool,
    /// Announcements of each new address (0: none).
    pub announce_count: u32,
    /// Milliseconds between them.
    pub announce_interval_ms: u32,
}

/// Announces addresses when they appear: at start (so neighbours that knew
/// a restarted balancer's old MAC learn the new one at once) and whenever a
/// configuration adds a VIP, `count` times, `interval` apart.
#[derive(Debug, Default)]
struct Announcer {
    /// What the running snapshot announces.
    known: std::collections::HashSet<(std::net::IpAddr, u8)>,
    /// Still to send: (address, port, sends left, next at).
    pending: Vec<(std::net::IpAddr, u8, u32, u32)>,
}

impl Announcer {
    /// Schedules the addresses of a newly installed snapshot that the last
    /// one did not announce.
    fn install(&mut self, want: Vec<(std::net::IpAddr, u8)>, count: u32, now: u32) {
        // In the snapshot's (address) order, so the announcements are too.
        for &(a, p) in want.iter().filter(|x| !self.known.contains(x)) {
            if count > 0 {
                self.pending.push((a, p, count, now));
            }
        }
        let want: std::collections::HashSet<_> = want.into_iter().collect();
        self.pending.retain(|(a, p, _, _)| want.contains(&(*a, *p)));
        self.known = want;
    }

    /// Sends what is due.
    fn run(&mut self, now: u32, interval: u32, fwd: &Forwarder, pool: &Mempool, tx: &mut [TxQueue]) {
        for e in &mut self.pending {
            if now.wrapping_sub(e.3) < (1 << 31) {
                send_announcement(fwd, pool, tx, e.0, e.1);
                e.2 -= 1;
                e.3 = now.wrapping_add(interval);
            }
        }
        self.pending.retain(|e| e.2 > 0);
    }
}

/// Runs the loop until `shared.stop` is set.
pub fn run(mut fwd: Forwarder, mut q: WorkerQueues, shared: Arc<Shared>, pool: &'static Mempool, clock: Clock, cfg: LoopConfig) {
    let stats = fwd.stats().clone();
    let nports = q.tx.len();
    let ncores = q.handoff_out.len();
    let mut rx = Burst::new();
    let mut o = Out {
        tx: (0..nports).map(|_| Burst::new()).collect(),
        ktx: (0..nports).map(|_| Burst::new()).collect(),
        tx_bytes: vec![0u64; nports],
        hand: (0..ncores).map(|_| Burst::new()).collect(),
        dead: Burst::new(),
    };
    let mut seen_gen = shared.generation.load(Ordering::Acquire);
    let mut announcer = Announcer::default();
    if cfg.announcer {
        announcer.install(fwd.snapshot().announced(), cfg.announce_count, clock.now_ms());
    }
    let mut idle_since: Option<u32> = None;
    let mut housekeeping_at: Option<u32> = None;
    let mut probes = Vec::new();
    let mut verdicts = [Verdict::Consumed; dpdk::BURST];
    let core = usize::from(fwd.core());
    let mut dump_seen = 0u64;
    let mut dump_cursor = 0usize;
    let mut hold: HoldQueue<Mbuf> = HoldQueue::default();
    let mut swept_at = clock.now_ms();
    // Receive-side queues apart from `q`, which keeps the send side.
    let mut rxqs = std::mem::take(&mut q.rx);
    let mut handoff_in = std::mem::take(&mut q.handoff_in);

    while !shared.stop.load(Ordering::Relaxed) {
        let g = shared.generation.load(Ordering::Acquire);
        let now = clock.now_ms();
        if g != seen_gen {
            fwd.install(shared.snapshot.load_full());
            seen_gen = g;
            if cfg.announcer {
                announcer.install(fwd.snapshot().announced(), cfg.announce_count, now);
            }
        }
        fwd.set_now(now);
        if !announcer.pending.is_empty() {
            announcer.run(now, cfg.announce_interval_ms, &fwd, pool, &mut q.tx);
        }

        let mut got = 0usize;
        for (port, rxq) in &mut rxqs {
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
                    rvs_arch::prefetch(b);
                }
            }
            let pc = &stats.ports[usize::from(*port) % MAX_PORTS];
            pc.rx_pkts.add(n as u64);
            pc.rx_bytes.add(bytes);
            fwd.prepare(pkts);
            for (i, (m, v)) in pkts.iter_mut().zip(verdicts.iter_mut()).enumerate() {
                *v = if m.is_contiguous() { fwd.process_at(m, *port, i) } else { fwd.tally(Verdict::Drop(DropReason::MultiSegment)) };
            }
            for (m, v) in rx.drain().zip(verdicts.iter()) {
                dispatch(&mut o, &mut q, &fwd, pool, &mut hold, now, m, *v);
            }
        }
        // Packets other cores found to be ours: processed here, never
        // handed on again.
        for ring in &mut handoff_in {
            if ring.dequeue(&mut rx) == 0 {
                continue;
            }
            got += rx.len();
            stats.handover_in.add(rx.len() as u64);
            for mut m in rx.drain() {
                let v = match q.port_index.get(usize::from(m.port())).copied().flatten() {
                    Some(p) if m.is_contiguous() => fwd.process_handed(&mut m, p),
                    _ => fwd.tally(Verdict::Drop(DropReason::MultiSegment)),
                };
                dispatch(&mut o, &mut q, &fwd, pool, &mut hold, now, m, v);
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
                o.send(&mut q, &stats, p, m);
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
                        push_dead(&mut o.dead, m);
                        return;
                    };
                    if let Some(d) = m.data_mut().get_mut(..6) {
                        d.copy_from_slice(&mac.0);
                    }
                    o.send(&mut q, &stats, usize::from(p), m);
                },
            );
        }
        for p in 0..nports {
            if !o.ktx[p].is_empty() {
                flush_kernel(&mut q.kernel[p], &mut o.ktx[p], &stats);
            }
            if !o.tx[p].is_empty() {
                flush(&mut q.tx[p], &mut o.tx[p], &stats, p);
            }
            if o.tx_bytes[p] != 0 {
                stats.ports[p % MAX_PORTS].tx_bytes.add(o.tx_bytes[p]);
                o.tx_bytes[p] = 0;
            }
        }
        for (c, b) in o.hand.iter_mut().enumerate() {
            if !b.is_empty() {
                flush_handoff(q.handoff_out.get_mut(c).and_then(Option::as_mut), b, &stats);
            }
        }
        o.dead.free_all();

        stats.loops.inc();
        // Expiry sweeps go by time, not by packets: at most once a
        // millisecond, a share of every table.
        if now != swept_at {
            fwd.sweep_elapsed(now.wrapping_sub(swept_at).min(100));
            swept_at = now;
        }
        // Management waits for freed slots: sweep in large steps (a few
        // hundred microseconds each) until this core has swept past them.
        if shared.sweep_request.load(Ordering::Relaxed) > stats.swept_generation.get() {
            fwd.sweep(EXPEDITED_SWEEP);
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
                send_probe(&fwd, pool, &mut q.tx, n, *unicast);
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
    for b in o.tx.iter_mut().chain(o.ktx.iter_mut()).chain(o.hand.iter_mut()) {
        b.free_all();
    }
}

impl Out {
    /// Queues `m` for port `p`'s TX burst (sending a full burst first).
    #[inline]
    fn send(&mut self, q: &mut WorkerQueues, stats: &rvs_core::stats::CoreStats, p: usize, m: Mbuf) {
        self.tx_bytes[p] += m.len() as u64;
        if let Err(m) = self.tx[p].push(m) {
            flush(&mut q.tx[p], &mut self.tx[p], stats, p);
            let _ = self.tx[p].push(m).map_err(|m| push_dead(&mut self.dead, m));
        }
    }
}

/// Sorts one processed packet by its verdict.
#[allow(clippy::too_many_arguments)]
#[inline]
fn dispatch(o: &mut Out, q: &mut WorkerQueues, fwd: &Forwarder, pool: &Mempool, hold: &mut HoldQueue<Mbuf>, now: u32, m: Mbuf, v: Verdict) {
    let stats = fwd.stats();
    let nports = q.tx.len();
    match v {
        Verdict::Tx(p) | Verdict::Answer(p) | Verdict::Reply { port: p, .. } if usize::from(p) < nports => {
            o.send(q, stats, usize::from(p), m);
        }
        Verdict::Hold { port, neigh } if usize::from(port) < nports => {
            if let Err(m) = hold.push(m, neigh, port, now) {
                stats.count_drop(DropReason::NeighUnresolved);
                push_dead(&mut o.dead, m);
            } else {
                stats.neigh_held.inc();
                if let Some(n) = fwd.urgent_probe(neigh) {
                    send_probe(fwd, pool, &mut q.tx, &n, None);
                }
            }
        }
        Verdict::Kernel(p) if q.kernel.get(usize::from(p)).is_some_and(Option::is_some) => {
            let p = usize::from(p);
            stats.ports[p % MAX_PORTS].to_kernel.inc();
            if let Err(m) = o.ktx[p].push(m) {
                flush_kernel(&mut q.kernel[p], &mut o.ktx[p], stats);
                let _ = o.ktx[p].push(m).map_err(|m| push_dead(&mut o.dead, m));
            }
        }
        Verdict::Handover(c) if q.handoff_out.get(usize::from(c)).is_some_and(Option::is_some) => {
            let c = usize::from(c);
            if let Err(m) = o.hand[c].push(m) {
                flush_handoff(q.handoff_out[c].as_mut(), &mut o.hand[c], stats);
                let _ = o.hand[c].push(m).map_err(|m| push_dead(&mut o.dead, m));
            }
        }
        Verdict::Handover(_) => {
            stats.count_drop(DropReason::HandoverFull);
            push_dead(&mut o.dead, m);
        }
        _ => push_dead(&mut o.dead, m),
    }
}

/// Moves a burst into the ring to its owning core; what does not fit is
/// freed and counted.
fn flush_handoff(ring: Option<&mut RingProducer>, b: &mut Burst, stats: &rvs_core::stats::CoreStats) {
    let moved = ring.map_or(0, |r| r.enqueue(b));
    stats.handover_out.add(moved as u64);
    for _ in 0..b.len() {
        stats.count_drop(DropReason::HandoverFull);
    }
    b.free_all();
}

/// Sends a burst to a kernel interface; what it refuses is counted.
fn flush_kernel(q: &mut Option<(RxQueue, TxQueue)>, b: &mut Burst, stats: &rvs_core::stats::CoreStats) {
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
fn flush(q: &mut TxQueue, b: &mut Burst, stats: &rvs_core::stats::CoreStats, port: usize) {
    let sent = q.tx(b);
    stats.ports[port % MAX_PORTS].tx_pkts.add(sent as u64);
    if !b.is_empty() {
        for _ in 0..b.len() {
            stats.count_drop(DropReason::TxFull);
        }
        b.free_all();
    }
}

/// Sends one frame the management side of the worker originates (a
/// neighbour probe, an announcement): `build` writes it into a fresh
/// 128-byte mbuf and returns (length, egress port), or None to send
/// nothing.
fn send_built(fwd: &Forwarder, pool: &Mempool, tx: &mut [TxQueue], build: impl FnOnce(&mut [u8]) -> Option<(usize, u8)>) {
    let Some(mut m) = pool.alloc() else { return };
    m.reset_empty();
    if !m.append(128) {
        return;
    }
    let Some((len, port)) = build(m.data_mut()) else { return };
    m.truncate(len);
    let Some(q) = tx.get_mut(usize::from(port)) else { return };
    let mut b = Burst::new();
    if b.push(m).is_ok() {
        let sent = q.tx(&mut b);
        fwd.stats().ports[usize::from(port) % MAX_PORTS].tx_pkts.add(sent as u64);
    }
}

/// Sends one gratuitous ARP or unsolicited neighbour advertisement.
fn send_announcement(fwd: &Forwarder, pool: &Mempool, tx: &mut [TxQueue], addr: std::net::IpAddr, port: u8) {
    send_built(fwd, pool, tx, |frame| fwd.build_announcement(addr, port, frame).map(|len| (len, port)));
}

fn send_probe(fwd: &Forwarder, pool: &Mempool, tx: &mut [TxQueue], n: &rvs_core::table::NeighborRef, unicast: Option<rvs_wire::MacAddr>) {
    send_built(fwd, pool, tx, |frame| fwd.build_probe(n, unicast, frame));
}
