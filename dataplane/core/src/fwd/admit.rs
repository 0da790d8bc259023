//! A new flow: the first packet of a flow that has no session.
//!
//! [`new_session`] runs five stages, each its own function:
//! 1. [`admit`]: may this packet open a session at all (TCP flags, the
//!    checksum, room in the table)? It returns the flow's first state.
//! 2. persistence ([`super::persist`]): a live template for the client's
//!    network names the real server;
//! 3. otherwise [`schedule`]: the service's scheduler picks one;
//! 4. [`build`]: the session, with its full-NAT local address and port,
//!    inserted under the forward and reply keys;
//! 5. [`account_new`]: counters and the least-connection load.
use super::fullnat::alloc_local_port;

use super::persist;
use super::state::{Ctx, Pkt, St};
use crate::conn::State;
use crate::drop::DropReason;
use crate::sched::Flow;
use crate::session::{self, Session, SessionFlags, Splice};
use crate::table::{BackendView, Mode, ServiceView};
use rvs_wire::ip::proto;
use rvs_wire::Family;
use rvs_wire::{ether, l4, tcp, PacketBuf};

/// Creates the session for the first packet of a flow to `svc`; returns
/// its index in the family's table.
pub(super) fn new_session<A: Family, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &B,
    in_port: u8,
    p: &Pkt<A>,
    svc: &ServiceView,
    hf: u64,
) -> Result<u32, DropReason> {
    let state = admit(buf, p, svc)?;
    open(cx, st, buf, in_port, p, svc, hf, state, SessionFlags::empty(), Splice::default())
}

/// Opens the session of a flow that may open one (see [`admit`]) in
/// `state` with `flags` and `splice`: persistence or scheduling, the
/// session, accounting and sync.
#[expect(clippy::too_many_arguments, reason = "the flow's facts and what the caller decided")]
#[inline(always)]
pub(super) fn open<A: Family, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &B,
    in_port: u8,
    p: &Pkt<A>,
    svc: &ServiceView,
    hf: u64,
    state: State,
    flags: SessionFlags,
    splice: Splice,
) -> Result<u32, DropReason> {
    // A full table refuses the flow (the caller may then forward it
    // statelessly; see [`super::stateless`]).
    let table = st.sessions.get::<A>();
    if table.len() >= table.capacity() {
        return Err(DropReason::SessionTableFull);
    }
    let tpl_key = svc.persistence.map(|(_, prefix)| persist::template_key(p.src, p.dst, p.dport, p.proto, prefix));
    let b = match tpl_key.as_ref().and_then(|k| persist::lookup::<A>(cx, st, k, svc)) {
        Some(b) => b,
        None => schedule(cx, st, p, svc)?,
    };
    let idx = build(cx, st, buf, in_port, p, svc, b, state, hf, flags, splice)?;
    if let Some(k) = tpl_key {
        persist::record::<A>(cx, st, k, svc, b);
    }
    account_new::<A>(cx, st, svc, b, state);
    if st.sync.on {
        let s = *st.sessions.get::<A>().get(idx);
        super::sync::emit(cx, &mut st.sync, &s, rvs_wire::sync::Op::Upsert);
    }
    Ok(idx)
}

/// Whether the packet may open a session, and in which state: a TCP SYN
/// (or, for `sloppy_tcp` services, any valid segment) or any UDP datagram,
/// with a right checksum (the NIC's verdict when it gave one), while the
/// table has room.
fn admit<A: Family, B: PacketBuf>(buf: &B, p: &Pkt<A>, svc: &ServiceView) -> Result<State, DropReason> {
    let state = if p.proto == proto::TCP {
        let t = tcp::TcpHeader { sport: p.sport, dport: p.dport, seq: 0, ack: 0, header_len: 20, flags: p.tcp_flags };
        if t.flags_invalid() {
            return Err(DropReason::TcpBadFlags);
        }
        if !t.is_syn() && !svc.sloppy_tcp {
            return Err(DropReason::TcpNoSession);
        }
        if t.is_syn() {
            State::SynRecv
        } else {
            State::Established
        }
    } else {
        State::Udp
    };
    check_new(buf, p, svc)?;
    Ok(state)
}

/// What every packet that opens a flow must pass: the service's source
/// lists and a right checksum (the NIC's verdict when it gave one).
pub(super) fn check_new<A: Family, B: PacketBuf>(buf: &B, p: &Pkt<A>, svc: &ServiceView) -> Result<(), DropReason> {
    if let Some(r) = source_refusal(svc, p.src) {
        return Err(r);
    }
    if l4_checksum_bad(buf, p) {
        return Err(if p.proto == proto::TCP { DropReason::TcpBadChecksum } else { DropReason::UdpBadChecksum });
    }
    Ok(())
}

/// Why the service's source lists refuse new flows from `src`, if they do.
#[inline]
pub(super) fn source_refusal<A: Family>(svc: &ServiceView, src: A) -> Option<DropReason> {
    let l = svc.sources.as_ref()?;
    l.check(A::V6, src.key128()).err().map(|r| match r {
        crate::acl::Refusal::Denied => DropReason::SourceDenied,
        crate::acl::Refusal::NotAllowed => DropReason::SourceNotAllowed,
    })
}

/// True when the packet's L4 checksum is wrong: the NIC's verdict when it
/// gave one, else computed.
#[inline(always)]
pub(super) fn l4_checksum_bad<A: Family, B: PacketBuf>(buf: &B, p: &Pkt<A>) -> bool {
    buf.l4_csum_bad() || (!buf.l4_csum_good() && !l4::checksum_ok(&buf.data()[p.l4..p.end], &p.tuple()))
}

/// The real server the service's scheduler picks for this flow.
fn schedule<'s, A: Family>(cx: &Ctx<'s>, st: &mut St, p: &Pkt<A>, svc: &ServiceView) -> Result<&'s BackendView, DropReason> {
    let Some(Some((_, sched))) = st.scheds.get_mut(usize::from(svc.slot)) else { return Err(DropReason::NoBackend) };
    let flow = if sched.uses_flow() { flow_hashes(p, svc.hash_port) } else { Flow::default() };
    let pick = sched.pick(&svc.cands, &st.load, &flow).ok_or(DropReason::NoBackend)?;
    svc.backends.get(pick).and_then(|&slot| cx.snap.backends.get(usize::from(slot))).and_then(Option::as_ref).ok_or(DropReason::NoBackend)
}

/// Builds the session of a new flow to real server `b` and inserts it
/// under its forward key (hash `hf`) and, for NAT and full NAT, its reply
/// key.
#[expect(clippy::too_many_arguments, reason = "the flow's facts and what the caller decided")]
#[inline(always)]
fn build<A: Family, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &B,
    in_port: u8,
    p: &Pkt<A>,
    svc: &ServiceView,
    b: &BackendView,
    state: State,
    hf: u64,
    flags: SessionFlags,
    splice: Splice,
) -> Result<u32, DropReason> {
    let mut s = Session {
        client: p.src,
        vip: p.dst,
        rs: A::from_ip(b.addr).unwrap_or_default(),
        local: A::default(),
        cport: p.sport,
        vport: p.dport,
        rport: b.port,
        lport: 0,
        expires: 0,
        backend: b.tag(),
        service: svc.slot,
        proto: p.proto,
        state,
        mode: b.mode,
        flags,
        client_port: in_port,
        sync_count: 0, // counted by the packet's own step (advance_state)
        client_mac: ether::src(buf.data()).0,
        splice,
    };
    match b.mode {
        Mode::Nat => s.flags |= SessionFlags::HAS_REPLY,
        Mode::FullNat => {
            s.flags |= SessionFlags::HAS_REPLY | SessionFlags::FULL_NAT;
            let (local, lport) = alloc_local_port::<A>(cx, st, svc, b, p.proto)?;
            s.local = local;
            s.lport = lport;
        }
        Mode::Dr | Mode::Tunnel => {}
    }
    let table = st.sessions.get_mut::<A>();
    // The reply key is placed in the index later, when its bucket (a cache
    // miss away) has arrived (see `SessionTable::insert_hashed`).
    let hr = s.flags.contains(SessionFlags::HAS_REPLY).then(|| table.hash(&s.reply_key()));
    let pressure = table.len() * 4 > table.capacity() * 3;
    s.expires = cx.now.wrapping_add(state.timeout(&svc.timeouts, pressure));
    match table.insert_hashed(s, hf, hr) {
        Ok(i) => Ok(i),
        Err(session::InsertError::Full | session::InsertError::IndexOverflow) => Err(DropReason::SessionTableFull),
    }
}

/// Counts a new session: the table gauge, sessions created, the real
/// server's and service's connections, and this core's load view.
fn account_new<A: Family>(cx: &Ctx<'_>, st: &mut St, svc: &ServiceView, b: &BackendView, state: State) {
    cx.stats.sessions_of::<A>().set(st.sessions.get::<A>().len() as u64);
    cx.stats.sessions_created.inc();
    if let Some(bs) = cx.stats.backends.get(usize::from(b.slot)) {
        bs.conns.inc();
    }
    count_open(cx, st, b, state);
    if let Some(ss) = cx.stats.services.get(usize::from(svc.slot)) {
        ss.conns.inc();
        if b.fallback {
            ss.fallback_conns.inc();
        }
    }
}

/// A session of `b` in `state` opens here: the real server's active or
/// inactive gauge and this core's load view.
#[inline]
pub(super) fn count_open(cx: &Ctx<'_>, st: &mut St, b: &BackendView, state: State) {
    let slot = usize::from(b.slot);
    if let Some(bs) = cx.stats.backends.get(slot) {
        if state.is_active() {
            bs.active.inc();
            st.load.active[slot] += 1;
        } else {
            bs.inactive.inc();
            st.load.inactive[slot] += 1;
        }
    }
}

/// Hashes a scheduler may use: source (and port) and destination, stable
/// across restarts and balancers.
pub(super) fn flow_hashes<A: Family>(p: &Pkt<A>, with_port: bool) -> Flow {
    let (mut s, mut d) = ([0u8; 16], [0u8; 16]);
    p.src.write(&mut s);
    p.dst.write(&mut d);
    Flow::of(&s[..A::LEN], with_port.then_some(p.sport), &d[..A::LEN])
}
