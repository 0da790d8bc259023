//! Ethernet ports: probing, queue and RSS set-up, burst I/O, statistics.
use super::eal::{errno_str, rte_errno};
use super::mbuf::{Burst, Mempool, BURST};
use dpdk_sys as sys;
use std::ffi::{CStr, CString};

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

/// DPDK's `RTE_ETH_RSS_*` bits rvs requests (macros bindgen cannot see).
pub mod rss {
    /// IPv4.
    pub const IPV4: u64 = 1 << 2;
    /// IPv4 fragments.
    pub const FRAG_IPV4: u64 = 1 << 3;
    /// IPv4 TCP.
    pub const NONFRAG_IPV4_TCP: u64 = 1 << 4;
    /// IPv4 UDP.
    pub const NONFRAG_IPV4_UDP: u64 = 1 << 5;
    /// IPv6.
    pub const IPV6: u64 = 1 << 8;
    /// IPv6 fragments.
    pub const FRAG_IPV6: u64 = 1 << 9;
    /// IPv6 TCP.
    pub const NONFRAG_IPV6_TCP: u64 = 1 << 10;
    /// IPv6 UDP.
    pub const NONFRAG_IPV6_UDP: u64 = 1 << 11;
    /// Everything rvs balances on.
    pub const ALL: u64 = IPV4 | FRAG_IPV4 | NONFRAG_IPV4_TCP | NONFRAG_IPV4_UDP | IPV6 | FRAG_IPV6 | NONFRAG_IPV6_TCP | NONFRAG_IPV6_UDP;
}

const RX_OFFLOAD_CHECKSUM: u64 = (1 << 1) | (1 << 2) | (1 << 3);
const TX_OFFLOAD_MBUF_FAST_FREE: u64 = 1 << 16;

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
    /// The NIC reports L4 checksum verdicts.
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
pub fn probe(device: &str, is_pci: bool) -> Result<u16, PortError> {
    let name = device.split(',').next().unwrap_or(device).trim().to_string();
    if !is_pci {
        let c = CString::new(device).map_err(|_| PortError::BadDevice(device.to_string()))?;
        // SAFETY: EAL is running; `c` is a valid C string for the call.
        let rc = unsafe { sys::rte_dev_probe(c.as_ptr()) };
        if rc < 0 {
            return Err(PortError::Probe { device: device.to_string(), reason: errno_str(rc) });
        }
    }
    port_by_name(&name).ok_or(PortError::NotFound(name))
}

/// The port id of an ethdev name.
pub fn port_by_name(name: &str) -> Option<u16> {
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

/// Configures queues, RSS, MTU and MAC, then starts the port.
pub fn setup(id: u16, s: &PortSetup, pool: &Mempool) -> Result<PortInfo, PortError> {
    let mut name_buf = [0 as std::os::raw::c_char; 64];
    // SAFETY: the buffer is 64 bytes, as passed; the port id exists.
    let _ = unsafe { sys::rte_eth_dev_get_name_by_port(id, name_buf.as_mut_ptr()) };
    let name = c_string(name_buf.as_ptr());

    let mut info = sys::rte_eth_dev_info::default();
    // SAFETY: valid port id and out-pointer.
    call(&name, "rte_eth_dev_info_get", unsafe { sys::rte_eth_dev_info_get(id, &mut info) })?;
    if s.rx_queues > info.max_rx_queues {
        return Err(PortError::Queues { device: name, kind: "RX", want: s.rx_queues, max: info.max_rx_queues });
    }
    if s.tx_queues > info.max_tx_queues {
        return Err(PortError::Queues { device: name, kind: "TX", want: s.tx_queues, max: info.max_tx_queues });
    }

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
    call(&name, "rte_eth_dev_configure", unsafe { sys::rte_eth_dev_configure(id, s.rx_queues, s.tx_queues, &conf) })?;

    let mut nb_rx = s.descriptors;
    let mut nb_tx = s.descriptors;
    // SAFETY: valid port id and in/out pointers.
    call(&name, "rte_eth_dev_adjust_nb_rx_tx_desc", unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nb_rx, &mut nb_tx) })?;
    // SAFETY: valid port id.
    let socket = u32::try_from(unsafe { sys::rte_eth_dev_socket_id(id) }).unwrap_or(0);
    for q in 0..s.rx_queues {
        // SAFETY: configured port; the pool outlives the port (rvsd tears
        // ports down before dropping the pool); default rxconf (null).
        call(&name, "rte_eth_rx_queue_setup", unsafe { sys::rte_eth_rx_queue_setup(id, q, nb_rx, socket, std::ptr::null(), pool.raw()) })?;
    }
    for q in 0..s.tx_queues {
        let mut txconf = info.default_txconf;
        txconf.offloads = conf.txmode.offloads;
        // SAFETY: configured port, valid txconf.
        call(&name, "rte_eth_tx_queue_setup", unsafe { sys::rte_eth_tx_queue_setup(id, q, nb_tx, socket, &txconf) })?;
    }

    // SAFETY: valid port id.
    let mtu_set = unsafe { sys::rte_eth_dev_set_mtu(id, s.mtu) } == 0;
    let mut mac_in_software = false;
    if let Some(mac) = s.mac {
        let mut a = sys::rte_ether_addr { addr_bytes: mac };
        // SAFETY: valid port id and address.
        let rc = unsafe { sys::rte_eth_dev_default_mac_addr_set(id, &mut a) };
        if rc == -libc::ENOTSUP {
            mac_in_software = true;
        } else {
            call(&name, "rte_eth_dev_default_mac_addr_set", rc)?;
        }
    }
    // SAFETY: the port is configured with all its queues.
    call(&name, "rte_eth_dev_start", unsafe { sys::rte_eth_dev_start(id) })?;
    // Promiscuous: rvs filters destination MACs itself and needs IPv6
    // solicited-node multicast. Some PMDs refuse; that is fine.
    // SAFETY: started port.
    let _ = unsafe { sys::rte_eth_promiscuous_enable(id) };

    let reta_size = if rss { program_reta(id, info.reta_size, s.rx_queues, info.reta_size) } else { 0 };
    let mut a = sys::rte_ether_addr::default();
    // SAFETY: valid port id and out-pointer.
    call(&name, "rte_eth_macaddr_get", unsafe { sys::rte_eth_macaddr_get(id, &mut a) })?;
    let mac = match s.mac {
        Some(m) if mac_in_software => m,
        _ => a.addr_bytes,
    };
    Ok(PortInfo { id, name, driver: c_string(info.driver_name), mac, rss, reta_size, rx_l4_checksum, mtu_set, mac_in_software })
}

/// Programs the redirection table round-robin over the queues with the
/// given period (entry i -> queue (i mod period) mod n), so software can
/// predict which queue a hash lands on: with one period for every port
/// (the smallest table; sizes are powers of two), `hash mod period mod n`
/// names the queue on all of them. Returns the table size, or 0 when the
/// device refused.
pub fn program_reta(id: u16, reta_size: u16, queues: u16, period: u16) -> u16 {
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
            c.reta[i] = u16::try_from(entry % usize::from(period.max(1)) % usize::from(queues)).unwrap_or(0);
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
pub fn stats(id: u16) -> PortStats {
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
pub fn link_up(id: u16) -> bool {
    let mut l = sys::rte_eth_link::default();
    // SAFETY: valid port id and out-pointer.
    if unsafe { sys::rte_eth_link_get_nowait(id, &mut l) } != 0 {
        return false;
    }
    l.link_status() != 0
}

/// Stops and closes a port (after its queues' users stopped).
pub fn close(id: u16) {
    // SAFETY: called at shutdown once the workers are joined.
    unsafe {
        sys::rte_eth_dev_stop(id);
    }
    // SAFETY: as above; closing a stopped port releases it.
    unsafe {
        sys::rte_eth_dev_close(id);
    }
}

/// Fails with the current rte_errno, for callers outside this module.
pub fn last_error() -> String {
    rte_errno()
}

/// One RX queue, owned by one worker.
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
}

/// One TX queue, owned by one worker.
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
}

impl RxQueue {
    /// The queue `queue` of a started port. Each (port, queue) must be
    /// handed to exactly one worker.
    pub fn new(port: u16, queue: u16) -> RxQueue {
        RxQueue { port, queue }
    }

    /// The port id.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Receives into an empty burst; returns the count.
    #[inline(always)]
    pub fn rx(&mut self, b: &mut Burst) -> usize {
        debug_assert!(b.is_empty());
        let (ptrs, _) = b.raw_parts();
        // SAFETY: the queue belongs to this RxQueue alone (one owner per
        // queue), the port is started and `ptrs` has room for BURST mbufs.
        let n = unsafe { sys::rte_eth_rx_burst(self.port, self.queue, ptrs, BURST_U16) };
        b.set_len(usize::from(n));
        usize::from(n)
    }
}

impl TxQueue {
    /// The queue `queue` of a started port; one owner per queue.
    pub fn new(port: u16, queue: u16) -> TxQueue {
        TxQueue { port, queue }
    }

    /// The port id.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends what it can of `b`; the sent mbufs leave the burst, the rest
    /// stay (the caller frees and counts them). Returns the number sent.
    #[inline(always)]
    pub fn tx(&mut self, b: &mut Burst) -> usize {
        let (ptrs, len) = b.raw_parts();
        if len == 0 {
            return 0;
        }
        // SAFETY: the queue has one owner; the first `len` pointers are owned
        // mbufs, and the PMD takes ownership of the `sent` first ones.
        let sent = usize::from(unsafe { sys::rte_eth_tx_burst(self.port, self.queue, ptrs, u16::try_from(len).unwrap_or(0)) });
        b.consume_front(sent);
        sent
    }
}
