//! Ethernet ports: probing, queue and RSS set-up, burst I/O, statistics.
//!
//! A [`Port`] owns one started ethdev device. Only it makes the device's
//! queues, each at most once ([`Port::take_rx`], [`Port::take_tx`]), so
//! every queue has exactly one owner; queues keep the device alive, and
//! the device is stopped and closed when the `Port` and all its queues are
//! gone (a worker still polling keeps it open). Queues cannot be made from
//! a bare port id:
//!
//! ```compile_fail,E0451
//! let q = rvs_dpdk::RxQueue { port: 0, queue: 0 }; // private fields
//! ```
use super::eal::{errno_str, Eal};
use super::mbuf::{Burst, Mempool, BURST};
use dpdk_sys as sys;
use std::ffi::{CStr, CString};
use std::sync::Arc;

#[expect(clippy::cast_possible_truncation, reason = "BURST is 32")]
const BURST_U16: u16 = BURST as u16;

/// Why a port could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The device string contains a NUL.
    #[error("device {0:?} contains a NUL byte")]
    BadDevice(String),
    /// `rte_dev_probe` refused the device.
    #[error("DPDK could not probe {device:?}: {reason}")]
    Probe {
        /// The device arguments.
        device: String,
        /// Why.
        reason: String,
    },
    /// No ethdev port has the device's name.
    #[error("no DPDK port named {0:?} (for a PCI device, is it bound to a DPDK driver and allow-listed?)")]
    NotFound(String),
    /// The device cannot provide the queues rvs needs.
    #[error("{device}: needs {want} {kind} queues, the device offers {max}")]
    Queues {
        /// Port name.
        device: String,
        /// "RX" or "TX".
        kind: &'static str,
        /// Requested.
        want: u16,
        /// Offered.
        max: u16,
    },
    /// The device is already owned by another `Port`.
    #[error("{0}: the device is already open (a port owns it)")]
    InUse(String),
    /// A set-up call failed.
    #[error("{device}: {call} failed: {reason}")]
    Call {
        /// Port name.
        device: String,
        /// Which DPDK call.
        call: &'static str,
        /// errno text.
        reason: String,
    },
}

/// DPDK's `RTE_ETH_RSS_*` bits rvs requests (from the headers, through
/// `dpdk-sys`'s wrapper).
pub mod rss {
    use dpdk_sys as sys;
    /// Everything rvs balances on: IPv4 and IPv6, TCP, UDP and fragments.
    pub const ALL: u64 = sys::RVS_ETH_RSS_IPV4
        | sys::RVS_ETH_RSS_FRAG_IPV4
        | sys::RVS_ETH_RSS_NONFRAG_IPV4_TCP
        | sys::RVS_ETH_RSS_NONFRAG_IPV4_UDP
        | sys::RVS_ETH_RSS_IPV6
        | sys::RVS_ETH_RSS_FRAG_IPV6
        | sys::RVS_ETH_RSS_NONFRAG_IPV6_TCP
        | sys::RVS_ETH_RSS_NONFRAG_IPV6_UDP;
}

const RX_OFFLOAD_CHECKSUM: u64 = sys::RVS_ETH_RX_OFFLOAD_CHECKSUM;
const TX_OFFLOAD_MBUF_FAST_FREE: u64 = sys::RVS_ETH_TX_OFFLOAD_MBUF_FAST_FREE;

/// How to set a port up.
#[derive(Clone, Debug)]
pub struct PortSetup {
    /// RX queues (one per worker).
    pub rx_queues: u16,
    /// TX queues (one per worker).
    pub tx_queues: u16,
    /// Descriptors per queue.
    pub descriptors: u16,
    /// IP MTU.
    pub mtu: u16,
    /// RSS hash key (40 bytes, Toeplitz) used when rx_queues > 1.
    pub rss_key: [u8; 40],
    /// MAC address to set, if any.
    pub mac: Option<[u8; 6]>,
}

/// What a started port is.
#[derive(Clone, Debug)]
pub struct PortInfo {
    /// ethdev port id.
    pub id: u16,
    /// ethdev name.
    pub name: String,
    /// Driver name.
    pub driver: String,
    /// MAC address.
    pub mac: [u8; 6],
    /// RSS is active with rvs's key.
    pub rss: bool,
    /// RSS redirection table size (0 without RSS).
    pub reta_size: u16,
    /// The NIC verifies IPv4 header, TCP and UDP checksums on receive and
    /// says so in each mbuf (DPDK's `RTE_ETH_RX_OFFLOAD_CHECKSUM` is on).
    pub rx_l4_checksum: bool,
    /// The MTU could be set.
    pub mtu_set: bool,
    /// The device cannot take the requested MAC (pcap): rvs uses it in
    /// software (the port is promiscuous; rvs filters destinations itself
    /// and writes the source of every frame it sends).
    pub mac_in_software: bool,
}

/// Finds or probes the device named by `device` (a vdev with arguments or a
/// PCI address that EAL probed at start-up) and returns its port id.
fn probe(device: &str, is_pci: bool) -> Result<u16, PortError> {
    let name = device.split(',').next().unwrap_or(device).trim().to_string();
    if !is_pci {
        let c = CString::new(device).map_err(|_| PortError::BadDevice(device.to_string()))?;
        // SAFETY: EAL is running; `c` is a valid C string for the call.
        let rc = unsafe { sys::rte_dev_probe(c.as_ptr()) };
        // Already probed (EEXIST): look it up; whether a Port owns it is
        // decided by the caller.
        if rc < 0 && rc != -libc::EEXIST {
            return Err(PortError::Probe { device: device.to_string(), reason: errno_str(rc) });
        }
    }
    port_by_name(&name).ok_or(PortError::NotFound(name))
}

/// The port id of an ethdev name.
fn port_by_name(name: &str) -> Option<u16> {
    let c = CString::new(name).ok()?;
    let mut id: u16 = 0;
    // SAFETY: valid C string and out-pointer.
    let rc = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    (rc == 0).then_some(id)
}

fn call(device: &str, call: &'static str, rc: i32) -> Result<(), PortError> {
    if rc < 0 {
        Err(PortError::Call { device: device.to_string(), call, reason: errno_str(rc) })
    } else {
        Ok(())
    }
}

fn c_string(bytes: *const std::os::raw::c_char) -> String {
    if bytes.is_null() {
        return String::new();
    }
    // SAFETY: DPDK returns NUL-terminated static strings here.
    unsafe { CStr::from_ptr(bytes) }.to_string_lossy().into_owned()
}

/// The device name of a port id.
fn device_name(id: u16) -> String {
    let mut name_buf = [0 as std::os::raw::c_char; 64];
    // SAFETY: the buffer is 64 bytes, as passed; the port id exists.
    let _ = unsafe { sys::rte_eth_dev_get_name_by_port(id, name_buf.as_mut_ptr()) };
    c_string(name_buf.as_ptr())
}

/// The device's capabilities, refused if it has fewer queues than asked.
fn device_info(id: u16, name: &str, s: &PortSetup) -> Result<sys::rte_eth_dev_info, PortError> {
    let mut info = sys::rte_eth_dev_info::default();
    // SAFETY: valid port id and out-pointer.
    call(name, "rte_eth_dev_info_get", unsafe { sys::rte_eth_dev_info_get(id, &mut info) })?;
    if s.rx_queues > info.max_rx_queues {
        return Err(PortError::Queues { device: name.to_string(), kind: "RX", want: s.rx_queues, max: info.max_rx_queues });
    }
    if s.tx_queues > info.max_tx_queues {
        return Err(PortError::Queues { device: name.to_string(), kind: "TX", want: s.tx_queues, max: info.max_tx_queues });
    }
    Ok(info)
}

/// What [`configure`] asked of the device.
struct Configured {
    rss: bool,
    rx_l4_checksum: bool,
    tx_offloads: u64,
}

/// RSS over every queue (when there are several and the device hashes),
/// receive checksum and fast-free offloads where the device has them.
fn configure(id: u16, name: &str, s: &PortSetup, info: &sys::rte_eth_dev_info) -> Result<Configured, PortError> {
    let mut key = s.rss_key;
    let mut conf = sys::rte_eth_conf::default();
    let rss_hf = rss::ALL & info.flow_type_rss_offloads;
    let rss = s.rx_queues > 1 && rss_hf != 0;
    if rss {
        conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
        conf.rx_adv_conf.rss_conf.rss_key_len = 40;
        conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
    }
    let rx_l4_checksum = info.rx_offload_capa & RX_OFFLOAD_CHECKSUM == RX_OFFLOAD_CHECKSUM;
    if rx_l4_checksum {
        conf.rxmode.offloads |= RX_OFFLOAD_CHECKSUM;
    }
    if info.tx_offload_capa & TX_OFFLOAD_MBUF_FAST_FREE != 0 {
        conf.txmode.offloads |= TX_OFFLOAD_MBUF_FAST_FREE;
    }
    // SAFETY: valid port id; conf (and the key it points to) outlive the call.
    call(name, "rte_eth_dev_configure", unsafe { sys::rte_eth_dev_configure(id, s.rx_queues, s.tx_queues, &conf) })?;
    Ok(Configured { rss, rx_l4_checksum, tx_offloads: conf.txmode.offloads })
}

/// DPDK's "any NUMA socket" (`SOCKET_ID_ANY`, -1), as the unsigned
/// argument of the queue set-up calls.
const SOCKET_ID_ANY: u32 = u32::MAX;

/// A socket id for the allocation calls, which take a signed one: an id
/// beyond `i32` cannot be a real socket and becomes "any" (-1).
pub(crate) fn socket_or_any(id: u32) -> i32 {
    i32::try_from(id).unwrap_or(-1)
}

/// Sets up every RX queue (on `pool`) and TX queue.
fn setup_queues(
    id: u16,
    name: &str,
    s: &PortSetup,
    info: &sys::rte_eth_dev_info,
    c: &Configured,
    pool: &'static Mempool,
) -> Result<(), PortError> {
    let mut nb_rx = s.descriptors;
    let mut nb_tx = s.descriptors;
    // SAFETY: valid port id and in/out pointers.
    call(name, "rte_eth_dev_adjust_nb_rx_tx_desc", unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nb_rx, &mut nb_tx) })?;
    // SAFETY: valid port id.
    let socket = u32::try_from(unsafe { sys::rte_eth_dev_socket_id(id) }).unwrap_or(SOCKET_ID_ANY);
    for q in 0..s.rx_queues {
        // SAFETY: configured port; the pool lives for the whole process,
        // so it outlives the port; default rxconf (null).
        call(name, "rte_eth_rx_queue_setup", unsafe { sys::rte_eth_rx_queue_setup(id, q, nb_rx, socket, std::ptr::null(), pool.raw()) })?;
    }
    for q in 0..s.tx_queues {
        let mut txconf = info.default_txconf;
        txconf.offloads = c.tx_offloads;
        // SAFETY: configured port, valid txconf.
        call(name, "rte_eth_tx_queue_setup", unsafe { sys::rte_eth_tx_queue_setup(id, q, nb_tx, socket, &txconf) })?;
    }
    Ok(())
}

/// Sets the configured MAC; returns whether it must be kept in software
/// (the device cannot take one).
fn set_mac(id: u16, name: &str, mac: Option<[u8; 6]>) -> Result<bool, PortError> {
    let Some(mac) = mac else { return Ok(false) };
    let mut a = sys::rte_ether_addr { addr_bytes: mac };
    // SAFETY: valid port id and address.
    let rc = unsafe { sys::rte_eth_dev_default_mac_addr_set(id, &mut a) };
    if rc == -libc::ENOTSUP {
        return Ok(true);
    }
    call(name, "rte_eth_dev_default_mac_addr_set", rc)?;
    Ok(false)
}

/// Configures queues, RSS, MTU and MAC, then starts the port.
fn setup(id: u16, s: &PortSetup, pool: &'static Mempool) -> Result<PortInfo, PortError> {
    let name = device_name(id);
    let info = device_info(id, &name, s)?;
    let c = configure(id, &name, s, &info)?;
    setup_queues(id, &name, s, &info, &c, pool)?;
    // SAFETY: valid port id.
    let mtu_set = unsafe { sys::rte_eth_dev_set_mtu(id, s.mtu) } == 0;
    let mac_in_software = set_mac(id, &name, s.mac)?;
    // SAFETY: the port is configured with all its queues.
    call(&name, "rte_eth_dev_start", unsafe { sys::rte_eth_dev_start(id) })?;
    // Promiscuous: rvs filters destination MACs itself and needs IPv6
    // solicited-node multicast. Some PMDs refuse; that is fine.
    // SAFETY: started port.
    let _ = unsafe { sys::rte_eth_promiscuous_enable(id) };

    let reta_size = if c.rss { program_reta(id, info.reta_size, s.rx_queues, info.reta_size) } else { 0 };
    let mut a = sys::rte_ether_addr::default();
    // SAFETY: valid port id and out-pointer.
    call(&name, "rte_eth_macaddr_get", unsafe { sys::rte_eth_macaddr_get(id, &mut a) })?;
    let mac = match s.mac {
        Some(m) if mac_in_software => m,
        _ => a.addr_bytes,
    };
    let (rss, rx_l4_checksum) = (c.rss, c.rx_l4_checksum);
    Ok(PortInfo { id, name, driver: c_string(info.driver_name), mac, rss, reta_size, rx_l4_checksum, mtu_set, mac_in_software })
}

/// Programs the redirection table round-robin over the queues with the
/// given period (entry i -> queue (i mod period) mod n), so software can
/// predict which queue a hash lands on: with one period for every port
/// (the smallest table; sizes are powers of two), `hash mod period mod n`
/// names the queue on all of them. Returns the table size, or 0 when the
/// device refused.
fn program_reta(id: u16, reta_size: u16, queues: u16, period: u16) -> u16 {
    const GROUP: usize = 64;
    if reta_size == 0 || queues == 0 {
        return 0;
    }
    let groups = usize::from(reta_size).div_ceil(GROUP);
    let mut conf = vec![sys::rte_eth_rss_reta_entry64::default(); groups];
    for (g, c) in conf.iter_mut().enumerate() {
        c.mask = u64::MAX;
        for i in 0..GROUP {
            let entry = g * GROUP + i;
            c.reta[i] = rvs_wire::num::rem_u16(u64::from(rvs_wire::num::rem_u16(entry as u64, period.max(1))), queues);
        }
    }
    // SAFETY: conf holds reta_size/64 groups, as the call expects.
    let rc = unsafe { sys::rte_eth_dev_rss_reta_update(id, conf.as_mut_ptr(), reta_size) };
    if rc == 0 {
        reta_size
    } else {
        0
    }
}

/// Basic port statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the NIC dropped for lack of RX descriptors.
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// Reads a port's statistics.
fn stats(id: u16) -> PortStats {
    let mut s = sys::rte_eth_stats::default();
    // SAFETY: valid port id and out-pointer.
    if unsafe { sys::rte_eth_stats_get(id, &mut s) } != 0 {
        return PortStats::default();
    }
    PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    }
}

/// True when the link is up.
fn link_up(id: u16) -> bool {
    let mut l = sys::rte_eth_link::default();
    // SAFETY: valid port id and out-pointer.
    if unsafe { sys::rte_eth_link_get_nowait(id, &mut l) } != 0 {
        return false;
    }
    l.link_status() != 0
}

/// Port ids owned by a live [`Port`] (a device is opened once).
static OPEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// The device itself, shared by its [`Port`] and its queues; stopped and
/// closed when the last of them is dropped.
#[derive(Debug)]
struct Device {
    id: u16,
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: this is the last reference to the device: its Port and
        // every queue (the only ways to reach it) are gone, so no lcore
        // polls or sends on it any more; stopping a started port and then
        // closing it releases it (its queues' mbufs go back to their pool).
        unsafe {
            sys::rte_eth_dev_stop(self.id);
        }
        // SAFETY: as above; the port is stopped.
        unsafe {
            sys::rte_eth_dev_close(self.id);
        }
        OPEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|&x| x != self.id);
    }
}

/// A started Ethernet port (see the module documentation).
#[derive(Debug)]
pub struct Port {
    dev: Arc<Device>,
    info: PortInfo,
    rx_taken: Vec<bool>,
    tx_taken: Vec<bool>,
}

impl Port {
    /// Probes `device` (a vdev with its arguments, or a PCI device EAL
    /// probed at start-up), configures it as `s` says with RX buffers from
    /// `pool`, and starts it. A device already owned by a `Port` is
    /// refused.
    pub fn open(eal: &Eal, device: &str, is_pci: bool, s: &PortSetup, pool: &'static Mempool) -> Result<Port, PortError> {
        let _ = eal;
        let id = probe(device, is_pci)?;
        {
            let mut open = OPEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if open.contains(&id) {
                return Err(PortError::InUse(device.to_string()));
            }
            open.push(id);
        }
        // From here the Device owns the id: dropping it (on an error
        // below too) stops, closes and releases it.
        let dev = Arc::new(Device { id });
        let info = setup(id, s, pool)?;
        Ok(Port { dev, info, rx_taken: vec![false; usize::from(s.rx_queues)], tx_taken: vec![false; usize::from(s.tx_queues)] })
    }

    /// What the started port is.
    pub fn info(&self) -> &PortInfo {
        &self.info
    }

    /// The ethdev port id (mbufs carry it).
    pub fn id(&self) -> u16 {
        self.dev.id
    }

    /// Programs the redirection table round-robin over `queues` with
    /// `period` (see [`PortInfo::reta_size`]); returns and records the
    /// size in use (0 when the device refused).
    pub fn program_reta(&mut self, queues: u16, period: u16) -> u16 {
        self.info.reta_size = program_reta(self.dev.id, self.info.reta_size, queues, period);
        self.info.reta_size
    }

    /// Device statistics.
    pub fn stats(&self) -> PortStats {
        stats(self.dev.id)
    }

    /// True when the link is up.
    pub fn link_up(&self) -> bool {
        link_up(self.dev.id)
    }

    /// RX queue `q`, the first time it is asked for (None after, or when
    /// the port has no such queue).
    pub fn take_rx(&mut self, q: u16) -> Option<RxQueue> {
        let taken = self.rx_taken.get_mut(usize::from(q))?;
        if std::mem::replace(taken, true) {
            return None;
        }
        Some(RxQueue { dev: self.dev.clone(), queue: q })
    }

    /// TX queue `q`, the first time it is asked for.
    pub fn take_tx(&mut self, q: u16) -> Option<TxQueue> {
        let taken = self.tx_taken.get_mut(usize::from(q))?;
        if std::mem::replace(taken, true) {
            return None;
        }
        Some(TxQueue { dev: self.dev.clone(), queue: q })
    }
}

/// One RX queue, owned by one worker. `Send` (it moves to its lcore), not
/// `Clone`: there is exactly one per queue.
#[derive(Debug)]
pub struct RxQueue {
    dev: Arc<Device>,
    queue: u16,
}

/// One TX queue, owned by one worker.
#[derive(Debug)]
pub struct TxQueue {
    dev: Arc<Device>,
    queue: u16,
}

impl RxQueue {
    /// The ethdev port id.
    pub fn port(&self) -> u16 {
        self.dev.id
    }

    /// Receives into an empty burst; returns the count.
    #[inline(always)]
    pub fn rx(&mut self, b: &mut Burst) -> usize {
        debug_assert!(b.is_empty());
        b.free_all();
        let (ptrs, _) = b.raw_parts();
        // SAFETY: the queue belongs to this RxQueue alone (Port hands each
        // out once), the device is started and kept open by our Arc, and
        // `ptrs` has room for BURST mbufs (the burst is empty).
        let n = unsafe { sys::rte_eth_rx_burst(self.dev.id, self.queue, ptrs, BURST_U16) };
        b.set_len(usize::from(n));
        usize::from(n)
    }
}

impl TxQueue {
    /// The ethdev port id.
    pub fn port(&self) -> u16 {
        self.dev.id
    }

    /// Sends what it can of `b`; the sent mbufs leave the burst, the rest
    /// stay (the caller frees and counts them). Returns the number sent.
    #[inline(always)]
    pub fn tx(&mut self, b: &mut Burst) -> usize {
        let (ptrs, len) = b.raw_parts();
        if len == 0 {
            return 0;
        }
        #[expect(clippy::cast_possible_truncation, reason = "len <= BURST = 32")]
        let n = len as u16;
        // SAFETY: the queue has one owner and the device is kept open by
        // our Arc; the first `len` pointers are owned mbufs, and the PMD
        // takes ownership of the `sent` first ones.
        let sent = usize::from(unsafe { sys::rte_eth_tx_burst(self.dev.id, self.queue, ptrs, n) });
        b.consume_front(sent);
        sent
    }
}
