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

/// Announces addresses when they appear: at start (so neighbours that knew
/// a restarted balancer's old MAC learn the new one at once) and whenever a
/// configuration adds a VIP, `count` times, `interval` apart.
#[derive(Debug, Default)]
pub(super) struct Announcer {
    /// What the running snapshot announces.
    known: HashSet<(IpAddr, u8)>,
    /// Still to send: (address, port, sends left, next at).
    pending: Vec<(IpAddr, u8, u32, u32)>,
}

impl Announcer {
    /// Schedules the addresses of a newly installed snapshot that the last
    /// one did not announce.
    pub(super) fn install(&mut self, want: Vec<(IpAddr, u8)>, count: u32, now: u32) {
        // In the snapshot's (address) order, so the announcements are too.
        for &(a, p) in want.iter().filter(|x| !self.known.contains(x)) {
            if count > 0 {
                self.pending.push((a, p, count, now));
            }
        }
        let want: HashSet<_> = want.into_iter().collect();
        self.pending.retain(|(a, p, _, _)| want.contains(&(*a, *p)));
        self.known = want;
    }

    /// True when announcements are still due.
    pub(super) fn busy(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Sends what is due.
    pub(super) fn run(&mut self, now: u32, interval: u32, fwd: &Forwarder, pool: &Mempool, tx: &mut [TxQueue]) {
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
