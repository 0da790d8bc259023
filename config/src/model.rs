//! The typed configuration: what rvsd runs and what the control socket edits.
//!
//! Everything here is already parsed (addresses, prefixes, enums). The same
//! types travel over the control socket as JSON, so they derive serde with
//! the names an operator writes in the TOML file.
use crate::error::{ConfigError, ConfigErrors};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

pub use rvs_wire::MacAddr;

/// Most ports a configuration may have (the dataplane's per-port counters
/// are an array of this size).
pub const MAX_PORTS: usize = 16;

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Management: control socket, metrics.
    #[serde(default)]
    pub daemon: Daemon,
    /// Worker cores, buffers, session tables.
    #[serde(default)]
    pub dataplane: Dataplane,
    /// Network ports (DPDK devices) and their addresses.
    #[serde(default)]
    pub ports: Vec<Port>,
    /// Static neighbour entries (MAC addresses that are never resolved).
    #[serde(default)]
    pub neighbors: Vec<StaticNeighbor>,
    /// Static routes beyond each port's connected networks and gateway.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Virtual services and their real servers.
    #[serde(default)]
    pub services: Vec<Service>,
    /// An active/backup pair: VRRP election and session sync. Absent: a
    /// single balancer, always active.
    #[serde(default)]
    pub ha: Option<Ha>,
    /// Scale-out behind ECMP: the VIPs this balancer announces, as routes a
    /// routing daemon (BIRD, FRR) exports by BGP. Absent: nothing is
    /// announced.
    #[serde(default)]
    pub announce: Option<Announce>,
    /// What a service that does not set a field itself gets (ipvsadm's
    /// global `--set` timeouts).
    #[serde(default)]
    pub defaults: Defaults,
}

/// `[defaults]`: values for services that do not set their own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Session timeouts, field by field: a service's own
    /// `[services.timeouts]` field wins, then this, then the built-in
    /// (IPVS) value. `rvsadm --set` changes these (and every service's).
    #[serde(default)]
    pub timeouts: Timeouts,
}

/// `[announce]`: rvsd decides what is announced, a routing daemon speaks
/// BGP. Each announced VIP is a host route (/32, /128) in kernel routing
/// table `table`, through the kernel interface of `port`; BIRD's kernel
/// protocol learns the table and its BGP protocol exports it. The routes
/// go through the TAP device rvsd owns, so the kernel deletes them the
/// moment rvsd dies, however it dies: a dead balancer is never announced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announce {
    /// The port towards the routers; its `kernel_interface` carries the
    /// routes (and BGP).
    pub port: String,
    /// Kernel routing table of the announced routes, 1..=4294967295 but not
    /// 253-255 (default, main, local).
    #[serde(default = "default_announce_table")]
    pub table: u32,
    /// On shutdown: withdraw, keep forwarding this long (the routers move
    /// their flows away), then stop. Milliseconds.
    #[serde(default = "default_drain_ms")]
    pub drain_ms: u32,
}

fn default_announce_table() -> u32 {
    100
}
fn default_drain_ms() -> u32 {
    2000
}

/// The address family a VRRP instance speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HaFamily {
    /// VRRP over IPv4 (224.0.0.18).
    #[default]
    Ipv4,
    /// VRRP over IPv6 (ff02::12).
    Ipv6,
}

/// High availability: two (or more) equally configured balancers elect a
/// master with VRRP version 3; the master owns the virtual addresses and
/// streams its sessions to the others.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ha {
    /// The port VRRP adverts and sync datagrams use; it needs a
    /// `kernel_interface` (both travel through it as ordinary sockets).
    pub port: String,
    /// Virtual router id, 1..=255, the same on every node of the pair.
    pub vrid: u8,
    /// Priority, 1..=255 (255: the address owner, master at once); the
    /// highest wins.
    #[serde(default = "default_ha_priority")]
    pub priority: u8,
    /// Advertisement interval, milliseconds, a multiple of 10 (VRRP counts
    /// centiseconds). A backup takes over after about 3.5 of them.
    #[serde(default = "default_advert_interval")]
    pub advert_interval_ms: u32,
    /// VRRP family.
    #[serde(default)]
    pub family: HaFamily,
    /// Whether a higher-priority node takes over from a running master.
    #[serde(default = "default_true")]
    pub preempt: bool,
    /// How long a node waits after it starts (and, with sync, after its
    /// bulk sync) before it preempts, milliseconds.
    #[serde(default)]
    pub preempt_delay_ms: u32,
    /// Unicast peers (their addresses on `port`); empty: multicast.
    #[serde(default)]
    pub peers: Vec<IpAddr>,
    /// A file holding the shared key that authenticates adverts and sync
    /// messages (HMAC-SHA256, with anti-replay); none: no authentication.
    #[serde(default)]
    pub auth_key_file: Option<PathBuf>,
    /// Floating addresses beyond the VIPs and full-NAT local addresses:
    /// e.g. the gateway the real servers use in NAT mode. Answered and
    /// announced by the master only, each on the port whose network holds it.
    #[serde(default)]
    pub virtual_addresses: Vec<IpAddr>,
    /// The master answers and announces the virtual addresses from the VRRP
    /// virtual MAC (00:00:5e:00:01:VRID) and accepts frames to it, so the
    /// neighbours' caches never change on a failover (only the switches
    /// learn where the MAC went); false: from each port's own MAC.
    #[serde(default)]
    pub use_virtual_mac: bool,
    /// Gratuitous ARPs / unsolicited neighbour advertisements per address
    /// on becoming master, and again after `garp_repeat_delay_ms`.
    #[serde(default = "default_garp_count")]
    pub garp_count: u32,
    /// Delay of the second round of announcements, milliseconds.
    #[serde(default = "default_garp_repeat_delay")]
    pub garp_repeat_delay_ms: u32,
    /// An executable run on every transition with the new state
    /// (`MASTER`, `BACKUP`, `FAULT`) as its argument, as keepalived's
    /// `notify`.
    #[serde(default)]
    pub notify: Option<PathBuf>,
    /// FAULT (no mastership) while any port's link is down.
    #[serde(default = "default_true")]
    pub track_link: bool,
    /// FAULT while no service has a real server up.
    #[serde(default)]
    pub track_real_servers: bool,
    /// Stream sessions to the peers.
    #[serde(default = "default_true")]
    pub sync: bool,
    /// UDP port of the sync protocol.
    #[serde(default = "default_sync_port")]
    pub sync_port: u16,
    /// Sync id (default: the VRID); messages with another are ignored.
    #[serde(default)]
    pub sync_id: Option<u8>,
    /// A UDP flow is synced once the client has sent this many packets
    /// (IPVS's `sync_threshold`, 3): one-shot queries are not streamed.
    #[serde(default = "default_sync_udp_threshold")]
    pub sync_udp_threshold: u8,
}

fn default_sync_udp_threshold() -> u8 {
    3
}

fn default_true() -> bool {
    true
}
fn default_ha_priority() -> u8 {
    100
}
fn default_advert_interval() -> u32 {
    100
}
fn default_garp_count() -> u32 {
    5
}
fn default_garp_repeat_delay() -> u32 {
    5000
}
fn default_sync_port() -> u16 {
    8848
}

impl Ha {
    /// The sync id in use.
    pub fn sync_id(&self) -> u8 {
        self.sync_id.unwrap_or(self.vrid)
    }
}

/// Management-thread settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Daemon {
    /// Unix control socket path.
    pub control_socket: PathBuf,
    /// Socket file mode (octal in TOML as a string, e.g. "0600").
    #[serde(with = "octal_mode")]
    pub socket_mode: u32,
    /// Group owning the socket (name or number); none keeps root's.
    pub socket_group: Option<String>,
    /// Peer uids allowed to use the socket (root is always allowed).
    pub allowed_uids: Vec<u32>,
    /// Peer gids allowed to use the socket.
    pub allowed_gids: Vec<u32>,
    /// Prometheus listener; `""` (or "off") disables it.
    #[serde(with = "optional_addr")]
    pub metrics_listen: Option<SocketAddr>,
    /// Control connections one non-root uid may hold at once (root and
    /// rvsd's own uid are not limited by this, so a busy operator account
    /// never locks them out).
    pub control_max_per_uid: u32,
    /// Control connections of all non-root uids together.
    pub control_max_connections: u32,
    /// Seconds an idle control connection is kept.
    pub control_idle_timeout: u32,
    /// What rvsd logs: error, warn, info (the default) or debug.
    pub log_level: LogLevel,
}

/// `[daemon] log_level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings (refused requests, conflicts, faults).
    Warn,
    /// Also every change, transition and start/stop step.
    #[default]
    Info,
    /// Also details for debugging.
    Debug,
}

impl Default for Daemon {
    fn default() -> Self {
        Daemon {
            control_socket: PathBuf::from("/run/rvs/rvsd.sock"),
            socket_mode: 0o600,
            socket_group: None,
            allowed_uids: Vec::new(),
            allowed_gids: Vec::new(),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9580))),
            control_max_per_uid: 16,
            control_max_connections: 256,
            control_idle_timeout: 30,
            log_level: LogLevel::Info,
        }
    }
}

mod optional_addr {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::net::SocketAddr;
    pub fn serialize<S: Serializer>(v: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(a) => s.collect_str(a),
            None => s.serialize_str(""),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s == "off" {
            return Ok(None);
        }
        s.parse().map(Some).map_err(|_| serde::de::Error::custom(format!("{s:?} is not address:port (or \"\" to disable)")))
    }
}

mod octal_mode {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:04o}"))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let s = String::deserialize(d)?;
        u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not an octal file mode such as \"0600\"")))
    }
}

/// What a full session table does with a new flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenFull {
    /// Drop the new flow (counted as `session_table_full`).
    #[default]
    Refuse,
    /// Forward it without a session, by a Maglev hash of its 5-tuple
    /// (Katran's approach); full-NAT services refuse instead.
    Stateless,
}

/// What happens to a removed real server's sessions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRemove {
    /// End them: a client's next TCP segment is answered with a reset (as
    /// IPVS's `expire_nodest_conn=1` leads to), UDP is dropped.
    #[default]
    Reset,
    /// Keep forwarding them to the removed server until they end; the
    /// server only stops getting new connections.
    Keep,
}

/// What a SYN proxy does with an ACK that opens no session (no valid
/// cookie).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvalidAck {
    /// Answer it with a reset (a client whose cookie expired learns at once).
    #[default]
    Reset,
    /// Drop it silently (sends nothing to forged sources).
    Drop,
}

/// Dataplane settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dataplane {
    /// Number of worker lcores; each owns one RX and one TX queue per port.
    pub workers: u16,
    /// EAL `--lcores` map (e.g. "0@0,1@1,2@1"); default: main on lcore 0 and
    /// workers on lcores 1..=workers.
    pub lcores: Option<String>,
    /// When a worker finds no packet for this many microseconds in a row it
    /// sleeps that long between polls. 0 polls flat out (production); tests
    /// and shared machines set e.g. 200.
    pub idle_backoff_us: u32,
    /// Measure the time each packet spends in rvsd (from the burst it came
    /// in to the send that took it out) into a per-worker histogram, shown
    /// in the statistics as p50/p99/p99.9. Costs two TSC reads per burst;
    /// off by default, for benchmarks.
    #[serde(default)]
    pub latency_histogram: bool,
    /// Mbufs in the pool (shared by all ports and workers).
    pub mbufs: u32,
    /// Bytes of buffer per mbuf, the 128-byte headroom included (DPDK's
    /// default 2176 holds a 1518-byte frame; frames that do not fit in one
    /// mbuf arrive chained, which rvs drops as `multi_segment`).
    pub mbuf_size: u16,
    /// RX and TX descriptors per queue.
    pub descriptors: u16,
    /// IPv4 sessions per worker (preallocated).
    pub sessions_per_worker: u32,
    /// IPv6 sessions per worker (preallocated).
    pub sessions_v6_per_worker: u32,
    /// Default behaviour of a full session table.
    pub when_full: WhenFull,
    /// Use hugepages (false runs EAL with `--no-huge`).
    pub hugepages: bool,
    /// Extra EAL arguments, appended last.
    pub eal_args: Vec<String>,
    /// TTL / hop limit of tunnel outer headers.
    pub tunnel_ttl: u8,
    /// Maximum number of real servers (sizes per-core counter arrays).
    pub max_real_servers: u32,
    /// Maximum number of virtual services.
    pub max_services: u32,
    /// First port of the full-NAT local port range (split among workers).
    pub fullnat_port_min: u16,
    /// Last port of the full-NAT local port range.
    pub fullnat_port_max: u16,
    /// Slots of each hand-over ring between two workers (a power of two):
    /// packets that arrive on one worker's queue but belong to a session of
    /// another wait here. Unused with one worker.
    pub handoff_ring: u32,
    /// Gratuitous ARPs / unsolicited neighbour advertisements sent for each
    /// address at start and when a VIP is added (0: none), so neighbours
    /// that knew an old MAC (a restart, a takeover) update at once.
    pub announce_count: u32,
    /// Milliseconds between those announcements.
    pub announce_interval_ms: u32,
    /// Memory the configuration may need (session tables, templates, mbuf
    /// pool, counters, Maglev tables), in MiB; a configuration estimated
    /// above it is refused before anything is allocated. 0: 80% of the
    /// machine's memory.
    pub memory_budget_mb: u32,
}

impl Default for Dataplane {
    fn default() -> Self {
        Dataplane {
            workers: 1,
            lcores: None,
            idle_backoff_us: 0,
            latency_histogram: false,
            mbufs: 16383,
            mbuf_size: 2176,
            descriptors: 1024,
            sessions_per_worker: 1 << 20,
            sessions_v6_per_worker: 1 << 16,
            when_full: WhenFull::Refuse,
            hugepages: true,
            eal_args: Vec::new(),
            tunnel_ttl: 64,
            max_real_servers: 4096,
            max_services: 1024,
            fullnat_port_min: 1024,
            fullnat_port_max: 32767,
            handoff_ring: 2048,
            announce_count: 3,
            announce_interval_ms: 1000,
            memory_budget_mb: 0,
        }
    }
}

/// An address with its prefix length, written "198.18.0.1/24".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InterfaceAddr {
    /// The address.
    pub addr: IpAddr,
    /// Prefix length of the connected network.
    pub prefix: u8,
}

impl InterfaceAddr {
    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let m = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix.min(32))) };
                IpAddr::V4((u32::from(a) & m).into())
            }
            IpAddr::V6(a) => {
                let m = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix.min(128))) };
                IpAddr::V6((u128::from(a) & m).into())
            }
        }
    }

    /// True when `ip` is on this connected network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        prefix_contains(self.addr, self.prefix, ip)
    }
}

/// True when `ip` lies in `net/prefix` (same family).
pub fn prefix_contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
            u32::from(n) & m == u32::from(a) & m
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix.min(128))) };
            u128::from(n) & m == u128::from(a) & m
        }
        _ => false,
    }
}

impl fmt::Display for InterfaceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why a string is not an `address/prefix`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InterfaceAddrError {
    /// No `/`.
    #[error("{0:?} is not address/prefix (e.g. \"198.18.0.1/24\")")]
    NoPrefix(String),
    /// The part before `/`.
    #[error("{0:?} is not an IP address")]
    Address(String),
    /// The part after `/`, with the family's maximum.
    #[error("prefix length {0:?} is not 0..={1}")]
    PrefixLength(String, u8),
}

impl FromStr for InterfaceAddr {
    type Err = InterfaceAddrError;
    fn from_str(s: &str) -> Result<Self, InterfaceAddrError> {
        let (a, p) = s.split_once('/').ok_or_else(|| InterfaceAddrError::NoPrefix(s.to_string()))?;
        let addr: IpAddr = a.parse().map_err(|_| InterfaceAddrError::Address(a.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = p.parse().ok().filter(|p| *p <= max).ok_or_else(|| InterfaceAddrError::PrefixLength(p.to_string(), max))?;
        Ok(InterfaceAddr { addr, prefix })
    }
}

macro_rules! serde_via_string {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_via_string!(InterfaceAddr);

/// Where something was in the file (a line number), for messages only: it
/// is never part of a comparison, so a file whose lines moved (a comment
/// added above `[[ports]]`) still describes the same ports.
#[derive(Clone, Copy, Debug, Default)]
pub struct SourceLine(pub Option<usize>);

impl PartialEq for SourceLine {
    fn eq(&self, _: &SourceLine) -> bool {
        true
    }
}

/// A network port: one DPDK device and the addresses rvs owns on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// Port name used in logs, statistics and references.
    pub name: String,
    /// DPDK device: a PCI address ("0000:03:00.0") or a vdev with its
    /// arguments ("net_tap0,iface=rvs0").
    pub device: String,
    /// The balancer's own addresses on this port, with prefix lengths.
    #[serde(default)]
    pub addresses: Vec<InterfaceAddr>,
    /// Override the port's MAC address.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// IP MTU of the link.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// IPv4 default gateway reached through this port.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// IPv6 default gateway reached through this port.
    #[serde(default)]
    pub gateway6: Option<IpAddr>,
    /// Name of a kernel interface (TAP) that carries the balancer's own
    /// traffic (health checks, SSH, ...) between this port and the kernel.
    #[serde(default)]
    pub kernel_interface: Option<String>,
    /// Line of the `device` key in the file, for error messages.
    #[serde(skip)]
    pub device_line: SourceLine,
}

fn default_mtu() -> u16 {
    1500
}

impl Port {
    /// True for a PCI address (domain:bus:dev.fn or bus:dev.fn).
    pub fn is_pci(&self) -> bool {
        let d = self.device.split(',').next().unwrap_or("");
        let parts: Vec<&str> = d.split(':').collect();
        (parts.len() == 2 || parts.len() == 3)
            && d.contains('.')
            && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit() || c == '.'))
    }
}

/// A neighbour whose MAC is configured, never resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticNeighbor {
    /// The neighbour's IP address.
    pub address: IpAddr,
    /// Its MAC address.
    pub mac: MacAddr,
    /// The port it is on.
    pub port: String,
}

/// A static route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination prefix.
    pub prefix: InterfaceAddr,
    /// Next hop (on a connected network of some port).
    pub via: IpAddr,
}

/// L4 protocol of a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (`ipvsadm -t`).
    Tcp,
    /// UDP (`ipvsadm -u`).
    Udp,
}

impl Protocol {
    /// IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        })
    }
}

/// How packets reach a real server (LVS's forwarding methods plus full NAT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forwarding {
    /// Destination NAT; real servers route replies through rvs (`-m`).
    #[serde(alias = "masq", alias = "masquerading")]
    Nat,
    /// Direct routing: only the MAC changes; replies bypass rvs (`-g`).
    #[serde(alias = "route", alias = "gate", alias = "direct")]
    Dr,
    /// IP-in-IP tunnel; replies bypass rvs (`-i`).
    #[serde(alias = "tun", alias = "ipip")]
    Tunnel,
    /// Destination plus source NAT to a local address (DPVS's FNAT).
    #[serde(alias = "fnat")]
    FullNat,
}

impl Forwarding {
    /// ipvsadm's "Forward" column word.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Forwarding::Nat => "Masq",
            Forwarding::Dr => "Route",
            Forwarding::Tunnel => "Tunnel",
            Forwarding::FullNat => "FullNat",
        }
    }
}

impl fmt::Display for Forwarding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Forwarding::Nat => "nat",
            Forwarding::Dr => "dr",
            Forwarding::Tunnel => "tunnel",
            Forwarding::FullNat => "fullnat",
        })
    }
}

/// Scheduler, by its ipvsadm name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerKind {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connections.
    Lc,
    /// Weighted least connections (ipvsadm's default).
    Wlc,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Source hashing.
    Sh,
    /// Destination hashing.
    Dh,
    /// Maglev hashing.
    Mh,
}

impl SchedulerKind {
    /// Every scheduler.
    pub const ALL: [SchedulerKind; 9] = [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Sh,
        SchedulerKind::Dh,
        SchedulerKind::Mh,
    ];
    /// The ipvsadm name.
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Dh => "dh",
            SchedulerKind::Mh => "mh",
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scheduler name rvs does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown scheduler {0:?} (one of rr, wrr, lc, wlc, sed, nq, sh, dh, mh)")]
pub struct UnknownScheduler(pub String);

impl FromStr for SchedulerKind {
    type Err = UnknownScheduler;
    fn from_str(s: &str) -> Result<Self, UnknownScheduler> {
        SchedulerKind::ALL.iter().copied().find(|k| k.name() == s).ok_or_else(|| UnknownScheduler(s.to_string()))
    }
}

/// Client persistence (`ipvsadm -p timeout -M netmask`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persistence {
    /// Seconds a client keeps its real server after its last connection ends.
    pub timeout: u32,
    /// Prefix length grouping clients (`-M`): 24 keeps a whole IPv4 /24 on
    /// one real server. Absent: the full address (one client).
    #[serde(default)]
    pub netmask: Option<u8>,
}

impl Persistence {
    /// The effective prefix length for a service of the given family.
    pub fn prefix(&self, v6: bool) -> u8 {
        let max = if v6 { 128 } else { 32 };
        self.netmask.unwrap_or(max).min(max)
    }
}

/// Session timeouts in seconds (IPVS defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Established TCP.
    pub tcp_established: u32,
    /// Half-open TCP (SYN seen).
    pub tcp_syn: u32,
    /// Half-open TCP when the session table is over 3/4 full.
    pub tcp_syn_under_pressure: u32,
    /// Closing TCP (FIN seen).
    pub tcp_fin: u32,
    /// Closed TCP (RST, or FIN both ways and the last ACK).
    pub tcp_close: u32,
    /// UDP.
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { tcp_established: 900, tcp_syn: 120, tcp_syn_under_pressure: 3, tcp_fin: 120, tcp_close: 10, udp: 300 }
    }
}

impl Timeouts {
    /// Every field by its TOML name.
    pub fn fields_mut(&mut self) -> [(&'static str, &mut u32); 6] {
        [
            ("tcp_established", &mut self.tcp_established),
            ("tcp_syn", &mut self.tcp_syn),
            ("tcp_syn_under_pressure", &mut self.tcp_syn_under_pressure),
            ("tcp_fin", &mut self.tcp_fin),
            ("tcp_close", &mut self.tcp_close),
            ("udp", &mut self.udp),
        ]
    }

    /// Every field by its TOML name, by value.
    pub fn fields(mut self) -> [(&'static str, u32); 6] {
        self.fields_mut().map(|(k, v)| (k, *v))
    }
}

/// A real server behind a virtual service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealServer {
    /// Its address.
    pub address: IpAddr,
    /// Its port (defaults to the service's port).
    #[serde(default)]
    pub port: u16,
    /// Scheduling weight; 0 drains (no new connections).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Forwarding method; defaults to the service's.
    #[serde(default)]
    pub forwarding: Option<Forwarding>,
    /// Health checks of this server alone (keepalived's checkers inside a
    /// `real_server` block): when there are any, they replace the
    /// service's for it. Every one must pass for the server to be up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheck>,
}

impl RealServer {
    /// A real server at `address` with the defaults (the service's port
    /// and method, weight 1, the service's checks).
    pub fn new(address: IpAddr) -> Self {
        RealServer { address, port: 0, weight: default_weight(), forwarding: None, health_checks: Vec::new() }
    }
}

fn default_weight() -> u32 {
    1
}

/// What a health check does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// A TCP connection is accepted.
    #[default]
    Tcp,
    /// An HTTP GET answers with an expected status (and body).
    Http,
    /// The same over TLS (the server's certificate is not verified, as
    /// keepalived's SSL_GET by default).
    Https,
    /// A string is sent and an expected string comes back (Piranha's
    /// send/expect).
    SendExpect,
    /// An external command exits with status 0 (keepalived's MISC_CHECK).
    Command,
    /// A UDP datagram (`send`) gets a reply (containing `expect`, when
    /// given).
    Udp,
    /// A DNS query for `dns_name` and `dns_type` gets a NOERROR answer
    /// with such a record (keepalived's DNS_CHECK).
    Dns,
    /// The server greets with an SMTP `220` banner (keepalived's
    /// SMTP_CHECK); rvs then says QUIT.
    Smtp,
}

/// DNS record types a DNS check may ask for, by name.
pub const DNS_TYPES: [(&str, u16); 7] = [("A", 1), ("NS", 2), ("CNAME", 5), ("SOA", 6), ("MX", 15), ("TXT", 16), ("AAAA", 28)];

fn default_dns_type() -> String {
    "A".into()
}

/// What a failed health check does to a real server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDown {
    /// Weight 0 until it recovers: existing sessions continue (ldirectord's
    /// `quiescent = yes`).
    #[default]
    Quiesce,
    /// Removed from the service until it recovers: its sessions end per
    /// the service's `on_remove` (ldirectord's `quiescent = no`).
    Remove,
}

fn default_interval() -> f64 {
    2.0
}
fn default_check_timeout() -> f64 {
    1.0
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}
fn default_path() -> String {
    "/".into()
}
fn default_status() -> Vec<u16> {
    vec![200]
}

/// A health check of every real server of a service (or of one).
///
/// With several checks on one server, all must pass; the settings that
/// belong to the server rather than to one check (`alpha`, `omega`,
/// `on_down`, `notify_up`, `notify_down`) are the first check's, and a
/// later check setting them is refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// What the check does.
    #[serde(default)]
    pub kind: CheckKind,
    /// Seconds between checks of one real server.
    #[serde(default = "default_interval")]
    pub interval: f64,
    /// Seconds a check may take.
    #[serde(default = "default_check_timeout")]
    pub timeout: f64,
    /// Consecutive successes that bring a down server back.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures that take an up server down.
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// Port to check (default: the real server's).
    #[serde(default)]
    pub port: Option<u16>,
    /// Source address of the check's connections (an address of rvs).
    #[serde(default)]
    pub source: Option<IpAddr>,
    /// HTTP(S): the path to GET.
    #[serde(default = "default_path")]
    pub path: String,
    /// HTTP(S): the Host header (default: the real server's address).
    #[serde(default)]
    pub host: Option<String>,
    /// HTTP(S): acceptable status codes.
    #[serde(default = "default_status")]
    pub expect_status: Vec<u16>,
    /// HTTP(S): a string the body must contain.
    #[serde(default)]
    pub expect_body: Option<String>,
    /// send_expect: what to send.
    #[serde(default)]
    pub send: Option<String>,
    /// send_expect: what must come back (a substring). The answer is read
    /// until it contains this or has more line ends than this has (so a
    /// wrong one-line answer fails at once), the peer closes, or the
    /// timeout.
    #[serde(default)]
    pub expect: Option<String>,
    /// command: program and arguments; `{address}` and `{port}` are
    /// replaced, and RVS_ADDRESS / RVS_PORT are set.
    #[serde(default)]
    pub command: Vec<String>,
    /// What a failure does.
    #[serde(default)]
    pub on_down: OnDown,
    /// After a failed check, the next one this many seconds later instead
    /// of after `interval` (keepalived's `delay_before_retry`): a failing
    /// server reaches `fall` sooner, or later, than the interval says.
    #[serde(default)]
    pub delay_before_retry: Option<f64>,
    /// dns: the name to ask for.
    #[serde(default)]
    pub dns_name: Option<String>,
    /// dns: the record type (A, AAAA, NS, CNAME, SOA, MX, TXT).
    #[serde(default = "default_dns_type")]
    pub dns_type: String,
    /// A real server starts down until its first good check (keepalived's
    /// `alpha`); otherwise it starts up and `fall` failures take it down.
    #[serde(default)]
    pub alpha: bool,
    /// Run when a real server comes up (keepalived's `notify_up`):
    /// program and arguments; `{address}`, `{port}`, `{service}` and
    /// `{state}` are replaced, and RVS_ADDRESS, RVS_PORT, RVS_SERVICE and
    /// RVS_STATE set. Not waited for.
    #[serde(default)]
    pub notify_up: Vec<String>,
    /// Run when a real server goes down (keepalived's `notify_down`), as
    /// `notify_up`.
    #[serde(default)]
    pub notify_down: Vec<String>,
    /// keepalived's `omega`: `notify_down` also runs for an up server that
    /// leaves (removed by a reload or rvsadm, or rvsd stopping), and
    /// `quorum_down` for a service that had its quorum and leaves.
    #[serde(default)]
    pub omega: bool,
}

// The numbers of a loaded configuration are validated finite (intervals,
// timeouts and delays within ranges), so equality is an equivalence.
impl Eq for HealthCheck {}

impl HealthCheck {
    /// Whether it sets one of the server-level settings (see the type).
    fn sets_server_settings(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.alpha {
            out.push("alpha");
        }
        if self.omega {
            out.push("omega");
        }
        if self.on_down != OnDown::Quiesce {
            out.push("on_down");
        }
        if !self.notify_up.is_empty() {
            out.push("notify_up");
        }
        if !self.notify_down.is_empty() {
            out.push("notify_down");
        }
        out
    }
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            kind: CheckKind::Tcp,
            interval: default_interval(),
            timeout: default_check_timeout(),
            rise: default_rise(),
            fall: default_fall(),
            port: None,
            source: None,
            path: default_path(),
            host: None,
            expect_status: default_status(),
            expect_body: None,
            send: None,
            expect: None,
            command: Vec::new(),
            on_down: OnDown::Quiesce,
            delay_before_retry: None,
            dns_name: None,
            dns_type: default_dns_type(),
            alpha: false,
            notify_up: Vec::new(),
            notify_down: Vec::new(),
            omega: false,
        }
    }
}

fn default_feedback_interval() -> f64 {
    5.0
}

/// Dynamic weights from the real servers' own report of their load (an
/// agent on each server answers a TCP connection with one line, as
/// HAProxy's agent-check): `NN%` scales the configured weight, `drain` and
/// `down`/`fail`/`maint`/`stopped` set it to 0, `up`/`ready` restore it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    /// The agent's TCP port on each real server.
    pub port: u16,
    /// Seconds between queries.
    #[serde(default = "default_feedback_interval")]
    pub interval: f64,
    /// Seconds a query may take.
    #[serde(default = "default_check_timeout")]
    pub timeout: f64,
}

/// The identity of a virtual service, as ipvsadm prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceKey {
    /// Protocol.
    pub protocol: Protocol,
    /// Virtual IP.
    pub vip: IpAddr,
    /// Virtual port.
    pub port: u16,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.vip {
            IpAddr::V4(a) => write!(f, "{} {}:{}", self.protocol, a, self.port),
            IpAddr::V6(a) => write!(f, "{} [{}]:{}", self.protocol, a, self.port),
        }
    }
}

/// A virtual service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Optional name for logs and metrics.
    #[serde(default)]
    pub name: Option<String>,
    /// Virtual IP address.
    pub vip: IpAddr,
    /// Virtual port.
    pub port: u16,
    /// L4 protocol.
    pub protocol: Protocol,
    /// Scheduler.
    #[serde(default = "default_scheduler")]
    pub scheduler: SchedulerKind,
    /// Maglev lookup table size (a prime).
    #[serde(default = "default_mh_table_size")]
    pub mh_table_size: u32,
    /// sh/dh/mh: when the chosen real server is unavailable, use the next one.
    #[serde(default)]
    pub hash_fallback: bool,
    /// sh/mh: hash the source port as well as the source address.
    #[serde(default)]
    pub hash_port: bool,
    /// Default forwarding method of its real servers.
    #[serde(default = "default_forwarding")]
    pub forwarding: Forwarding,
    /// Client persistence.
    #[serde(default)]
    pub persistence: Option<Persistence>,
    /// Session timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Full NAT: source addresses for the server side (default: the
    /// address of the port that reaches the real server).
    #[serde(default)]
    pub local_addresses: Vec<IpAddr>,
    /// Overrides `dataplane.when_full` for this service.
    #[serde(default)]
    pub when_full: Option<WhenFull>,
    /// Create sessions for TCP packets other than SYN (like IPVS's
    /// `sloppy_tcp`); useful after a failover.
    #[serde(default)]
    pub sloppy_tcp: bool,
    /// Cluster mode, for N balancers behind ECMP: a TCP segment of no
    /// session (a flow a router moved here from another balancer) is
    /// scheduled by the same consistent hash and opens a session, as
    /// Katran does, instead of being dropped as `tcp_no_session`. Needs
    /// `scheduler = "mh"` and DR or tunnel forwarding.
    #[serde(default)]
    pub cluster: bool,
    /// Client prefixes that may open flows (IPv4 and IPv6). Not empty: a
    /// source no prefix of either list covers is refused. The most
    /// specific prefix of `allow_sources` and `deny_sources` decides.
    #[serde(default)]
    pub allow_sources: Vec<InterfaceAddr>,
    /// Client prefixes that may not open flows.
    #[serde(default)]
    pub deny_sources: Vec<InterfaceAddr>,
    /// SYN proxy (NAT and full NAT): rvs answers each SYN itself with a SYN
    /// cookie and opens the real server's connection only for a client that
    /// completes the handshake, so spoofed SYN floods reach no real server
    /// and fill no table.
    #[serde(default)]
    pub synproxy: bool,
    /// With `synproxy`: what an ACK without a valid cookie gets.
    #[serde(default)]
    pub synproxy_invalid_ack: InvalidAck,
    /// What happens to the sessions of a real server removed from it.
    #[serde(default)]
    pub on_remove: OnRemove,
    /// Health check of its real servers.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// More checks of its real servers, after `health_check`: all must
    /// pass (keepalived's several checkers per real server). A real
    /// server with checks of its own runs those instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheck>,
    /// Dynamic weights reported by the real servers.
    #[serde(default)]
    pub feedback: Option<Feedback>,
    /// The "sorry server": takes new connections while every real server
    /// is down.
    #[serde(default)]
    pub fallback: Option<RealServer>,
    /// Quorum (keepalived's `quorum`): the service has it while the
    /// weights of its up real servers add up to at least this; 0: none.
    /// Losing and regaining it runs `quorum_down` / `quorum_up`.
    #[serde(default)]
    pub quorum: u32,
    /// Hysteresis around the quorum (keepalived's): lost below `quorum -
    /// hysteresis`, regained at `quorum + hysteresis`.
    #[serde(default)]
    pub hysteresis: u32,
    /// Run when the service regains its quorum: program and arguments
    /// (`{service}`, `{state}` replaced; RVS_SERVICE, RVS_STATE set).
    #[serde(default)]
    pub quorum_up: Vec<String>,
    /// Run when the service loses its quorum, as `quorum_up`.
    #[serde(default)]
    pub quorum_down: Vec<String>,
    /// Real servers.
    #[serde(default)]
    pub real_servers: Vec<RealServer>,
}

fn default_scheduler() -> SchedulerKind {
    SchedulerKind::Wlc
}
fn default_mh_table_size() -> u32 {
    65537
}
fn default_forwarding() -> Forwarding {
    Forwarding::Nat
}

impl Service {
    /// A service with defaults for everything but its identity.
    pub fn new(protocol: Protocol, vip: IpAddr, port: u16) -> Self {
        Service {
            name: None,
            vip,
            port,
            protocol,
            scheduler: default_scheduler(),
            mh_table_size: default_mh_table_size(),
            hash_fallback: false,
            hash_port: false,
            forwarding: default_forwarding(),
            persistence: None,
            timeouts: Timeouts::default(),
            local_addresses: Vec::new(),
            when_full: None,
            sloppy_tcp: false,
            cluster: false,
            allow_sources: Vec::new(),
            deny_sources: Vec::new(),
            synproxy: false,
            synproxy_invalid_ack: InvalidAck::Reset,
            on_remove: OnRemove::Reset,
            health_check: None,
            health_checks: Vec::new(),
            feedback: None,
            fallback: None,
            quorum: 0,
            hysteresis: 0,
            quorum_up: Vec::new(),
            quorum_down: Vec::new(),
            real_servers: Vec::new(),
        }
    }

    /// The service's identity.
    pub fn key(&self) -> ServiceKey {
        ServiceKey { protocol: self.protocol, vip: self.vip, port: self.port }
    }

    /// The forwarding method a real server uses.
    pub fn forwarding_of(&self, rs: &RealServer) -> Forwarding {
        rs.forwarding.unwrap_or(self.forwarding)
    }

    /// The real server's effective port (0 means "the service's").
    pub fn port_of(&self, rs: &RealServer) -> u16 {
        if rs.port == 0 {
            self.port
        } else {
            rs.port
        }
    }

    /// The service's own checks: `health_check`, then `health_checks`.
    pub fn service_checks(&self) -> impl Iterator<Item = &HealthCheck> {
        self.health_check.iter().chain(&self.health_checks)
    }

    /// The checks of real server `rs`, all of which must pass: its own
    /// when it has any, the service's otherwise. Empty: not checked.
    pub fn checks_of<'a>(&'a self, rs: &'a RealServer) -> Vec<&'a HealthCheck> {
        if rs.health_checks.is_empty() {
            self.service_checks().collect()
        } else {
            rs.health_checks.iter().collect()
        }
    }

    /// The check that carries the server-level settings of `rs` (`alpha`,
    /// `omega`, `on_down`, the notify hooks): its first.
    pub fn main_check_of<'a>(&'a self, rs: &'a RealServer) -> Option<&'a HealthCheck> {
        rs.health_checks.first().or(self.service_checks().next())
    }

    /// Whether some real server of it is health-checked.
    pub fn is_checked(&self) -> bool {
        self.service_checks().next().is_some() || self.real_servers.iter().any(|r| !r.health_checks.is_empty())
    }
}

/// True when `n` is prime (for Maglev table sizes).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d * d <= u64::from(n) {
        if u64::from(n) % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

/// True for an address a VIP or a real server can have: unicast, not
/// unspecified, loopback, multicast or broadcast; for IPv4 not in 0/8 or
/// the reserved 240/4; for IPv6 not IPv4-mapped.
pub fn usable_unicast(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            !(v.is_unspecified() || v.is_loopback() || v.is_multicast() || v.is_broadcast() || o[0] == 0 || o[0] >= 240)
        }
        IpAddr::V6(v) => !(v.is_unspecified() || v.is_loopback() || v.is_multicast() || v.to_ipv4_mapped().is_some()),
    }
}

/// How strict [`Config::validate`] is about incomplete services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strictness {
    /// A configuration file: every service needs real servers.
    File,
    /// Live changes through the control socket: a service may be empty for a
    /// while (as with `ipvsadm -A` before `-a`); its packets are dropped as
    /// `no_backend`.
    Live,
}

impl Config {
    /// Checks everything that involves more than one field. Errors carry the
    /// field path; the file loader adds lines.
    ///
    /// One pass per section ([`Checks`]), each adding what it finds, so a
    /// refusal lists every problem at once.
    pub fn validate(&self, strictness: Strictness) -> Result<(), ConfigErrors> {
        let mut c = Checks { cfg: self, errs: Vec::new() };
        c.daemon();
        c.dataplane();
        let own = c.ports();
        c.neighbors_and_routes();
        c.services(&own, strictness);
        c.ha(&own);
        c.announce();
        c.timeouts("defaults.timeouts", self.defaults.timeouts);
        if c.errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(c.errs))
        }
    }

    /// Why the kernel could not reach some real server of `s` (health
    /// checks and agents are ordinary sockets: they leave through the
    /// `kernel_interface` of the port that reaches the server), if so.
    fn unreachable_by_kernel(&self, s: &Service) -> Option<String> {
        for r in &s.real_servers {
            if let Some((p, _)) = self.egress_for(r.address) {
                let port = self.ports.get(p)?;
                if port.kernel_interface.is_none() {
                    return Some(format!(
                        "ports[{p}] ({:?}), which reaches real server {}, has no kernel_interface; add one or remove the check",
                        port.name, r.address
                    ));
                }
            }
        }
        None
    }

    /// The index of the port whose connected network holds `ip`.
    pub fn connected_port(&self, ip: IpAddr) -> Option<usize> {
        self.ports.iter().position(|p| p.addresses.iter().any(|a| a.contains(ip)))
    }

    /// Egress decision for `ip`: (port index, next hop). Connected networks
    /// first, then the longest matching static route, then a gateway.
    pub fn egress_for(&self, ip: IpAddr) -> Option<(usize, IpAddr)> {
        if let Some(p) = self.connected_port(ip) {
            return Some((p, ip));
        }
        let best = self.routes.iter().filter(|r| r.prefix.contains(ip)).max_by_key(|r| r.prefix.prefix);
        if let Some(r) = best {
            return self.connected_port(r.via).map(|p| (p, r.via));
        }
        self.ports.iter().enumerate().find_map(|(i, p)| {
            let gw = if ip.is_ipv4() { p.gateway } else { p.gateway6 };
            gw.map(|g| (i, g))
        })
    }

    /// Finds a service by its identity.
    pub fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.services.iter().find(|s| s.key() == *key)
    }

    /// Finds a service by its identity, mutably.
    pub fn service_mut(&mut self, key: &ServiceKey) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| s.key() == *key)
    }
}

/// The checks of [`Config::validate`], one method per section; errors
/// accumulate.
struct Checks<'a> {
    cfg: &'a Config,
    errs: Vec<ConfigError>,
}

impl Checks<'_> {
    fn err(&mut self, field: impl Into<String>, msg: impl Into<String>) {
        self.errs.push(ConfigError::new(field.into(), msg.into()));
    }

    /// Every timeout 1 s to a week, each named under `prefix`.
    fn timeouts(&mut self, prefix: &str, t: Timeouts) {
        for (k, v) in t.fields() {
            self.in_range(&format!("{prefix}.{k}"), v, 1..=7 * 86400, " seconds");
        }
    }

    /// Refuses `v` outside `range`, naming `field`.
    fn in_range<T: PartialOrd + fmt::Display>(&mut self, field: &str, v: T, range: std::ops::RangeInclusive<T>, unit: &str) {
        if !range.contains(&v) {
            let msg = format!("{v} is not {}..={}{unit}", range.start(), range.end());
            self.err(field, msg);
        }
    }

    /// The `[announce]` section: a port with a kernel interface, a table
    /// of its own.
    fn announce(&mut self) {
        let Some(a) = &self.cfg.announce else { return };
        match self.cfg.ports.iter().find(|p| p.name == a.port) {
            None => self.err("announce.port", format!("no port named {:?}", a.port)),
            Some(p) if p.kernel_interface.is_none() => {
                self.err("announce.port", format!("port {:?} has no kernel_interface: the announced routes and BGP go through it", a.port))
            }
            Some(_) => {}
        }
        if a.table == 0 || (253..=255).contains(&a.table) {
            self.err("announce.table", format!("{} is not a table of its own (not 0, 253 default, 254 main, 255 local)", a.table));
        }
        self.in_range("announce.drain_ms", a.drain_ms, 0..=600_000, "");
        if self.cfg.ha.is_some() {
            self.err(
                "announce",
                "cannot be combined with [ha] yet: a backup would announce VIPs it does not forward (run the boxes of a cluster without [ha])",
            );
        }
    }

    /// The `[ha]` section: a port with a kernel interface, VRRP's ranges,
    /// floating addresses on a port's network, peers that are not us.
    fn ha(&mut self, own: &HashSet<IpAddr>) {
        let Some(h) = &self.cfg.ha else { return };
        match self.cfg.ports.iter().position(|p| p.name == h.port) {
            None => self.err("ha.port", format!("no port named {:?}", h.port)),
            Some(i) if self.cfg.ports[i].kernel_interface.is_none() => {
                self.err("ha.port", format!("port {:?} has no kernel_interface: VRRP adverts and sync datagrams travel through it", h.port))
            }
            Some(_) => {}
        }
        if h.vrid == 0 {
            self.err("ha.vrid", "0 is not 1..=255");
        }
        if h.priority == 0 {
            self.err("ha.priority", "0 is not 1..=255 (0 is what a stopping master sends)");
        }
        if h.advert_interval_ms % 10 != 0 || !(10..=40_950).contains(&h.advert_interval_ms) {
            self.err(
                "ha.advert_interval_ms",
                format!("{} is not a multiple of 10 in 10..=40950 (VRRP counts centiseconds)", h.advert_interval_ms),
            );
        }
        self.in_range("ha.garp_count", h.garp_count, 0..=100, "");
        self.in_range("ha.garp_repeat_delay_ms", h.garp_repeat_delay_ms, 0..=600_000, "");
        self.in_range("ha.preempt_delay_ms", h.preempt_delay_ms, 0..=3_600_000, "");
        let v6 = h.family == HaFamily::Ipv6;
        for (i, p) in h.peers.iter().enumerate() {
            if own.contains(p) {
                self.err(format!("ha.peers[{i}]"), format!("{p} is one of this balancer's own addresses"));
            } else if v6 {
                self.err(
                    format!("ha.peers[{i}]"),
                    format!("{p}: unicast peers are IPv4 only; VRRP over IPv6 speaks to ff02::12 from the link-local address"),
                );
            } else if p.is_ipv6() {
                self.err(format!("ha.peers[{i}]"), format!("{p} is not of the VRRP family ({:?})", h.family));
            }
        }
        for (i, a) in h.virtual_addresses.iter().enumerate() {
            if own.contains(a) {
                self.err(
                    format!("ha.virtual_addresses[{i}]"),
                    format!("{a} is a port address: floating addresses are owned by the master only"),
                );
            } else if !self.cfg.ports.iter().any(|p| p.addresses.iter().any(|n| n.contains(*a))) {
                self.err(format!("ha.virtual_addresses[{i}]"), format!("{a} is not on a network of any port"));
            }
        }
        if let Some(f) = &h.auth_key_file {
            match std::fs::read(f) {
                Ok(k) if k.iter().filter(|b| !b.is_ascii_whitespace()).count() >= 16 => {}
                Ok(_) => self.err("ha.auth_key_file", format!("{}: a key needs at least 16 bytes", f.display())),
                Err(e) => self.err("ha.auth_key_file", format!("{}: {e}", f.display())),
            }
        }
        if h.sync_port == 0 {
            self.err("ha.sync_port", "0 is not a port");
        }
        self.in_range("ha.sync_udp_threshold", h.sync_udp_threshold, 1..=255, "");
        // Full NAT sources its packets from local addresses: in a pair they
        // must move with the master, so they cannot be a port's own.
        for (i, s) in self.cfg.services.iter().enumerate() {
            let fullnat = s.forwarding == Forwarding::FullNat || s.real_servers.iter().any(|r| r.forwarding == Some(Forwarding::FullNat));
            if fullnat && s.local_addresses.is_empty() {
                self.err(
                    format!("services[{i}].local_addresses"),
                    "a full-NAT service of a pair needs local addresses of its own: the port addresses stay with each node",
                );
            }
        }
    }

    fn daemon(&mut self) {
        let d = &self.cfg.daemon;
        self.in_range("daemon.control_max_per_uid", d.control_max_per_uid, 1..=4096, "");
        self.in_range("daemon.control_max_connections", d.control_max_connections, 1..=65536, "");
        self.in_range("daemon.control_idle_timeout", d.control_idle_timeout, 1..=86400, " seconds");
    }

    fn dataplane(&mut self) {
        let dp = &self.cfg.dataplane;
        self.in_range("dataplane.workers", dp.workers, 1..=64, "");
        if dp.mbufs < 1024 {
            self.err("dataplane.mbufs", format!("{} is too few (at least 1024)", dp.mbufs));
        }
        if dp.mbuf_size < 256 {
            self.err(
                "dataplane.mbuf_size",
                format!("{} is too small (at least 256: 128 bytes of headroom and a 128-byte frame)", dp.mbuf_size),
            );
        }
        if !dp.descriptors.is_power_of_two() || dp.descriptors < 64 {
            self.err("dataplane.descriptors", format!("{} is not a power of two >= 64", dp.descriptors));
        }
        if dp.sessions_per_worker < 1024 {
            self.err("dataplane.sessions_per_worker", format!("{} is too few (at least 1024)", dp.sessions_per_worker));
        }
        if dp.sessions_v6_per_worker < 1024 {
            self.err("dataplane.sessions_v6_per_worker", format!("{} is too few (at least 1024)", dp.sessions_v6_per_worker));
        }
        if dp.tunnel_ttl == 0 {
            self.err("dataplane.tunnel_ttl", "must be at least 1");
        }
        if dp.fullnat_port_min == 0 || dp.fullnat_port_min > dp.fullnat_port_max {
            self.err(
                "dataplane.fullnat_port_min",
                format!("range {}..={} is empty or starts at 0", dp.fullnat_port_min, dp.fullnat_port_max),
            );
        } else if u32::from(dp.fullnat_port_max - dp.fullnat_port_min) + 1 < u32::from(dp.workers) * 64 {
            self.err("dataplane.fullnat_port_max", "range gives fewer than 64 ports per worker");
        }
        if !dp.handoff_ring.is_power_of_two() || !(64..=1 << 20).contains(&dp.handoff_ring) {
            self.err("dataplane.handoff_ring", format!("{} is not a power of two in 64..=1048576", dp.handoff_ring));
        }
        self.in_range("dataplane.max_real_servers", dp.max_real_servers, 1..=1 << 15, "");
        self.in_range("dataplane.max_services", dp.max_services, 1..=1 << 15, "");
        self.in_range("dataplane.announce_count", dp.announce_count, 0..=100, "");
        self.in_range("dataplane.announce_interval_ms", dp.announce_interval_ms, 10..=60_000, "");
    }

    /// The ports; returns the balancer's own addresses.
    fn ports(&mut self) -> HashSet<IpAddr> {
        let cfg = self.cfg;
        if cfg.ports.is_empty() {
            self.err("ports", "at least one port is required");
        }
        if cfg.ports.len() > MAX_PORTS {
            self.err("ports", format!("{} ports; at most {MAX_PORTS} are supported", cfg.ports.len()));
        }
        let mut names = HashSet::new();
        let mut own = HashSet::new();
        for (i, p) in cfg.ports.iter().enumerate() {
            let f = |k: &str| format!("ports[{i}].{k}");
            if p.name.is_empty() || !p.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                self.err(f("name"), format!("{:?} must be non-empty letters, digits, '-' or '_'", p.name));
            } else if !names.insert(p.name.as_str()) {
                self.err(f("name"), format!("port name {:?} is used twice", p.name));
            }
            if p.device.trim().is_empty() {
                self.err(f("device"), "must name a PCI address or a vdev (e.g. \"net_tap0,iface=rvs0\")");
            }
            if p.addresses.is_empty() {
                self.err(f("addresses"), "a port needs at least one address (it is the source of ARP and ND)");
            }
            for (j, a) in p.addresses.iter().enumerate() {
                if !own.insert(a.addr) {
                    self.err(format!("ports[{i}].addresses[{j}]"), format!("{} is configured twice", a.addr));
                }
                if a.addr.is_multicast() || a.addr.is_unspecified() || a.addr.is_loopback() {
                    self.err(format!("ports[{i}].addresses[{j}]"), format!("{} cannot be a port address", a.addr));
                }
            }
            self.in_range(&f("mtu"), p.mtu, 1280..=9000, "");
            for (k, gw, v6) in [("gateway", p.gateway, false), ("gateway6", p.gateway6, true)] {
                if let Some(g) = gw {
                    if g.is_ipv6() != v6 {
                        self.err(f(k), format!("{g} is not an IPv{} address", if v6 { 6 } else { 4 }));
                    } else if !p.addresses.iter().any(|a| a.contains(g)) {
                        self.err(f(k), format!("{g} is not on a network of this port"));
                    }
                }
            }
            if let Some(k) = &p.kernel_interface {
                if k.is_empty() || k.len() > 15 || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') {
                    self.err(f("kernel_interface"), format!("{k:?} is not a valid interface name (1-15 characters)"));
                }
            }
        }
        own
    }

    fn neighbors_and_routes(&mut self) {
        let cfg = self.cfg;
        for (i, n) in cfg.neighbors.iter().enumerate() {
            match cfg.ports.iter().find(|p| p.name == n.port) {
                None => self.err(format!("neighbors[{i}].port"), format!("no port named {:?}", n.port)),
                Some(p) if !p.addresses.iter().any(|a| a.contains(n.address)) => {
                    self.err(format!("neighbors[{i}].address"), format!("{} is not on a network of port {:?}", n.address, n.port));
                }
                Some(_) => {}
            }
        }
        for (i, r) in cfg.routes.iter().enumerate() {
            if r.prefix.addr.is_ipv4() != r.via.is_ipv4() {
                self.err(format!("routes[{i}].via"), format!("{} is not of the prefix's address family", r.via));
            } else if cfg.connected_port(r.via).is_none() {
                self.err(format!("routes[{i}].via"), format!("{} is not on a network of any port", r.via));
            }
        }
    }

    fn services(&mut self, own: &HashSet<IpAddr>, strictness: Strictness) {
        let cfg = self.cfg;
        let dp = &cfg.dataplane;
        if cfg.services.len() > dp.max_services as usize {
            self.err("services", format!("{} services exceed dataplane.max_services = {}", cfg.services.len(), dp.max_services));
        }
        let total_rs: usize = cfg.services.iter().map(|s| s.real_servers.len()).sum();
        if total_rs > dp.max_real_servers as usize {
            self.err("services", format!("{total_rs} real servers exceed dataplane.max_real_servers = {}", dp.max_real_servers));
        }
        let ours = Ours {
            vips: cfg.services.iter().map(|s| s.vip).collect(),
            own: own.clone(),
            locals: cfg.services.iter().flat_map(|s| s.local_addresses.iter().copied()).collect(),
        };
        let mut keys = HashSet::new();
        for (i, s) in cfg.services.iter().enumerate() {
            if !keys.insert(s.key()) {
                self.err(format!("services[{i}].vip"), format!("service {} is defined twice", s.key()));
            }
            self.service(i, s, &ours);
            if let Some(h) = &s.health_check {
                self.health_check(&format!("services[{i}].health_check"), s, h, &ours);
            }
            for (j, h) in s.health_checks.iter().enumerate() {
                let at = format!("services[{i}].health_checks[{j}]");
                self.health_check(&at, s, h, &ours);
                if s.health_check.is_some() || j > 0 {
                    self.not_server_settings(&at, h);
                }
            }
            for (k, r) in s.real_servers.iter().enumerate() {
                for (j, h) in r.health_checks.iter().enumerate() {
                    let at = format!("services[{i}].real_servers[{k}].health_checks[{j}]");
                    self.health_check(&at, s, h, &ours);
                    if j > 0 {
                        self.not_server_settings(&at, h);
                    }
                }
            }
            if let Some(fb) = &s.feedback {
                self.feedback(i, s, fb);
            }
            if let Some(fb) = &s.fallback {
                self.fallback(i, s, fb, &ours);
            }
            if strictness == Strictness::File && s.real_servers.is_empty() {
                self.err(format!("services[{i}].real_servers"), format!("service {} has no real servers", s.key()));
            }
            self.real_servers(i, s, &ours);
        }
    }

    /// The service's own fields: port, VIP, Maglev size, persistence,
    /// timeouts, local addresses.
    /// Cluster mode: every balancer must make the same choice for a flow
    /// it has never seen, and be able to forward it without the session
    /// the first balancer holds.
    fn cluster(&mut self, i: usize, s: &Service) {
        let f = |k: &str| format!("services[{i}].{k}");
        if s.scheduler != SchedulerKind::Mh {
            self.err(f("cluster"), "needs scheduler = \"mh\": only Maglev makes every balancer pick the same real server");
        }
        if s.persistence.is_some() {
            self.err(f("cluster"), "cannot be persistent: persistence templates are one balancer's memory");
        }
        self.forwarding_is(
            i,
            s,
            |fw| matches!(fw, Forwarding::Dr | Forwarding::Tunnel),
            "cluster mode needs dr or tunnel",
            ": NAT and full NAT replies must come back through the balancer that holds the session",
        );
    }

    /// Every forwarding method of the service (its default, its real
    /// servers', its fallback's) passes `ok`; each one that does not is
    /// refused with `msg` (and `why`, for the service's own).
    fn forwarding_is(&mut self, i: usize, s: &Service, ok: fn(Forwarding) -> bool, msg: &str, why: &str) {
        if !ok(s.forwarding) {
            self.err(format!("services[{i}].forwarding"), format!("{msg}{why}"));
        }
        for (j, r) in s.real_servers.iter().enumerate() {
            if r.forwarding.is_some_and(|fw| !ok(fw)) {
                self.err(format!("services[{i}].real_servers[{j}].forwarding"), msg);
            }
        }
        if s.fallback.as_ref().is_some_and(|r| r.forwarding.is_some_and(|fw| !ok(fw))) {
            self.err(format!("services[{i}].fallback.forwarding"), msg);
        }
    }

    /// A SYN proxy splices two connections, so it must see both directions:
    /// NAT or full NAT, TCP, and sessions of its own (no stateless fallback).
    fn synproxy(&mut self, i: usize, s: &Service) {
        let f = |k: &str| format!("services[{i}].{k}");
        if s.protocol != Protocol::Tcp {
            self.err(f("synproxy"), "is for TCP services");
        }
        self.forwarding_is(
            i,
            s,
            |fw| matches!(fw, Forwarding::Nat | Forwarding::FullNat),
            "synproxy needs nat or fullnat",
            ": with dr or tunnel the real server's replies bypass rvs, which must translate their sequence numbers",
        );
        if s.cluster {
            self.err(f("synproxy"), "cannot be combined with cluster (a spliced connection lives on one balancer)");
        }
        if s.sloppy_tcp {
            self.err(f("synproxy"), "cannot be combined with sloppy_tcp (only a valid cookie opens a session)");
        }
        if s.when_full == Some(WhenFull::Stateless) {
            self.err(f("when_full"), "\"stateless\" cannot be combined with synproxy (a spliced connection needs its session)");
        }
    }

    fn service(&mut self, i: usize, s: &Service, ours: &Ours) {
        let f = |k: &str| format!("services[{i}].{k}");
        if s.port == 0 {
            self.err(f("port"), "must be 1..=65535");
        }
        if !usable_unicast(s.vip) {
            self.err(f("vip"), format!("{} cannot be a virtual address (not a unicast address)", s.vip));
        }
        if ours.own.contains(&s.vip) {
            self.err(f("vip"), format!("{} is a port address; a VIP must be an address of its own", s.vip));
        }
        if s.scheduler == SchedulerKind::Mh && (!is_prime(s.mh_table_size) || !(7..=10_000_019).contains(&s.mh_table_size)) {
            self.err(f("mh_table_size"), format!("{} is not a prime in 7..=10000019", s.mh_table_size));
        }
        if s.cluster {
            self.cluster(i, s);
        }
        if s.synproxy {
            self.synproxy(i, s);
        }
        for (name, list) in [("allow_sources", &s.allow_sources), ("deny_sources", &s.deny_sources)] {
            if let Some((j, p)) = list.iter().enumerate().find(|(_, p)| p.addr != p.network()) {
                self.err(
                    format!("services[{i}].{name}[{j}]"),
                    format!("{p} has host bits set: the prefix is {}/{}", p.network(), p.prefix),
                );
            }
        }
        if let Some(p) = s.persistence {
            let max = if s.vip.is_ipv4() { 32 } else { 128 };
            if let Some(m) = p.netmask.filter(|m| *m > max) {
                self.err(f("persistence.netmask"), format!("{m} is not a prefix length 0..={max}"));
            }
            if p.timeout == 0 {
                self.err(f("persistence.timeout"), "must be at least 1 second");
            }
        }
        self.timeouts(&f("timeouts"), s.timeouts);
        if s.hysteresis > s.quorum {
            self.err(f("hysteresis"), format!("{} is more than the quorum ({})", s.hysteresis, s.quorum));
        }
        let hooks = [("quorum_up", &s.quorum_up), ("quorum_down", &s.quorum_down)];
        for (k, argv) in hooks {
            if argv.first().is_some_and(|p| p.trim().is_empty()) {
                self.err(f(k), "the program (first element) is empty");
            }
        }
        for (j, a) in s.local_addresses.iter().enumerate() {
            if !ours.own.contains(a) && self.cfg.connected_port(*a).is_none() {
                self.err(format!("services[{i}].local_addresses[{j}]"), format!("{a} is neither a port address nor on a port's network"));
            }
        }
    }

    /// A check after a server's first may not set what belongs to the
    /// server.
    fn not_server_settings(&mut self, at: &str, h: &HealthCheck) {
        for k in h.sets_server_settings() {
            self.err(format!("{at}.{k}"), "belongs to the real server: set it on its first check (the others only check)");
        }
    }

    fn health_check(&mut self, at: &str, s: &Service, h: &HealthCheck, ours: &Ours) {
        let f = |k: &str| format!("{at}.{k}");
        if !(h.interval >= 0.05 && h.interval <= 3600.0) {
            self.err(f("interval"), format!("{} is not 0.05..=3600 seconds", h.interval));
        }
        if !(h.timeout > 0.0 && h.timeout <= 60.0) {
            self.err(f("timeout"), format!("{} is not (0, 60] seconds", h.timeout));
        }
        self.in_range(&f("rise"), h.rise, 1..=100, "");
        self.in_range(&f("fall"), h.fall, 1..=100, "");
        if let Some(d) = h.delay_before_retry {
            if !(0.05..=3600.0).contains(&d) {
                self.err(f("delay_before_retry"), format!("{d} is not 0.05..=3600 seconds"));
            }
        }
        match h.kind {
            CheckKind::Http | CheckKind::Https => {
                if !h.path.starts_with('/') {
                    self.err(f("path"), format!("{:?} must start with '/'", h.path));
                }
                if h.expect_status.is_empty() || h.expect_status.iter().any(|c| !(100..=599).contains(c)) {
                    self.err(f("expect_status"), "must list HTTP status codes (100..=599)");
                }
            }
            CheckKind::SendExpect => {
                if h.send.as_deref().is_none_or(str::is_empty) {
                    self.err(f("send"), "send_expect needs a non-empty `send`");
                }
                if h.expect.as_deref().is_none_or(str::is_empty) {
                    self.err(f("expect"), "send_expect needs a non-empty `expect`");
                }
            }
            CheckKind::Command => {
                if h.command.is_empty() {
                    self.err(f("command"), "a command check needs the program to run");
                }
            }
            CheckKind::Udp => {
                if h.send.as_deref().is_none_or(str::is_empty) {
                    self.err(f("send"), "a udp check needs a non-empty `send` (the datagram)");
                }
            }
            CheckKind::Dns => {
                let name = h.dns_name.as_deref().unwrap_or_default();
                let name = name.strip_suffix('.').unwrap_or(name);
                if name.is_empty() || name.len() > 253 || name.split('.').any(|l| l.is_empty() || l.len() > 63) {
                    self.err(f("dns_name"), format!("a dns check needs a domain name to ask for, not {name:?}"));
                }
                if !DNS_TYPES.iter().any(|(n, _)| n.eq_ignore_ascii_case(&h.dns_type)) {
                    let names: Vec<&str> = DNS_TYPES.iter().map(|(n, _)| *n).collect();
                    self.err(f("dns_type"), format!("{:?} is not one of {}", h.dns_type, names.join(", ")));
                }
            }
            CheckKind::Tcp | CheckKind::Smtp => {}
        }
        for (k, argv) in [("notify_up", &h.notify_up), ("notify_down", &h.notify_down)] {
            if argv.first().is_some_and(|p| p.trim().is_empty()) {
                self.err(f(k), "the program (first element) is empty");
            }
        }
        if let Some(src) = h.source {
            if !ours.own.contains(&src) {
                self.err(f("source"), format!("{src} is not an address of a port"));
            }
        }
        if h.kind != CheckKind::Command {
            if let Some(why) = self.cfg.unreachable_by_kernel(s) {
                self.err(at.to_string(), format!("health checks run over the kernel's sockets: {why}"));
            }
        }
    }

    fn feedback(&mut self, i: usize, s: &Service, fb: &Feedback) {
        let f = |k: &str| format!("services[{i}].feedback.{k}");
        if let Some(why) = self.cfg.unreachable_by_kernel(s) {
            self.err(format!("services[{i}].feedback"), format!("the feedback agent is asked over the kernel's sockets: {why}"));
        }
        if fb.port == 0 {
            self.err(f("port"), "must be 1..=65535");
        }
        if !(fb.interval >= 0.1 && fb.interval <= 3600.0) {
            self.err(f("interval"), format!("{} is not 0.1..=3600 seconds", fb.interval));
        }
        if !(fb.timeout > 0.0 && fb.timeout <= 60.0) {
            self.err(f("timeout"), format!("{} is not (0, 60] seconds", fb.timeout));
        }
    }

    fn fallback(&mut self, i: usize, s: &Service, fb: &RealServer, ours: &Ours) {
        let field = format!("services[{i}].fallback.address");
        if let Some(what) = ours.what(fb.address) {
            self.err(&field, format!("{} is {what}; the fallback server must be another host", fb.address));
        }
        let fwd = s.forwarding_of(fb);
        if fb.address.is_ipv4() != s.vip.is_ipv4() && fwd != Forwarding::Tunnel {
            self.err(&field, format!("{} is not of the VIP's address family", fb.address));
        } else if self.cfg.egress_for(fb.address).is_none() {
            self.err(&field, format!("{} is not reachable: no port network, gateway or route covers it", fb.address));
        }
        if s.real_servers.iter().any(|r| r.address == fb.address && s.port_of(r) == s.port_of(fb)) {
            self.err(&field, "the fallback server cannot also be a real server of the service");
        }
    }

    fn real_servers(&mut self, i: usize, s: &Service, ours: &Ours) {
        let mut seen = HashSet::new();
        for (j, rs) in s.real_servers.iter().enumerate() {
            let g = |k: &str| format!("services[{i}].real_servers[{j}].{k}");
            let fwd = s.forwarding_of(rs);
            let port = s.port_of(rs);
            if !seen.insert((rs.address, port)) {
                self.err(g("address"), format!("{}:{} appears twice in this service", rs.address, port));
            }
            self.in_range(&g("weight"), rs.weight, 0..=65535, "");
            if !usable_unicast(rs.address) {
                self.err(g("address"), format!("{} cannot be a real server (not a unicast address)", rs.address));
                continue;
            }
            if let Some(what) = ours.what(rs.address) {
                self.err(g("address"), format!("{} is {what}; a real server must be another host", rs.address));
                continue;
            }
            self.real_server_path(s, rs, fwd, port, &g);
        }
    }

    /// Whether forwarding mode `fwd` can reach real server `rs` at `port`.
    fn real_server_path(&mut self, s: &Service, rs: &RealServer, fwd: Forwarding, port: u16, g: &dyn Fn(&str) -> String) {
        let cfg = self.cfg;
        if rs.address.is_ipv4() != s.vip.is_ipv4() && fwd != Forwarding::Tunnel {
            self.err(
                g("address"),
                format!("{} is not of the VIP's address family ({fwd} forwarding cannot translate families; tunnel can)", rs.address),
            );
        }
        if matches!(fwd, Forwarding::Dr | Forwarding::Tunnel) && port != s.port {
            self.err(g("port"), format!("{fwd} forwarding cannot change the port ({port} != {})", s.port));
        }
        if fwd == Forwarding::Dr {
            if cfg.connected_port(rs.address).is_none() {
                self.err(
                    g("address"),
                    format!("{} is not on a network of any port (direct routing needs the real server on the same link)", rs.address),
                );
            }
        } else if cfg.egress_for(rs.address).is_none() {
            self.err(g("address"), format!("{} is not reachable: no port network, gateway or route covers it", rs.address));
        }
        if fwd == Forwarding::FullNat {
            let fam_ok = s.local_addresses.iter().any(|a| a.is_ipv4() == rs.address.is_ipv4())
                || cfg.ports.iter().flat_map(|p| &p.addresses).any(|a| a.addr.is_ipv4() == rs.address.is_ipv4());
            if !fam_ok {
                self.err(g("address"), "full NAT needs a local address of this real server's family");
            }
        }
    }
}

/// The balancer's own addresses: what no real server may be.
struct Ours {
    vips: HashSet<IpAddr>,
    own: HashSet<IpAddr>,
    locals: HashSet<IpAddr>,
}

impl Ours {
    /// What `a` is to the balancer, if it is one of its addresses.
    fn what(&self, a: IpAddr) -> Option<&'static str> {
        if self.vips.contains(&a) {
            Some("a VIP of this balancer")
        } else if self.own.contains(&a) {
            Some("one of this balancer's port addresses")
        } else if self.locals.contains(&a) {
            Some("a full-NAT local address of this balancer")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_addr_parses() {
        let a: InterfaceAddr = "198.18.0.1/24".parse().unwrap();
        assert_eq!(a.prefix, 24);
        assert!(a.contains("198.18.0.77".parse().unwrap()));
        assert!("198.18.0.1".parse::<InterfaceAddr>().is_err());
        assert!("198.18.0.1/33".parse::<InterfaceAddr>().is_err());
        assert!("2001:db8::1/64".parse::<InterfaceAddr>().is_ok());
        assert!("2001:db8::1/129".parse::<InterfaceAddr>().is_err());
    }

    #[test]
    fn mac_parses() {
        assert_eq!("02:00:00:00:00:0a".parse::<MacAddr>().unwrap(), MacAddr([2, 0, 0, 0, 0, 10]));
        assert!("02:00:00:00:00".parse::<MacAddr>().is_err());
        assert!("02:00:00:00:00:0g".parse::<MacAddr>().is_err());
    }

    #[test]
    fn primes() {
        assert!(is_prime(65537));
        assert!(is_prime(655373));
        assert!(!is_prime(65536));
        assert!(!is_prime(1));
    }

    #[test]
    fn pci_detection() {
        let mut p = Port {
            name: "a".into(),
            device: "0000:03:00.0".into(),
            addresses: vec![],
            mac: None,
            mtu: 1500,
            gateway: None,
            gateway6: None,
            kernel_interface: None,
            device_line: SourceLine(None),
        };
        assert!(p.is_pci());
        p.device = "03:00.1".into();
        assert!(p.is_pci());
        p.device = "net_tap0,iface=x".into();
        assert!(!p.is_pci());
    }
}
