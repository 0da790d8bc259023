//! Forwarding without a session when the table is full and the service says
//! `when_full = "stateless"`.
use super::icmp::too_big;
use super::state::{Ctx, Pkt, St};
use super::xmit::{decrement_ttl, encapsulate, tx_or_hold};
use super::Verdict;
use crate::drop::DropReason;
use crate::sched::stable_hash;
use crate::table::{Mode, ServiceView};
use rvs_wire::Family;
use rvs_wire::{ether, tunnel, MacAddr, PacketBuf};

/// Forwards a new flow without a session (the table is full and the service
/// is `when_full = "stateless"`): the real server comes from a Maglev table
/// over the flow's 5-tuple, so the flow's later packets, which find no
/// session either, land on the same server. DR and tunnel only: NAT replies
/// need a session (or a route and MAC for the client), so NAT and full-NAT
/// services refuse instead.
pub(super) fn stateless<A: Family, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    in_port: u8,
    p: &Pkt<A>,
    svc: &ServiceView,
) -> Result<Verdict, DropReason> {
    let Some(table) = &svc.stateless else { return Err(DropReason::SessionTableFull) };
    let mut k = [0u8; 37];
    p.src.write(&mut k);
    p.dst.write(&mut k[16..]);
    k[32..34].copy_from_slice(&p.sport.to_be_bytes());
    k[34..36].copy_from_slice(&p.dport.to_be_bytes());
    k[36] = p.proto;
    let pick = table.lookup(stable_hash(&k, 0x5354_4154), &svc.cands, true).ok_or(DropReason::NoBackend)?;
    let b = svc
        .backends
        .get(pick)
        .and_then(|&slot| cx.snap.backends.get(usize::from(slot)))
        .and_then(Option::as_ref)
        .ok_or(DropReason::NoBackend)?;
    if !matches!(b.mode, Mode::Dr | Mode::Tunnel) {
        return Err(DropReason::SessionTableFull);
    }
    let mac = cx.snap.neigh.mac(b.neigh);
    let out = cx.snap.port(b.egress).ok_or(DropReason::NoRoute)?;
    if b.mode == Mode::Tunnel {
        let overhead = tunnel::overhead(b.addr);
        if buf.len() - ether::HEADER_LEN + overhead > usize::from(out.mtu) {
            return too_big::<A, B>(cx, st, buf, in_port, usize::from(out.mtu).saturating_sub(overhead));
        }
        decrement_ttl::<A>(buf.data_mut());
        encapsulate::<A, B>(cx, buf, b)?;
    } else {
        decrement_ttl::<A>(buf.data_mut());
    }
    ether::set_macs(buf.data_mut(), mac.unwrap_or(MacAddr::ZERO), out.mac);
    cx.stats.stateless_flows.inc();
    if let Some(ss) = cx.stats.services.get(usize::from(svc.slot)) {
        ss.stateless.inc();
        ss.pkts_in.inc();
        ss.bytes_in.add(buf.len() as u64);
    }
    Ok(tx_or_hold(b.egress, mac, b.neigh))
}
