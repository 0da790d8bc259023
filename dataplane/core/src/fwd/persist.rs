//! Persistence templates (IPVS's "persistent" services): the first
//! connection of a client network to a service records its real server in
//! a template; later connections from that network go to the same server
//! while the template lives (it outlives its last session by the service's
//! persistence timeout).
use super::state::{Ctx, St};
use crate::conn::State;
use crate::session::{FlowKey, Session};
use crate::table::{BackendView, ServiceView, Snapshot};
use rvs_wire::Family;

/// The persistence template key of a client for a service.
#[inline]
pub(super) fn template_key<A: Family>(client: A, vip: A, vport: u16, l4proto: u8, prefix: u8) -> FlowKey<A> {
    FlowKey { src: client.mask(prefix), dst: vip, sport: 0, dport: vport, proto: l4proto }
}

/// The real server a live template for `k` names. A template whose server
/// is down, drained or gone is dropped (IPVS's expire_quiescent_template),
/// not obeyed.
pub(super) fn lookup<'s, A: Family>(cx: &Ctx<'s>, st: &mut St, k: &FlowKey<A>, svc: &ServiceView) -> Option<&'s BackendView> {
    let pt = st.templates.get_mut::<A>();
    let (t, _) = pt.lookup(k, pt.hash(k))?;
    let b = obeyed(cx.snap, pt.get(t), cx.now, svc);
    if b.is_none() {
        pt.remove(t);
    }
    b
}

/// The real server template `tpl` names, when it is to be obeyed now: live
/// (children left, or not yet expired) and its server still takes new
/// flows of `svc`.
pub(super) fn obeyed<'s, A: Family>(snap: &'s Snapshot, tpl: &Session<A>, now: u32, svc: &ServiceView) -> Option<&'s BackendView> {
    let live = tpl.rport > 0 || !tpl.expired(now);
    snap.backend(tpl.backend).filter(|b| live && b.effective_weight > 0 && !b.retired && b.service == svc.slot)
}

/// Records a new session under template `k` (making the template when
/// there is none): one more child, and a fresh expiry.
pub(super) fn record<A: Family>(cx: &Ctx<'_>, st: &mut St, k: FlowKey<A>, svc: &ServiceView, b: &BackendView) {
    let timeout = svc.persistence.map_or(0, |(t, _)| t);
    let pt = st.templates.get_mut::<A>();
    match pt.lookup(&k, pt.hash(&k)) {
        Some((t, _)) => {
            let tpl = pt.get_mut(t);
            tpl.rport = tpl.rport.saturating_add(1);
            tpl.expires = cx.now.wrapping_add(timeout);
        }
        None => {
            let tpl = Session {
                client: k.src,
                vip: k.dst,
                vport: k.dport,
                proto: k.proto,
                backend: b.tag(),
                service: svc.slot,
                state: State::Established,
                rport: 1,
                expires: cx.now.wrapping_add(timeout),
                ..Session::default()
            };
            // A full template table only costs persistence for this client.
            let _ = pt.insert(tpl);
        }
    }
}
