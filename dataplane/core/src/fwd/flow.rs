//! A TCP/UDP packet's flow: session lookup, which core owns it, and the hand
//! to admission for a new one.
use super::admit::new_session;
use super::icmp::time_exceeded;
use super::state::{Ctx, Pkt, St};
use super::stateless::stateless;
use super::sweep::end_session;
use super::synproxy;
use super::xmit::forward;
use super::Verdict;
use crate::drop::DropReason;
use crate::session::{Dir, FlowKey, SessionFlags};
use crate::steer::Steering;
use crate::table::{AddrKind, Snapshot, Steer};
use config::WhenFull;
use rvs_wire::ip::proto;
use rvs_wire::Family;
use rvs_wire::{ether, tcp, PacketBuf};

/// TCP and UDP: find the session or make one, then forward.
#[inline(always)]
pub(super) fn transport<A: Family, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    in_port: u8,
    p: Pkt<A>,
) -> Result<Verdict, DropReason> {
    let key = p.tuple();
    // A backup forwards nothing; only its own addresses' traffic (sync,
    // management) reaches its kernel.
    if cx.standby && !matches!(cx.snap.addr_kind(p.dst), Some(AddrKind::Own(_))) {
        return Err(DropReason::HaStandby);
    }
    // The lookup made ahead for this packet, when it is still valid.
    let at = st.hint_at;
    let hint = st.hints.get_mut::<A>().get(at).copied().filter(|x| x.valid && x.key == key);
    let table = st.sessions.get_mut::<A>();
    let (h, found) = match hint {
        Some(x) if x.mods == table.mods() => (x.h, table.verify_call(&key, x.h, &x.cands)),
        Some(x) => (x.h, table.lookup(&key, x.h)),
        None => {
            let h = table.hash(&key);
            (h, table.lookup(&key, h))
        }
    };
    if let Some((idx, dir)) = found {
        let s = *table.get(idx);
        let state = s.state;
        let reuse = p.proto == proto::TCP
            && dir == Dir::Forward
            && p.tcp_flags & (tcp::flags::SYN | tcp::flags::ACK) == tcp::flags::SYN
            && state.is_closing();
        if s.expired(cx.now) || reuse {
            end_session::<A>(cx, st, idx, &s);
            if reuse {
                cx.stats.sessions_reused.inc();
            }
        } else {
            if s.flags.contains(SessionFlags::SYNPROXY) {
                if let Some(v) = synproxy::on_session(cx, st, buf, in_port, idx, dir, &p, &s) {
                    return v;
                }
            }
            return forward(cx, st, buf, in_port, idx, dir, &p);
        }
    }
    // Not ours? Another core owns the flow (see `steer`).
    if let Some(o) = cx.steer.and_then(|sv| owner(cx.snap, sv, &key)) {
        if o != cx.core {
            return Ok(Verdict::Handover(o));
        }
    }
    let Some(svc) = cx.snap.service(p.dst, p.dport, p.proto) else {
        return match cx.snap.addr_kind(p.dst) {
            Some(AddrKind::Vip) => Err(DropReason::NoService),
            Some(AddrKind::Own(port)) => match cx.snap.port(port).and_then(|pv| pv.kernel) {
                Some(_) => Ok(Verdict::Kernel(port)),
                None => Err(DropReason::LocalUnhandled),
            },
            Some(AddrKind::Local | AddrKind::Floating(_)) => Err(DropReason::LocalUnhandled),
            None if p.proto == proto::TCP => Err(DropReason::TcpNoSession),
            None => Err(DropReason::NotForUs),
        };
    };
    // A packet that cannot leave (TTL) must not open a session.
    if A::ttl(&buf.data()[ether::HEADER_LEN..]) <= 1 {
        return time_exceeded::<A, B>(cx, st, buf, in_port);
    }
    if let (Some(invalid), proto::TCP) = (svc.synproxy, p.proto) {
        return synproxy::no_session(cx, st, buf, in_port, &p, svc, h, invalid);
    }
    match new_session(cx, st, buf, in_port, &p, svc, h) {
        Ok(idx) => forward(cx, st, buf, in_port, idx, Dir::Forward, &p),
        // With the stateless policy, a flow that got no session (its SYN
        // came while the table was full) keeps being forwarded by Maglev.
        Err(e @ (DropReason::SessionTableFull | DropReason::TcpNoSession)) if svc.when_full == WhenFull::Stateless => {
            stateless(cx, st, buf, in_port, &p, svc).map_err(|r| if r == DropReason::SessionTableFull { e } else { r })
        }
        Err(e) => Err(e),
    }
}

/// The core owning the flow of a packet with this tuple, when it belongs
/// to a flow rvs balances (see [`crate::steer`] for the rules).
pub(super) fn owner<A: Family>(snap: &Snapshot, sv: &Steering, k: &FlowKey<A>) -> Option<u16> {
    const FULL: u8 = u8::MAX;
    if let Some(svc) = snap.service(k.dst, k.dport, k.proto) {
        return Some(match svc.steer {
            Steer::Rss => sv.rss(k.src, k.dst, k.sport, k.dport),
            Steer::ClientNet(p) => sv.client(k.src, p, None),
            Steer::Client => sv.client(k.src, FULL, Some(k.sport)),
        });
    }
    if snap.is_local(k.dst) {
        if let Some(o) = sv.fnat_owner(k.dport) {
            return Some(o);
        }
    }
    let r = snap.nat_reply(k.src, k.sport, k.proto)?;
    Some(match r.steer {
        Steer::Rss => sv.rss(k.dst, r.vip, k.dport, r.vport),
        Steer::ClientNet(p) => sv.client(k.dst, p, None),
        Steer::Client => sv.client(k.dst, FULL, Some(k.dport)),
    })
}
