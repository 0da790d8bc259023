//! The safe DPDK wrapper on a real EAL: mbufs free themselves, headroom
//! operations behave like `VecBuf`'s, a drain stopped early frees the rest,
//! bursts move through a ring and a `net_null` port, queues are handed out
//! once, a device is opened once and closed when its port and queues are
//! gone, a second thread registers, an lcore job is joined, and the pool
//! ends with every mbuf back.
//!
//! One test per file: `rte_eal_init` works once per process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
use rvs_dpdk::{ring, Burst, Eal, Mempool, Port, PortError, PortSetup};
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
        "0,1",
        "--log-level=lib.eal:error",
    ])
    .unwrap();
    assert!(Eal::init(&["again"]).is_err(), "EAL must refuse a second init");
    assert!(eal.tsc_hz() > 0);
    let pool = Mempool::new(&eal, "wrap_pool", 1023, 32, 2048 + 128).unwrap();
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

    // A drain stopped after two mbufs frees the other eight.
    let mut b = Burst::new();
    for _ in 0..10 {
        b.push(pool.alloc().unwrap()).unwrap();
    }
    let two: Vec<_> = b.drain().take(2).collect();
    assert!(b.is_empty());
    assert_eq!(pool.in_use(), base + 2, "the undrained rest was freed");
    drop(two);
    assert_eq!(pool.in_use(), base);

    // A ring moves ownership between bursts; dropping both ends frees what
    // is left in it.
    let (mut prod, mut cons) = ring(&eal, "wrap_ring", 64).unwrap();
    for _ in 0..10 {
        b.push(pool.alloc().unwrap()).unwrap();
    }
    assert_eq!(prod.enqueue(&mut b), 10);
    assert!(b.is_empty());
    assert_eq!(cons.count(), 10);
    let mut got = Burst::new();
    assert_eq!(cons.dequeue(&mut got), 10);
    got.free_all();
    assert_eq!(pool.in_use(), base);
    for _ in 0..5 {
        b.push(pool.alloc().unwrap()).unwrap();
    }
    assert_eq!(prod.enqueue(&mut b), 5);
    drop(prod);
    assert_eq!(pool.in_use(), base + 5, "the consumer still holds the ring");
    drop(cons);
    assert_eq!(pool.in_use(), base, "the last end freed the ring's mbufs");

    // A port: open, receive and transmit bursts; each queue is handed out
    // once; a device is opened once.
    assert!(Port::open(&eal, "net_nosuchdriver0", false, &setup(), pool).is_err());
    let mut port = Port::open(&eal, "net_null0,copy=1", false, &setup(), pool).unwrap();
    assert_eq!(port.info().mac, [2, 0, 0, 0, 0, 0x42]);
    assert!(matches!(Port::open(&eal, "net_null0", false, &setup(), pool), Err(PortError::InUse(_))));
    let mut rx = port.take_rx(0).unwrap();
    let mut tx = port.take_tx(0).unwrap();
    assert!(port.take_rx(0).is_none() && port.take_tx(0).is_none(), "one owner per queue");
    assert!(port.take_rx(1).is_none(), "no such queue");
    let mut b = Burst::new();
    assert_eq!(rx.rx(&mut b), rvs_dpdk::BURST);
    for m in b.as_mut_slice() {
        assert!(!m.is_empty());
    }
    assert_eq!(tx.tx(&mut b), rvs_dpdk::BURST);
    assert!(b.is_empty());
    let s = port.stats();
    assert_eq!((s.ipackets, s.opackets), (32, 32));
    // Dropping the Port leaves the device open for its queues; dropping
    // them closes it, and the id can be opened again.
    drop(port);
    assert_eq!(rx.rx(&mut b), rvs_dpdk::BURST, "the queue still works");
    b.free_all();
    drop((rx, tx));
    let again = Port::open(&eal, "net_null1", false, &setup(), pool).unwrap();
    drop(again);

    // A second thread registers itself; a job runs on a worker lcore.
    let h = eal.handle();
    let id = std::thread::spawn(move || h.register_thread().unwrap()).join().unwrap();
    assert_ne!(id, u32::MAX);
    let lcore = *eal.worker_lcores().first().expect("-l 0,1 gives one worker lcore");
    let (tx_done, rx_done) = std::sync::mpsc::channel();
    let job = eal
        .launch(lcore, move || {
            let m = pool.alloc();
            tx_done.send((rvs_dpdk::lcore_id(), m.is_some())).unwrap();
        })
        .unwrap();
    assert!(job.wait(), "the job returned normally");
    assert_eq!(rx_done.recv().unwrap(), (lcore, true));
    let job = eal.launch(lcore, || panic!("a job that panics")).unwrap();
    assert!(!job.wait(), "a panic on an lcore is reported, not propagated");
    assert_eq!(pool.in_use(), base, "every mbuf came back");
}

fn setup() -> PortSetup {
    PortSetup { rx_queues: 1, tx_queues: 1, descriptors: 256, mtu: 1500, rss_key: [0x6d; 40], mac: Some([2, 0, 0, 0, 0, 0x42]) }
}
