//! Session sync, the forwarder's part: what a master's core tells the
//! backups, and how a backup's core installs what it is told.
//!
//! On a master, the session changes a backup needs become records in the
//! core's sync buffer ([`emit`]): a TCP session once it is established
//! (IPVS syncs from ESTABLISHED on: a flow caught in its handshake by a
//! failover is retried by its SYN), every later state change, a UDP flow
//! once its client has sent `ha.sync_udp_threshold` packets (IPVS's
//! `sync_threshold`: one-shot queries are not streamed), and the end of a
//! session. The worker drains the buffer
//! into its queue to the sync thread after each burst; nothing here
//! allocates or makes a system call. A bulk walk ([`Forwarder::bulk_sync`])
//! emits every synced-worthy session, for a node that joins.
//!
//! On a backup, [`Forwarder::apply_sync`] installs a record in this core's
//! table (the sync thread hands each record to the core that owns its
//! flow, by the same steering rules as packets): the same real server
//! (found by address and port: slots differ between balancers), state,
//! remaining timeout, full-NAT local address and port, and client MAC; a
//! persistent service's template is rebuilt from it, so the client's next
//! connection goes to the same server after a failover.
use super::persist;
use super::state::{Ctx, St};
use super::sweep::{account_transition, end_session};
use super::Forwarder;
use crate::conn::State;
use crate::session::{Session, SessionFlags, Splice};
use crate::table::Mode;
use rvs_wire::sync::{AnyRecord, Op, Record};
use rvs_wire::{Family, Ipv4, Ipv6};

/// Records one core buffers between two drains (a burst creates at most
/// 32 sessions; a bulk walk stops when the buffer fills).
pub const SYNC_BUFFER: usize = 1024;

/// Why a backup refused a record (each counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncReject {
    /// No service at the record's VIP, port and protocol here.
    NoService,
    /// The service has no real server at the record's address and port.
    NoServer,
    /// A state, mode or port that cannot be.
    BadRecord,
    /// The session table is full.
    TableFull,
}

impl SyncReject {
    /// How many reasons.
    pub const COUNT: usize = 4;
    /// Every reason, in counter order.
    pub const ALL: [SyncReject; SyncReject::COUNT] =
        [SyncReject::NoService, SyncReject::NoServer, SyncReject::BadRecord, SyncReject::TableFull];

    /// The counter name.
    pub fn name(self) -> &'static str {
        match self {
            SyncReject::NoService => "no_service",
            SyncReject::NoServer => "no_server",
            SyncReject::BadRecord => "bad_record",
            SyncReject::TableFull => "table_full",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A core's sync buffer and whether it emits.
#[derive(Debug)]
pub(super) struct SyncOut {
    /// Emitting: this node is master and sync is on.
    pub(super) on: bool,
    pub(super) buf: Vec<AnyRecord>,
}

impl SyncOut {
    pub(super) fn new() -> SyncOut {
        SyncOut { on: false, buf: Vec::with_capacity(SYNC_BUFFER) }
    }
}

/// Whether a backup needs to hear of session `s`: TCP from ESTABLISHED
/// on, a UDP flow once its client sent `udp_threshold` packets.
#[inline]
fn worth_syncing<A: Family>(s: &Session<A>, udp_threshold: u8) -> bool {
    // A spliced connection cannot be resumed without its deltas, which the
    // record has no room for: a backup would only reset it.
    syncable(s.state) && (s.state != State::Udp || s.sync_count >= udp_threshold) && !s.flags.contains(SessionFlags::SYNPROXY)
}

/// The states a sync record may carry.
#[inline]
fn syncable(state: State) -> bool {
    !matches!(state, State::Free | State::SynRecv | State::Reset)
}

fn wrap<A: Family>(r: Record<A>) -> Option<AnyRecord> {
    Some(if A::V6 { AnyRecord::V6(r.map(|a| Ipv6::from_ip(a.to_ip()))?) } else { AnyRecord::V4(r.map(|a| Ipv4::from_ip(a.to_ip()))?) })
}

/// The record of `s` at `now`.
fn record_of<A: Family>(s: &Session<A>, now: u32, op: Op) -> Option<AnyRecord> {
    wrap(Record {
        op: op as u8,
        proto: s.proto,
        state: s.state as u8,
        mode: s.mode as u8,
        flags: s.flags.bits(),
        client_port: s.client_port,
        client: s.client,
        vip: s.vip,
        rs: s.rs,
        local: s.local,
        cport: s.cport,
        vport: s.vport,
        rport: s.rport,
        lport: s.lport,
        timeout_ms: s.expires.wrapping_sub(now).min(i32::MAX as u32),
        client_mac: s.client_mac,
    })
}

/// Buffers the change `op` of session `s` for the backups, when this core
/// emits and the session is worth syncing.
#[inline]
pub(super) fn emit<A: Family>(cx: &Ctx<'_>, out: &mut SyncOut, s: &Session<A>, op: Op) {
    if !out.on || !worth_syncing(s, cx.snap.sync_udp_threshold) {
        return;
    }
    if out.buf.len() >= SYNC_BUFFER {
        cx.stats.sync.overflow.inc();
        return;
    }
    if let Some(r) = record_of(s, cx.now, op) {
        out.buf.push(r);
        cx.stats.sync.emitted.inc();
    }
}

/// Installs or updates the session of `r` in this core's table.
fn upsert<A: Family>(cx: &Ctx<'_>, st: &mut St, r: &Record<A>) -> Result<(), SyncReject> {
    let svc = cx.snap.service(r.vip, r.vport, r.proto).ok_or(SyncReject::NoService)?;
    let is_it = |b: &&crate::table::BackendView| b.port == r.rport && A::from_ip(b.addr) == Some(r.rs);
    // The service's real servers; else (rarely) its fallback or a retired
    // server, by a scan of every backend.
    let b = svc
        .backends
        .iter()
        .filter_map(|&slot| cx.snap.backends.get(usize::from(slot)).and_then(Option::as_ref))
        .find(is_it)
        .or_else(|| cx.snap.backends.iter().flatten().filter(|b| b.service == svc.slot).find(is_it))
        .ok_or(SyncReject::NoServer)?;
    let state = State::from_u8(r.state).filter(|&s| syncable(s)).ok_or(SyncReject::BadRecord)?;
    let mode = Mode::from_u8(r.mode).filter(|&m| m == b.mode).ok_or(SyncReject::BadRecord)?;
    // A client is never one of the balancer's own addresses (the
    // forwarder drops such sources, `own_source`); the full-NAT port
    // counts rely on it (see `SessionTable::local_port_unused`).
    if cx.snap.port(r.client_port).is_none() || cx.snap.addr_kind(r.client).is_some() {
        return Err(SyncReject::BadRecord);
    }
    let mut flags = SessionFlags::from_bits_truncate(r.flags) & (SessionFlags::FIN_CLIENT | SessionFlags::FIN_SERVER);
    match mode {
        Mode::Nat => flags |= SessionFlags::HAS_REPLY,
        Mode::FullNat => flags |= SessionFlags::HAS_REPLY | SessionFlags::FULL_NAT,
        Mode::Dr | Mode::Tunnel => {}
    }
    // No longer than the state's own timeout here.
    let t = st.sessions.get::<A>();
    let pressure = t.len() * 4 > t.capacity() * 3;
    let timeout = r.timeout_ms.min(state.timeout(&svc.timeouts, pressure));
    let s = Session {
        client: r.client,
        vip: r.vip,
        rs: r.rs,
        local: if mode == Mode::FullNat { r.local } else { A::default() },
        cport: r.cport,
        vport: r.vport,
        rport: r.rport,
        lport: if mode == Mode::FullNat { r.lport } else { 0 },
        expires: cx.now.wrapping_add(timeout),
        backend: b.tag(),
        service: svc.slot,
        proto: r.proto,
        state,
        mode,
        flags,
        client_port: r.client_port,
        // Synced already: worth syncing again, should this node lead.
        sync_count: u8::MAX,
        client_mac: r.client_mac,
        splice: Splice::default(),
    };
    let table = st.sessions.get_mut::<A>();
    let key = s.forward_key();
    if let Some((idx, _)) = table.lookup(&key, table.hash(&key)) {
        let e = table.get_mut(idx);
        if e.backend == s.backend {
            let old = e.state;
            e.state = state;
            e.expires = s.expires;
            e.flags = flags;
            if old != state {
                account_transition(cx, &mut st.load, s.backend, old, state);
            }
            return Ok(());
        }
        // Another real server than this node had: the master's word wins.
        let old = *table.get(idx);
        end_session::<A>(cx, st, idx, &old);
    }
    let table = st.sessions.get_mut::<A>();
    if table.len() >= table.capacity() {
        return Err(SyncReject::TableFull);
    }
    if s.flags.contains(SessionFlags::HAS_REPLY) {
        let rk = s.reply_key();
        if table.lookup(&rk, table.hash(&rk)).is_some() {
            return Err(SyncReject::BadRecord); // its reply key belongs to another flow here
        }
    }
    table.insert(s).map_err(|_| SyncReject::TableFull)?;
    cx.stats.sessions_of::<A>().set(st.sessions.get::<A>().len() as u64);
    super::admit::count_open(cx, st, b, state);
    if let Some((_, prefix)) = svc.persistence {
        persist::record::<A>(cx, st, persist::template_key(s.client, s.vip, s.vport, s.proto, prefix), svc, b);
    }
    Ok(())
}

/// Ends the session of `r`, if this core has it.
fn delete<A: Family>(cx: &Ctx<'_>, st: &mut St, r: &Record<A>) {
    let key = crate::session::FlowKey { src: r.client, dst: r.vip, sport: r.cport, dport: r.vport, proto: r.proto };
    let table = st.sessions.get::<A>();
    if let Some((idx, crate::session::Dir::Forward)) = table.lookup(&key, table.hash(&key)) {
        let s = *table.get(idx);
        end_session::<A>(cx, st, idx, &s);
    }
}

fn apply<A: Family>(cx: &Ctx<'_>, st: &mut St, r: &Record<A>) -> Result<(), SyncReject> {
    match r.op {
        x if x == Op::Upsert as u8 => upsert(cx, st, r),
        x if x == Op::Delete as u8 => {
            delete(cx, st, r);
            Ok(())
        }
        _ => Err(SyncReject::BadRecord),
    }
}

/// The worker that owns the flow of record `r` (0 with one worker): the
/// core that would have received the client's first packet, by the same
/// steering rules as packets.
pub fn record_owner(snap: &crate::table::Snapshot, steer: Option<&crate::steer::Steering>, r: &AnyRecord) -> u16 {
    fn of<A: Family>(snap: &crate::table::Snapshot, sv: &crate::steer::Steering, r: &Record<A>) -> Option<u16> {
        let key = crate::session::FlowKey { src: r.client, dst: r.vip, sport: r.cport, dport: r.vport, proto: r.proto };
        super::flow::owner(snap, sv, &key)
    }
    let Some(sv) = steer.filter(|s| s.cores > 1) else { return 0 };
    match r {
        AnyRecord::V4(r) => of(snap, sv, r),
        AnyRecord::V6(r) => of(snap, sv, r),
    }
    .unwrap_or(0)
}

impl Forwarder {
    /// Sets this node's role: `active` (the master of a pair, or a single
    /// balancer) forwards and answers for the virtual addresses; a backup
    /// does neither. With `sync`, an active core emits session changes.
    pub fn set_role(&mut self, active: bool, sync: bool) {
        self.standby = !active;
        self.st.sync.on = active && sync;
    }

    /// Whether this core is a backup's.
    pub fn standby(&self) -> bool {
        self.standby
    }

    /// The records emitted since the last call, for the sync thread.
    pub fn take_sync(&mut self) -> std::vec::Drain<'_, AnyRecord> {
        self.st.sync.buf.drain(..)
    }

    /// Installs a record from the master (see the module docs); counted.
    pub fn apply_sync(&mut self, now: u32, r: &AnyRecord) -> Result<(), SyncReject> {
        let cx = ctx!(self, now, None);
        let res = match r {
            AnyRecord::V4(r) => apply::<Ipv4>(&cx, &mut self.st, r),
            AnyRecord::V6(r) => apply::<Ipv6>(&cx, &mut self.st, r),
        };
        match res {
            Ok(()) => self.stats.sync.applied.inc(),
            Err(e) => self.stats.sync.rejected[e.index()].inc(),
        }
        res
    }

    /// One step of a bulk transfer: emits the sessions worth syncing from
    /// entry `*cursor` on (IPv4 entries, then IPv6), visiting at most
    /// `visit` entries and stopping when the sync buffer is full. Returns
    /// true when the walk is complete.
    pub fn bulk_sync(&mut self, now: u32, cursor: &mut usize, visit: usize) -> bool {
        let was = self.st.sync.on;
        self.st.sync.on = true;
        let cx = ctx!(self, now, None);
        let n4 = self.st.sessions.v4.capacity();
        let total = n4 + self.st.sessions.v6.capacity();
        let end = (*cursor + visit).min(total);
        while *cursor < end && self.st.sync.buf.len() < SYNC_BUFFER {
            let i = *cursor;
            *cursor += 1;
            if i < n4 {
                if let Some(s) = self.st.sessions.v4.entry_at(i).copied() {
                    if !s.expired(now) {
                        emit(&cx, &mut self.st.sync, &s, Op::Upsert);
                    }
                }
            } else if let Some(s) = self.st.sessions.v6.entry_at(i - n4).copied() {
                if !s.expired(now) {
                    emit(&cx, &mut self.st.sync, &s, Op::Upsert);
                }
            }
        }
        self.st.sync.on = was;
        *cursor >= total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_the_wire_format() {
        let s = Session::<Ipv4> {
            client: Ipv4(0xc612_0002),
            vip: Ipv4(0xc612_0064),
            rs: Ipv4(0xc612_010b),
            cport: 40000,
            vport: 80,
            rport: 8080,
            expires: 5000,
            state: State::Established,
            mode: Mode::Nat,
            flags: SessionFlags::HAS_REPLY,
            client_mac: [2, 0, 0, 0, 0, 2],
            ..Session::default()
        };
        let r = record_of(&s, 1000, Op::Upsert).unwrap();
        let m = rvs_wire::sync::encode(rvs_wire::sync::Kind::Records, 1, 1, &[r], None);
        let p = rvs_wire::sync::parse(&m).unwrap();
        let AnyRecord::V4(back) = p.records[0] else { panic!("family") };
        assert_eq!((back.client, back.cport, back.rs, back.rport, back.timeout_ms), (s.client, 40000, s.rs, 8080, 4000));
        assert_eq!(State::from_u8(back.state), Some(State::Established));
        assert_eq!(Mode::from_u8(back.mode), Some(Mode::Nat));
    }
}
