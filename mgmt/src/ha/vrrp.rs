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
use rvs_wire::{Ipv4, Ipv6};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often fault conditions (and a stop) are looked at.
const FAULT_POLL: Duration = Duration::from_millis(20);

/// Where this node speaks VRRP from.
#[derive(Debug, Clone, Copy)]
enum Net {
    /// IPv4: its address on the HA port.
    V4(Ipv4Addr),
    /// IPv6: the kernel interface's link-local address and index.
    V6(Ipv6Addr, u32),
}

impl Net {
    fn address(self) -> IpAddr {
        match self {
            Net::V4(a) => IpAddr::V4(a),
            Net::V6(a, _) => IpAddr::V6(a),
        }
    }
}

/// The link-local address and index of `iface`, from /proc/net/if_inet6.
fn link_local(iface: &str) -> Option<(Ipv6Addr, u32)> {
    let t = std::fs::read_to_string("/proc/net/if_inet6").ok()?;
    t.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (hex, index, scope, name) = (f.first()?, f.get(1)?, f.get(3)?, f.get(5)?);
        if *name != iface || *scope != "20" {
            return None;
        }
        let a = u128::from_str_radix(hex, 16).ok()?;
        Some((Ipv6Addr::from(a), u32::from_str_radix(index, 16).ok()?))
    })
}

/// The VRRP thread's state.
#[derive(Debug)]
pub struct Vrrp {
    sock: Socket,
    net: Net,
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
    log::info!("ha: {}", msg.as_ref());
}

/// The raw VRRP socket of `s` on its kernel interface, and where it speaks from.
fn open_socket(s: &Settings) -> Result<(Socket, Net), HaError> {
    let err = |what| move |source| HaError::Socket { what, source };
    let proto = Some(Protocol::from(i32::from(vrrp::PROTO)));
    if s.family == config::HaFamily::Ipv6 {
        // The kernel gives the interface its link-local address when it
        // comes up (duplicate address detection is off on it); allow it a
        // moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut found = link_local(&s.iface);
        while found.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            found = link_local(&s.iface);
        }
        let (ll, index) = found.ok_or_else(|| HaError::Config {
            field: "port",
            message: format!("the kernel interface {} has no IPv6 link-local address to advertise from", s.iface),
        })?;
        let sock = Socket::new(Domain::IPV6, Type::RAW, proto).map_err(err("VRRP raw socket"))?;
        sock.bind_device(Some(s.iface.as_bytes())).map_err(err("VRRP socket on the kernel interface"))?;
        sock.bind(&SockAddr::from(SocketAddrV6::new(ll, 0, 0, index))).map_err(err("binding the link-local address"))?;
        sock.set_multicast_if_v6(index).map_err(err("VRRP multicast interface"))?;
        sock.set_multicast_hops_v6(u32::from(vrrp::TTL)).map_err(err("VRRP hop limit"))?;
        sock.set_unicast_hops_v6(u32::from(vrrp::TTL)).map_err(err("VRRP hop limit"))?;
        sock.set_multicast_loop_v6(false).map_err(err("VRRP multicast loop"))?;
        sock.join_multicast_v6(&Ipv6Addr::from(vrrp::GROUP_V6), index).map_err(err("joining ff02::12"))?;
        // The destination and hop limit of each advert, as ancillary data.
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::Ipv6RecvPacketInfo, &true)
            .map_err(|e| HaError::Socket { what: "IPV6_RECVPKTINFO", source: e.into() })?;
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::Ipv6RecvHopLimit, &true)
            .map_err(|e| HaError::Socket { what: "IPV6_RECVHOPLIMIT", source: e.into() })?;
        return Ok((sock, Net::V6(ll, index)));
    }
    let sock = Socket::new(Domain::IPV4, Type::RAW, proto).map_err(err("VRRP raw socket"))?;
    sock.bind_device(Some(s.iface.as_bytes())).map_err(err("VRRP socket on the kernel interface"))?;
    sock.set_multicast_if_v4(&s.local).map_err(err("VRRP multicast interface"))?;
    sock.set_multicast_ttl_v4(u32::from(vrrp::TTL)).map_err(err("VRRP multicast TTL"))?;
    sock.set_ttl_v4(u32::from(vrrp::TTL)).map_err(err("VRRP TTL"))?;
    sock.set_multicast_loop_v4(false).map_err(err("VRRP multicast loop"))?;
    sock.join_multicast_v4(&Ipv4Addr::from(vrrp::GROUP_V4), &s.local).map_err(err("joining 224.0.0.18"))?;
    Ok((sock, Net::V4(s.local)))
}

impl Vrrp {
    /// The socket and the election, not yet started.
    pub fn open(s: &Settings, common: Arc<HaCommon>, shared: Arc<Shared>) -> Result<Vrrp, HaError> {
        let (sock, net) = open_socket(s)?;
        let election = Election::new(
            Params {
                priority: s.priority,
                interval_cs: s.interval_cs,
                preempt: s.preempt,
                preempt_delay: s.preempt_delay,
                address: net.address(),
            },
            Instant::now(),
        );
        Ok(Vrrp {
            sock,
            net,
            s: s.clone(),
            common,
            shared,
            election,
            seq: Sequence::default(),
            last_seq: HashMap::new(),
            children: Vec::new(),
        })
    }

    /// Runs until `stop` or `leaving`; then a master sends priority 0.
    pub fn run(mut self, stop: &AtomicBool, leaving: &AtomicBool) {
        let now = Instant::now();
        log(format!(
            "VRRP instance {} on {} ({}), priority {}, every {} ms{}{}",
            self.s.vrid,
            self.s.iface,
            self.net.address(),
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
            match self.net {
                // A raw IPv4 socket reads whole packets, IP header first.
                Net::V4(_) => {
                    if let Ok(n) = std::io::Read::read(&mut &self.sock, &mut buf) {
                        let pkt = buf.get(..n).unwrap_or(&[]).to_vec();
                        self.receive(&pkt, Instant::now());
                    }
                }
                Net::V6(..) => {
                    if let Some((msg, src, dst, hops)) = self.read_v6(&mut buf) {
                        self.receive_v6(&msg, src, dst, hops, Instant::now());
                    }
                }
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

    /// An IPv6 advert: its payload, source, destination and hop limit
    /// (from the ancillary data IPV6_RECVPKTINFO and IPV6_RECVHOPLIMIT give).
    fn read_v6(&self, buf: &mut [u8]) -> Option<(Vec<u8>, Ipv6Addr, Ipv6Addr, u8)> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrIn6};
        let mut cmsg = nix::cmsg_space!(nix::libc::in6_pktinfo, nix::libc::c_int);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.sock);
        let mut iov = [std::io::IoSliceMut::new(buf)];
        let r = recvmsg::<SockaddrIn6>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty()).ok()?;
        let src = r.address?.ip();
        let (mut dst, mut hops) = (None, None);
        for c in r.cmsgs().ok()? {
            match c {
                ControlMessageOwned::Ipv6PacketInfo(i) => dst = Some(Ipv6Addr::from(i.ipi6_addr.s6_addr)),
                ControlMessageOwned::Ipv6HopLimit(h) => hops = u8::try_from(h).ok(),
                _ => {}
            }
        }
        let n = r.bytes;
        let msg = iov[0].get(..n)?.to_vec();
        Some((msg, src, dst?, hops?))
    }

    fn receive_v6(&mut self, msg: &[u8], src: Ipv6Addr, dst: Ipv6Addr, hops: u8, now: Instant) {
        if IpAddr::V6(src) == self.net.address() {
            return;
        }
        match vrrp::parse(msg, Ipv6::from(src), Ipv6::from(dst), hops) {
            Ok(r) => self.accept(msg, IpAddr::V6(src), r, now),
            Err(e) => self.common.advert_drops.count(e.name()),
        }
    }

    /// One received IPv4 packet (header included).
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
        match vrrp::parse(msg, Ipv4::from(src), Ipv4::from(dst), ttl) {
            Ok(r) => self.accept(msg, IpAddr::V4(src), r, now),
            Err(e) => drops.count(e.name()),
        }
    }

    /// A well-formed advert from `src`: our VRID, authenticated when a key
    /// is set, then the election's.
    fn accept(&mut self, msg: &[u8], src: IpAddr, r: vrrp::Received, now: Instant) {
        let drops = &self.common.advert_drops;
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
                let last = self.last_seq.entry(src).or_insert(0);
                if t.seq <= *last {
                    return drops.count("replay");
                }
                *last = t.seq;
            }
            (None, None) => {}
        }
        self.common.adverts_received.fetch_add(1, Ordering::Relaxed);
        let acts = self.election.on_advert(now, src, r.advert.priority, r.advert.interval_cs);
        *crate::fault::lock(&self.common.master) = self.election.master();
        self.apply(&acts, now);
    }

    fn send(&self, priority: u8) {
        let adv = Advert { vrid: self.s.vrid, priority, interval_cs: self.s.interval_cs, addrs: self.s.addresses.clone() };
        let sign = |b: &[u8]| tag(self.s.key.as_deref().unwrap_or(&[]), b);
        let auth = |seq: &Sequence| self.s.key.as_ref().map(|_| (seq.next(), &sign as &rvs_wire::sync::Signer<'_>));
        let mut sent = 0;
        match self.net {
            Net::V4(local) => {
                let group = [Ipv4Addr::from(vrrp::GROUP_V4)];
                let dsts: &[Ipv4Addr] = if self.s.peers.is_empty() { &group } else { &self.s.peers };
                for &d in dsts {
                    let msg = vrrp::encode(&adv, Ipv4::from(local), Ipv4::from(d), auth(&self.seq));
                    sent += usize::from(self.sock.send_to(&msg, &SockAddr::from(SocketAddr::new(IpAddr::V4(d), 0))).is_ok());
                }
            }
            Net::V6(local, index) => {
                let d = Ipv6Addr::from(vrrp::GROUP_V6);
                let msg = vrrp::encode(&adv, Ipv6::from(local), Ipv6::from(d), auth(&self.seq));
                sent += usize::from(self.sock.send_to(&msg, &SockAddr::from(SocketAddrV6::new(d, 0, 0, index))).is_ok());
            }
        }
        self.common.adverts_sent.fetch_add(sent as u64, Ordering::Relaxed);
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
