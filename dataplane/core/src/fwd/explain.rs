//! `rvsadm explain`: what this core would do with a flow, and why,
//! computed from its own state without changing it.
//!
//! The answer is the forwarder's own view: the session table, the
//! persistence templates, the scheduler's per-core state (a copy of it
//! makes the pick, so a round robin's cursor does not move) and its load
//! view. Management asks every worker and keeps the answer of the one that
//! holds the session, or of the flow's owner.
use super::admit::flow_hashes;
use super::state::Pkt;
use super::{Forwarder, SessionInfo};
use crate::drop::DropReason;
use crate::sched::Load;
use crate::sched::SchedSpec;
use crate::session::FlowKey;
use crate::table::Mode;
use rvs_wire::{Family, Ipv4, Ipv6};
use std::net::IpAddr;

/// The flow to explain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExplainQuery {
    /// IP protocol (6 or 17).
    pub proto: u8,
    /// Client address and port.
    pub client: (IpAddr, u16),
    /// Virtual address and port.
    pub vip: (IpAddr, u16),
}

/// A real server as the scheduler saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandidateView {
    /// Address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Configured weight.
    pub weight: u32,
    /// Effective weight (0: takes no new flow).
    pub effective: u32,
    /// Up by its health check.
    pub up: bool,
    /// The sorry server.
    pub fallback: bool,
    /// This core's (active, inactive) connections to it, as its load view
    /// has them.
    pub conns: (u32, u32),
}

/// Where a hashing scheduler looked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashSlot {
    /// "maglev" or "buckets".
    pub table: &'static str,
    /// The entry the flow's hash lands on.
    pub slot: usize,
    /// Entries in the table.
    pub size: usize,
}

/// What one core would do with a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The answering core.
    pub core: u16,
    /// The core that owns the flow (None: the receiving core, one worker).
    pub owner: Option<u16>,
    /// Its session here, if it has one.
    pub session: Option<SessionInfo>,
    /// The timeout of the session's state, ms (what each packet renews).
    pub session_timeout_ms: Option<u32>,
    /// Why no session would be made (no service, a source list...).
    pub refused: Option<DropReason>,
    /// A live persistence template for the client: its server and the
    /// milliseconds it has left.
    pub template: Option<((IpAddr, u16), u32)>,
    /// The scheduler's candidates, in configuration order.
    pub candidates: Vec<CandidateView>,
    /// The candidate it would pick.
    pub pick: Option<usize>,
    /// Where a hashing scheduler looked.
    pub hash: Option<HashSlot>,
    /// The forwarding mode of the pick.
    pub mode: Option<Mode>,
    /// Full NAT: the local addresses a session would take one of.
    pub locals: Vec<IpAddr>,
}

impl Forwarder {
    /// What this core would do with `q` now (see the module).
    pub fn explain(&self, q: &ExplainQuery, now: u32) -> Explanation {
        match (q.client.0, q.vip.0) {
            (IpAddr::V4(_), IpAddr::V4(_)) => self.explain_in::<Ipv4>(q, now),
            _ => self.explain_in::<Ipv6>(q, now),
        }
    }

    fn explain_in<A: Family>(&self, q: &ExplainQuery, now: u32) -> Explanation {
        let mut e = Explanation {
            core: self.core,
            owner: None,
            session: None,
            session_timeout_ms: None,
            refused: None,
            template: None,
            candidates: Vec::new(),
            pick: None,
            hash: None,
            mode: None,
            locals: Vec::new(),
        };
        let (Some(src), Some(dst)) = (A::from_ip(q.client.0), A::from_ip(q.vip.0)) else {
            e.refused = Some(DropReason::NotForUs);
            return e;
        };
        let key = FlowKey { src, dst, sport: q.client.1, dport: q.vip.1, proto: q.proto };
        e.owner = self.steering.as_ref().and_then(|sv| super::flow::owner(&self.snap, sv, &key));
        let table = self.st.sessions.get::<A>();
        if let Some((idx, _)) = table.lookup(&key, table.hash(&key)) {
            let s = table.get(idx);
            if !s.expired(now) {
                e.session = Some(self.info(now, s));
                e.session_timeout_ms =
                    self.snap.services.get(usize::from(s.service)).and_then(Option::as_ref).map(|v| s.state.timeout(&v.timeouts, false));
            }
        }
        let Some(svc) = self.snap.service(dst, q.vip.1, q.proto) else {
            e.refused = Some(if self.snap.addr_kind(dst).is_some() { DropReason::NoService } else { DropReason::NotForUs });
            return e;
        };
        e.refused = super::admit::source_refusal(svc, src);
        let load = &self.st.load;
        for (c, &slot) in svc.cands.iter().zip(&svc.backends) {
            if let Some(b) = self.snap.backends.get(usize::from(slot)).and_then(Option::as_ref) {
                e.candidates.push(CandidateView {
                    addr: b.addr,
                    port: b.port,
                    weight: b.weight,
                    effective: c.weight,
                    up: b.up,
                    fallback: b.fallback,
                    conns: load.conns(c.slot),
                });
            }
        }
        e.locals.clone_from(&svc.locals);
        if let Some((_, prefix)) = svc.persistence {
            let k = super::persist::template_key(src, dst, q.vip.1, q.proto, prefix);
            let pt = self.st.templates.get::<A>();
            if let Some((t, _)) = pt.lookup(&k, pt.hash(&k)) {
                let tpl = pt.get(t);
                if let Some(b) = super::persist::obeyed(&self.snap, tpl, now, svc) {
                    e.template = Some(((b.addr, b.port), tpl.expires.wrapping_sub(now).min(i32::MAX as u32)));
                    e.pick = svc.backends.iter().position(|&s| s == b.slot);
                    e.mode = Some(b.mode);
                    return e;
                }
            }
        }
        let p = Pkt::<A> { l4: 0, end: 0, src, dst, sport: q.client.1, dport: q.vip.1, proto: q.proto, tcp_flags: 0 };
        let flow = flow_hashes(&p, svc.hash_port);
        e.hash = match &svc.sched {
            SchedSpec::Mh { table, .. } => {
                Some(HashSlot { table: "maglev", slot: rvs_wire::num::rem_usize(flow.src, table.len()), size: table.len() })
            }
            SchedSpec::Sh { .. } => Some(HashSlot {
                table: "buckets",
                slot: rvs_wire::num::rem_usize(flow.src, crate::sched::hashing::BUCKETS),
                size: crate::sched::hashing::BUCKETS,
            }),
            SchedSpec::Dh { .. } => Some(HashSlot {
                table: "buckets",
                slot: rvs_wire::num::rem_usize(flow.dst, crate::sched::hashing::BUCKETS),
                size: crate::sched::hashing::BUCKETS,
            }),
            _ => None,
        };
        if let Some(Some((_, sched))) = self.st.scheds.get(usize::from(svc.slot)) {
            let mut copy = sched.clone_box();
            e.pick = copy.pick(&svc.cands, load, &flow);
        }
        e.mode = e
            .pick
            .and_then(|i| svc.backends.get(i))
            .and_then(|&s| self.snap.backends.get(usize::from(s)))
            .and_then(Option::as_ref)
            .map(|b| b.mode);
        if e.pick.is_none() && e.refused.is_none() {
            e.refused = Some(DropReason::NoBackend);
        }
        e
    }
}
