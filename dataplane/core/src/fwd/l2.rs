//! Ethernet and ARP: frames for us, neighbour claims judged per port,
//! answers, and the frames rvs originates (probes, announcements).
use super::ip::{ipv4_packet, ipv6_packet};
use super::state::{Ctx, St};
use super::{Forwarder, Verdict};
use crate::drop::DropReason;
use crate::table::{AddrKind, NeighborRef};
use rvs_wire::{arp, ether, icmp, ipv6, Family, Ipv4, MacAddr, PacketBuf};
use std::net::IpAddr;

pub(super) fn frame<B: PacketBuf>(cx: &Ctx<'_>, st: &mut St, buf: &mut B, in_port: u8) -> Result<Verdict, DropReason> {
    let d = buf.data();
    ether::check(d)?;
    let port = cx.snap.port(in_port).ok_or(DropReason::NotForUs)?;
    let dst = ether::dst(d);
    // A pair's master also takes frames to the virtual MAC.
    let ours = dst == port.mac || (!cx.standby && cx.snap.vmac == Some(dst));
    if !ours && !dst.is_multicast() {
        return Err(DropReason::EthNotForUs);
    }
    match ether::ethertype(d) {
        ether::ethertype::IPV4 => ipv4_packet(cx, st, buf, in_port),
        ether::ethertype::IPV6 => ipv6_packet(cx, st, buf, in_port),
        ether::ethertype::ARP => arp_packet(cx, buf, in_port),
        _ => Err(DropReason::EthUnsupported),
    }
}

/// What an ARP or ND message's claim "`addr` is at `mac`", received on
/// `in_port`, may teach us. A claim to a VIP, a local or an own address by
/// someone else is a conflict (a second master, or an attack): refused,
/// counted and recorded for management to log. A known neighbour is
/// learned only from the port whose network holds it (a gateway only on
/// its port): claims from elsewhere are poisoning attempts, refused.
/// Returns the neighbour slot to learn, if any.
pub(super) fn check_claim<A: Family>(cx: &Ctx<'_>, addr: A, mac: MacAddr, in_port: u8) -> Result<Option<u32>, DropReason> {
    if addr == A::default() {
        return Ok(None);
    }
    if cx.snap.addr_kind(addr).is_some() {
        if cx.snap.is_own_mac(mac) {
            return Ok(None); // our own announcement, seen again
        }
        if cx.standby && cx.snap.is_virtual(addr) {
            return Ok(None); // the master of the pair announcing what it owns
        }
        cx.stats.record_conflict(addr.to_ip(), mac.0, in_port);
        return Err(DropReason::AddrConflict);
    }
    match cx.snap.neigh_entry(addr) {
        Some((slot, port)) if port == in_port => Ok(Some(slot)),
        Some(_) => Err(DropReason::NeighWrongPort),
        None => Ok(None),
    }
}

pub(super) fn arp_packet<B: PacketBuf>(cx: &Ctx<'_>, buf: &mut B, in_port: u8) -> Result<Verdict, DropReason> {
    let a = arp::Arp::parse(&buf.data()[ether::HEADER_LEN..])?;
    if let Some(slot) = check_claim(cx, Ipv4::from(a.spa), a.sha, in_port)? {
        cx.snap.neigh.learn(slot, a.sha, cx.now);
    }
    if a.op != arp::OP_REQUEST {
        // A reply to one of our own addresses answers the kernel's request
        // when the port has a kernel interface.
        return Ok(match cx.snap.addr_kind(Ipv4::from(a.tpa)) {
            Some(AddrKind::Own(p)) if p == in_port && cx.snap.port(p).and_then(|v| v.kernel).is_some() => Verdict::Kernel(p),
            _ => Verdict::Consumed,
        });
    }
    match cx.snap.addr_kind(Ipv4::from(a.tpa)) {
        Some(AddrKind::Vip | AddrKind::Local | AddrKind::Floating(_)) if cx.standby => return Err(DropReason::HaStandby),
        Some(AddrKind::Vip | AddrKind::Local) => {}
        Some(AddrKind::Own(p) | AddrKind::Floating(p)) if p == in_port => {}
        _ => return Err(DropReason::ArpNotForUs),
    }
    let mac = cx.snap.port(in_port).map(|p| cx.snap.mac_for(Ipv4::from(a.tpa), p)).ok_or(DropReason::ArpNotForUs)?;
    arp::answer_in_place(buf.data_mut(), &a, mac);
    cx.stats.neigh_answers.inc();
    Ok(Verdict::Answer(in_port))
}

impl Forwarder {
    /// Neighbours this core should probe now (it owns slots `slot % cores`).
    pub fn neighbour_probes(&self, now: u32, out: &mut Vec<(NeighborRef, Option<MacAddr>)>) {
        for n in &self.snap.neighbors {
            if n.slot % u32::from(self.cores) != u32::from(self.core) {
                continue;
            }
            if let Some(unicast) = self.snap.neigh.probe_due(n.slot, now) {
                out.push((*n, unicast));
            }
        }
    }

    /// The resolved MAC of a neighbour slot.
    #[inline]
    pub fn neighbour_mac(&self, slot: u32) -> Option<MacAddr> {
        self.snap.neigh.mac(slot)
    }

    /// A frame waits for neighbour `slot`: the neighbour to probe right
    /// now, unless one was probed moments ago (by any worker).
    pub fn urgent_probe(&self, now: u32, slot: u32) -> Option<NeighborRef> {
        let n = self.snap.neighbors.iter().find(|n| n.slot == slot)?;
        self.snap.neigh.urgent_probe(slot, now).then_some(*n)
    }

    /// Writes the announcement of `addr` on `port` into `frame` (at least
    /// 128 bytes): a gratuitous ARP request (sender and target `addr`, to
    /// broadcast) or an unsolicited neighbour advertisement (override, to
    /// all nodes). Returns its length, or None for an unknown port.
    pub fn build_announcement(&self, addr: IpAddr, port: u8, frame: &mut [u8]) -> Option<usize> {
        let p = self.snap.port(port)?;
        let len = match addr {
            IpAddr::V4(a) => arp::write_request(frame, self.snap.mac_for(Ipv4::from(a), p), a, a, MacAddr::BROADCAST),
            IpAddr::V6(a) => {
                let to_mac = MacAddr::ipv6_multicast(&ipv6::ALL_NODES.to_be_bytes());
                icmp::write_neighbor_advert(frame, self.snap.mac_for(rvs_wire::Ipv6::from(a), p), to_mac, a.into(), ipv6::ALL_NODES, false)
            }
        };
        self.stats.announcements.inc();
        Some(len)
    }

    /// Writes the ARP request or neighbour solicitation for a probe into
    /// `frame` (at least 128 bytes); returns (length, egress port) or None
    /// when the port has no address of the neighbour's family.
    pub fn build_probe(&self, n: &NeighborRef, unicast: Option<MacAddr>, frame: &mut [u8]) -> Option<(usize, u8)> {
        let port = self.snap.port(n.port)?;
        let len = match n.addr {
            IpAddr::V4(t) => {
                let src = port.source_for(n.addr)?;
                let IpAddr::V4(src) = src else { return None };
                arp::write_request(frame, port.mac, src, t, unicast.unwrap_or(MacAddr::BROADCAST))
            }
            IpAddr::V6(t) => {
                let IpAddr::V6(src) = port.source_for(n.addr)? else { return None };
                icmp::write_neighbor_solicit(frame, port.mac, src.into(), t.into(), unicast)
            }
        };
        self.stats.neigh_probes.inc();
        Some((len, n.port))
    }
}
