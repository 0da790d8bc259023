//! The safe DPDK wrapper on a real EAL: mbufs free themselves, headroom
//! operations behave like `VecBuf`'s, bursts move through a ring and a
//! `net_null` port, and the pool ends with every mbuf back.
//!
//! One test per file: `rte_eal_init` works once per process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use rvs_dpdk::port::{self, PortSetup};
use rvs_dpdk::{Burst, Eal, MbufRing, Mempool, RxQueue, TxQueue};
use rvs_wire::PacketBuf;

#[test]
fn eal_wrapper_roundtrip() {
    let prefix = format!("--file-prefix=dp-wrap-{}", std::process::id());
    let eal = Eal::init(&[
        "wrap-test",
        "--no-huge",
        "--no-pci",
        "--no-shconf",
        &prefix,
        "--no-telemetry",
        "-l",
        "0",
        "--log-level=lib.eal:error",
    ])
    .unwrap();
    assert!(Eal::init(&["again"]).is_err(), "EAL must refuse a second init");
    assert!(eal.tsc_hz() > 0);
    let pool = Mempool::new("wrap_pool", 1023, 32, 2048 + 128).unwrap();
    let base = pool.in_use();

    // An mbuf behaves like a VecBuf and frees itself.
    {
        let mut m = pool.alloc().unwrap();
        m.reset_empty();
        assert_eq!(m.len(), 0);
        assert_eq!(m.headroom(), 128);
        assert!(m.append(60));
        m.data_mut().copy_from_slice(&[0x5a; 60]);
        assert!(m.prepend(20));
        assert_eq!(m.len(), 80);
        assert_eq!(m.headroom(), 108);
        assert!(m.trim_front(20));
        assert_eq!(m.data(), &[0x5a; 60][..]);
        m.truncate(14);
        assert_eq!(m.len(), 14);
        assert!(!m.prepend(4096));
        assert!(!m.trim_front(15));
        assert!(m.is_contiguous());
        assert_eq!(pool.in_use(), base + 1);
    }
    assert_eq!(pool.in_use(), base, "a dropped Mbuf returns to its pool");

    // A ring moves ownership between bursts.
    let ring = MbufRing::new("wrap_ring", 64).unwrap();
    let mut b = Burst::new();
    for _ in 0..10 {
        b.push(pool.alloc().unwrap()).unwrap();
    }
    assert_eq!(ring.enqueue(&mut b), 10);
    assert!(b.is_empty());
    assert_eq!(ring.count(), 10);
    let mut got = Burst::new();
    assert_eq!(ring.dequeue(&mut got), 10);
    got.free_all();
    assert_eq!(pool.in_use(), base);

    // A port: probe by name, set up, receive and transmit bursts.
    let id = port::probe("net_null0,copy=1", false).unwrap();
    assert!(port::probe("net_nosuchdriver0", false).is_err());
    let setup =
        PortSetup { rx_queues: 1, tx_queues: 1, descriptors: 256, mtu: 1500, rss_key: [0x6d; 40], mac: Some([2, 0, 0, 0, 0, 0x42]) };
    let info = port::setup(id, &setup, &pool).unwrap();
    assert_eq!(info.mac, [2, 0, 0, 0, 0, 0x42]);
    let mut rx = RxQueue::new(id, 0);
    let mut tx = TxQueue::new(id, 0);
    let mut b = Burst::new();
    assert_eq!(rx.rx(&mut b), rvs_dpdk::BURST);
    for m in b.as_mut_slice() {
        assert!(!m.is_empty());
    }
    assert_eq!(tx.tx(&mut b), rvs_dpdk::BURST);
    assert!(b.is_empty());
    let s = port::stats(id);
    assert_eq!((s.ipackets, s.opackets), (32, 32));
    port::close(id);
    drop(ring);
    assert_eq!(pool.in_use(), base, "every mbuf came back");
    drop(pool);
    drop(eal);
}
