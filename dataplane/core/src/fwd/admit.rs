use super::fullnat::alloc_local_port;
use super::ip::l4_checksum_ok;
use super::state::{Ctx, Fam, Pkt, St};
use crate::conn::State;
use crate::drop::DropReason;
use crate::sched::{stable_hash, Flow};
use crate::session;
use crate::session::{FlowKey, Session, FLAG_FULLNAT, FLAG_HAS_REPLY};
use crate::table::{BackendView, Mode, ServiceView};
use rvs_wire::ip::{proto, Addr};
use rvs_wire::{ether, tcp, PacketBuf};

/// Creates the session for the first packet of a flow to `svc`.
pub(super) fn new_session<A: Fam, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &B,
    in_port: u8,
    p: &Pkt<A>,
    svc: &ServiceView,
    hf: u64,
) -> Result<u32, DropReason> {
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
    if buf.l4_csum_bad() || (!buf.l4_csum_good() && !l4_checksum_ok(&buf.data()[p.l4..p.end], p)) {
        return Err(if p.proto == proto::TCP { DropReason::TcpBadChecksum } else { DropReason::UdpBadChecksum });
    }

    // A full table: refuse the flow, or (DR and tunnel services with the
    // stateless policy) forward it by Maglev hash of its 5-tuple, which
    // every packet of the flow hashes alike.
    let table = A::table_ref(st);
    if table.len() >= table.capacity() {
        return Err(DropReason::SessionTableFull);
    }

    // Persistence: a live template for the client's network decides.
    let tpl_key = svc.persistence.map(|(_, prefix)| template_key(p.src, p.dst, p.dport, p.proto, prefix));
    let mut chosen: Option<&BackendView> = None;
    if let Some(k) = &tpl_key {
        let pt = A::persist(st);
        if let Some((t, _)) = pt.lookup(k, pt.hash(k)) {
            let tpl = *pt.get(t);
            let live = tpl.rport > 0 || !tpl.expired(cx.now);
            // A template whose server is down, drained or gone is dropped
            // (IPVS's expire_quiescent_template), not obeyed.
            match cx.snap.backend(tpl.backend).filter(|b| live && b.effective_weight > 0 && !b.retired && b.service == svc.slot) {
                Some(b) => chosen = Some(b),
                None => pt.remove(t),
            }
        }
    }
    let b = match chosen {
        Some(b) => b,
        None => {
            let Some(Some((_, sched))) = st.scheds.get_mut(usize::from(svc.slot)) else { return Err(DropReason::NoBackend) };
            let flow = if sched.uses_flow() { flow_hashes(p, svc.hash_port) } else { Flow::default() };
            let pick = sched.pick(&svc.cands, &st.load, &flow).ok_or(DropReason::NoBackend)?;
            svc.backends
                .get(pick)
                .and_then(|&slot| cx.snap.backends.get(usize::from(slot)))
                .and_then(Option::as_ref)
                .ok_or(DropReason::NoBackend)?
        }
    };

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
        state: state as u8,
        mode: b.mode as u8,
        flags: 0,
        client_port: in_port,
        reserved: 0,
        client_mac: ether::src(buf.data()).0,
    };
    match b.mode {
        Mode::Nat => s.flags |= FLAG_HAS_REPLY,
        Mode::FullNat => {
            s.flags |= FLAG_HAS_REPLY | FLAG_FULLNAT;
            let (local, lport) = alloc_local_port::<A>(cx, st, svc, b, p.proto)?;
            s.local = local;
            s.lport = lport;
        }
        Mode::Dr | Mode::Tunnel => {}
    }
    let table = A::table(st);
    // The reply key's buckets are a cache miss away: ask for them now and
    // finish the session meanwhile.
    let hr = (s.flags & FLAG_HAS_REPLY != 0).then(|| {
        let hr = table.hash(&s.reply_key());
        table.prefetch(hr);
        hr
    });
    let pressure = table.len() * 4 > table.capacity() * 3;
    s.expires = cx.now.wrapping_add(state.timeout(&svc.timeouts, pressure));
    let idx = match table.insert_hashed(s, hf, hr) {
        Ok(i) => i,
        Err(session::InsertError::Full | session::InsertError::IndexOverflow) => return Err(DropReason::SessionTableFull),
    };
    if let Some(k) = tpl_key {
        let timeout = svc.persistence.map_or(0, |(t, _)| t);
        let pt = A::persist(st);
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
                    state: State::Established as u8,
                    rport: 1,
                    expires: cx.now.wrapping_add(timeout),
                    ..Session::default()
                };
                // A full template table only costs persistence for this client.
                let _ = pt.insert(tpl);
            }
        }
    }
    A::gauge(cx.stats).set(A::table_ref(st).len() as u64);
    cx.stats.sessions_created.inc();
    let slot = usize::from(b.slot);
    if let Some(bs) = cx.stats.backends.get(slot) {
        bs.conns.inc();
        if state.is_active() {
            bs.active.inc();
            st.load.active[slot] += 1;
        } else {
            bs.inactive.inc();
            st.load.inactive[slot] += 1;
        }
    }
    if let Some(ss) = cx.stats.services.get(usize::from(svc.slot)) {
        ss.conns.inc();
        if b.fallback {
            ss.fallback_conns.inc();
        }
    }
    Ok(idx)
}

/// The persistence template key of a client for a service.
#[inline]
pub(super) fn template_key<A: Addr>(client: A, vip: A, vport: u16, l4proto: u8, prefix: u8) -> FlowKey<A> {
    FlowKey { src: client.mask(prefix), dst: vip, sport: 0, dport: vport, proto: l4proto }
}

/// Hashes a scheduler may use: source (and port) and destination, stable
/// across restarts and balancers.
pub(super) fn flow_hashes<A: Addr>(p: &Pkt<A>, with_port: bool) -> Flow {
    let mut b = [0u8; 18];
    p.src.write(&mut b);
    let n = if with_port {
        b[A::LEN..A::LEN + 2].copy_from_slice(&p.sport.to_be_bytes());
        A::LEN + 2
    } else {
        A::LEN
    };
    let src = stable_hash(&b[..n], 0x0073_7263);
    let mut d = [0u8; 16];
    p.dst.write(&mut d);
    Flow { src, dst: stable_hash(&d[..A::LEN], 0x647374) }
}
