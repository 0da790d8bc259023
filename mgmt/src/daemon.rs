//! rvsd start-up and shutdown.
//!
//! Start-up, in order; any failure stops it with a message that names the
//! configuration field (and line) and starts nothing:
//! 1. EAL, with `--no-pci` unless the configuration names PCI devices (then
//!    exactly those are allow-listed with `-a`), hugepages or `--no-huge`,
//!    one lcore per worker plus the main lcore;
//! 2. one mbuf pool;
//! 3. each port: probe the device (vdevs are hot-plugged one by one, so a bad
//!    one is reported by name), one RX and one TX queue per worker, RSS with
//!    rvs's key, MTU, MAC, start;
//! 4. for each port with a `kernel_interface`: a TAP device whose kernel
//!    side carries the port's MAC, MTU, addresses and static routes (the
//!    exception path: the balancer's own traffic, health checks included,
//!    goes through the kernel's stack and out of the port);
//! 5. the first snapshot, then the workers on their lcores.
//!
//! Shutdown: stop flag, join the workers (their queues go with them),
//! read the final counters; each port is stopped and closed when it and
//! its queues are gone. EAL and the pool live until the process exits
//! (see `rvs_dpdk`).
use crate::manager::Manager;
use config::Config;
use dataplane::worker::{self, LoopConfig, Shared, WorkerQueues};
use rvs_arch::Clock;
use rvs_core::fwd::{Forwarder, ForwarderConfig};
use rvs_core::stats::CoreStats;
use rvs_core::steer::Steering;
use rvs_core::table::Compiler;
use rvs_dpdk::{Eal, Lcore, Mempool, Port, PortSetup};
use rvs_wire::MacAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Why rvsd could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid, or a device it names cannot be used.
    #[error("{0}")]
    Config(String),
    /// EAL or DPDK resources failed.
    #[error("{0}")]
    Dpdk(String),
}

impl StartError {
    /// Process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Config(_) => 2,
            StartError::Dpdk(_) => 3,
        }
    }
}

/// The EAL command line for a configuration.
pub fn eal_args(cfg: &Config, ncpu: usize, pid: u32) -> Vec<String> {
    let dp = &cfg.dataplane;
    let mut a = vec!["rvsd".to_string()];
    match &dp.lcores {
        Some(l) => a.push(format!("--lcores={l}")),
        None => {
            let ncpu = ncpu.max(1);
            let map: Vec<String> = (0..=usize::from(dp.workers)).map(|i| format!("{i}@{}", i % ncpu)).collect();
            a.push(format!("--lcores={}", map.join(",")));
        }
    }
    a.push("--main-lcore=0".into());
    let pci: Vec<&config::Port> = cfg.ports.iter().filter(|p| p.is_pci()).collect();
    if pci.is_empty() {
        a.push("--no-pci".into());
    } else {
        for p in pci {
            a.push("-a".into());
            a.push(p.device.clone());
        }
    }
    if dp.hugepages {
        a.push("--in-memory".into());
        // A vhost-user backend maps a virtio-user port's memory region by
        // region, and takes at most 8: one file for all segments keeps the
        // hugepage memory to one region per memseg list.
        if cfg
            .ports
            .iter()
            .any(|p| p.device.split(',').next().is_some_and(|d| d.starts_with("net_virtio_user") || d.starts_with("virtio_user")))
        {
            a.push("--single-file-segments".into());
        }
    } else {
        // Each mbuf: its buffer, the 128-byte rte_mbuf and pool overhead.
        let mb = (u64::from(dp.mbufs) * (u64::from(dp.mbuf_size) + 384)) / (1 << 20) + 256;
        a.push("--no-huge".into());
        a.push("--no-shconf".into());
        a.push(format!("-m{mb}"));
    }
    a.push(format!("--file-prefix=rvs{pid}"));
    a.push("--no-telemetry".into());
    a.push("--log-level=lib.eal:warning".into());
    a.extend(dp.eal_args.iter().cloned());
    a
}

fn random_seeds() -> [u64; 4] {
    let mut b = [0u8; 32];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b)).is_ok();
    if !ok {
        let t = rvs_arch::tsc().to_le_bytes();
        for (i, x) in (0u8..).zip(b.iter_mut()) {
            *x = t[usize::from(i % 8)] ^ i.wrapping_mul(0x9d);
        }
    }
    let mut s = [0u64; 4];
    for (i, c) in b.chunks_exact(8).enumerate() {
        s[i] = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
    }
    s
}

fn port_error(file: &str, cfg: &Config, i: usize, what: &str) -> StartError {
    field_error(file, cfg, i, "device", what)
}

fn field_error(file: &str, cfg: &Config, i: usize, field: &str, what: &str) -> StartError {
    let p = &cfg.ports[i];
    let at = p.device_line.0.map(|l| format!("{file}:{l}: ")).unwrap_or_default();
    StartError::Config(format!("{at}ports[{i}].{field}: {what}"))
}

/// An `ip` command that could not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum IpCommandError {
    /// `ip` could not be started.
    #[error("cannot run ip: {0}")]
    Spawn(std::io::Error),
    /// `ip` said no.
    #[error("ip {args}: {stderr}")]
    Failed {
        /// Its arguments.
        args: String,
        /// What it said.
        stderr: String,
    },
}

/// Gives a kernel interface the port's identity: MAC (so frames it sends
/// carry the port's), MTU, addresses (so its connected routes exist) and
/// the static routes whose next hop is on this port. IPv6 duplicate
/// address detection and router advertisements are off: the addresses are
/// the port's, by configuration.
pub fn configure_kernel_interface(name: &str, mac: MacAddr, port: &config::Port, routes: &[config::Route]) -> Result<(), IpCommandError> {
    let ip = |args: &[&str]| -> Result<(), IpCommandError> {
        let out = std::process::Command::new("ip").args(args).output().map_err(IpCommandError::Spawn)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(IpCommandError::Failed { args: args.join(" "), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
        }
    };
    for (k, v) in [("accept_ra", "0"), ("accept_dad", "0"), ("dad_transmits", "0")] {
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/{k}"), v);
    }
    ip(&["link", "set", "dev", name, "address", &mac.to_string()])?;
    ip(&["link", "set", "dev", name, "mtu", &port.mtu.to_string(), "up"])?;
    for a in &port.addresses {
        let cidr = a.to_string();
        if a.addr.is_ipv6() {
            ip(&["-6", "addr", "replace", &cidr, "dev", name, "nodad"])?;
        } else {
            ip(&["addr", "replace", &cidr, "dev", name])?;
        }
    }
    for r in routes.iter().filter(|r| port.addresses.iter().any(|a| a.contains(r.via))) {
        ip(&["route", "replace", &r.prefix.to_string(), "via", &r.via.to_string(), "dev", name])?;
    }
    Ok(())
}

/// Drivers that give a port a new random MAC at every start.
const RANDOM_MAC_DRIVERS: [&str; 4] = ["net_tap", "net_memif", "net_virtio_user", "virtio_user"];

/// A MAC for a port whose driver would pick a random one at each start
/// (TAP, memif, virtio-user) and that has no `mac` configured: derived
/// from the machine's id, the network namespace, the port's name and its
/// device, so a restarted rvsd comes back with the same MAC (neighbours'
/// caches stay right) while two balancers, or two namespaces of one
/// machine, differ. Locally administered, unicast. None for other devices
/// (a NIC's own MAC, pcap's and null's fixed ones are kept) and for a
/// device whose arguments choose a MAC themselves (`net_tap0,mac=...`).
pub fn stable_mac(port: &config::Port) -> Option<[u8; 6]> {
    use std::os::unix::fs::MetadataExt;
    if port.is_pci() || !RANDOM_MAC_DRIVERS.iter().any(|d| port.device.starts_with(d)) {
        return None;
    }
    if port.device.split(',').skip(1).any(|arg| arg.trim_start().starts_with("mac=")) {
        return None;
    }
    let machine = ["/etc/machine-id", "/var/lib/dbus/machine-id", "/proc/sys/kernel/hostname"]
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok())
        .unwrap_or_default();
    let netns = std::fs::metadata("/proc/self/ns/net").map(|m| m.ino()).unwrap_or(0);
    let key = format!("{}\n{netns}\n{}\n{}", machine.trim(), port.name, port.device);
    let h = rvs_core::sched::stable_hash(key.as_bytes(), 0x6d61_6300).to_be_bytes();
    Some([0x02 | (h[0] & 0xfc), h[1], h[2], h[3], h[4], h[5]])
}

/// A running dataplane plus its management state.
#[derive(Debug)]
pub struct Daemon {
    /// Management state shared with the control socket.
    pub manager: Arc<Mutex<Manager>>,
    shared: Arc<Shared>,
    lcores: Vec<Lcore>,
    /// The configured ports, by index (for their device counters); their
    /// queues are the workers'. Kernel interfaces are not kept here: their
    /// queues alone keep them open until the workers end.
    ports: Vec<Port>,
    /// Session capacity per worker (ipvsadm's "size").
    pub table_size: u64,
    /// EAL, held by the main lcore (this thread) for the daemon's life.
    eal: Eal,
    /// How flows map to workers (for the pair's sync thread).
    steering: Option<Steering>,
}

/// A master sends every session again once per this many milliseconds, so
/// a backup's copies of long-lived flows never expire.
const SYNC_REFRESH_MS: u32 = 60_000;

/// The ports brought up for a configuration.
struct Ports {
    data: Vec<Port>,
    macs: Vec<MacAddr>,
    /// By port index: the kernel interface's TAP port, if any.
    kernel: Vec<Option<Port>>,
    /// The redirection period shared by every port (see rvs_core::steer).
    period: u16,
    /// Every port hashes in hardware with rvs's key and RETA.
    hw_rss: bool,
}

impl Daemon {
    /// Starts everything for `cfg` (already validated) read from `file`.
    pub fn start(cfg: Config, path: Option<PathBuf>, file: &str) -> Result<Daemon, StartError> {
        let ncpu = std::thread::available_parallelism().map(std::num::NonZero::get).unwrap_or(1);
        let args = eal_args(&cfg, ncpu, std::process::id());
        let eal = Eal::init(&args).map_err(|e| StartError::Dpdk(format!("{e}\nEAL arguments: {}", args.join(" "))))?;
        let workers = usize::from(cfg.dataplane.workers);
        let lcore_ids = eal.worker_lcores();
        if lcore_ids.len() < workers {
            return Err(StartError::Config(format!(
                "dataplane.workers: {workers} workers need {workers} worker lcores, EAL has {}",
                lcore_ids.len()
            )));
        }
        let pool = Mempool::new(&eal, "rvs_mbufs", cfg.dataplane.mbufs, 256, cfg.dataplane.mbuf_size)
            .map_err(|e| StartError::Dpdk(format!("dataplane.mbufs: {e}")))?;
        let mut ports = open_ports(&eal, &cfg, file, pool)?;
        let mut compiler = Compiler::new(&cfg);
        let snap = compiler.compile(&cfg, &ports.macs, &Default::default()).map_err(|e| StartError::Config(e.to_string()))?;
        let ha = match &cfg.ha {
            // A node of a pair starts as a backup: it forwards nothing
            // until elected.
            Some(h) => worker::HaShared::pair(workers, h.sync, h.garp_count, h.garp_repeat_delay_ms, SYNC_REFRESH_MS, false),
            None => worker::HaShared::single(),
        };
        let shared = Arc::new(Shared::with_ha(snap.clone(), workers, ha));
        let steering = forwarder_config(&cfg, 0, &ports, [0; 4], [0; 2]).steering;
        let cores: Vec<Arc<CoreStats>> = (0..workers).map(|_| Arc::new(CoreStats::new(snap.backends.len(), snap.services.len()))).collect();
        let rings = worker::handoff_rings(&eal, workers, cfg.dataplane.handoff_ring)
            .map_err(|e| StartError::Dpdk(format!("dataplane.handoff_ring: {e}")))?;
        let seeds = random_seeds();
        // The SYN proxy's cookie key: its own random bits, shared by every
        // worker (a flow's SYN and ACK meet the same key on any core).
        let cookie_key = {
            let r = random_seeds();
            [r[0], r[1]]
        };
        let mut lcores = Vec::new();
        for ((w, lcore), ends) in lcore_ids.into_iter().take(workers).enumerate().zip(rings) {
            let core = u16::try_from(w).map_err(|_| StartError::Config("dataplane.workers: too many".into()))?;
            let mut fwd = Forwarder::new(&forwarder_config(&cfg, core, &ports, seeds, cookie_key), snap.clone(), cores[w].clone());
            fwd.set_peers(cores.clone());
            let queues = worker_queues(&mut ports, core, ends)?;
            let lc = LoopConfig {
                idle_backoff_us: cfg.dataplane.idle_backoff_us,
                announcer: w == 0,
                announce_count: cfg.dataplane.announce_count,
                announce_interval_ms: cfg.dataplane.announce_interval_ms,
                latency: cfg
                    .dataplane
                    .latency_histogram
                    .then(|| u64::try_from((1_000_000_000u128 << 32) / u128::from(eal.tsc_hz().max(1))).unwrap_or(u64::MAX)),
            };
            let (sh, clock) = (shared.clone(), Clock::new(eal.tsc_hz()));
            let job = eal.launch(lcore, move || worker::run(fwd, queues, sh, pool, clock, lc));
            lcores.push(job.map_err(|e| StartError::Dpdk(e.to_string()))?);
        }
        let table_size = u64::from(cfg.dataplane.sessions_per_worker);
        let manager = Manager::new(cfg, path, compiler, ports.macs.clone(), shared.clone(), cores);
        Ok(Daemon { manager: Arc::new(Mutex::new(manager)), shared, lcores, ports: ports.data, table_size, eal, steering })
    }

    /// Reads device counters into the manager (missed packets).
    pub fn refresh_port_stats(&self) {
        let missed = self.ports.iter().map(|p| p.stats().imissed).collect();
        crate::fault::lock(&self.manager).set_port_missed(missed);
    }

    /// The EAL this daemon runs on.
    pub fn eal(&self) -> &Eal {
        &self.eal
    }

    /// Whether every port's link is up.
    pub fn links_up(&self) -> bool {
        self.ports.iter().all(Port::link_up)
    }

    /// Starts the pair's threads when the configuration has `[ha]`, and
    /// attaches them to the manager.
    pub fn start_ha(&self, leaving: Arc<std::sync::atomic::AtomicBool>) -> Result<Option<crate::ha::Ha>, crate::ha::HaError> {
        let cfg = crate::fault::lock(&self.manager).config().clone();
        let Some(settings) = crate::ha::Settings::of(&cfg)? else { return Ok(None) };
        let ha = crate::ha::Ha::start(settings.clone(), self.shared.clone(), self.steering.clone(), leaving)?;
        crate::fault::lock(&self.manager).set_ha(ha.common.clone(), settings);
        Ok(Some(ha))
    }

    /// Stops the workers and returns the final report. The ports are
    /// stopped and closed as they go (their queues went with the workers).
    pub fn shutdown(self) -> crate::report::Report {
        // Health checks first, while the workers still carry the probes'
        // packets (through the kernel interface) to the real servers.
        crate::fault::lock(&self.manager).stop_health_checks();
        self.shared.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for l in self.lcores {
            let id = l.id();
            if !l.wait() {
                log::warn!("the worker on lcore {id} ended with a panic");
            }
        }
        let missed = self.ports.iter().map(|p| p.stats().imissed).collect();
        let mut m = crate::fault::lock(&self.manager);
        m.set_port_missed(missed);
        m.on_exit();
        m.report()
    }
}

/// Probes, configures and starts every port and kernel interface, with
/// one RX and one TX queue per worker, then gives every port one
/// redirection period.
fn open_ports(eal: &Eal, cfg: &Config, file: &str, pool: &'static Mempool) -> Result<Ports, StartError> {
    let nq = cfg.dataplane.workers;
    let mut data: Vec<Port> = Vec::new();
    let mut macs = Vec::new();
    for (i, p) in cfg.ports.iter().enumerate() {
        let setup = PortSetup {
            rx_queues: nq,
            tx_queues: nq,
            descriptors: cfg.dataplane.descriptors,
            mtu: p.mtu,
            rss_key: rvs_core::steer::RSS_KEY,
            mac: p.mac.map(|m| m.0).or_else(|| stable_mac(p)),
        };
        let port = Port::open(eal, &p.device, p.is_pci(), &setup, pool).map_err(|e| port_error(file, cfg, i, &e.to_string()))?;
        if port.info().rx_l4_checksum {
            log::info!(
                "ports[{i}] ({}): the device verifies IPv4, TCP and UDP checksums on receive; rvs does not sum again what it found good",
                p.name
            );
        }
        if port.info().mac_in_software {
            log::warn!("ports[{i}] ({}): the device cannot take a MAC address; rvs uses {} in software", p.name, MacAddr(port.info().mac));
        }
        macs.push(MacAddr(port.info().mac));
        data.push(port);
    }
    // One redirection period for every port, so software computes the
    // queue of any packet on any port alike (see rvs_core::steer).
    let period = data.iter().map(|p| p.info().reta_size).filter(|&r| r > 0).min().unwrap_or(rvs_core::steer::DEFAULT_PERIOD);
    for p in data.iter_mut().filter(|p| p.info().reta_size > period) {
        p.program_reta(nq, period);
    }
    let hw_rss = !data.is_empty() && data.iter().all(|p| p.info().rss && p.info().reta_size > 0);
    let mut kernel = Vec::new();
    for (i, p) in cfg.ports.iter().enumerate() {
        kernel.push(match &p.kernel_interface {
            Some(name) => Some(open_kernel_interface(eal, cfg, file, pool, i, name, macs[i])?),
            None => None,
        });
    }
    Ok(Ports { data, macs, kernel, period, hw_rss })
}

/// The TAP port of port `i`'s kernel interface (the exception path),
/// with the port's identity on its kernel side.
fn open_kernel_interface(
    eal: &Eal,
    cfg: &Config,
    file: &str,
    pool: &'static Mempool,
    i: usize,
    name: &str,
    mac: MacAddr,
) -> Result<Port, StartError> {
    let p = &cfg.ports[i];
    let nq = cfg.dataplane.workers;
    let setup = PortSetup { rx_queues: nq, tx_queues: nq, descriptors: 512, mtu: p.mtu, rss_key: rvs_core::steer::RSS_KEY, mac: None };
    let dev = format!("net_tap_rvsk{i},iface={name}");
    let port = Port::open(eal, &dev, false, &setup, pool).map_err(|e| field_error(file, cfg, i, "kernel_interface", &e.to_string()))?;
    configure_kernel_interface(name, mac, p, &cfg.routes).map_err(|e| field_error(file, cfg, i, "kernel_interface", &e.to_string()))?;
    Ok(port)
}

/// Worker `core`'s settings: its slice of the full-NAT ports, the steering
/// rule with several workers.
fn forwarder_config(cfg: &Config, core: u16, ports: &Ports, seeds: [u64; 4], cookie_key: [u64; 2]) -> ForwarderConfig {
    let workers = cfg.dataplane.workers.max(1);
    let (pmin, pmax) = (cfg.dataplane.fullnat_port_min, cfg.dataplane.fullnat_port_max);
    let per = (u32::from(pmax - pmin) + 1) / u32::from(workers);
    let lo = u32::from(pmin) + per * u32::from(core);
    ForwarderConfig {
        core,
        cores: workers,
        sessions_v4: cfg.dataplane.sessions_per_worker,
        sessions_v6: cfg.dataplane.sessions_v6_per_worker,
        seeds,
        tunnel_ttl: cfg.dataplane.tunnel_ttl,
        // Within [pmin, pmax] by construction (core < workers, per *
        // workers <= the range); the min only makes that visible.
        fullnat_ports: (
            rvs_wire::num::sat_u16(lo.min(u32::from(pmax))),
            rvs_wire::num::sat_u16((lo + per).saturating_sub(1).min(u32::from(pmax))),
        ),
        icmp_rate: 1000,
        steering: (workers > 1).then(|| Steering::new(workers, u32::from(ports.period), pmin, per, ports.hw_rss)),
        cookie_key,
    }
}

/// Worker `core`'s queues: its RX and TX queue on every port and kernel
/// interface, and its hand-over ring ends.
fn worker_queues(ports: &mut Ports, core: u16, (handoff_out, handoff_in): worker::HandoffEnds) -> Result<WorkerQueues, StartError> {
    let missing = || StartError::Dpdk(format!("the queues of worker {core} are missing"));
    let mut port_index: Vec<Option<u8>> = Vec::new();
    for (pi, p) in ports.data.iter().enumerate() {
        let id = usize::from(p.id());
        if port_index.len() <= id {
            port_index.resize(id + 1, None);
        }
        port_index[id] = u8::try_from(pi).ok();
    }
    let mut rx = Vec::new();
    let mut tx = Vec::new();
    for (pi, p) in ports.data.iter_mut().enumerate() {
        rx.push((u8::try_from(pi).map_err(|_| missing())?, p.take_rx(core).ok_or_else(missing)?));
        tx.push(p.take_tx(core).ok_or_else(missing)?);
    }
    let mut kernel = Vec::new();
    for k in &mut ports.kernel {
        kernel.push(match k {
            Some(p) => Some((p.take_rx(core).ok_or_else(missing)?, p.take_tx(core).ok_or_else(missing)?)),
            None => None,
        });
    }
    Ok(WorkerQueues { rx, tx, kernel, handoff_out, handoff_in, port_index })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(device: &str, hugepages: bool) -> Config {
        let text = format!(
            "[dataplane]\nworkers = 2\nhugepages = {hugepages}\n[[ports]]\nname = \"a\"\ndevice = \"{device}\"\naddresses = [\"198.18.0.1/24\"]\n[[services]]\nvip = \"198.18.0.100\"\nport = 80\nprotocol = \"tcp\"\n[[services.real_servers]]\naddress = \"198.18.0.11\"\n"
        );
        config::from_str(&text, "t.toml").unwrap()
    }

    #[test]
    fn random_mac_drivers_get_a_stable_mac() {
        let c = cfg("net_tap0,iface=x", false);
        let m = stable_mac(&c.ports[0]).unwrap();
        assert_eq!(stable_mac(&c.ports[0]), Some(m), "the same at every start");
        assert_eq!(m[0] & 0x03, 0x02, "locally administered unicast");
        let mut other = c.ports[0].clone();
        other.name = "b".into();
        assert_ne!(stable_mac(&other), Some(m), "each port its own");
        assert_eq!(stable_mac(&cfg("net_pcap0,rx_pcap=x", false).ports[0]), None);
        assert_eq!(stable_mac(&cfg("net_memif0,role=client,mac=02:00:00:00:00:01", false).ports[0]), None, "the device's own mac= wins");
        assert_eq!(stable_mac(&cfg("0000:03:00.0", false).ports[0]), None);
    }

    #[test]
    fn eal_args_never_probe_pci_unless_named() {
        let a = eal_args(&cfg("net_tap0,iface=x", false), 2, 42);
        assert!(a.contains(&"--no-pci".to_string()));
        assert!(a.contains(&"--no-huge".to_string()));
        assert!(a.contains(&"--lcores=0@0,1@1,2@0".to_string()));
        assert!(!a.iter().any(|x| x == "-a"));
        let a = eal_args(&cfg("0000:03:00.0", true), 4, 42);
        assert!(!a.contains(&"--no-pci".to_string()));
        assert!(a.windows(2).any(|w| w[0] == "-a" && w[1] == "0000:03:00.0"));
        assert!(a.contains(&"--in-memory".to_string()));
        assert!(!a.contains(&"--single-file-segments".to_string()));
    }

    #[test]
    fn virtio_user_ports_get_single_file_segments() {
        let a = eal_args(&cfg("net_virtio_user0,path=/run/x.sock", true), 2, 42);
        assert!(a.contains(&"--single-file-segments".to_string()), "vhost-user takes at most 8 memory regions: {a:?}");
    }
}
