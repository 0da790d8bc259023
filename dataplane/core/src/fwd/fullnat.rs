//! Full NAT's local side: choosing a local address and port for a new flow.
use super::state::{Ctx, St};
use crate::drop::DropReason;
use crate::session::FlowKey;
use crate::table::{BackendView, ServiceView};
use rvs_wire::Family;

/// Picks a full-NAT local address and port whose reply key is free. The
/// core's port range is walked from a cursor, taking the service's local
/// addresses in turn at each port (else the egress port's address of the
/// real server's family), so every address's ports are used evenly.
pub(super) fn alloc_local_port<A: Family>(
    cx: &Ctx<'_>,
    st: &mut St,
    svc: &ServiceView,
    b: &BackendView,
    l4proto: u8,
) -> Result<(A, u16), DropReason> {
    let rs = A::from_ip(b.addr).ok_or(DropReason::LocalPortsExhausted)?;
    let fallback =
        if svc.locals.is_empty() { cx.snap.port(b.egress).and_then(|p| p.source_for(b.addr)).and_then(A::from_ip) } else { None };
    let nlocals = if svc.locals.is_empty() { usize::from(fallback.is_some()) } else { svc.locals.len() };
    if nlocals == 0 {
        return Err(DropReason::LocalPortsExhausted);
    }
    let (lo, hi) = st.fnat_range;
    let span = (usize::from(hi - lo) + 1) * nlocals;
    // With several cores on RSS NICs, prefer a port whose reply the NIC
    // sends to this core (a free one that does not is kept in reserve).
    let mut spare = None;
    let mut passed = 0;
    for _ in 0..span.min(4096) {
        let li = st.fnat_local % nlocals;
        let port = st.fnat_next;
        st.fnat_local = li + 1;
        if st.fnat_local == nlocals {
            st.fnat_local = 0;
            st.fnat_next = if port >= hi { lo } else { port + 1 };
        }
        let local = match fallback {
            Some(a) => a,
            None => match svc.locals.get(li).and_then(|&a| A::from_ip(a)) {
                Some(a) => a,
                None => continue, // an address of the other family
            },
        };
        // Free when no session uses this local address and port at all
        // (its count, in cache: the cursor walks the counts in order),
        // else when the reply key is not in the table (its bucket, a
        // random line). Where a local address is or was a VIP, forward
        // keys may end in it too: always looked up.
        let t = st.sessions.get::<A>();
        let free = (!cx.snap.vip_locals && t.local_port_unused(local, port)) || {
            let key = FlowKey { src: rs, dst: local, sport: b.port, dport: port, proto: l4proto };
            t.lookup(&key, t.hash(&key)).is_none()
        };
        if free {
            if cx.steer.is_none_or(|sv| sv.prefers_lport(cx.core, rs, b.port, local, port)) {
                return Ok((local, port));
            }
            spare = spare.or(Some((local, port)));
        }
        if spare.is_some() {
            passed += 1;
            if passed >= 16 {
                break;
            }
        }
    }
    spare.ok_or(DropReason::LocalPortsExhausted)
}
