//! Frames a worker originates itself: neighbour probes (ARP requests,
//! neighbour solicitations) and announcements (gratuitous ARP, unsolicited
//! neighbour advertisements), each in a fresh mbuf sent at once.
use rvs_core::fwd::Forwarder;
use rvs_core::table::NeighborRef;
use rvs_dpdk::{Burst, Mempool, TxQueue};
use rvs_wire::{MacAddr, PacketBuf};
use std::collections::HashSet;
use std::net::IpAddr;

/// Sends one frame: `build` writes it into a fresh 128-byte mbuf and
/// returns (length, egress port), or None to send nothing.
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
        if let Some(pc) = fwd.stats().port(usize::from(port)) {
            pc.tx_pkts.add(sent as u64);
        }
    }
}

/// Sends one gratuitous ARP or unsolicited neighbour advertisement.
pub(super) fn send_announcement(fwd: &Forwarder, pool: &Mempool, tx: &mut [TxQueue], addr: IpAddr, port: u8) {
    send_built(fwd, pool, tx, |frame| fwd.build_announcement(addr, port, frame).map(|len| (len, port)));
}

/// Sends one ARP request or neighbour solicitation for `n` (to its known
/// MAC when `unicast`, else broadcast / solicited-node multicast).
pub(super) fn send_probe(fwd: &Forwarder, pool: &Mempool, tx: &mut [TxQueue], n: &NeighborRef, unicast: Option<MacAddr>) {
    send_built(fwd, pool, tx, |frame| fwd.build_probe(n, unicast, frame));
}

/// One address still to announce.
#[derive(Debug, Clone, Copy)]
struct Due {
    addr: IpAddr,
    port: u8,
    /// Sends left.
    left: u32,
    /// When the next is due.
    at: u32,
    /// Milliseconds between sends.
    interval: u32,
}

/// How to announce addresses that appear: `count` times, `interval_ms`
/// apart, and with `repeat_after_ms` the same again that much later
/// (keepalived's second round of gratuitous ARPs after a takeover).
#[derive(Debug, Clone, Copy)]
pub(super) struct Announce {
    pub(super) count: u32,
    pub(super) interval_ms: u32,
    pub(super) repeat_after_ms: Option<u32>,
}

/// Announces addresses when they appear: at start (so neighbours that knew
/// a restarted balancer's old MAC learn the new one at once), whenever a
/// configuration adds a VIP, and when a backup becomes master (then every
/// virtual address appears at once).
#[derive(Debug, Default)]
pub(super) struct Announcer {
    /// What the running snapshot announces.
    known: HashSet<(IpAddr, u8)>,
    /// Still to send.
    pending: Vec<Due>,
}

impl Announcer {
    /// Schedules the addresses of `want` that were not announced before.
    pub(super) fn install(&mut self, want: Vec<(IpAddr, u8)>, how: Announce, now: u32) {
        // In the snapshot's (address) order, so the announcements are too.
        for &(addr, port) in want.iter().filter(|x| !self.known.contains(x)) {
            if how.count > 0 {
                self.pending.push(Due { addr, port, left: how.count, at: now, interval: how.interval_ms });
                if let Some(r) = how.repeat_after_ms {
                    self.pending.push(Due { addr, port, left: how.count, at: now.wrapping_add(r), interval: how.interval_ms });
                }
            }
        }
        let want: HashSet<_> = want.into_iter().collect();
        self.pending.retain(|d| want.contains(&(d.addr, d.port)));
        self.known = want;
    }

    /// True when announcements are still due.
    pub(super) fn busy(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Sends what is due.
    pub(super) fn run(&mut self, now: u32, fwd: &Forwarder, pool: &Mempool, tx: &mut [TxQueue]) {
        for d in &mut self.pending {
            if now.wrapping_sub(d.at) < (1 << 31) {
                send_announcement(fwd, pool, tx, d.addr, d.port);
                d.left -= 1;
                d.at = now.wrapping_add(d.interval);
            }
        }
        self.pending.retain(|d| d.left > 0);
    }
}
