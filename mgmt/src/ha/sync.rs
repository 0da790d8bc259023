//! The sync thread: the master's session records to its peers, the peers'
//! records to this node's workers, and bulk transfers.
//!
//! * Out: every millisecond, the workers' queues are drained into
//!   datagrams of at most 1400 bytes ([`rvs_wire::sync::Batcher`]) sent
//!   to each peer (or the multicast group 224.0.0.81); a partial batch
//!   waits at most 1 ms, so the sync lag is bounded by the batching
//!   (shown as `sync_lag_ms`).
//! * In: datagrams are checked (version, size, sync id, the tag and the
//!   sequence number when a key is set: malformed, forged and replayed
//!   ones are dropped and counted by reason); each record goes to the
//!   worker that owns its flow ([`rvs_core::fwd::record_owner`]).
//! * Bulk: a node that hears a master while it lacks its sessions (it
//!   just started) asks for the whole table and may not preempt until the
//!   master's "bulk end" arrives; the master walks every worker's tables
//!   and answers.
use super::{tag, verify, HaCommon, HaError, Sequence, Settings};
use dataplane::worker::Shared;
use rvs_wire::sync::{self as wire, AnyRecord, Batcher, Kind};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// IPVS's multicast group for sync.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// A partial batch waits at most this long.
const MAX_BATCH_WAIT: Duration = Duration::from_millis(1);
/// A bulk request is repeated this often until answered.
const BULK_RETRY: Duration = Duration::from_secs(1);
/// A node that hears no master this long after starting has nothing to
/// sync from.
const JOIN_WINDOW: Duration = Duration::from_secs(2);
/// A bulk transfer not finished in this time is given up (the node may
/// then preempt with what it has).
const BULK_GIVE_UP: Duration = Duration::from_secs(30);

/// The sync thread's state.
#[derive(Debug)]
pub struct Sync {
    sock: UdpSocket,
    s: Settings,
    common: Arc<HaCommon>,
    shared: Arc<Shared>,
    steering: Option<rvs_core::steer::Steering>,
    seq: Sequence,
    last_seq: HashMap<IpAddr, u64>,
    batcher: Batcher,
    batch_since: Option<Instant>,
    /// A bulk transfer being served: its request number and who asked.
    serving: Option<(u64, SocketAddr)>,
    started: Instant,
    asked_at: Option<Instant>,
    join_since: Option<Instant>,
}

fn log(msg: impl AsRef<str>) {
    log::info!("ha sync: {}", msg.as_ref());
}

impl Sync {
    /// The socket, bound to the sync port on the HA port's kernel interface.
    pub fn open(
        s: &Settings,
        common: Arc<HaCommon>,
        shared: Arc<Shared>,
        steering: Option<rvs_core::steer::Steering>,
    ) -> Result<Sync, HaError> {
        let err = |what| move |source| HaError::Socket { what, source };
        let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(err("sync socket"))?;
        sock.set_reuse_address(true).map_err(err("sync socket"))?;
        sock.bind_device(Some(s.iface.as_bytes())).map_err(err("sync socket on the kernel interface"))?;
        sock.bind(&SockAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, s.sync_port))).map_err(err("binding the sync port"))?;
        if s.peers.is_empty() {
            sock.join_multicast_v4(&GROUP, &s.local).map_err(err("joining 224.0.0.81"))?;
            sock.set_multicast_if_v4(&s.local).map_err(err("sync multicast interface"))?;
            sock.set_multicast_loop_v4(false).map_err(err("sync multicast loop"))?;
        }
        sock.set_read_timeout(Some(MAX_BATCH_WAIT)).map_err(err("sync socket"))?;
        common.synced.store(false, Ordering::Release);
        Ok(Sync {
            sock: sock.into(),
            s: s.clone(),
            common,
            shared,
            steering,
            seq: Sequence::default(),
            last_seq: HashMap::new(),
            batcher: Batcher::default(),
            batch_since: None,
            serving: None,
            started: Instant::now(),
            asked_at: None,
            join_since: None,
        })
    }

    fn peers(&self) -> Vec<SocketAddr> {
        if self.s.peers.is_empty() {
            vec![SocketAddr::new(IpAddr::V4(GROUP), self.s.sync_port)]
        } else {
            self.s.peers.iter().map(|p| SocketAddr::new(IpAddr::V4(*p), self.s.sync_port)).collect()
        }
    }

    fn is_master(&self) -> bool {
        self.common.role.load(Ordering::Acquire) == super::election::Role::Master.number()
    }

    /// Runs until `stop`.
    pub fn run(mut self, stop: &AtomicBool) {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Acquire) {
            for _ in 0..256 {
                match self.sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        let d = buf.get(..n).unwrap_or(&[]).to_vec();
                        self.receive(&d, from);
                    }
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            self.drain(now);
            self.serve_bulk();
            self.join(now);
        }
        self.drain(Instant::now() + MAX_BATCH_WAIT);
    }

    fn send(&self, kind: Kind, records: &[AnyRecord], to: &[SocketAddr]) {
        let seq = self.seq.next();
        let msg = match &self.s.key {
            Some(k) => {
                let sign = |b: &[u8]| tag(k, b);
                wire::encode(kind, self.s.sync_id, seq, records, Some(&sign))
            }
            None => wire::encode(kind, self.s.sync_id, seq, records, None),
        };
        for d in to {
            if self.sock.send_to(&msg, d).is_ok() {
                self.common.sync_datagrams_sent.fetch_add(1, Ordering::Relaxed);
                self.common.sync_sent.fetch_add(records.len() as u64, Ordering::Relaxed);
            }
        }
    }

    fn flush(&mut self, now: Instant) {
        let recs = self.batcher.take();
        if let Some(t) = self.batch_since.take() {
            let lag = rvs_wire::num::sat_u64(now.saturating_duration_since(t).as_millis());
            self.common.sync_lag_ms.store(lag, Ordering::Relaxed);
        }
        if !recs.is_empty() {
            self.send(Kind::Records, &recs, &self.peers());
        }
    }

    /// The workers' records, batched and sent (discarded while paused).
    fn drain(&mut self, now: Instant) {
        if self.common.paused.load(Ordering::Relaxed) {
            for q in &self.shared.ha.out {
                while q.pop().is_some() {}
            }
            return;
        }
        for q in &self.shared.ha.out {
            while let Some(r) = q.pop() {
                self.batch_since.get_or_insert(now);
                if let Some(full) = self.batcher.push(r) {
                    self.send(Kind::Records, &full, &self.peers());
                }
            }
        }
        if self.batch_since.is_some_and(|t| now.saturating_duration_since(t) >= MAX_BATCH_WAIT) {
            self.flush(now);
        }
    }

    /// A bulk transfer ends once every worker walked its tables and the
    /// queues are empty: then the rest is sent, and "bulk end".
    fn serve_bulk(&mut self) {
        let Some((req, to)) = self.serving else { return };
        if !self.shared.ha.bulk_finished(req) || self.shared.ha.out.iter().any(|q| !q.is_empty()) {
            return;
        }
        let now = Instant::now();
        self.flush(now);
        self.send(Kind::BulkEnd, &[], &[to]);
        self.common.bulk_served.fetch_add(1, Ordering::Relaxed);
        log(format!("bulk transfer to {} done", to.ip()));
        self.serving = None;
    }

    /// A node without the master's sessions asks for them; with no master
    /// to ask, it has nothing to wait for.
    fn join(&mut self, now: Instant) {
        if self.common.synced.load(Ordering::Acquire) {
            return;
        }
        if self.is_master() {
            self.common.synced.store(true, Ordering::Release);
            return;
        }
        let master = *crate::fault::lock(&self.common.master);
        let Some((m, prio)) = master.filter(|(_, p)| *p > 0) else {
            if now.duration_since(self.started) >= JOIN_WINDOW {
                self.common.synced.store(true, Ordering::Release);
            }
            return;
        };
        let since = *self.join_since.get_or_insert(now);
        if now.duration_since(since) >= BULK_GIVE_UP {
            log(format!("no bulk transfer from {m} in {BULK_GIVE_UP:?}: going on with what was synced"));
            self.common.synced.store(true, Ordering::Release);
            return;
        }
        if self.asked_at.is_none_or(|t| now.duration_since(t) >= BULK_RETRY) {
            self.asked_at = Some(now);
            log(format!("asking master {m} (priority {prio}) for its sessions"));
            self.send(Kind::BulkRequest, &[], &[SocketAddr::new(m, self.s.sync_port)]);
        }
    }

    /// One datagram from `from`.
    fn receive(&mut self, d: &[u8], from: SocketAddr) {
        if from.ip() == IpAddr::V4(self.s.local) {
            return;
        }
        let drops = &self.common.sync_drops;
        let msg = match wire::parse(d) {
            Ok(m) => m,
            Err(e) => return drops.count(e.name()),
        };
        if msg.header.sync_id != self.s.sync_id {
            return drops.count(wire::SyncError::SyncId.name());
        }
        match (&self.s.key, msg.tag) {
            (Some(k), Some((t, len))) => {
                if !verify(k, d.get(..len).unwrap_or(&[]), &t) {
                    return drops.count(wire::SyncError::Auth.name());
                }
                let last = self.last_seq.entry(from.ip()).or_insert(0);
                if msg.header.seq <= *last {
                    return drops.count(wire::SyncError::Replay.name());
                }
                *last = msg.header.seq;
            }
            (Some(_), None) | (None, Some(_)) => return drops.count(wire::SyncError::Auth.name()),
            (None, None) => {}
        }
        self.common.sync_datagrams_received.fetch_add(1, Ordering::Relaxed);
        match msg.header.kind {
            Kind::Records => {
                if self.common.paused.load(Ordering::Relaxed) {
                    return drops.count("paused");
                }
                if self.is_master() {
                    // Two masters for a moment (a preemption): the one
                    // that forwards keeps its own view.
                    return drops.count("while_master");
                }
                self.common.sync_received.fetch_add(msg.records.len() as u64, Ordering::Relaxed);
                let snap = self.shared.snapshot.load();
                for r in &msg.records {
                    let owner = usize::from(rvs_core::fwd::record_owner(&snap, self.steering.as_ref(), r));
                    let Some(q) = self.shared.ha.inq.get(owner).or_else(|| self.shared.ha.inq.first()) else { continue };
                    if q.push(*r).is_err() {
                        self.common.sync_queue_full.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Kind::BulkRequest => {
                if self.is_master() && self.serving.is_none() {
                    let req = self.shared.ha.bulk_request.fetch_add(1, Ordering::AcqRel) + 1;
                    log(format!("{} asks for the whole table: bulk transfer {req}", from.ip()));
                    self.serving = Some((req, from));
                }
            }
            Kind::BulkEnd => {
                if !self.common.synced.swap(true, Ordering::AcqRel) {
                    self.common.bulk_received.fetch_add(1, Ordering::Relaxed);
                    log(format!("bulk transfer from {} complete", from.ip()));
                }
            }
        }
    }
}
