//! Raw-binding smoke test: EAL comes up without hugepages or PCI, a `net_null`
//! port is configured, and one burst is received and transmitted.
//!
//! `rte_eal_init` succeeds once per process, so this file holds one test and
//! cargo-nextest runs it in a process of its own.
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::multiple_unsafe_ops_per_block,
    reason = "a test of the raw bindings: casts and unwraps of known values"
)]
use dpdk_sys as sys;
use std::ffi::CString;
use std::os::raw::c_char;
use std::ptr;

#[test]
fn eal_init_null_pmd_rx_tx_burst() {
    // `--no-huge` implies legacy memory, which DPDK 22.11 refuses together
    // with `--in-memory`; `--no-shconf` plus a unique prefix gives the same
    // isolation (no files shared with any other DPDK process).
    let prefix = format!("--file-prefix=dpdk-sys-test-{}", std::process::id());
    let args = [
        "dpdk-sys-test",
        "--no-huge",
        "--no-pci",
        "--no-shconf",
        prefix.as_str(),
        "-l",
        "0",
        "--log-level=lib.eal:error",
        "--vdev=net_null0",
    ];
    let cargs: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
    let mut argv: Vec<*mut c_char> = cargs.iter().map(|c| c.as_ptr() as *mut c_char).collect();
    // SAFETY: argv points at NUL-terminated strings that outlive the call; EAL
    // is initialised once in this process (one test per file).
    let rc = unsafe { sys::rte_eal_init(argv.len() as i32, argv.as_mut_ptr()) };
    // SAFETY: reads this thread's rte_errno.
    assert!(rc >= 0, "rte_eal_init failed: errno {}", unsafe { sys::rvs_rte_errno() });

    // SAFETY: EAL is initialised.
    let nports = unsafe { sys::rte_eth_dev_count_avail() };
    assert_eq!(nports, 1);

    let name = CString::new("test_pool").unwrap();
    // SAFETY: EAL is up; the name is a valid C string.
    let pool = unsafe { sys::rte_pktmbuf_pool_create(name.as_ptr(), 1023, 0, 0, 2048 + 128, sys::rte_socket_id() as i32) };
    assert!(!pool.is_null(), "mempool creation failed");

    let port: u16 = 0;
    let conf = sys::rte_eth_conf::default();
    // SAFETY: port 0 exists; conf is a valid default configuration.
    assert_eq!(unsafe { sys::rte_eth_dev_configure(port, 1, 1, &conf) }, 0);
    // SAFETY: queue 0 of a configured port, pool is a live mempool.
    assert_eq!(unsafe { sys::rte_eth_rx_queue_setup(port, 0, 256, 0, ptr::null(), pool) }, 0);
    // SAFETY: queue 0 of a configured port.
    assert_eq!(unsafe { sys::rte_eth_tx_queue_setup(port, 0, 256, 0, ptr::null()) }, 0);
    // SAFETY: the port is configured with its queues set up.
    assert_eq!(unsafe { sys::rte_eth_dev_start(port) }, 0);

    let mut bufs = [ptr::null_mut::<sys::rte_mbuf>(); 32];
    // SAFETY: bufs has room for 32 mbuf pointers; the port is started.
    let n = unsafe { sys::rte_eth_rx_burst(port, 0, bufs.as_mut_ptr(), 32) };
    assert_eq!(n, 32, "net_null always fills a burst");
    for &m in &bufs[..usize::from(n)] {
        // SAFETY: m was just returned by rx_burst and is a valid mbuf.
        let len = unsafe { (*m).pkt_len };
        assert!(len > 0);
    }
    // SAFETY: hands n valid mbufs to the PMD, which frees them after sending.
    let sent = unsafe { sys::rte_eth_tx_burst(port, 0, bufs.as_mut_ptr(), n) };
    assert_eq!(sent, n);

    let mut stats = sys::rte_eth_stats::default();
    // SAFETY: port started; stats is a valid out-pointer.
    assert_eq!(unsafe { sys::rte_eth_stats_get(port, &mut stats) }, 0);
    assert_eq!(stats.ipackets, 32);
    assert_eq!(stats.opackets, 32);

    // SAFETY: stop and release in reverse order of set-up.
    unsafe {
        sys::rte_eth_dev_stop(port);
        sys::rte_eth_dev_close(port);
        sys::rte_eal_cleanup();
    }
}
