//! The neighbour table: next-hop MAC addresses for real servers and gateways.
//!
//! Management decides *which* neighbours exist (every next hop the
//! configuration needs, plus static entries) and gives each a slot; the
//! compiled [`Snapshot`](crate::table::Snapshot) maps addresses to slots.
//! Workers do the rest, with no lock: any worker that sees an ARP or
//! neighbour-discovery message from a known neighbour stores its MAC (one
//! atomic store), and the worker that owns a slot (`slot % workers`)
//! probes it: broadcast or multicast while unresolved, unicast to refresh
//! once the entry is older than [`REACHABLE_MS`].
//!
//! Entry life cycle (Linux's NUD in miniature): a confirmed entry is used
//! without probing for [`REACHABLE_MS`]; then its owner re-confirms it with
//! unicast probes, one per [`PROBE_INTERVAL_MS`], still forwarding to the
//! known MAC; after [`UNICAST_PROBES`] unanswered ones it probes by
//! broadcast; an entry unconfirmed for [`EXPIRE_MS`] expires (packets to it
//! are dropped as `neigh_unresolved` until it answers again). Any ARP or ND
//! message from the neighbour confirms it at once. Static entries never
//! expire and are never probed.
use rvs_wire::MacAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// An entry confirmed this recently is not probed.
pub const REACHABLE_MS: u32 = 30_000;
/// Gap between probes of one neighbour.
pub const PROBE_INTERVAL_MS: u32 = 1_000;
/// Unicast re-confirmation probes before falling back to broadcast.
pub const UNICAST_PROBES: u32 = 3;
/// An entry unconfirmed this long expires.
pub const EXPIRE_MS: u32 = 60_000;
/// Least gap between probes triggered by held packets.
pub const URGENT_GAP_MS: u32 = 200;

const VALID: u64 = 1 << 63;
const STATIC: u64 = 1 << 62;

/// One neighbour's resolution state.
#[derive(Debug, Default)]
pub struct NeighSlot {
    /// MAC in the low 48 bits, with VALID and STATIC flags.
    mac: AtomicU64,
    /// When the MAC was last confirmed (ms tick).
    confirmed: AtomicU32,
    /// When it was last probed (ms tick).
    probed: AtomicU32,
}

/// What a neighbour slot holds now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighState {
    /// Resolved MAC, if any.
    pub mac: Option<MacAddr>,
    /// Configured, never probed.
    pub is_static: bool,
    /// Last confirmation tick.
    pub confirmed: u32,
}

/// Fixed-capacity neighbour slots, shared by all workers and management.
#[derive(Debug)]
pub struct NeighTable {
    slots: Box<[NeighSlot]>,
}

impl NeighTable {
    /// A table with `n` slots.
    pub fn new(n: usize) -> NeighTable {
        NeighTable { slots: (0..n).map(|_| NeighSlot::default()).collect() }
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when there are no slots.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The resolved MAC of a slot (the per-packet read: one relaxed load).
    #[inline(always)]
    pub fn mac(&self, slot: u32) -> Option<MacAddr> {
        let v = self.slots.get(slot as usize)?.mac.load(Relaxed);
        (v & VALID != 0).then(|| MacAddr::from_u64(v))
    }

    /// Records a MAC learned from the wire at `now`. Static entries win.
    pub fn learn(&self, slot: u32, mac: MacAddr, now: u32) {
        let Some(s) = self.slots.get(slot as usize) else { return };
        if s.mac.load(Relaxed) & STATIC != 0 {
            return;
        }
        s.mac.store(mac.to_u64() | VALID, Relaxed);
        s.confirmed.store(now, Relaxed);
    }

    /// Sets a static entry (management).
    pub fn set_static(&self, slot: u32, mac: MacAddr) {
        if let Some(s) = self.slots.get(slot as usize) {
            s.mac.store(mac.to_u64() | VALID | STATIC, Relaxed);
        }
    }

    /// Forgets a slot (management, when it stops being used).
    pub fn clear(&self, slot: u32) {
        if let Some(s) = self.slots.get(slot as usize) {
            s.mac.store(0, Relaxed);
            s.confirmed.store(0, Relaxed);
            s.probed.store(0, Relaxed);
        }
    }

    /// A packet waits for this unresolved neighbour: returns true (and
    /// records the probe) when a probe should go out now - at most one per
    /// [`URGENT_GAP_MS`] whichever worker asks, so a burst of held packets
    /// sends one ARP request, not one each.
    pub fn urgent_probe(&self, slot: u32, now: u32) -> bool {
        let Some(s) = self.slots.get(slot as usize) else { return false };
        if s.mac.load(Relaxed) & VALID != 0 {
            return false;
        }
        let last = s.probed.load(Relaxed);
        if last != 0 && now.wrapping_sub(last) < URGENT_GAP_MS {
            return false;
        }
        s.probed.compare_exchange(last, now.max(1), Relaxed, Relaxed).is_ok()
    }

    /// A slot's state, for display.
    pub fn state(&self, slot: u32) -> Option<NeighState> {
        let s = self.slots.get(slot as usize)?;
        let v = s.mac.load(Relaxed);
        Some(NeighState {
            mac: (v & VALID != 0).then(|| MacAddr::from_u64(v)),
            is_static: v & STATIC != 0,
            confirmed: s.confirmed.load(Relaxed),
        })
    }

    /// Decides whether the owner should probe `slot` now; if so returns the
    /// MAC to probe by unicast (None: broadcast/multicast) and records the
    /// probe time.
    pub fn probe_due(&self, slot: u32, now: u32) -> Option<Option<MacAddr>> {
        let s = self.slots.get(slot as usize)?;
        let v = s.mac.load(Relaxed);
        if v & STATIC != 0 {
            return None;
        }
        let since_probe = now.wrapping_sub(s.probed.load(Relaxed));
        if since_probe < PROBE_INTERVAL_MS && s.probed.load(Relaxed) != 0 {
            return None;
        }
        let age = now.wrapping_sub(s.confirmed.load(Relaxed));
        let target = if v & VALID == 0 {
            None
        } else if age < REACHABLE_MS {
            return None;
        } else if age >= EXPIRE_MS {
            s.mac.store(0, Relaxed);
            None
        } else if age < REACHABLE_MS + UNICAST_PROBES * PROBE_INTERVAL_MS {
            Some(MacAddr::from_u64(v))
        } else {
            None
        };
        s.probed.store(now.max(1), Relaxed);
        Some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learn_probe_and_static() {
        let t = NeighTable::new(4);
        assert_eq!(t.mac(0), None);
        assert_eq!(t.probe_due(0, 100), Some(None)); // unresolved: broadcast
        assert_eq!(t.probe_due(0, 500), None); // too soon
        let m = MacAddr([2, 0, 0, 0, 0, 9]);
        t.learn(0, m, 600);
        assert_eq!(t.mac(0), Some(m));
        assert_eq!(t.probe_due(0, 2000), None); // fresh
        assert_eq!(t.probe_due(0, 600 + REACHABLE_MS), Some(Some(m))); // refresh by unicast
        assert_eq!(t.mac(0), Some(m), "still forwarding while re-confirming");
        let late = 600 + REACHABLE_MS + UNICAST_PROBES * PROBE_INTERVAL_MS;
        assert_eq!(t.probe_due(0, late), Some(None)); // unanswered: broadcast
        assert_eq!(t.mac(0), Some(m));
        assert_eq!(t.probe_due(0, 600 + EXPIRE_MS), Some(None));
        assert_eq!(t.mac(0), None, "expired after EXPIRE_MS without confirmation");
        t.learn(0, m, 600 + EXPIRE_MS + 5);
        assert_eq!(t.mac(0), Some(m), "an answer revives it");
        t.set_static(1, m);
        t.learn(1, MacAddr([2; 6]), 1);
        assert_eq!(t.mac(1), Some(m));
        assert_eq!(t.probe_due(1, 10), None);
        assert!(t.state(1).unwrap().is_static);
        assert_eq!(t.mac(9), None);
    }

    #[test]
    fn held_packets_probe_at_most_every_urgent_gap() {
        let t = NeighTable::new(2);
        assert!(t.urgent_probe(1, 10));
        assert!(!t.urgent_probe(1, 10 + URGENT_GAP_MS - 1));
        assert!(t.urgent_probe(1, 10 + URGENT_GAP_MS));
        t.learn(1, MacAddr([2, 0, 0, 0, 0, 1]), 500);
        assert!(!t.urgent_probe(1, 5000), "resolved: nothing to ask");
        assert!(!t.urgent_probe(9, 0), "no such slot");
    }
}
