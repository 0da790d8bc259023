//! The worker poll loop: DPDK queues in, a [`Forwarder`] in the middle,
//! DPDK queues out.
//!
//! One iteration of [`Worker::run`], stage by stage:
//! 1. [`Worker::pick_up_snapshot`]: a newly published configuration, if the
//!    generation changed (one relaxed load when it did not); the node's
//!    role in a pair (master or backup, see [`ha`]); due announcements;
//! 2. [`Worker::receive`]: for each RX queue, a burst, its headers
//!    prefetched and its sessions looked up ahead, each packet through the
//!    forwarder and sorted by verdict ([`out::Out::dispatch`]) into a
//!    per-port TX burst, the kernel path, a hand-over burst to the core
//!    that owns the flow ([`rvs_core::steer`]), the hold queue, or the
//!    burst freed in bulk;
//! 3. [`Worker::receive_handed`]: what other cores handed over (processed
//!    here, never handed on again);
//! 4. [`Worker::pass_kernel`]: the kernel interfaces' own traffic, out of
//!    its port unchanged;
//! 5. [`Worker::release_held`]: frames whose next hop answered;
//! 6. every burst flushed ([`out::Out::flush_all`]); in a pair, session
//!    records to and from the sync thread ([`Worker::ha_sync`]);
//! 7. [`Worker::housekeeping`]: a time-based slice of the expiry sweep (an
//!    expedited one while management waits for freed slots), a session
//!    dump in bounded steps, and every 100 ms the load refresh and the
//!    neighbour probes due;
//! 8. [`Worker::idle`]: with `idle_backoff_us` > 0, a worker that has seen
//!    no packet for that long sleeps that long between polls (tests and
//!    shared machines); 0 polls flat out, as a production appliance
//!    should.
mod ha;
mod originate;
mod out;

use arc_swap::ArcSwap;
pub use ha::{HaShared, SYNC_QUEUE};
use originate::{send_probe, Announce, Announcer};
use out::{push_dead, Out};
use rvs_arch::Clock;
use rvs_core::fwd::{Forwarder, Verdict};
use rvs_core::hold::HoldQueue;
use rvs_core::table::Snapshot;
use rvs_core::DropReason;
use rvs_dpdk::{self as dpdk, Burst, Eal, Mbuf, Mempool, RingConsumer, RingProducer, RxQueue, TxQueue};
use rvs_wire::PacketBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The frames the forwarder originated during a burst (the SYN proxy's
/// window updates) join the TX bursts.
fn send_extra(fwd: &mut Forwarder, out: &mut Out, q: &mut WorkerQueues, pool: &Mempool) {
    fwd.drain_extra(|stats, port, bytes| {
        let p = usize::from(port);
        if p >= q.tx.len() {
            return;
        }
        let Some(mut m) = pool.alloc() else {
            stats.count_drop(DropReason::TxFull);
            return;
        };
        m.reset_empty();
        if !m.append(bytes.len()) {
            push_dead(&mut out.dead, m);
            return;
        }
        m.data_mut().copy_from_slice(bytes);
        out.send(q, stats, p, m);
    });
}

/// Interval of neighbour probing and load refresh, in milliseconds.
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
    /// Incremented by management to ask every worker to explain the flow
    /// in its slot of `explains` (`rvsadm explain`).
    pub explain_request: AtomicU64,
    /// Per worker: the flow to explain and the answer.
    pub explains: Vec<Mutex<ExplainSlot>>,
    /// Set by management when it needs slots freed up to this snapshot
    /// generation now: each worker then sweeps its tables in large steps
    /// until its `swept_generation` reaches it (instead of the steady
    /// sweep's ten seconds per pass).
    pub sweep_request: AtomicU64,
    /// The pair: role, sync queues, bulk requests.
    pub ha: HaShared,
    /// Debug builds only (the watchdog test): a worker that sees a value
    /// here takes it and stalls that many milliseconds.
    pub stall_ms: AtomicU64,
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

/// A worker's part of an explain request.
#[derive(Debug, Default)]
pub struct ExplainSlot {
    /// The request it belongs to.
    pub request: u64,
    /// The flow.
    pub query: Option<rvs_core::fwd::ExplainQuery>,
    /// The worker's answer, once given.
    pub answer: Option<rvs_core::fwd::Explanation>,
}

/// Most sessions one worker returns per dump.
pub const DUMP_MAX: usize = 100_000;

impl Shared {
    /// Shared state starting with `snap`, for a single balancer.
    pub fn new(snap: Arc<Snapshot>, workers: usize) -> Shared {
        Shared::with_ha(snap, workers, HaShared::single())
    }

    /// Shared state starting with `snap`, with the pair's part `ha`.
    pub fn with_ha(snap: Arc<Snapshot>, workers: usize, ha: HaShared) -> Shared {
        let g = snap.generation;
        Shared {
            snapshot: ArcSwap::new(snap),
            generation: AtomicU64::new(g),
            stop: AtomicBool::new(false),
            dump_request: AtomicU64::new(0),
            dumps: (0..workers).map(|_| Mutex::new(Dump::default())).collect(),
            explain_request: AtomicU64::new(0),
            explains: (0..workers).map(|_| Mutex::new(ExplainSlot::default())).collect(),
            sweep_request: AtomicU64::new(0),
            ha,
            stall_ms: AtomicU64::new(0),
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
    /// The latency histogram: nanoseconds per TSC cycle, times 2^32
    /// (None: not measured).
    pub latency: Option<u64>,
}

impl LoopConfig {
    fn announce(&self) -> Announce {
        Announce { count: self.announce_count, interval_ms: self.announce_interval_ms, repeat_after_ms: None }
    }
}

/// One worker's loop state.
struct Worker {
    fwd: Forwarder,
    q: WorkerQueues,
    shared: Arc<Shared>,
    pool: &'static Mempool,
    cfg: LoopConfig,
    /// Receive-side queues apart from `q`, which keeps the send side.
    rxqs: Vec<(u8, RxQueue)>,
    handoff_in: Vec<RingConsumer>,
    rx: Burst,
    out: Out,
    hold: HoldQueue<Mbuf>,
    verdicts: [Verdict; dpdk::BURST],
    announcer: Announcer,
    probes: Vec<(rvs_core::table::NeighborRef, Option<rvs_wire::MacAddr>)>,
    seen_gen: u64,
    idle_since: Option<u32>,
    housekeeping_at: Option<u32>,
    swept_at: u32,
    dump_seen: u64,
    explain_seen: u64,
    dump_cursor: usize,
    ha: ha::HaState,
    /// With the latency histogram: the TSC at each burst received this
    /// iteration and the frames of it forwarded.
    lat: [(u64, u64); 8],
    lat_n: usize,
}

/// Runs the loop until `shared.stop` is set.
pub fn run(mut fwd: Forwarder, mut q: WorkerQueues, shared: Arc<Shared>, pool: &'static Mempool, clock: Clock, cfg: LoopConfig) {
    let now = clock.now_ms();
    let active = shared.ha.active.load(Ordering::Acquire);
    fwd.set_role(active, shared.ha.sync);
    let mut announcer = Announcer::default();
    if cfg.announcer {
        announcer.install(fwd.snapshot().announced(!active), cfg.announce(), now);
    }
    let mut w = Worker {
        out: Out::new(q.tx.len(), q.handoff_out.len()),
        rxqs: std::mem::take(&mut q.rx),
        handoff_in: std::mem::take(&mut q.handoff_in),
        seen_gen: shared.generation.load(Ordering::Acquire),
        fwd,
        q,
        shared,
        pool,
        cfg,
        rx: Burst::new(),
        hold: HoldQueue::default(),
        verdicts: [Verdict::Consumed; dpdk::BURST],
        announcer,
        probes: Vec::new(),
        idle_since: None,
        housekeeping_at: None,
        swept_at: now,
        dump_seen: 0,
        explain_seen: 0,
        dump_cursor: 0,
        ha: ha::HaState { active, ..ha::HaState::default() },
        lat: [(0, 0); 8],
        lat_n: 0,
    };
    while !w.shared.stop.load(Ordering::Relaxed) {
        let now = clock.now_ms();
        w.pick_up_snapshot(now);
        let got = w.receive(now) + w.receive_handed(now) + w.pass_kernel();
        w.release_held(now);
        w.out.flush_all(&mut w.q, w.fwd.stats());
        if w.lat_n > 0 {
            w.record_latency();
        }
        let got = got + w.ha_sync(now);
        w.fwd.stats().loops.inc();
        w.housekeeping(now);
        w.idle(now, got);
    }
    w.out.discard();
}

impl Worker {
    /// Stage 1: a newly published snapshot, and the announcements due.
    fn pick_up_snapshot(&mut self, now: u32) {
        let g = self.shared.generation.load(Ordering::Acquire);
        if g != self.seen_gen {
            self.fwd.install(self.shared.snapshot.load_full());
            self.seen_gen = g;
            if self.cfg.announcer {
                self.announcer.install(self.fwd.snapshot().announced(!self.ha.active), self.cfg.announce(), now);
            }
        }
        self.ha_role(now);
        if self.announcer.busy() {
            self.announcer.run(now, &self.fwd, self.pool, &mut self.q.tx);
        }
    }

    /// Stage 2: a burst from every RX queue, through the forwarder.
    /// Returns the packets received.
    fn receive(&mut self, now: u32) -> usize {
        let mut got = 0;
        for (port, rxq) in &mut self.rxqs {
            let n = rxq.rx(&mut self.rx);
            if n == 0 {
                continue;
            }
            got += n;
            let lat = self.cfg.latency.map(|_| (rvs_arch::tsc(), self.fwd.stats().frames.forwarded.get()));
            let stats = self.fwd.stats();
            let pkts = self.rx.as_mut_slice();
            let mut bytes = 0u64;
            for m in pkts.iter() {
                bytes += m.len() as u64;
                if let Some(b) = m.data().first() {
                    rvs_arch::prefetch(b);
                }
            }
            if let Some(pc) = stats.port(usize::from(*port)) {
                pc.rx_pkts.add(n as u64);
                pc.rx_bytes.add(bytes);
            }
            self.fwd.prepare(pkts);
            for (i, (m, v)) in pkts.iter_mut().zip(self.verdicts.iter_mut()).enumerate() {
                *v = if m.is_contiguous() {
                    self.fwd.process_at(now, m, *port, i)
                } else {
                    self.fwd.tally(Verdict::Drop(DropReason::MultiSegment))
                };
            }
            let nports = self.q.tx.len();
            for (m, v) in self.rx.drain().zip(self.verdicts.iter()) {
                match *v {
                    Verdict::Tx(p) if usize::from(p) < nports => self.out.send(&mut self.q, self.fwd.stats(), usize::from(p), m),
                    v => self.out.dispatch(&mut self.q, &self.fwd, self.pool, &mut self.hold, now, m, v),
                }
            }
            send_extra(&mut self.fwd, &mut self.out, &mut self.q, self.pool);
            if let Some((t0, before)) = lat {
                if let Some(slot) = self.lat.get_mut(self.lat_n) {
                    *slot = (t0, self.fwd.stats().frames.forwarded.get().wrapping_sub(before));
                    self.lat_n += 1;
                }
            }
        }
        got
    }

    /// The latency of the bursts received this iteration, now that they
    /// were sent: from their receive to the end of the send.
    fn record_latency(&mut self) {
        let Some(mul) = self.cfg.latency else { return };
        let t1 = rvs_arch::tsc();
        let stats = self.fwd.stats();
        for &(t0, n) in self.lat.iter().take(self.lat_n) {
            let ns = u64::try_from((u128::from(t1.saturating_sub(t0)) * u128::from(mul)) >> 32).unwrap_or(u64::MAX);
            if let Some(c) = stats.latency.get(rvs_core::stats::latency_bucket(ns)) {
                c.add(n);
            }
        }
        self.lat_n = 0;
    }

    /// Stage 3: packets other cores found to be ours, processed here and
    /// never handed on again.
    fn receive_handed(&mut self, now: u32) -> usize {
        let mut got = 0;
        for ring in &mut self.handoff_in {
            if ring.dequeue(&mut self.rx) == 0 {
                continue;
            }
            got += self.rx.len();
            self.fwd.stats().handover_in.add(self.rx.len() as u64);
            for mut m in self.rx.drain() {
                let v = match self.q.port_index.get(usize::from(m.port())).copied().flatten() {
                    Some(p) if m.is_contiguous() => self.fwd.process_handed(now, &mut m, p),
                    _ => self.fwd.tally(Verdict::Drop(DropReason::MultiSegment)),
                };
                self.out.dispatch(&mut self.q, &self.fwd, self.pool, &mut self.hold, now, m, v);
            }
            send_extra(&mut self.fwd, &mut self.out, &mut self.q, self.pool);
        }
        got
    }

    /// Stage 4: the kernel's own traffic (health checks, management)
    /// leaves by its port unchanged.
    fn pass_kernel(&mut self) -> usize {
        let mut got = 0;
        for p in 0..self.q.tx.len() {
            let Some((krx, _)) = self.q.kernel.get_mut(p).and_then(Option::as_mut) else { continue };
            let n = krx.rx(&mut self.rx);
            if n == 0 {
                continue;
            }
            got += n;
            if let Some(pc) = self.fwd.stats().port(p) {
                pc.from_kernel.add(n as u64);
            }
            for m in self.rx.drain() {
                self.out.send(&mut self.q, self.fwd.stats(), p, m);
            }
        }
        got
    }

    /// Stage 5: held frames whose next hop answered go out with this
    /// burst; those that waited too long are dropped.
    fn release_held(&mut self, now: u32) {
        if self.hold.is_empty() {
            return;
        }
        let (fwd, out, q) = (&self.fwd, &mut self.out, &mut self.q);
        let stats = fwd.stats();
        self.hold.release(
            now,
            |n| fwd.neighbour_mac(n),
            |mut m, to| {
                let Some((p, mac)) = to else {
                    stats.count_drop(DropReason::NeighUnresolved);
                    push_dead(&mut out.dead, m);
                    return;
                };
                if let Some(d) = m.data_mut().get_mut(..6) {
                    d.copy_from_slice(&mac.0);
                }
                out.send(q, stats, usize::from(p), m);
            },
        );
    }

    /// Stage 7: expiry, expedited sweeps, dumps, load and probes.
    fn housekeeping(&mut self, now: u32) {
        if cfg!(debug_assertions) && self.shared.stall_ms.load(Ordering::Relaxed) > 0 {
            let ms = self.shared.stall_ms.swap(0, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(ms));
        }
        // Expiry sweeps go by time, not by packets: at most once a
        // millisecond, a share of every table.
        if now != self.swept_at {
            self.fwd.sweep_elapsed(now, now.wrapping_sub(self.swept_at).min(100));
            self.swept_at = now;
            // The SYN proxy's real servers that have not answered a second.
            if self.fwd.resend_syns(now) > 0 {
                send_extra(&mut self.fwd, &mut self.out, &mut self.q, self.pool);
            }
        }
        // Management waits for freed slots: sweep in large steps (a few
        // hundred microseconds each) until this core has swept past them.
        if self.shared.sweep_request.load(Ordering::Relaxed) > self.fwd.stats().swept_generation.get() {
            self.fwd.sweep(now, EXPEDITED_SWEEP);
        }
        self.dump_step(now);
        self.explain_step(now);
        if self.housekeeping_at.is_none_or(|t| now.wrapping_sub(t) >= HOUSEKEEPING_MS) {
            self.housekeeping_at = Some(now);
            self.fwd.refresh_load();
            self.probes.clear();
            self.fwd.neighbour_probes(now, &mut self.probes);
            for (n, unicast) in &self.probes {
                send_probe(&self.fwd, self.pool, &mut self.q.tx, n, *unicast);
            }
        }
    }

    /// An explanation management asked for (one table lookup and a
    /// scheduler copy: no step of it is long).
    fn explain_step(&mut self, now: u32) {
        let req = self.shared.explain_request.load(Ordering::Relaxed);
        if req == self.explain_seen {
            return;
        }
        self.explain_seen = req;
        let Some(slot) = self.shared.explains.get(usize::from(self.fwd.core())) else { return };
        let Ok(mut x) = slot.lock() else { return };
        if x.request == req && x.answer.is_none() {
            if let Some(q) = x.query {
                x.answer = Some(self.fwd.explain(&q, now));
            }
        }
    }

    /// A session dump management asked for, in bounded steps between
    /// bursts.
    fn dump_step(&mut self, now: u32) {
        let req = self.shared.dump_request.load(Ordering::Relaxed);
        if req == self.dump_seen {
            return;
        }
        let core = usize::from(self.fwd.core());
        let Some(slot) = self.shared.dumps.get(core) else { return };
        let Ok(mut d) = slot.lock() else { return };
        if d.request != req {
            *d = Dump { request: req, done: false, sessions: Vec::new() };
            self.dump_cursor = 0;
        }
        if self.fwd.dump(now, &mut self.dump_cursor, 16_384, DUMP_MAX, &mut d.sessions) {
            d.done = true;
            self.dump_seen = req;
        }
    }

    /// Stage 8: the idle back-off.
    fn idle(&mut self, now: u32, got: usize) {
        if got > 0 {
            self.idle_since = None;
            return;
        }
        self.fwd.stats().idle_loops.inc();
        if self.cfg.idle_backoff_us > 0 {
            let since = *self.idle_since.get_or_insert(now);
            if now.wrapping_sub(since).saturating_mul(1000) >= self.cfg.idle_backoff_us {
                std::thread::sleep(Duration::from_micros(u64::from(self.cfg.idle_backoff_us)));
            }
        }
    }
}
