//! Expiry: the sweep of the session tables, and the accounting of every
//! session that ends.
use super::persist::template_key;
use super::state::{Ctx, LoadTable, St, SWEEP_PERIOD_MS};
use super::Forwarder;
use crate::conn::State;
use crate::session::{Session, SessionTable};
use rvs_wire::ip::proto;
use rvs_wire::Family;

impl Forwarder {
    /// Periodic work between bursts: expire up to `budget` sessions of each
    /// table. Returns how many expired.
    pub fn sweep(&mut self, now: u32, budget: usize) -> usize {
        self.sweep_tables(now, [budget; 4])
    }

    /// The sweep for `ms` milliseconds of time: every table is visited in
    /// full once per [`SWEEP_PERIOD_MS`], in steps proportional to its size
    /// (a few entries per millisecond, not per packet).
    pub fn sweep_elapsed(&mut self, now: u32, ms: u32) -> usize {
        let share = |cap: usize| (cap * ms as usize).div_ceil(SWEEP_PERIOD_MS as usize).max(1);
        let st = &self.st;
        let b = [
            share(st.sessions.v4.capacity()),
            share(st.sessions.v6.capacity()),
            share(st.templates.v4.capacity()),
            share(st.templates.v6.capacity()),
        ];
        self.sweep_tables(now, b)
    }

    fn sweep_tables(&mut self, now: u32, budget: [usize; 4]) -> usize {
        let cx = ctx!(self, now, None);
        let st = &mut self.st;
        // Sessions expire, and sessions of removed real servers go too (so
        // their slots can be reused once every core has swept), TCP ones
        // leaving a tombstone that resets the client's next segment.
        let (load, p4, p6) = (&mut st.load, &mut st.templates.v4, &mut st.templates.v6);
        let mut n = st.sessions.v4.sweep_by(budget[0], |s| sweep_decide(&cx, load, p4, s), |_, _| {});
        n += st.sessions.v6.sweep_by(budget[1], |s| sweep_decide(&cx, load, p6, s), |_, _| {});
        if n > 0 {
            cx.stats.sessions_v4.set(st.sessions.v4.len() as u64);
            cx.stats.sessions_v6.set(st.sessions.v6.len() as u64);
        }
        // Persistence templates go when expired and childless.
        st.templates.v4.sweep_by(budget[2], |t| t.rport == 0 && t.expired(now), |_, _| {});
        st.templates.v6.sweep_by(budget[3], |t| t.rport == 0 && t.expired(now), |_, _| {});
        // Record complete passes over both session tables.
        let g = cx.snap.generation;
        for (i, passes) in [st.sessions.v4.sweep_passes(), st.sessions.v6.sweep_passes()].into_iter().enumerate() {
            if passes != st.passes[i] {
                st.passes[i] = passes;
                st.swept_gen[i] = st.pass_gen[i];
                st.pass_gen[i] = g;
            }
        }
        cx.stats.swept_generation.set(st.swept_gen[0].min(st.swept_gen[1]));
        n
    }
}

/// Session kept as a tombstone: no backend.
pub(super) const NO_BACKEND: u32 = u32::MAX;

/// What the sweep does with one session: true to remove it (accounted
/// here). A live TCP session whose real server was removed becomes a
/// tombstone: accounted as ended now, no longer referring to the server,
/// kept for `tcp_close` to reset the client's next segment.
pub(super) fn sweep_decide<A: Family>(cx: &Ctx<'_>, load: &mut LoadTable, persist: &mut SessionTable<A>, s: &mut Session<A>) -> bool {
    let tomb = s.state == State::Reset;
    if s.expired(cx.now) {
        if !tomb {
            account_end(cx, load, persist, s);
        }
        return true;
    }
    if tomb || cx.snap.backend(s.backend).is_some() {
        return false;
    }
    account_end(cx, load, persist, s);
    let state = s.state;
    if s.proto == proto::TCP && !state.is_closing() {
        s.state = State::Reset;
        s.backend = NO_BACKEND;
        let close = cx.snap.services.get(usize::from(s.service)).and_then(Option::as_ref).map_or(10_000, |v| v.timeouts.tcp_close);
        s.expires = cx.now.wrapping_add(close);
        return false;
    }
    true
}

/// Undoes a session's contribution to gauges and load when it ends, and
/// releases its persistence template. Exact even for removed real servers:
/// their slots are only reused once every core has swept their sessions out.
pub(super) fn account_end<A: Family>(cx: &Ctx<'_>, load: &mut LoadTable, persist: &mut SessionTable<A>, s: &Session<A>) {
    cx.stats.sessions_expired.inc();
    if let Some((timeout, prefix)) = cx.snap.services.get(usize::from(s.service)).and_then(Option::as_ref).and_then(|v| v.persistence) {
        let key = template_key(s.client, s.vip, s.vport, s.proto, prefix);
        if let Some((t, _)) = persist.lookup(&key, persist.hash(&key)) {
            let tpl = persist.get_mut(t);
            tpl.rport = tpl.rport.saturating_sub(1);
            if tpl.rport == 0 {
                // A session that timed out ended at its expiry, whenever the
                // sweep notices it.
                let ended = if s.expired(cx.now) { s.expires } else { cx.now };
                tpl.expires = ended.wrapping_add(timeout);
            }
        }
    }
    let slot = usize::from(s.backend_slot());
    let active = s.state.is_active();
    if let Some(b) = cx.stats.backends.get(slot) {
        if active {
            b.active.dec();
            load.active[slot] = load.active[slot].saturating_sub(1);
        } else {
            b.inactive.dec();
            load.inactive[slot] = load.inactive[slot].saturating_sub(1);
        }
    }
}

/// Moves a session's gauges from one state to another.
pub(super) fn account_transition(cx: &Ctx<'_>, load: &mut LoadTable, tag: u32, from: State, to: State) {
    if from.is_active() == to.is_active() {
        return;
    }
    let slot = usize::from(rvs_wire::num::low_u16(u64::from(tag)));
    let Some(b) = cx.stats.backends.get(slot) else { return };
    if to.is_active() {
        b.inactive.dec();
        b.active.inc();
        load.inactive[slot] = load.inactive[slot].saturating_sub(1);
        load.active[slot] += 1;
    } else {
        b.active.dec();
        b.inactive.inc();
        load.active[slot] = load.active[slot].saturating_sub(1);
        load.inactive[slot] += 1;
    }
}

/// Removes session `idx` (`s`, a copy) from its table, accounting its end
/// unless it was already a tombstone, and updates the table's gauge.
pub(super) fn end_session<A: Family>(cx: &Ctx<'_>, st: &mut St, idx: u32, s: &Session<A>) {
    st.sessions.get_mut::<A>().remove(idx);
    // A backup expires its copy by itself; one that ends early, it hears of.
    if !s.expired(cx.now) {
        super::sync::emit(cx, &mut st.sync, s, rvs_wire::sync::Op::Delete);
    }
    if s.state != State::Reset {
        account_end(cx, &mut st.load, st.templates.get_mut::<A>(), s);
    }
    cx.stats.sessions_of::<A>().set(st.sessions.get::<A>().len() as u64);
}
