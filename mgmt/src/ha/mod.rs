//! The active/backup pair: VRRP election and session sync, in rvsd's
//! management (never on a worker).
//!
//! * [`election`]: the VRRPv3 state machine, pure;
//! * [`vrrp`]: the VRRP thread: a raw socket (IP protocol 112) on the HA
//!   port's kernel interface, the election's timers, authentication, and
//!   the role published to the workers ([`dataplane::worker::HaShared`]);
//! * [`sync`]: the sync thread: the workers' session records batched into
//!   UDP datagrams to the peers, the peers' records handed to the worker
//!   that owns each flow, bulk transfers for a node that joins.
//!
//! Both threads count what they do in [`HaCommon`], which `rvsadm show
//! ha`, the report and the Prometheus page read.
pub mod election;
pub mod sync;
pub mod vrrp;

use dataplane::worker::Shared;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why the pair could not start.
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    /// A setting that validation let through but the system refuses.
    #[error("ha.{field}: {message}")]
    Config {
        /// The field under `[ha]`.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A socket could not be made.
    #[error("ha: {what}: {source}")]
    Socket {
        /// Which.
        what: &'static str,
        /// What the system said.
        source: std::io::Error,
    },
}

/// What the pair's configuration comes to at run time.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Virtual router id.
    pub vrid: u8,
    /// Priority.
    pub priority: u8,
    /// Advertisement interval, centiseconds.
    pub interval_cs: u16,
    /// Preemption and its delay.
    pub preempt: bool,
    /// Delay before preempting after start.
    pub preempt_delay: Duration,
    /// The HA port's kernel interface.
    pub iface: String,
    /// This node's address on it.
    pub local: Ipv4Addr,
    /// Unicast peers (empty: multicast).
    pub peers: Vec<Ipv4Addr>,
    /// The VRRP family; over IPv6 adverts go from the kernel interface's
    /// link-local address to ff02::12 (unicast peers are IPv4 only).
    pub family: config::HaFamily,
    /// The shared key, if authentication is on.
    pub key: Option<Vec<u8>>,
    /// The addresses the adverts list (the VIPs of the family).
    pub addresses: Vec<IpAddr>,
    /// The notify hook.
    pub notify: Option<PathBuf>,
    /// FAULT while a link is down.
    pub track_link: bool,
    /// FAULT while no service has a real server up.
    pub track_real_servers: bool,
    /// Session sync, its UDP port and id.
    pub sync: bool,
    /// UDP port.
    pub sync_port: u16,
    /// Sync id.
    pub sync_id: u8,
}

impl Settings {
    /// The run-time settings of `cfg`'s `[ha]`, if it has one.
    pub fn of(cfg: &config::Config) -> Result<Option<Settings>, HaError> {
        let Some(h) = &cfg.ha else { return Ok(None) };
        let cfgerr = |field, message: String| HaError::Config { field, message };
        let port = cfg.ports.iter().find(|p| p.name == h.port).ok_or_else(|| cfgerr("port", format!("no port named {:?}", h.port)))?;
        let iface = port.kernel_interface.clone().ok_or_else(|| cfgerr("port", "needs a kernel_interface".into()))?;
        let local = port
            .addresses
            .iter()
            .find_map(|a| match a.addr {
                IpAddr::V4(v) => Some(v),
                IpAddr::V6(_) => None,
            })
            .ok_or_else(|| cfgerr("port", format!("port {:?} has no IPv4 address (VRRP over IPv4 and session sync need one)", h.port)))?;
        let key = match &h.auth_key_file {
            Some(f) => {
                let k = std::fs::read(f).map_err(|e| cfgerr("auth_key_file", format!("{}: {e}", f.display())))?;
                Some(k.trim_ascii().to_vec())
            }
            None => None,
        };
        let v6 = h.family == config::HaFamily::Ipv6;
        let mut addresses: Vec<IpAddr> = cfg.services.iter().map(|s| s.vip).filter(|a| a.is_ipv6() == v6).collect();
        addresses.sort_unstable();
        addresses.dedup();
        Ok(Some(Settings {
            vrid: h.vrid,
            priority: h.priority,
            interval_cs: u16::try_from(h.advert_interval_ms / 10).map_err(|_| cfgerr("advert_interval_ms", "too large".into()))?,
            preempt: h.preempt,
            preempt_delay: Duration::from_millis(u64::from(h.preempt_delay_ms)),
            iface,
            local,
            peers: h
                .peers
                .iter()
                .filter_map(|p| match p {
                    IpAddr::V4(v) => Some(*v),
                    IpAddr::V6(_) => None,
                })
                .collect(),
            family: h.family,
            key,
            addresses,
            notify: h.notify.clone(),
            track_link: h.track_link,
            track_real_servers: h.track_real_servers,
            sync: h.sync,
            sync_port: h.sync_port,
            sync_id: h.sync_id(),
        }))
    }
}

/// Counters by reason.
#[derive(Debug, Default)]
pub struct Reasons(Mutex<BTreeMap<&'static str, u64>>);

impl Reasons {
    /// Counts one under `name`.
    pub fn count(&self, name: &'static str) {
        *crate::fault::lock(&self.0).entry(name).or_insert(0) += 1;
    }

    /// A copy.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        crate::fault::lock(&self.0).iter().map(|(k, v)| ((*k).to_string(), *v)).collect()
    }
}

/// What the HA threads share with each other and with management.
#[derive(Debug, Default)]
pub struct HaCommon {
    /// The role's number ([`election::Role::number`]).
    pub role: AtomicU8,
    /// The master as last heard, and its priority.
    pub master: Mutex<Option<(IpAddr, u8)>>,
    /// When the role last changed.
    pub since: Mutex<Option<Instant>>,
    /// Role changes.
    pub transitions: AtomicU64,
    /// Adverts sent and received (accepted).
    pub adverts_sent: AtomicU64,
    /// Accepted adverts.
    pub adverts_received: AtomicU64,
    /// Adverts dropped, by reason.
    pub advert_drops: Reasons,
    /// Sync records sent (in datagrams) and received.
    pub sync_sent: AtomicU64,
    /// Records received in valid datagrams.
    pub sync_received: AtomicU64,
    /// Datagrams sent and received.
    pub sync_datagrams_sent: AtomicU64,
    /// Valid datagrams received.
    pub sync_datagrams_received: AtomicU64,
    /// Datagrams dropped, by reason.
    pub sync_drops: Reasons,
    /// Records that found their worker's queue full.
    pub sync_queue_full: AtomicU64,
    /// Longest a record waited in this node's send path lately, ms.
    pub sync_lag_ms: AtomicU64,
    /// The node has the master's sessions (bulk sync done, or nothing to
    /// sync from): it may preempt.
    pub synced: AtomicBool,
    /// Bulk transfers this node served and received.
    pub bulk_served: AtomicU64,
    /// Bulk transfers received complete.
    pub bulk_received: AtomicU64,
    /// Every port's link is up (set by the daemon's management loop).
    pub links_up: AtomicBool,
    /// Some service has a real server up (set by the management loop).
    pub servers_up: AtomicBool,
    /// Sync paused (`ipvsadm --stop-daemon`): nothing sent, records from
    /// peers ignored.
    pub paused: AtomicBool,
}

/// `rvsadm show ha`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HaReport {
    /// MASTER, BACKUP, FAULT or INIT.
    pub state: String,
    /// This node's priority.
    pub priority: u8,
    /// Virtual router id.
    pub vrid: u8,
    /// The current master (address) as last heard.
    pub master: Option<String>,
    /// Its priority.
    pub master_priority: Option<u8>,
    /// Seconds in the current state.
    pub since_s: f64,
    /// Role changes.
    pub transitions: u64,
    /// Adverts sent.
    pub adverts_sent: u64,
    /// Adverts accepted.
    pub adverts_received: u64,
    /// Adverts dropped, by reason.
    pub advert_drops: BTreeMap<String, u64>,
    /// Session sync on.
    pub sync: bool,
    /// Records sent.
    pub sync_sent: u64,
    /// Records received.
    pub sync_received: u64,
    /// Records installed by the workers.
    pub sync_applied: u64,
    /// Records the workers refused, by reason.
    pub sync_rejected: BTreeMap<String, u64>,
    /// Datagrams dropped, by reason.
    pub sync_drops: BTreeMap<String, u64>,
    /// Records lost to full queues (this node's workers' or its sync
    /// thread's).
    pub sync_lost: u64,
    /// The longest a record waited before it was sent, lately (ms).
    pub sync_lag_ms: u64,
    /// Whether this node has the master's sessions.
    pub synced: bool,
    /// Bulk transfers served and received.
    pub bulk_served: u64,
    /// Bulk transfers received.
    pub bulk_received: u64,
    /// The kernel interface VRRP and sync use.
    pub interface: String,
    /// The sync id.
    pub sync_id: u8,
    /// Sync paused by `--stop-daemon`.
    pub sync_paused: bool,
}

impl HaCommon {
    /// The report, with the workers' sync counters summed in.
    pub fn report(&self, s: &Settings, cores: &[Arc<rvs_core::stats::CoreStats>]) -> HaReport {
        let role = match self.role.load(Ordering::Relaxed) {
            1 => election::Role::Backup,
            2 => election::Role::Master,
            3 => election::Role::Fault,
            _ => election::Role::Init,
        };
        let master = *crate::fault::lock(&self.master);
        let since = crate::fault::lock(&self.since).map_or(0.0, |t| t.elapsed().as_secs_f64());
        let sum = |f: &dyn Fn(&rvs_core::stats::CoreStats) -> u64| cores.iter().map(|c| f(c)).sum::<u64>();
        let rejected = rvs_core::fwd::SyncReject::ALL
            .iter()
            .map(|r| (r.name().to_string(), sum(&|c| c.sync.rejected[*r as usize].get())))
            .filter(|(_, n)| *n > 0)
            .collect();
        HaReport {
            state: role.name().to_string(),
            priority: s.priority,
            vrid: s.vrid,
            master: master.map(|(a, _)| a.to_string()),
            master_priority: master.map(|(_, p)| p),
            since_s: since,
            transitions: self.transitions.load(Ordering::Relaxed),
            adverts_sent: self.adverts_sent.load(Ordering::Relaxed),
            adverts_received: self.adverts_received.load(Ordering::Relaxed),
            advert_drops: self.advert_drops.snapshot(),
            sync: s.sync,
            sync_sent: self.sync_sent.load(Ordering::Relaxed),
            sync_received: self.sync_received.load(Ordering::Relaxed),
            sync_applied: sum(&|c| c.sync.applied.get()),
            sync_rejected: rejected,
            sync_drops: self.sync_drops.snapshot(),
            sync_lost: sum(&|c| c.sync.overflow.get()) + self.sync_queue_full.load(Ordering::Relaxed),
            sync_lag_ms: self.sync_lag_ms.load(Ordering::Relaxed),
            synced: self.synced.load(Ordering::Relaxed),
            bulk_served: self.bulk_served.load(Ordering::Relaxed),
            bulk_received: self.bulk_received.load(Ordering::Relaxed),
            interface: s.iface.clone(),
            sync_id: s.sync_id,
            sync_paused: self.paused.load(Ordering::Relaxed),
        }
    }
}

/// The running pair: its two threads.
#[derive(Debug)]
pub struct Ha {
    /// What the threads count and share.
    pub common: Arc<HaCommon>,
    /// The settings.
    pub settings: Settings,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// The HMAC-SHA256 tag of `data` under `key`.
pub fn tag(key: &[u8], data: &[u8]) -> [u8; 32] {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let t = ring::hmac::sign(&k, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(t.as_ref());
    out
}

/// Whether `t` is `data`'s tag under `key` (in constant time).
pub fn verify(key: &[u8], data: &[u8], t: &[u8]) -> bool {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::verify(&k, data, t).is_ok()
}

/// A sequence number above every earlier one from this process and, the
/// clock permitting, from its earlier lives: nanoseconds since the epoch.
#[derive(Debug, Default)]
pub struct Sequence(AtomicU64);

impl Sequence {
    /// The next number.
    pub fn next(&self) -> u64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| rvs_wire::num::sat_u64(d.as_nanos()));
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let n = now.max(cur + 1);
            match self.0.compare_exchange_weak(cur, n, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return n,
                Err(c) => cur = c,
            }
        }
    }
}

impl Ha {
    /// Starts the VRRP thread and, with sync, the sync thread. The node
    /// starts as a backup (the workers' role is inactive until elected).
    /// When `leaving` is set (rvsd got SIGTERM), the VRRP thread gives up
    /// mastership at once (priority 0), before the rest of rvsd stops.
    pub fn start(
        settings: Settings,
        shared: Arc<Shared>,
        steering: Option<rvs_core::steer::Steering>,
        leaving: Arc<AtomicBool>,
    ) -> Result<Ha, HaError> {
        let common = Arc::new(HaCommon::default());
        common.links_up.store(true, Ordering::Relaxed);
        common.servers_up.store(true, Ordering::Relaxed);
        // Nothing to wait for until a master is heard; a master that is
        // heard makes the node ask for its table first.
        common.synced.store(true, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let v = vrrp::Vrrp::open(&settings, common.clone(), shared.clone())?;
        let st = stop.clone();
        threads.push(
            std::thread::Builder::new()
                .name("rvs-vrrp".into())
                .spawn(move || v.run(&st, &leaving))
                .map_err(|source| HaError::Socket { what: "VRRP thread", source })?,
        );
        if settings.sync {
            let s = sync::Sync::open(&settings, common.clone(), shared, steering)?;
            let st = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("rvs-sync".into())
                    .spawn(move || s.run(&st))
                    .map_err(|source| HaError::Socket { what: "sync thread", source })?,
            );
        }
        Ok(Ha { common, settings, stop, threads })
    }

    /// Stops both threads; a master first says so (priority 0), so its
    /// backup takes over at once.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Ha {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
