//! Where processed packets go: per-port TX bursts, kernel bursts, bursts to
//! the other cores, and the burst freed in bulk. Every frame that leaves a
//! burst without being sent is counted under the reason it was lost.
use super::originate::send_probe;
use super::WorkerQueues;
use rvs_core::fwd::{Forwarder, Verdict};
use rvs_core::hold::HoldQueue;
use rvs_core::stats::CoreStats;
use rvs_core::DropReason;
use rvs_dpdk::{Burst, Mbuf, Mempool, RingProducer, RxQueue, TxQueue};
use rvs_wire::PacketBuf;

/// The outgoing bursts of one worker.
pub(super) struct Out {
    /// By port index.
    pub(super) tx: Vec<Burst>,
    /// By port index: to the port's kernel interface.
    pub(super) ktx: Vec<Burst>,
    /// Bytes queued per port since the last flush.
    pub(super) tx_bytes: Vec<u64>,
    /// By core: to be handed over.
    pub(super) hand: Vec<Burst>,
    /// To free.
    pub(super) dead: Burst,
}

impl Out {
    /// Bursts for `ports` ports and `cores` cores.
    pub(super) fn new(ports: usize, cores: usize) -> Out {
        Out {
            tx: (0..ports).map(|_| Burst::new()).collect(),
            ktx: (0..ports).map(|_| Burst::new()).collect(),
            tx_bytes: vec![0; ports],
            hand: (0..cores).map(|_| Burst::new()).collect(),
            dead: Burst::new(),
        }
    }

    /// Queues `m` for port `p`'s TX burst (sending a full burst first).
    /// Inlined into the worker loop: a forwarded frame's whole way out is
    /// a few instructions (the calls to this and `dispatch` cost as much
    /// again); the full burst's send is out of line.
    #[inline(always)]
    pub(super) fn send(&mut self, q: &mut WorkerQueues, stats: &CoreStats, p: usize, m: Mbuf) {
        self.tx_bytes[p] += m.len() as u64;
        if let Err(m) = self.tx[p].push(m) {
            self.send_full(q, stats, p, m);
        }
    }

    /// [`Out::send`] when port `p`'s burst is full: sends it, then queues `m`.
    #[cold]
    #[inline(never)]
    fn send_full(&mut self, q: &mut WorkerQueues, stats: &CoreStats, p: usize, m: Mbuf) {
        flush(&mut q.tx[p], &mut self.tx[p], stats, p);
        let _ = self.tx[p].push(m).map_err(|m| push_dead(&mut self.dead, m));
    }

    /// Sorts one processed packet by its verdict. The worker loop queues
    /// a plain send itself ([`Out::send`], inlined); this takes the rest
    /// out of line.
    #[inline(never)]
    pub(super) fn dispatch(
        &mut self,
        q: &mut WorkerQueues,
        fwd: &Forwarder,
        pool: &Mempool,
        hold: &mut HoldQueue<Mbuf>,
        now: u32,
        m: Mbuf,
        v: Verdict,
    ) {
        let stats = fwd.stats();
        let nports = q.tx.len();
        match v {
            Verdict::Tx(p) | Verdict::Answer(p) | Verdict::Reply { port: p, .. } if usize::from(p) < nports => {
                self.send(q, stats, usize::from(p), m);
            }
            Verdict::Hold { port, neigh } if usize::from(port) < nports => {
                if let Err(m) = hold.push(m, neigh, port, now) {
                    stats.count_drop(DropReason::NeighUnresolved);
                    push_dead(&mut self.dead, m);
                } else {
                    stats.neigh_held.inc();
                    if let Some(n) = fwd.urgent_probe(now, neigh) {
                        send_probe(fwd, pool, &mut q.tx, &n, None);
                    }
                }
            }
            Verdict::Kernel(p) if q.kernel.get(usize::from(p)).is_some_and(Option::is_some) => {
                let p = usize::from(p);
                if let Some(pc) = stats.port(p) {
                    pc.to_kernel.inc();
                }
                if let Err(m) = self.ktx[p].push(m) {
                    flush_kernel(&mut q.kernel[p], &mut self.ktx[p], stats);
                    let _ = self.ktx[p].push(m).map_err(|m| push_dead(&mut self.dead, m));
                }
            }
            Verdict::Handover(c) if q.handoff_out.get(usize::from(c)).is_some_and(Option::is_some) => {
                let c = usize::from(c);
                if let Err(m) = self.hand[c].push(m) {
                    flush_handoff(q.handoff_out[c].as_mut(), &mut self.hand[c], stats);
                    let _ = self.hand[c].push(m).map_err(|m| push_dead(&mut self.dead, m));
                }
            }
            Verdict::Handover(_) => {
                stats.count_drop(DropReason::HandoverFull);
                push_dead(&mut self.dead, m);
            }
            _ => push_dead(&mut self.dead, m),
        }
    }

    /// Sends every burst: TX and kernel bursts per port, hand-overs per
    /// core; frees the dead.
    pub(super) fn flush_all(&mut self, q: &mut WorkerQueues, stats: &CoreStats) {
        for p in 0..self.tx.len() {
            if !self.ktx[p].is_empty() {
                flush_kernel(&mut q.kernel[p], &mut self.ktx[p], stats);
            }
            if !self.tx[p].is_empty() {
                flush(&mut q.tx[p], &mut self.tx[p], stats, p);
            }
            if self.tx_bytes[p] != 0 {
                if let Some(pc) = stats.port(p) {
                    pc.tx_bytes.add(self.tx_bytes[p]);
                }
                self.tx_bytes[p] = 0;
            }
        }
        for (c, b) in self.hand.iter_mut().enumerate() {
            if !b.is_empty() {
                flush_handoff(q.handoff_out.get_mut(c).and_then(Option::as_mut), b, stats);
            }
        }
        self.dead.free_all();
    }

    /// Frees everything still queued (at the end of the loop).
    pub(super) fn discard(&mut self) {
        for b in self.tx.iter_mut().chain(self.ktx.iter_mut()).chain(self.hand.iter_mut()) {
            b.free_all();
        }
        self.dead.free_all();
    }
}

/// Moves a burst into the ring to its owning core; what does not fit is
/// freed and counted.
fn flush_handoff(ring: Option<&mut RingProducer>, b: &mut Burst, stats: &CoreStats) {
    let moved = ring.map_or(0, |r| r.enqueue(b));
    stats.handover_out.add(moved as u64);
    for _ in 0..b.len() {
        stats.count_drop(DropReason::HandoverFull);
    }
    b.free_all();
}

/// Sends a burst to a kernel interface; what it refuses is counted.
fn flush_kernel(q: &mut Option<(RxQueue, TxQueue)>, b: &mut Burst, stats: &CoreStats) {
    if let Some((_, ktx)) = q.as_mut() {
        ktx.tx(b);
    }
    for _ in 0..b.len() {
        stats.count_drop(DropReason::KernelPathFull);
    }
    b.free_all();
}

/// Adds `m` to the burst freed in bulk (freeing it first when full).
#[inline]
pub(super) fn push_dead(dead: &mut Burst, m: Mbuf) {
    if let Err(m) = dead.push(m) {
        dead.free_all();
        let _ = dead.push(m);
    }
}

/// Sends a TX burst; what the queue refuses is freed and counted.
#[inline]
pub(super) fn flush(q: &mut TxQueue, b: &mut Burst, stats: &CoreStats, port: usize) {
    let sent = q.tx(b);
    if let Some(pc) = stats.port(port) {
        pc.tx_pkts.add(sent as u64);
    }
    if !b.is_empty() {
        for _ in 0..b.len() {
            stats.count_drop(DropReason::TxFull);
        }
        b.free_all();
    }
}
