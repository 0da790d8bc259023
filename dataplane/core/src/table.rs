//! The compiled configuration workers forward with: an immutable [`Snapshot`].
//!
//! Management compiles the [`config::Config`] (plus health state and the
//! ports' MACs) into a snapshot and publishes it atomically; each worker
//! picks the new one up between bursts. Sessions survive a publish: they
//! refer to services and real servers by *slot*, and a real server keeps
//! its slot across publishes for as long as it exists. A slot's
//! *generation* changes when it is reused for a different real server, so a
//! session can tell that its real server was removed (and a re-added server
//! never inherits stale sessions).
//!
//! [`Compiler`] owns the slot assignments and the neighbour table and
//! caches Maglev tables, so publishing a weight change on one service does
//! not rebuild every table.
use crate::neigh::NeighTable;
use crate::sched::{stable_hash, Candidate, SchedSpec};
use config::{Config, Forwarding, ServiceKey, WhenFull};
use rvs_wire::{ByFamily, Family, Ipv4, Ipv6, MacAddr, PerFamily};

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

/// Forwarding mode as stored in a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Mode {
    /// Destination NAT.
    #[default]
    Nat = 1,
    /// Direct routing.
    Dr = 2,
    /// IP-in-IP tunnel.
    Tunnel = 3,
    /// Full NAT.
    FullNat = 4,
}

impl Mode {
    /// The mode numbered `v` (as a sync record carries it), if any.
    pub fn from_u8(v: u8) -> Option<Mode> {
        Some(match v {
            1 => Mode::Nat,
            2 => Mode::Dr,
            3 => Mode::Tunnel,
            4 => Mode::FullNat,
            _ => return None,
        })
    }
}

impl From<Forwarding> for Mode {
    fn from(f: Forwarding) -> Mode {
        match f {
            Forwarding::Nat => Mode::Nat,
            Forwarding::Dr => Mode::Dr,
            Forwarding::Tunnel => Mode::Tunnel,
            Forwarding::FullNat => Mode::FullNat,
        }
    }
}

/// A port as workers see it.
#[derive(Clone, Debug)]
pub struct PortView {
    /// Index in the configuration (what sessions and verdicts use).
    pub index: u8,
    /// Name.
    pub name: String,
    /// MAC address.
    pub mac: MacAddr,
    /// IPv4 addresses and prefix lengths.
    pub v4: Vec<(Ipv4, u8)>,
    /// IPv6 addresses and prefix lengths.
    pub v6: Vec<(Ipv6, u8)>,
    /// IP MTU.
    pub mtu: u16,
    /// Index of the kernel exception port, if configured.
    pub kernel: Option<u8>,
}

impl PortView {
    /// The port's first address of family `A` (the source of ICMP errors
    /// and probes), if any.
    pub fn first<A: Family>(&self) -> Option<A> {
        if A::V6 {
            self.v6.first().and_then(|&(a, _)| A::from_ip(a.to_ip()))
        } else {
            self.v4.first().and_then(|&(a, _)| A::from_ip(a.to_ip()))
        }
    }

    /// The port's address on the network holding `ip`, else its first one.
    pub fn source_for(&self, ip: IpAddr) -> Option<IpAddr> {
        match ip {
            IpAddr::V4(a) => {
                let a = Ipv4::from(a);
                self.v4.iter().find(|&&(p, l)| p.mask(l) == a.mask(l)).or(self.v4.first()).map(|&(p, _)| p.to_ip())
            }
            IpAddr::V6(a) => {
                let a = Ipv6::from(a);
                self.v6.iter().find(|&&(p, l)| p.mask(l) == a.mask(l)).or(self.v6.first()).map(|&(p, _)| p.to_ip())
            }
        }
    }
}

/// A real server as workers see it.
#[derive(Clone, Debug)]
pub struct BackendView {
    /// Slot (index into `Snapshot::backends` and counter arrays).
    pub slot: u16,
    /// Generation of the slot.
    pub gen: u16,
    /// Service slot.
    pub service: u16,
    /// Address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Configured weight.
    pub weight: u32,
    /// Effective weight (0 when down or draining).
    pub effective_weight: u32,
    /// Forwarding mode.
    pub mode: Mode,
    /// Port it is reached through.
    pub egress: u8,
    /// Neighbour slot of its next hop.
    pub neigh: u32,
    /// The tunnel's outer header, prepared (tunnel mode; None also when
    /// no port address of its family can be the outer source).
    pub tunnel: Option<rvs_wire::tunnel::Outer>,
    /// Health: false when a checker marked it down.
    pub up: bool,
    /// Removed from its service but kept for its sessions (`on_remove =
    /// "keep"`): forwarded to, never scheduled.
    pub retired: bool,
    /// The service's fallback ("sorry") server.
    pub fallback: bool,
}

impl BackendView {
    /// Slot and generation packed as sessions store them.
    #[inline]
    pub fn tag(&self) -> u32 {
        u32::from(self.slot) | (u32::from(self.gen) << 16)
    }
}

/// Session timeouts in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutsMs {
    /// Established TCP.
    pub tcp_established: u32,
    /// Half-open TCP.
    pub tcp_syn: u32,
    /// Half-open TCP when the table is over 3/4 full.
    pub tcp_syn_pressure: u32,
    /// Closing TCP.
    pub tcp_fin: u32,
    /// Closed TCP.
    pub tcp_close: u32,
    /// UDP.
    pub udp: u32,
}

impl From<config::Timeouts> for TimeoutsMs {
    fn from(t: config::Timeouts) -> Self {
        let ms = |s: u32| s.saturating_mul(1000);
        TimeoutsMs {
            tcp_established: ms(t.tcp_established),
            tcp_syn: ms(t.tcp_syn),
            tcp_syn_pressure: ms(t.tcp_syn_under_pressure),
            tcp_fin: ms(t.tcp_fin),
            tcp_close: ms(t.tcp_close),
            udp: ms(t.udp),
        }
    }
}

/// A virtual service as workers see it.
#[derive(Clone, Debug)]
pub struct ServiceView {
    /// Slot.
    pub slot: u16,
    /// Identity.
    pub key: ServiceKey,
    /// IP protocol number.
    pub proto: u8,
    /// Backend slots, in configuration order (parallel to `cands`).
    pub backends: Vec<u16>,
    /// Scheduler candidates (effective weights).
    pub cands: Vec<Candidate>,
    /// Scheduler kind and prebuilt tables.
    pub sched: SchedSpec,
    /// Identity of `sched` (unchanged spec: workers keep their state).
    pub sched_sig: u64,
    /// Hash the source port too (sh, mh).
    pub hash_port: bool,
    /// Timeouts.
    pub timeouts: TimeoutsMs,
    /// Persistence: (timeout ms, prefix length).
    pub persistence: Option<(u32, u8)>,
    /// Full-table behaviour.
    pub when_full: WhenFull,
    /// Maglev table for stateless forwarding when the table is full.
    pub stateless: Option<Arc<crate::sched::MaglevTable>>,
    /// Create sessions on non-SYN TCP.
    pub sloppy_tcp: bool,
    /// SYN proxy, and what it does with an ACK of no valid cookie.
    pub synproxy: Option<config::InvalidAck>,
    /// Source allow/deny lists, checked on new flows (None: no lists).
    pub sources: Option<Arc<crate::acl::SourceLists>>,
    /// Full-NAT local addresses.
    pub locals: Vec<IpAddr>,
    /// What happens to sessions of real servers removed from it.
    pub on_remove: config::OnRemove,
    /// Which core owns its flows when there are several
    /// ([`crate::steer`]).
    pub steer: Steer,
}

/// How the owning core of a service's flows is chosen (see
/// [`crate::steer`] for why).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steer {
    /// The RSS queue of the client's packets.
    Rss,
    /// A hash of the client network (persistence netmask prefix).
    ClientNet(u8),
    /// A hash of the client address and port (services sharing a NAT real
    /// server, whose replies cannot name the VIP).
    Client,
}

/// How to find the owner of a NAT real server's reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplySteer<A> {
    /// The rule of the real server's service(s).
    pub steer: Steer,
    /// With [`Steer::Rss`]: the service's VIP and port.
    pub vip: A,
    /// The service's port.
    pub vport: u16,
}

/// What an address is to the balancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrKind {
    /// A virtual IP (some service uses it).
    Vip,
    /// One of the balancer's own addresses, on this port.
    Own(u8),
    /// A full-NAT local address (not a port address).
    Local,
    /// A floating address of a pair (`[ha] virtual_addresses`), on this
    /// port: answered by the master only.
    Floating(u8),
}

/// A service's key: (VIP, port, IP protocol).
type SvcKey<A> = (A, u16, u8);

/// The top `64 - shift` bits of `x` mixed by one multiplication (Fibonacci
/// hashing): an index into a power-of-two table of the snapshot's own keys.
#[inline(always)]
fn fib_index(x: u64, shift: u32) -> usize {
    #[expect(clippy::cast_possible_truncation, reason = "at most 64 - shift bits are left, a table's index")]
    let i = (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> shift) as usize;
    i
}

/// The services by (VIP, port, protocol), which a new flow's first packet
/// looks up: open addressing with linear probing in a power-of-two table
/// kept at most half full, the key's words mixed by one multiplication.
/// About a third of a general hash map's instructions per lookup. The keys
/// are the configuration's, so a run of occupied slots (what a lookup may
/// walk) is as long as the configured services make it, whatever packets
/// ask; a miss ends at the first free slot.
#[derive(Clone, Debug)]
struct ServiceMap<A: Family> {
    slots: Vec<Option<(SvcKey<A>, u16)>>,
    /// 64 minus log2 of the slot count.
    shift: u32,
    len: usize,
}

impl<A: Family> Default for ServiceMap<A> {
    fn default() -> Self {
        ServiceMap { slots: vec![None; 8], shift: 61, len: 0 }
    }
}

impl<A: Family> ServiceMap<A> {
    #[inline(always)]
    fn home(&self, k: &SvcKey<A>) -> usize {
        // IPv4: the address in the low word, port and protocol above it.
        fib_index(k.0.fold64() ^ (u64::from(k.1) << 48 | u64::from(k.2) << 40), self.shift)
    }

    #[inline]
    fn get(&self, k: &SvcKey<A>) -> Option<u16> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(k);
        // Never full (at most half), so a free slot ends every walk.
        loop {
            match self.slots.get(i)? {
                None => return None,
                Some((key, v)) if key == k => return Some(*v),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    /// Enters `k` as `v`, replacing what it was.
    fn insert(&mut self, k: SvcKey<A>, v: u16) {
        if (self.len + 1) * 2 > self.slots.len() {
            let bigger = vec![None; self.slots.len() * 2];
            let old = std::mem::replace(&mut self.slots, bigger);
            self.shift -= 1;
            self.len = 0;
            for (k, v) in old.into_iter().flatten() {
                self.insert(k, v);
            }
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(&k);
        loop {
            match &mut self.slots[i] {
                Some((key, val)) if *key == k => {
                    *val = v;
                    return;
                }
                Some(_) => i = (i + 1) & mask,
                free @ None => {
                    *free = Some((k, v));
                    self.len += 1;
                    return;
                }
            }
        }
    }
}

/// The balancer's own addresses and what each is, behind a 4096-bit
/// filter: a lookup of an address that is none of them (a new flow's
/// source, checked on every first packet) ends at one bit most of the
/// time instead of hashing it. A colliding address is looked up in the map,
/// so the filter never changes an answer.
#[derive(Clone, Debug)]
struct AddrMap<A: Family> {
    map: HashMap<A, AddrKind, ahash::RandomState>,
    bits: [u64; 64],
}

impl<A: Family> Default for AddrMap<A> {
    fn default() -> Self {
        AddrMap { map: HashMap::default(), bits: [0; 64] }
    }
}

impl<A: Family> AddrMap<A> {
    /// The word and bit of `a` in the filter.
    #[inline(always)]
    fn bit(a: A) -> (usize, u64) {
        let i = fib_index(a.fold64(), 52);
        (i >> 6, 1 << (i & 63))
    }

    #[inline]
    fn get(&self, a: A) -> Option<AddrKind> {
        let (w, b) = Self::bit(a);
        if self.bits[w] & b == 0 {
            return None;
        }
        self.map.get(&a).copied()
    }

    /// Enters `a` as `k`, replacing what it was.
    fn insert(&mut self, a: A, k: AddrKind) {
        let (w, b) = Self::bit(a);
        self.bits[w] |= b;
        self.map.insert(a, k);
    }

    /// Enters `a` as `k` unless it is already something.
    fn insert_new(&mut self, a: A, k: AddrKind) {
        let (w, b) = Self::bit(a);
        self.bits[w] |= b;
        self.map.entry(a).or_insert(k);
    }

    fn iter(&self) -> impl Iterator<Item = (&A, &AddrKind)> {
        self.map.iter()
    }
}

/// Per-family lookup maps.
#[derive(Clone, Debug, Default)]
pub struct FamilyMaps<A: Family> {
    services: ServiceMap<A>,
    addrs: AddrMap<A>,
    /// Neighbours: address -> (slot, the port whose network holds it).
    neigh: HashMap<A, (u32, u8), ahash::RandomState>,
    /// NAT real servers (address, port, protocol) -> how to steer replies.
    nat_replies: HashMap<(A, u16, u8), ReplySteer<A>, ahash::RandomState>,
    /// Full-NAT local addresses (some may also be port addresses).
    locals: HashMap<A, (), ahash::RandomState>,
}

/// The per-family maps a snapshot holds (see [`rvs_wire::ByFamily`]).
#[derive(Clone, Copy, Debug)]
pub struct MapsOf;

impl PerFamily for MapsOf {
    type Of<A: Family> = FamilyMaps<A>;
}

/// A neighbour to keep resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborRef {
    /// Slot in the neighbour table.
    pub slot: u32,
    /// Its address.
    pub addr: IpAddr,
    /// The port it is on.
    pub port: u8,
}

/// The immutable forwarding state.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases with every publish.
    pub generation: u64,
    /// Ports by index.
    pub ports: Vec<PortView>,
    /// Services by slot.
    pub services: Vec<Option<ServiceView>>,
    /// Backends by slot.
    pub backends: Vec<Option<BackendView>>,
    /// Neighbour resolution state (shared, updated by workers).
    pub neigh: Arc<NeighTable>,
    /// Neighbours to keep resolved.
    pub neighbors: Vec<NeighborRef>,
    /// The port VRRP runs on, in a pair: adverts arriving on it go to its
    /// kernel interface (for rvsd's VRRP thread), as do sync datagrams to
    /// the multicast sync group.
    pub ha_port: Option<u8>,
    /// The UDP port of session sync, in a pair.
    pub sync_port: Option<u16>,
    /// Client packets after which a UDP flow is synced.
    pub sync_udp_threshold: u8,
    /// The VRRP virtual MAC the master uses for the virtual addresses,
    /// when the pair is configured so.
    pub vmac: Option<MacAddr>,
    /// Some full-NAT local address is, or was in an earlier snapshot of
    /// this process, a VIP: forward keys may end in it, so the full-NAT
    /// port choice looks every candidate up (see
    /// `SessionTable::local_port_unused`).
    pub vip_locals: bool,
    maps: ByFamily<MapsOf>,
}

impl Snapshot {
    /// The service for (vip, port, proto).
    #[inline]
    pub fn service<A: Family>(&self, vip: A, port: u16, proto: u8) -> Option<&ServiceView> {
        let slot = self.maps.get::<A>().services.get(&(vip, port, proto))?;
        self.services.get(usize::from(slot))?.as_ref()
    }

    /// The real server (address, port) a new flow from `src:sport` to the
    /// service `key` gets from its hashing scheduler (sh, dh, mh), exactly
    /// as a worker computes it: what a cluster of balancers must agree on.
    /// None for other schedulers, an unknown service or no server.
    pub fn hashed_choice(&self, key: &ServiceKey, src: IpAddr, sport: u16) -> Option<(IpAddr, u16)> {
        let proto = match key.protocol {
            config::Protocol::Tcp => rvs_wire::ip::proto::TCP,
            config::Protocol::Udp => rvs_wire::ip::proto::UDP,
        };
        let (svc, s, d) = match (key.vip, src) {
            (IpAddr::V4(v), IpAddr::V4(c)) => (self.service(Ipv4::from(v), key.port, proto)?, c.octets().to_vec(), v.octets().to_vec()),
            (IpAddr::V6(v), IpAddr::V6(c)) => (self.service(Ipv6::from(v), key.port, proto)?, c.octets().to_vec(), v.octets().to_vec()),
            _ => return None,
        };
        let flow = crate::sched::Flow::of(&s, svc.hash_port.then_some(sport), &d);
        let pick = svc.sched.hashed_pick(&svc.cands, &flow)?;
        let b = self.backends.get(usize::from(*svc.backends.get(pick)?))?.as_ref()?;
        Some((b.addr, b.port))
    }

    /// What `a` is to the balancer, if anything.
    #[inline]
    pub fn addr_kind<A: Family>(&self, a: A) -> Option<AddrKind> {
        self.maps.get::<A>().addrs.get(a)
    }

    /// The neighbour slot for `a`, if it is a known neighbour.
    #[inline]
    pub fn neigh_slot<A: Family>(&self, a: A) -> Option<u32> {
        self.maps.get::<A>().neigh.get(&a).map(|x| x.0)
    }

    /// The neighbour slot for `a` and the port it may be learned on.
    #[inline]
    pub fn neigh_entry<A: Family>(&self, a: A) -> Option<(u32, u8)> {
        self.maps.get::<A>().neigh.get(&a).copied()
    }

    /// The addresses the balancer answers for, each with the ports it is
    /// announced on (gratuitous ARP, unsolicited NA): VIPs and full-NAT
    /// local addresses on every port, a port's own and floating addresses
    /// on that port. A backup (`standby`) announces only its own.
    pub fn announced(&self, standby: bool) -> Vec<(IpAddr, u8)> {
        let mut out = Vec::new();
        let all: Vec<(IpAddr, AddrKind)> = self
            .maps
            .v4
            .addrs
            .iter()
            .map(|(a, k)| (a.to_ip(), *k))
            .chain(self.maps.v6.addrs.iter().map(|(a, k)| (a.to_ip(), *k)))
            .collect();
        for (a, k) in all {
            match k {
                AddrKind::Own(p) => out.push((a, p)),
                AddrKind::Floating(p) if !standby => out.push((a, p)),
                AddrKind::Vip | AddrKind::Local if !standby => out.extend(self.ports.iter().map(|p| (a, p.index))),
                AddrKind::Vip | AddrKind::Local | AddrKind::Floating(_) => {}
            }
        }
        out.sort_unstable();
        out
    }

    /// Whether `a` is one of the addresses the master of a pair owns (a
    /// VIP, a full-NAT local or a floating address).
    #[inline]
    pub fn is_virtual<A: Family>(&self, a: A) -> bool {
        matches!(self.addr_kind(a), Some(AddrKind::Vip | AddrKind::Local | AddrKind::Floating(_)))
    }

    /// True when `mac` is one of the balancer's own port MACs (or the
    /// pair's virtual MAC).
    #[inline]
    pub fn is_own_mac(&self, mac: MacAddr) -> bool {
        self.ports.iter().any(|p| p.mac == mac) || self.vmac == Some(mac)
    }

    /// The MAC that answers for and announces `a` on port `p`: the pair's
    /// virtual MAC for a virtual address when configured, else the port's.
    #[inline]
    pub fn mac_for<A: Family>(&self, a: A, p: &PortView) -> MacAddr {
        match self.vmac {
            Some(v) if self.is_virtual(a) => v,
            _ => p.mac,
        }
    }

    /// How to steer a reply from NAT real server `rs:port`, if it is one.
    #[inline]
    pub fn nat_reply<A: Family>(&self, rs: A, port: u16, proto: u8) -> Option<&ReplySteer<A>> {
        self.maps.get::<A>().nat_replies.get(&(rs, port, proto))
    }

    /// Whether `a` is a full-NAT local address.
    #[inline]
    pub fn is_local<A: Family>(&self, a: A) -> bool {
        self.maps.get::<A>().locals.contains_key(&a)
    }

    /// The full-NAT local addresses of family `A` (services' own, and the
    /// port addresses of services without).
    pub fn locals<A: Family>(&self) -> impl Iterator<Item = A> + '_ {
        self.maps.get::<A>().locals.keys().copied()
    }

    /// The backend in `slot` if its generation is still `gen`.
    #[inline]
    pub fn backend(&self, tag: u32) -> Option<&BackendView> {
        #[expect(clippy::cast_possible_truncation, reason = "unpacking slot and generation")]
        let (slot, gen) = (tag as u16, (tag >> 16) as u16);
        self.backends.get(usize::from(slot))?.as_ref().filter(|b| b.gen == gen)
    }

    /// The port with this index.
    #[inline]
    pub fn port(&self, i: u8) -> Option<&PortView> {
        self.ports.get(usize::from(i))
    }

    /// An empty snapshot (no services), for start-up and tests.
    pub fn empty(ports: Vec<PortView>, max_services: usize, max_backends: usize, neigh: Arc<NeighTable>) -> Snapshot {
        let mut s = Snapshot {
            generation: 0,
            ports,
            services: vec![None; max_services],
            backends: vec![None; max_backends],
            neigh,
            neighbors: Vec::new(),
            ha_port: None,
            sync_port: None,
            sync_udp_threshold: 1,
            vmac: None,
            vip_locals: false,
            maps: ByFamily::default(),
        };
        s.index_ports();
        s
    }

    fn index_ports(&mut self) {
        for p in &self.ports {
            for &(a, _) in &p.v4 {
                self.maps.v4.addrs.insert(a, AddrKind::Own(p.index));
            }
            for &(a, _) in &p.v6 {
                self.maps.v6.addrs.insert(a, AddrKind::Own(p.index));
            }
        }
    }
}

/// Identity of a real server within a service.
pub type BackendKey = (ServiceKey, IpAddr, u16);

/// Why compilation failed (a configuration that validated but cannot be
/// mapped onto the running dataplane).
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// Out of service slots: every free one still waits for the workers
    /// to sweep out sessions of the services that last held them.
    #[error("no free service slot: {0} slots freed by recent changes still wait for every worker to sweep their sessions out; retry in a moment")]
    TooManyServices(usize),
    /// Out of backend slots (idem, for real servers).
    #[error("no free real-server slot: {0} slots freed by recent changes still wait for every worker to sweep their sessions out; retry in a moment")]
    TooManyBackends(usize),
    /// Out of neighbour slots (idem, for next hops).
    #[error("no free neighbour slot: {0} slots freed by recent changes still wait for every worker to sweep their sessions out; retry in a moment")]
    TooManyNeighbours(usize),
    /// More ports than the dataplane has.
    #[error("the configuration has {want} ports, the dataplane {have}")]
    Ports {
        /// Configured.
        want: usize,
        /// Running.
        have: usize,
    },
    /// An address that validation should have refused.
    #[error("{0}")]
    Invalid(String),
}

/// Slots with generations, reused oldest-freed first, and only once no
/// worker can still hold a session that refers to the old occupant.
#[derive(Clone, Debug)]
struct Slots<K: std::hash::Hash + Eq + Clone> {
    assigned: HashMap<K, (u16, u16)>,
    gens: Vec<u16>,
    /// Free slots with the first snapshot generation that no longer used
    /// them; FIFO, so the front is always the oldest.
    free: VecDeque<(u16, u64)>,
}

/// Every slot is taken or freed too recently to reuse.
#[derive(Debug)]
struct NoFreeSlot;

impl<K: std::hash::Hash + Eq + Clone> Slots<K> {
    fn new(n: usize) -> Self {
        let n = n.min(usize::from(u16::MAX));
        Slots { assigned: HashMap::new(), gens: vec![0; n], free: (0..rvs_wire::num::sat_u16(n)).map(|s| (s, 0)).collect() }
    }

    /// Keeps the slots of `keep`, frees the others (as of generation
    /// `now_gen`), assigns new ones from slots freed no later than
    /// `safe_gen`.
    fn sync<'a>(&mut self, keep: impl IntoIterator<Item = &'a K>, now_gen: u64, safe_gen: u64) -> Result<(), NoFreeSlot>
    where
        K: 'a,
    {
        // Configuration order, so slot numbers are reproducible.
        let order: Vec<&K> = keep.into_iter().collect();
        let keep: std::collections::HashSet<&K> = order.iter().copied().collect();
        let mut gone: Vec<(u16, K)> = self.assigned.iter().filter(|(k, _)| !keep.contains(k)).map(|(k, (s, _))| (*s, k.clone())).collect();
        gone.sort_by_key(|(s, _)| *s);
        for (_, k) in gone {
            if let Some((slot, _)) = self.assigned.remove(&k) {
                self.free.push_back((slot, now_gen));
            }
        }
        for k in order {
            if !self.assigned.contains_key(k) {
                match self.free.front() {
                    Some(&(_, freed)) if freed <= safe_gen => {}
                    _ => return Err(NoFreeSlot),
                }
                let (slot, _) = self.free.pop_front().ok_or(NoFreeSlot)?;
                let g = &mut self.gens[usize::from(slot)];
                *g = g.wrapping_add(1);
                self.assigned.insert(k.clone(), (slot, *g));
            }
        }
        Ok(())
    }

    fn get(&self, k: &K) -> Option<(u16, u16)> {
        self.assigned.get(k).copied()
    }

    /// Free slots not reusable yet: how many, and the generation every
    /// worker must have swept for all of them to be.
    fn waiting(&self, safe_gen: u64) -> (usize, u64) {
        self.free.iter().filter(|(_, g)| *g > safe_gen).fold((0, 0), |(n, m), (_, g)| (n + 1, m.max(*g)))
    }
}

/// Turns configurations into snapshots, keeping slots stable.
#[derive(Debug)]
pub struct Compiler {
    services: Slots<ServiceKey>,
    backends: Slots<BackendKey>,
    neigh_slots: Slots<(IpAddr, u8)>,
    neigh: Arc<NeighTable>,
    generation: u64,
    max_services: usize,
    max_backends: usize,
    sched_cache: HashMap<ServiceKey, (u64, SchedSpec, Option<Arc<crate::sched::MaglevTable>>)>,
    /// Removed real servers kept for their sessions (`on_remove = "keep"`),
    /// with their configuration.
    retired: HashMap<BackendKey, (config::RealServer, Forwarding)>,
    /// The previous compile's real servers.
    previous: HashMap<BackendKey, (config::RealServer, Forwarding)>,
    /// Slots freed in snapshots up to this generation may be reused: every
    /// worker has since swept its whole session table.
    safe_generation: u64,
    /// Every VIP of every compile so far (see [`Snapshot::vip_locals`]).
    vips_seen: std::collections::HashSet<IpAddr>,
}

/// A real server's health as management knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendHealth {
    /// False when a health check marked it down.
    pub up: bool,
    /// Weight percentage reported by its feedback agent.
    pub weight_pct: Option<u8>,
}

impl Default for BackendHealth {
    fn default() -> Self {
        BackendHealth { up: true, weight_pct: None }
    }
}

impl BackendHealth {
    /// The weight to schedule with: 0 when down, else the configured
    /// weight scaled by the agent's percentage (rounded up, so any
    /// positive percentage keeps a positive weight).
    pub fn effective(&self, weight: u32) -> u32 {
        if !self.up {
            return 0;
        }
        match self.weight_pct {
            None => weight,
            Some(p) => rvs_wire::num::sat_u32((u64::from(weight) * u64::from(p.min(100))).div_ceil(100)),
        }
    }
}

/// Health of real servers as management knows it (absent = up, full weight).
pub type Health = HashMap<BackendKey, BackendHealth>;

impl Compiler {
    /// A compiler for a dataplane sized by `cfg.dataplane`.
    ///
    /// There are twice as many slots as the configuration may use at once
    /// (`max_services`, `max_real_servers`), so a change from any valid
    /// configuration to any other - even one replacing every service -
    /// finds its slots free while the old ones wait for the workers'
    /// sweep (see [`Compiler::waiting_generation`]).
    pub fn new(cfg: &Config) -> Compiler {
        let max_services = (cfg.dataplane.max_services as usize * 2).min(usize::from(u16::MAX) + 1);
        let max_backends = (cfg.dataplane.max_real_servers as usize * 2).min(usize::from(u16::MAX) + 1);
        let max_neigh = max_backends + 512;
        Compiler {
            services: Slots::new(max_services),
            backends: Slots::new(max_backends),
            neigh_slots: Slots::new(max_neigh),
            neigh: Arc::new(NeighTable::new(max_neigh)),
            generation: 0,
            max_services,
            max_backends,
            sched_cache: HashMap::new(),
            retired: HashMap::new(),
            previous: HashMap::new(),
            safe_generation: 0,
            vips_seen: std::collections::HashSet::new(),
        }
    }

    /// Declares that every worker has swept its whole session table since
    /// installing snapshot `g`: slots freed up to `g` may be reused.
    pub fn set_safe_generation(&mut self, g: u64) {
        self.safe_generation = self.safe_generation.max(g);
    }

    /// The generation of the last compiled snapshot.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Forgets retired real servers whose sessions have all ended
    /// (`has_sessions(slot)` false). Returns true when any was forgotten
    /// (recompile and publish to free their slots).
    pub fn reap(&mut self, has_sessions: impl Fn(u16) -> bool) -> bool {
        let before = self.retired.len();
        let backends = &self.backends;
        self.retired.retain(|k, _| backends.get(k).is_some_and(|(slot, _)| has_sessions(slot)));
        self.retired.len() != before
    }

    /// The shared neighbour table.
    pub fn neigh(&self) -> Arc<NeighTable> {
        self.neigh.clone()
    }

    /// The slot and generation of a backend, if it exists.
    pub fn backend_slot(&self, k: &BackendKey) -> Option<(u16, u16)> {
        self.backends.get(k)
    }

    /// When slots freed by recent changes wait for the workers' sweep: the
    /// snapshot generation every worker must have swept (its sessions of
    /// removed services and servers gone) before they may be reused.
    pub fn waiting_generation(&self) -> Option<u64> {
        let safe = self.safe_generation;
        let g = [self.services.waiting(safe), self.backends.waiting(safe), self.neigh_slots.waiting(safe)];
        g.iter().filter(|(n, _)| *n > 0).map(|(_, g)| *g).max()
    }

    /// Compiles `cfg` with the ports' MACs and the health state. All or
    /// nothing: on an error the compiler is as it was (slot assignments
    /// included), so the running configuration keeps its slots.
    pub fn compile(&mut self, cfg: &Config, macs: &[MacAddr], health: &Health) -> Result<Arc<Snapshot>, CompileError> {
        let saved = (self.services.clone(), self.backends.clone(), self.neigh_slots.clone(), self.retired.clone(), self.previous.clone());
        let r = self.compile_inner(cfg, macs, health);
        if r.is_err() {
            (self.services, self.backends, self.neigh_slots, self.retired, self.previous) = saved;
        }
        r
    }

    /// The compile, stage by stage (see [`Compiler::compile`]).
    fn compile_inner(&mut self, cfg: &Config, macs: &[MacAddr], health: &Health) -> Result<Arc<Snapshot>, CompileError> {
        if macs.len() < cfg.ports.len() {
            return Err(CompileError::Ports { want: cfg.ports.len(), have: macs.len() });
        }
        let mut snap = Snapshot::empty(port_views(cfg, macs), self.max_services, self.max_backends, self.neigh.clone());
        let now_gen = self.generation + 1;
        self.retire_removed(cfg);
        let skeys = self.assign_slots(cfg, now_gen)?;
        self.assign_neighbours(cfg, now_gen, &mut snap)?;
        for s in &cfg.services {
            self.compile_service(cfg, s, health, &mut snap)?;
        }
        index_ha(cfg, &mut snap);
        // Retired real servers: forwarded to for their sessions, never
        // scheduled (not among their service's candidates).
        for (key, (_, fwd)) in &self.retired {
            let Some(sslot) = self.services.get(&key.0).map(|(s, _)| s) else { continue };
            let Ok(v) = self.backend_view(cfg, &snap, key, sslot, *fwd, Weights { weight: 0, effective: 0, up: true }) else { continue };
            snap.backends[usize::from(v.slot)] = Some(BackendView { retired: true, ..v });
        }
        steering(&mut snap);
        self.vips_seen.extend(cfg.services.iter().map(|s| s.vip));
        snap.vip_locals = snap.locals::<Ipv4>().any(|a| self.vips_seen.contains(&a.to_ip()))
            || snap.locals::<Ipv6>().any(|a| self.vips_seen.contains(&a.to_ip()));
        self.sched_cache.retain(|k, _| skeys.contains(k));
        self.generation += 1;
        snap.generation = self.generation;
        Ok(Arc::new(snap))
    }

    /// Real servers removed since the last compile: retired when their
    /// service keeps removed servers' sessions, else gone (their sessions
    /// are reset by the workers).
    fn retire_removed(&mut self, cfg: &Config) {
        let current: HashMap<BackendKey, (config::RealServer, Forwarding)> = cfg
            .services
            .iter()
            .flat_map(|s| s.real_servers.iter().map(move |r| ((s.key(), r.address, s.port_of(r)), (r.clone(), s.forwarding_of(r)))))
            .collect();
        let keeps = |k: &BackendKey| cfg.service(&k.0).is_some_and(|s| s.on_remove == config::OnRemove::Keep);
        for (k, v) in std::mem::take(&mut self.previous) {
            if !current.contains_key(&k) && keeps(&k) {
                self.retired.insert(k, v);
            }
        }
        self.retired.retain(|k, _| !current.contains_key(k) && keeps(k));
        self.previous = current;
    }

    /// Service and backend slots (real servers, retired ones, sorry
    /// servers) for the configuration; returns the service keys.
    fn assign_slots(&mut self, cfg: &Config, now_gen: u64) -> Result<Vec<ServiceKey>, CompileError> {
        let skeys: Vec<ServiceKey> = cfg.services.iter().map(|s| s.key()).collect();
        let safe = self.safe_generation;
        let waiting = self.services.waiting(safe).0;
        self.services.sync(skeys.iter(), now_gen, safe).map_err(|NoFreeSlot| CompileError::TooManyServices(waiting))?;
        let mut bkeys: Vec<BackendKey> =
            cfg.services.iter().flat_map(|s| s.real_servers.iter().map(move |r| (s.key(), r.address, s.port_of(r)))).collect();
        let mut retired_keys: Vec<BackendKey> = self.retired.keys().copied().collect();
        retired_keys.sort();
        bkeys.extend(retired_keys.iter().copied());
        bkeys.extend(cfg.services.iter().filter_map(|s| s.fallback.as_ref().map(|f| (s.key(), f.address, s.port_of(f)))));
        let waiting = self.backends.waiting(safe).0;
        self.backends.sync(bkeys.iter(), now_gen, safe).map_err(|NoFreeSlot| CompileError::TooManyBackends(waiting))?;
        Ok(skeys)
    }

    /// Neighbour slots - every real server's next hop, every gateway,
    /// every static entry - and the snapshot's neighbour maps.
    fn assign_neighbours(&mut self, cfg: &Config, now_gen: u64, snap: &mut Snapshot) -> Result<(), CompileError> {
        let mut wanted: Vec<(IpAddr, u8)> = Vec::new();
        let hops = cfg
            .services
            .iter()
            .flat_map(|s| s.real_servers.iter().chain(s.fallback.iter()))
            .chain(self.retired.values().map(|(r, _)| r))
            .filter_map(|r| cfg.egress_for(r.address));
        wanted.extend(hops.map(|(p, hop)| (hop, port_u8(p))));
        for (i, p) in cfg.ports.iter().enumerate() {
            wanted.extend([p.gateway, p.gateway6].into_iter().flatten().map(|g| (g, port_u8(i))));
        }
        let statics: Vec<(IpAddr, u8, MacAddr)> = cfg
            .neighbors
            .iter()
            .filter_map(|n| cfg.ports.iter().position(|p| p.name == n.port).map(|p| (n.address, port_u8(p), n.mac)))
            .collect();
        wanted.extend(statics.iter().map(|&(a, p, _)| (a, p)));
        wanted.sort();
        wanted.dedup();
        let before: HashMap<(IpAddr, u8), (u16, u16)> = self.neigh_slots.assigned.clone();
        let waiting = self.neigh_slots.waiting(self.safe_generation).0;
        self.neigh_slots
            .sync(wanted.iter(), now_gen, self.safe_generation)
            .map_err(|NoFreeSlot| CompileError::TooManyNeighbours(waiting))?;
        for (k, (slot, _)) in &self.neigh_slots.assigned {
            if before.get(k).map(|x| x.0) != Some(*slot) {
                self.neigh.clear(u32::from(*slot));
            }
        }
        for (addr, port, mac) in statics {
            if let Some((slot, _)) = self.neigh_slots.get(&(addr, port)) {
                self.neigh.set_static(u32::from(slot), mac);
            }
        }
        for (&(addr, port), &(slot, _)) in &self.neigh_slots.assigned {
            let slot = u32::from(slot);
            snap.neighbors.push(NeighborRef { slot, addr, port });
            match addr {
                IpAddr::V4(a) => {
                    snap.maps.v4.neigh.insert(Ipv4::from(a), (slot, port));
                }
                IpAddr::V6(a) => {
                    snap.maps.v6.neigh.insert(Ipv6::from(a), (slot, port));
                }
            }
        }
        snap.neighbors.sort_by_key(|n| n.slot);
        Ok(())
    }

    /// The view of backend `key` (a real, sorry or retired server of
    /// service slot `sslot`): its slot, egress, next hop and mode.
    fn backend_view(
        &self,
        cfg: &Config,
        snap: &Snapshot,
        key: &BackendKey,
        sslot: u16,
        fwd: Forwarding,
        w: Weights,
    ) -> Result<BackendView, CompileError> {
        let (_, addr, port) = *key;
        let (slot, gen) = self.backends.get(key).ok_or_else(|| CompileError::Invalid(format!("no slot for {addr}")))?;
        let (egress, hop) = cfg.egress_for(addr).ok_or_else(|| CompileError::Invalid(format!("{addr} is not reachable from any port")))?;
        let egress = port_u8(egress);
        let neigh = self
            .neigh_slots
            .get(&(hop, egress))
            .map(|(n, _)| u32::from(n))
            .ok_or_else(|| CompileError::Invalid(format!("no neighbour slot for {hop}")))?;
        let mode = Mode::from(fwd);
        let tunnel_src = (mode == Mode::Tunnel).then(|| snap.ports.get(usize::from(egress)).and_then(|p| p.source_for(addr))).flatten();
        let tunnel = tunnel_src.and_then(|src| rvs_wire::tunnel::Outer::new(src, addr).ok());
        Ok(BackendView {
            slot,
            gen,
            service: sslot,
            addr,
            port,
            weight: w.weight,
            effective_weight: w.effective,
            mode,
            egress,
            neigh,
            tunnel,
            up: w.up,
            retired: false,
            fallback: false,
        })
    }

    /// One service: its backends (and sorry server), scheduler, lookup
    /// entries.
    fn compile_service(&mut self, cfg: &Config, s: &config::Service, health: &Health, snap: &mut Snapshot) -> Result<(), CompileError> {
        let key = s.key();
        let (sslot, _) = self.services.get(&key).ok_or_else(|| CompileError::Invalid(format!("no slot for {key}")))?;
        let mut pool = Candidates::default();
        for r in &s.real_servers {
            let bkey = (key, r.address, s.port_of(r));
            let h = health.get(&bkey).copied().unwrap_or_default();
            let w = Weights { weight: r.weight, effective: h.effective(r.weight), up: h.up };
            let v = self.backend_view(cfg, snap, &bkey, sslot, s.forwarding_of(r), w)?;
            pool.push(&v);
            let slot = usize::from(v.slot);
            snap.backends[slot] = Some(v);
        }
        // The fallback server: always present for its sessions, the only
        // candidate while every real server is down.
        if let Some(fb) = &s.fallback {
            let fkey = (key, fb.address, s.port_of(fb));
            let v = self.backend_view(cfg, snap, &fkey, sslot, s.forwarding_of(fb), Weights { weight: 1, effective: 1, up: true })?;
            let all_down = s.real_servers.iter().all(|r| !health.get(&(key, r.address, s.port_of(r))).copied().unwrap_or_default().up);
            if all_down {
                pool = Candidates::default();
                pool.push(&v);
            }
            snap.backends[usize::from(v.slot)] = Some(BackendView { fallback: true, ..v });
        }
        let when_full = s.when_full.unwrap_or(cfg.dataplane.when_full);
        let (sched, stateless, sig) = self.scheduler(s, &pool, when_full);
        let persistence = s.persistence.map(|p| (p.timeout.saturating_mul(1000), p.prefix(s.vip.is_ipv6())));
        snap.services[usize::from(sslot)] = Some(ServiceView {
            slot: sslot,
            key,
            proto: s.protocol.number(),
            backends: pool.slots,
            cands: pool.cands,
            sched,
            sched_sig: sig,
            hash_port: s.hash_port,
            timeouts: s.timeouts.into(),
            persistence,
            when_full,
            stateless,
            sloppy_tcp: s.sloppy_tcp || s.cluster,
            synproxy: s.synproxy.then_some(s.synproxy_invalid_ack),
            sources: (!s.allow_sources.is_empty() || !s.deny_sources.is_empty())
                .then(|| Arc::new(crate::acl::SourceLists::build(&s.allow_sources, &s.deny_sources))),
            locals: s.local_addresses.clone(),
            on_remove: s.on_remove,
            steer: persistence.map_or(Steer::Rss, |(_, p)| Steer::ClientNet(p)),
        });
        index_service(snap, s, sslot);
        Ok(())
    }

    /// The service's scheduler (and Maglev table for the stateless
    /// policy), rebuilt only when the candidates or the algorithm change;
    /// returns them with the signature they were built for.
    fn scheduler(
        &mut self,
        s: &config::Service,
        pool: &Candidates,
        when_full: WhenFull,
    ) -> (SchedSpec, Option<Arc<crate::sched::MaglevTable>>, u64) {
        let mut b = Vec::new();
        b.extend_from_slice(s.scheduler.name().as_bytes());
        b.extend_from_slice(&s.mh_table_size.to_le_bytes());
        b.push(u8::from(s.hash_fallback));
        b.push(u8::from(when_full == WhenFull::Stateless));
        for (c, id) in pool.cands.iter().zip(&pool.ids) {
            b.extend_from_slice(&c.weight.to_le_bytes());
            b.extend_from_slice(&id.to_le_bytes());
        }
        let sig = stable_hash(&b, 0);
        let key = s.key();
        if let Some((old, spec, st)) = self.sched_cache.get(&key) {
            if *old == sig {
                return (spec.clone(), st.clone(), sig);
            }
        }
        let spec = SchedSpec::build(s.scheduler, &pool.cands, &pool.ids, s.mh_table_size, s.hash_fallback);
        let st = match (&spec, when_full) {
            (SchedSpec::Mh { table, .. }, _) => Some(table.clone()),
            (_, WhenFull::Stateless) => Some(Arc::new(crate::sched::MaglevTable::build(&pool.cands, &pool.ids, s.mh_table_size))),
            _ => None,
        };
        self.sched_cache.insert(key, (sig, spec.clone(), st.clone()));
        (spec, st, sig)
    }
}

/// A backend's weights as compiled.
#[derive(Clone, Copy, Debug)]
struct Weights {
    /// Configured.
    weight: u32,
    /// After health and feedback.
    effective: u32,
    /// Not marked down by a health check.
    up: bool,
}

/// The candidates a service schedules over, in configuration order.
#[derive(Debug, Default)]
struct Candidates {
    slots: Vec<u16>,
    cands: Vec<Candidate>,
    ids: Vec<u64>,
}

impl Candidates {
    fn push(&mut self, v: &BackendView) {
        self.slots.push(v.slot);
        self.cands.push(Candidate { slot: v.slot, weight: v.effective_weight });
        self.ids.push(backend_id(v.addr, v.port));
    }
}

/// The pair's part of the snapshot: its VRRP port, sync port and floating
/// addresses (each on the port whose network holds it).
fn index_ha(cfg: &Config, snap: &mut Snapshot) {
    let Some(h) = &cfg.ha else { return };
    snap.ha_port = cfg.ports.iter().position(|p| p.name == h.port).map(port_u8);
    snap.sync_port = h.sync.then_some(h.sync_port);
    snap.sync_udp_threshold = h.sync_udp_threshold;
    snap.vmac = h.use_virtual_mac.then(|| rvs_wire::vrrp::virtual_mac(h.vrid, h.family == config::HaFamily::Ipv6));
    for &a in &h.virtual_addresses {
        let Some(p) = cfg.ports.iter().position(|p| p.addresses.iter().any(|n| n.contains(a))) else { continue };
        match a {
            IpAddr::V4(a) => {
                snap.maps.v4.addrs.insert_new(Ipv4::from(a), AddrKind::Floating(port_u8(p)));
            }
            IpAddr::V6(a) => {
                snap.maps.v6.addrs.insert_new(Ipv6::from(a), AddrKind::Floating(port_u8(p)));
            }
        }
    }
}

/// Enters service slot `sslot`'s VIP and local addresses in the snapshot's
/// lookup maps.
fn index_service(snap: &mut Snapshot, s: &config::Service, sslot: u16) {
    let proto = s.protocol.number();
    match s.vip {
        IpAddr::V4(a) => {
            let a = Ipv4::from(a);
            snap.maps.v4.services.insert((a, s.port, proto), sslot);
            snap.maps.v4.addrs.insert(a, AddrKind::Vip);
        }
        IpAddr::V6(a) => {
            let a = Ipv6::from(a);
            snap.maps.v6.services.insert((a, s.port, proto), sslot);
            snap.maps.v6.addrs.insert(a, AddrKind::Vip);
        }
    }
    for l in &s.local_addresses {
        match *l {
            IpAddr::V4(a) => {
                snap.maps.v4.addrs.insert_new(Ipv4::from(a), AddrKind::Local);
                snap.maps.v4.locals.insert(Ipv4::from(a), ());
            }
            IpAddr::V6(a) => {
                snap.maps.v6.addrs.insert_new(Ipv6::from(a), AddrKind::Local);
                snap.maps.v6.locals.insert(Ipv6::from(a), ());
            }
        }
    }
}

/// Settles each service's steering rule and the NAT reply map (see
/// [`crate::steer`]): services that share a NAT real server (address, port,
/// protocol) form a group whose replies cannot name their VIP, so the whole
/// group is steered by client - by client network when one of them is
/// persistent (the shortest netmask serves them all), else by client
/// address and port.
fn steering(snap: &mut Snapshot) {
    let n = snap.services.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    let nat_key = |b: &BackendView, snap: &Snapshot| {
        snap.services.get(usize::from(b.service)).and_then(Option::as_ref).map(|s| (b.addr, b.port, s.proto))
    };
    let mut first: HashMap<(IpAddr, u16, u8), usize> = HashMap::new();
    for b in snap.backends.iter().flatten().filter(|b| b.mode == Mode::Nat) {
        let Some(k) = nat_key(b, snap) else { continue };
        let s = usize::from(b.service);
        let f = *first.entry(k).or_insert(s);
        let (a, c) = (root(&mut parent, f), root(&mut parent, s));
        parent[a] = c;
    }
    // Per group: its size and shortest persistence prefix.
    let mut size = vec![0usize; n];
    let mut prefix: Vec<Option<u8>> = vec![None; n];
    for (i, s) in snap.services.iter().enumerate() {
        let Some(s) = s else { continue };
        let r = root(&mut parent, i);
        size[r] += 1;
        if let Some((_, p)) = s.persistence {
            prefix[r] = Some(prefix[r].map_or(p, |q| q.min(p)));
        }
    }
    for i in 0..n {
        let r = root(&mut parent, i);
        let Some(s) = snap.services[i].as_mut() else { continue };
        s.steer = match (prefix[r], size[r]) {
            (Some(p), _) => Steer::ClientNet(p),
            (None, 1) => Steer::Rss,
            (None, _) => Steer::Client,
        };
    }
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for b in snap.backends.iter().flatten().filter(|b| b.mode == Mode::Nat) {
        let Some(s) = snap.services.get(usize::from(b.service)).and_then(Option::as_ref) else { continue };
        match (b.addr, s.key.vip) {
            (IpAddr::V4(a), IpAddr::V4(v)) => {
                v4.push(((Ipv4::from(a), b.port, s.proto), ReplySteer { steer: s.steer, vip: Ipv4::from(v), vport: s.key.port }))
            }
            (IpAddr::V6(a), IpAddr::V6(v)) => {
                v6.push(((Ipv6::from(a), b.port, s.proto), ReplySteer { steer: s.steer, vip: Ipv6::from(v), vport: s.key.port }))
            }
            _ => {}
        }
    }
    snap.maps.v4.nat_replies.extend(v4);
    snap.maps.v6.nat_replies.extend(v6);
    // Full-NAT services without local addresses use their real servers'
    // egress port address: replies to it are full-NAT replies too.
    let mut own = Vec::new();
    for b in snap.backends.iter().flatten().filter(|b| b.mode == Mode::FullNat) {
        let Some(s) = snap.services.get(usize::from(b.service)).and_then(Option::as_ref) else { continue };
        if s.locals.is_empty() {
            own.extend(snap.port(b.egress).and_then(|p| p.source_for(b.addr)));
        }
    }
    for a in own {
        match a {
            IpAddr::V4(a) => snap.maps.v4.locals.insert(Ipv4::from(a), ()),
            IpAddr::V6(a) => snap.maps.v6.locals.insert(Ipv6::from(a), ()),
        };
    }
}

/// A port's index as the snapshot stores it. Exact: compilation refuses
/// more ports than the dataplane runs ([`CompileError::Ports`]), and the
/// dataplane runs at most `config::MAX_PORTS` (16); were it not, 255 names
/// no port and every lookup of it fails (it never aliases port 0).
fn port_u8(i: usize) -> u8 {
    u8::try_from(i).unwrap_or(u8::MAX)
}

/// A real server's stable identity for hashing schedulers.
pub fn backend_id(addr: IpAddr, port: u16) -> u64 {
    let mut b = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    b.extend_from_slice(&port.to_be_bytes());
    stable_hash(&b, 0x7276_735f_6964)
}

/// Builds the port views of a configuration.
pub fn port_views(cfg: &Config, macs: &[MacAddr]) -> Vec<PortView> {
    cfg.ports
        .iter()
        .enumerate()
        .map(|(i, p)| PortView {
            index: port_u8(i),
            name: p.name.clone(),
            mac: macs.get(i).copied().unwrap_or_default(),
            v4: p
                .addresses
                .iter()
                .filter_map(|a| match a.addr {
                    IpAddr::V4(v) => Some((Ipv4::from(v), a.prefix)),
                    IpAddr::V6(_) => None,
                })
                .collect(),
            v6: p
                .addresses
                .iter()
                .filter_map(|a| match a.addr {
                    IpAddr::V6(v) => Some((Ipv6::from(v), a.prefix)),
                    IpAddr::V4(_) => None,
                })
                .collect(),
            mtu: p.mtu,
            kernel: p.kernel_interface.as_ref().map(|_| port_u8(i)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared two ports (the server port with a gateway) and a wrr
    /// NAT service over 198.18.1.11:8080 (weight 1), .12:8080 (weight 2)
    /// and 203.0.113.7:8080, behind the gateway.
    pub(crate) fn cfg() -> Config {
        let ports = config::fixtures::two_ports().replace("\"2001:db8:1::1/64\"]\n", "\"2001:db8:1::1/64\"]\ngateway = \"198.18.1.254\"\n");
        let service = config::fixtures::service("wrr", "nat", 8080, &[1, 2]);
        let text = format!("{ports}{service}\n[[services.real_servers]]\naddress = \"203.0.113.7\"\nport = 8080\n");
        config::from_str(&text, "t.toml").unwrap()
    }

    fn macs() -> Vec<MacAddr> {
        vec![MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2])]
    }

    #[test]
    fn compiles_services_backends_and_neighbours() {
        let c = cfg();
        let mut comp = Compiler::new(&c);
        let s = comp.compile(&c, &macs(), &Health::new()).unwrap();
        let vip = Ipv4::from(std::net::Ipv4Addr::new(198, 18, 0, 100));
        let svc = s.service(vip, 80, 6).unwrap();
        assert_eq!(svc.backends.len(), 3);
        assert_eq!(s.addr_kind(vip), Some(AddrKind::Vip));
        assert_eq!(s.addr_kind(Ipv4::from(std::net::Ipv4Addr::new(198, 18, 1, 1))), Some(AddrKind::Own(1)));
        assert!(s.service(vip, 81, 6).is_none());
        // Two direct neighbours and the gateway (shared by 203.0.113.7).
        assert_eq!(s.neighbors.len(), 3);
        let b = s.backends[usize::from(svc.backends[2])].as_ref().unwrap();
        assert_eq!(b.egress, 1);
        let gw = s.neigh_slot(Ipv4::from(std::net::Ipv4Addr::new(198, 18, 1, 254))).unwrap();
        assert_eq!(b.neigh, gw);
        assert_eq!(s.backend(b.tag()).unwrap().addr, b.addr);
    }

    proptest::proptest! {
        /// The service map answers as a hash map does: every key entered
        /// is found with the value entered last, any other is not, however
        /// the keys crowd (few addresses and ports, so runs of slots form)
        /// and however often the table grew.
        #[test]
        fn the_service_map_answers_as_a_map_does(
            entered in proptest::collection::vec((0u32..64, 0u16..8, proptest::bool::ANY, proptest::num::u16::ANY), 0..700),
            asked in proptest::collection::vec((0u32..80, 0u16..10, proptest::bool::ANY), 0..300),
        ) {
            let proto = |tcp: bool| if tcp { 6 } else { 17 };
            let (mut m, mut m6) = (ServiceMap::<Ipv4>::default(), ServiceMap::<Ipv6>::default());
            let mut want = HashMap::new();
            for &(a, port, tcp, v) in &entered {
                m.insert((Ipv4(a), port, proto(tcp)), v);
                m6.insert((Ipv6(u128::from(a) << 100), port, proto(tcp)), v);
                want.insert((a, port, proto(tcp)), v);
            }
            proptest::prop_assert_eq!(m.len, want.len());
            let all = asked.iter().copied().chain(entered.iter().map(|&(a, p, t, _)| (a, p, t)));
            for (a, port, tcp) in all {
                let w = want.get(&(a, port, proto(tcp))).copied();
                proptest::prop_assert_eq!(m.get(&(Ipv4(a), port, proto(tcp))), w);
                proptest::prop_assert_eq!(m6.get(&(Ipv6(u128::from(a) << 100), port, proto(tcp))), w);
            }
        }

        /// The own-address filter never changes an answer: every address
        /// entered is found as what it was entered as last (`insert`) or
        /// first (`insert_new`), and any other is not, whatever collides.
        #[test]
        fn the_address_filter_never_changes_an_answer(
            entered in proptest::collection::vec((proptest::num::u32::ANY, proptest::bool::ANY), 0..600),
            asked in proptest::collection::vec(proptest::num::u32::ANY, 0..600),
        ) {
            let (mut m, mut m6) = (AddrMap::<Ipv4>::default(), AddrMap::<Ipv6>::default());
            let mut want = HashMap::new();
            for (i, &(a, replace)) in entered.iter().enumerate() {
                let k = AddrKind::Own(u8::try_from(i % 256).unwrap());
                let v6 = Ipv6(u128::from(a) << 64 | u128::from(a));
                if replace {
                    m.insert(Ipv4(a), k);
                    m6.insert(v6, k);
                    want.insert(a, k);
                } else {
                    m.insert_new(Ipv4(a), k);
                    m6.insert_new(v6, k);
                    want.entry(a).or_insert(k);
                }
            }
            for a in asked.iter().chain(entered.iter().map(|(a, _)| a)) {
                proptest::prop_assert_eq!(m.get(Ipv4(*a)), want.get(a).copied());
                proptest::prop_assert_eq!(m6.get(Ipv6(u128::from(*a) << 64 | u128::from(*a))), want.get(a).copied());
            }
        }
    }

    #[test]
    fn slots_are_stable_and_generations_change_on_reuse() {
        let mut c = cfg();
        let mut comp = Compiler::new(&c);
        let s1 = comp.compile(&c, &macs(), &Health::new()).unwrap();
        let svc1 = s1.services.iter().flatten().next().unwrap().clone();
        let tag_b = s1.backends[usize::from(svc1.backends[1])].as_ref().unwrap().tag();
        // Change a weight: same slots, same generations, new generation number.
        c.services[0].real_servers[0].weight = 5;
        let s2 = comp.compile(&c, &macs(), &Health::new()).unwrap();
        assert!(s2.generation > s1.generation);
        assert_eq!(s2.backend(tag_b).unwrap().weight, 2);
        // Remove the second server: its tag no longer resolves.
        let removed = c.services[0].real_servers.remove(1);
        let s3 = comp.compile(&c, &macs(), &Health::new()).unwrap();
        assert!(s3.backend(tag_b).is_none());
        // Re-add it: a new slot or generation, never the old tag.
        c.services[0].real_servers.push(removed);
        let s4 = comp.compile(&c, &macs(), &Health::new()).unwrap();
        assert!(s4.backend(tag_b).is_none());
    }

    #[test]
    fn freed_slots_wait_for_the_safe_generation() {
        let mut c = cfg();
        c.dataplane.max_real_servers = 3;
        let mut comp = Compiler::new(&c);
        let s1 = comp.compile(&c, &macs(), &Health::new()).unwrap();
        let svc = s1.services.iter().flatten().next().unwrap().clone();
        let old: Vec<u32> = svc.backends.iter().map(|&b| s1.backends[usize::from(b)].as_ref().unwrap().tag()).collect();
        let set = |c: &mut Config, base: u8| {
            for (i, r) in c.services[0].real_servers.iter_mut().enumerate() {
                r.address = format!("198.18.1.{}", base + u8::try_from(i).unwrap()).parse().unwrap();
            }
        };
        // Twice the slots the configuration may use: replacing every real
        // server at once works, while the old slots wait for the sweep.
        let mut c2 = c.clone();
        set(&mut c2, 50);
        let s2 = comp.compile(&c2, &macs(), &Health::new()).unwrap();
        assert!(old.iter().all(|&t| s2.backend(t).is_none()));
        assert_eq!(comp.waiting_generation(), Some(s2.generation), "the old slots wait for the workers");
        // A third set finds no reusable slot yet: refused, naming the cause,
        // and nothing changes (the running configuration keeps its slots).
        let mut c3 = c.clone();
        set(&mut c3, 90);
        let e = comp.compile(&c3, &macs(), &Health::new()).unwrap_err();
        assert!(matches!(e, CompileError::TooManyBackends(3)), "{e}");
        assert!(e.to_string().contains("sweep"), "{e}");
        let again = comp.compile(&c2, &macs(), &Health::new()).unwrap();
        let tags = |s: &Snapshot| -> Vec<u32> { s.backends.iter().flatten().map(BackendView::tag).collect() };
        assert_eq!(tags(&again), tags(&s2), "a refused compile changed no slot");
        // Once every worker swept past the removal, the slots are reused
        // (oldest freed first) with new generations.
        comp.set_safe_generation(s2.generation);
        assert_eq!(comp.waiting_generation(), None);
        let s3 = comp.compile(&c3, &macs(), &Health::new()).unwrap();
        let reused = s3.backends.iter().flatten().find(|b| b.addr == "198.18.1.90".parse::<IpAddr>().unwrap()).unwrap();
        assert_eq!(reused.slot, u16::try_from(old[0] & 0xffff).unwrap());
        assert_ne!(reused.tag(), old[0], "a reused slot has a new generation");
    }

    /// `vip_locals` says when a full-NAT local address is or was a VIP
    /// (forward keys may end in it): never for a plain full-NAT service;
    /// for a local address that is another service's VIP; and still after
    /// that VIP is gone (sessions to it may live on).
    #[test]
    fn vip_locals_marks_local_addresses_that_are_or_were_vips() {
        let mut c = cfg();
        c.services[0].forwarding = Forwarding::FullNat;
        c.services[0].local_addresses = vec!["198.18.1.200".parse().unwrap()];
        let mut comp = Compiler::new(&c);
        let s = comp.compile(&c, &macs(), &Health::new()).unwrap();
        assert!(!s.vip_locals);
        assert_eq!(s.locals::<Ipv4>().collect::<Vec<_>>(), [Ipv4::from("198.18.1.200".parse::<std::net::Ipv4Addr>().unwrap())]);
        let mut other = c.services[0].clone();
        other.vip = "198.18.1.200".parse().unwrap();
        other.forwarding = Forwarding::Nat;
        other.local_addresses.clear();
        c.services.push(other);
        assert!(comp.compile(&c, &macs(), &Health::new()).unwrap().vip_locals);
        c.services.pop();
        assert!(comp.compile(&c, &macs(), &Health::new()).unwrap().vip_locals, "sticky: sessions to the old VIP may live on");
    }

    #[test]
    fn removed_server_is_retired_when_the_service_keeps_sessions() {
        let mut c = cfg();
        c.services[0].on_remove = config::OnRemove::Keep;
        let mut comp = Compiler::new(&c);
        let s1 = comp.compile(&c, &macs(), &Health::new()).unwrap();
        let tag = s1.backends.iter().flatten().find(|b| b.addr == "198.18.1.12".parse::<IpAddr>().unwrap()).unwrap().tag();
        c.services[0].real_servers.remove(1);
        let s2 = comp.compile(&c, &macs(), &Health::new()).unwrap();
        let b = s2.backend(tag).expect("retired backend still resolves");
        assert!(b.retired);
        assert_eq!(b.effective_weight, 0);
        let svc = s2.services.iter().flatten().next().unwrap();
        assert_eq!(svc.backends.len(), 2, "a retired server is not scheduled");
        assert!(!comp.reap(|_| true));
        assert!(comp.reap(|_| false));
        let s3 = comp.compile(&c, &macs(), &Health::new()).unwrap();
        assert!(s3.backend(tag).is_none());
    }

    #[test]
    fn health_zeroes_effective_weight() {
        let c = cfg();
        let mut comp = Compiler::new(&c);
        let key = c.services[0].key();
        let mut h = Health::new();
        h.insert((key, "198.18.1.12".parse().unwrap(), 8080), BackendHealth { up: false, weight_pct: None });
        h.insert((key, "198.18.1.11".parse().unwrap(), 8080), BackendHealth { up: true, weight_pct: Some(50) });
        let s = comp.compile(&c, &macs(), &h).unwrap();
        let svc = s.services.iter().flatten().next().unwrap();
        // Down: 0; agent at 50% of weight 1: rounds up to 1.
        assert_eq!(svc.cands.iter().map(|c| c.weight).collect::<Vec<_>>(), [1, 0, 1]);
        assert_eq!(BackendHealth { up: true, weight_pct: Some(50) }.effective(10), 5);
        assert_eq!(BackendHealth { up: true, weight_pct: Some(0) }.effective(10), 0);
        assert_eq!(BackendHealth { up: false, weight_pct: Some(100) }.effective(10), 0);
    }
}
