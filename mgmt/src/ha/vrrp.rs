//! The VRRP thread: advertisements in and out through a raw socket on the
//! HA port's kernel interface, the election's timers, authentication and
//! anti-replay, fault tracking, and the role handed to the workers.
//!
//! Workers pass every VRRP frame that arrives on the HA port to its kernel
//! interface (see `rvs_core::fwd`); the kernel delivers it to this socket
//! with its IP header, so TTL, source and destination are checked here.
//! Adverts leave the same way: the kernel sends them on the interface and
//! the workers put them on the wire.
use super::election::{Action, Election, Params, Role};
use super::{tag, verify, HaCommon, HaError, Sequence, Settings};
use dataplane::worker::Shared;
use rvs_wire::vrrp::{self, Advert};
use rvs_wire::Ipv4;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often fault conditions (and a stop) are looked at.
const FAULT_POLL: Duration = Duration::from_millis(20);

/// The VRRP thread's state.
#[derive(Debug)]
pub struct Vrrp {
    sock: Socket,
    s: Settings,
    common: Arc<HaCommon>,
    shared: Arc<Shared>,
    election: Election,
    seq: Sequence,
    /// Per sender: the highest sequence number accepted.
    last_seq: HashMap<IpAddr, u64>,
    /// Notify hooks still running.
    children: Vec<std::process::Child>,
}

fn log(msg: impl AsRef<str>) {
    eprintln!("rvsd: ha: {}", msg.as_ref());
}

impl Vrrp {
    /// The socket and the election, not yet started.
    pub fn open(s: &Settings, common: Arc<HaCommon>, shared: Arc<Shared>) -> Result<Vrrp, HaError> {
        let err = |what| move |source| HaError::Socket { what, source };
        let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(i32::from(vrrp::PROTO)))).map_err(err("VRRP raw socket"))?;
        sock.bind_device(Some(s.iface.as_bytes())).map_err(err("VRRP socket on the kernel interface"))?;
        sock.set_multicast_if_v4(&s.local).map_err(err("VRRP multicast interface"))?;
        sock.set_multicast_ttl_v4(u32::from(vrrp::TTL)).map_err(err("VRRP multicast TTL"))?;
        sock.set_ttl_v4(u32::from(vrrp::TTL)).map_err(err("VRRP TTL"))?;
        sock.set_multicast_loop_v4(false).map_err(err("VRRP multicast loop"))?;
        sock.join_multicast_v4(&Ipv4Addr::from(vrrp::GROUP_V4), &s.local).map_err(err("joining 224.0.0.18"))?;
        let election = Election::new(
            Params {
                priority: s.priority,
                interval_cs: s.interval_cs,
                preempt: s.preempt,
                preempt_delay: s.preempt_delay,
                address: IpAddr::V4(s.local),
            },
            Instant::now(),
        );
        Ok(Vrrp { sock, s: s.clone(), common, shared, election, seq: Sequence::default(), last_seq: HashMap::new(), children: Vec::new() })
    }

    /// Runs until `stop` or `leaving`; then a master sends priority 0.
    pub fn run(mut self, stop: &AtomicBool, leaving: &AtomicBool) {
        let now = Instant::now();
        log(format!(
            "VRRP instance {} on {} ({}), priority {}, every {} ms{}{}",
            self.s.vrid,
            self.s.iface,
            self.s.local,
            self.s.priority,
            u32::from(self.s.interval_cs) * 10,
            if self.s.peers.is_empty() { ", multicast".to_string() } else { format!(", peers {:?}", self.s.peers) },
            if self.s.key.is_some() { ", authenticated" } else { "" }
        ));
        let acts = self.election.start(now);
        self.apply(&acts, now);
        let mut fault_at = now;
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Acquire) && !leaving.load(Ordering::Acquire) {
            let now = Instant::now();
            let wait = self
                .election
                .deadline()
                .map_or(FAULT_POLL, |d| d.saturating_duration_since(now))
                .clamp(Duration::from_millis(1), FAULT_POLL);
            let _ = self.sock.set_read_timeout(Some(wait));
            // A raw IPv4 socket reads whole packets, IP header first.
            if let Ok(n) = std::io::Read::read(&mut &self.sock, &mut buf) {
                let pkt = buf.get(..n).unwrap_or(&[]).to_vec();
                self.receive(&pkt, Instant::now());
            }
            let now = Instant::now();
            self.election.set_synced(self.common.synced.load(Ordering::Acquire));
            let acts = self.election.on_timer(now);
            self.apply(&acts, now);
            if now.duration_since(fault_at) >= FAULT_POLL {
                fault_at = now;
                let fault = (self.s.track_link && !self.common.links_up.load(Ordering::Relaxed))
                    || (self.s.track_real_servers && !self.common.servers_up.load(Ordering::Relaxed));
                let acts = self.election.set_fault(now, fault);
                self.apply(&acts, now);
                self.children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
            }
        }
        let now = Instant::now();
        let acts = self.election.shutdown(now);
        self.apply(&acts, now);
        log("stopped");
    }

    /// One received IP packet (header included).
    fn receive(&mut self, pkt: &[u8], now: Instant) {
        let drops = &self.common.advert_drops;
        let Some(h) = pkt.first_chunk::<20>() else { return drops.count("truncated") };
        let ihl = usize::from(h[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([h[2], h[3]])).min(pkt.len());
        let (ttl, src, dst) = (h[8], Ipv4Addr::new(h[12], h[13], h[14], h[15]), Ipv4Addr::new(h[16], h[17], h[18], h[19]));
        if src == self.s.local {
            return; // our own, looped back
        }
        let Some(msg) = pkt.get(ihl..total) else { return drops.count("truncated") };
        let r = match vrrp::parse(msg, Ipv4::from(src), Ipv4::from(dst), ttl) {
            Ok(r) => r,
            Err(e) => return drops.count(e.name()),
        };
        if r.advert.vrid != self.s.vrid {
            return drops.count("other_vrid");
        }
        match (&self.s.key, r.trailer) {
            (Some(_), None) => return drops.count("auth_missing"),
            (None, Some(_)) => return drops.count("auth_unexpected"),
            (Some(k), Some(t)) => {
                if !verify(k, &vrrp::signed_bytes(msg, t.signed_len), &t.tag) {
                    return drops.count("auth_bad");
                }
                let last = self.last_seq.entry(IpAddr::V4(src)).or_insert(0);
                if t.seq <= *last {
                    return drops.count("replay");
                }
                *last = t.seq;
            }
            (None, None) => {}
        }
        self.common.adverts_received.fetch_add(1, Ordering::Relaxed);
        let acts = self.election.on_advert(now, IpAddr::V4(src), r.advert.priority, r.advert.interval_cs);
        *crate::fault::lock(&self.common.master) = self.election.master();
        self.apply(&acts, now);
    }

    fn send(&self, priority: u8) {
        let adv = Advert { vrid: self.s.vrid, priority, interval_cs: self.s.interval_cs, addrs: self.s.addresses.clone() };
        let group = [Ipv4Addr::from(vrrp::GROUP_V4)];
        let dsts: &[Ipv4Addr] = if self.s.peers.is_empty() { &group } else { &self.s.peers };
        for &d in dsts {
            let msg = match &self.s.key {
                Some(k) => {
                    let sign = |b: &[u8]| tag(k, b);
                    vrrp::encode(&adv, Ipv4::from(self.s.local), Ipv4::from(d), Some((self.seq.next(), &sign)))
                }
                None => vrrp::encode(&adv, Ipv4::from(self.s.local), Ipv4::from(d), None),
            };
            if self.sock.send_to(&msg, &SockAddr::from(SocketAddr::new(IpAddr::V4(d), 0))).is_ok() {
                self.common.adverts_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn apply(&mut self, acts: &[Action], now: Instant) {
        for a in acts {
            match *a {
                Action::Advertise(p) => self.send(p),
                Action::BecomeMaster | Action::BecomeBackup | Action::BecomeFault => self.transition(now),
            }
        }
    }

    /// Publishes the election's new role to the workers, logs it and runs
    /// the notify hook.
    fn transition(&mut self, now: Instant) {
        let role = self.election.role();
        let prev = self.common.role.swap(role.number(), Ordering::AcqRel);
        self.shared.ha.active.store(role == Role::Master, Ordering::Release);
        *crate::fault::lock(&self.common.since) = Some(now);
        *crate::fault::lock(&self.common.master) = self.election.master();
        self.common.transitions.fetch_add(1, Ordering::Relaxed);
        let was = match prev {
            1 => "BACKUP",
            2 => "MASTER",
            3 => "FAULT",
            _ => "INIT",
        };
        let master = self.election.master().map_or("none heard".to_string(), |(a, p)| format!("{a} priority {p}"));
        log(format!("{was} -> {} (vrid {}, priority {}; master {master})", role.name(), self.s.vrid, self.s.priority));
        if let Some(hook) = &self.s.notify {
            match std::process::Command::new(hook)
                .arg(role.name())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
            {
                Ok(c) => self.children.push(c),
                Err(e) => log(format!("notify {}: {e}", hook.display())),
            }
        }
    }
}
