//! The forwarder fed raw frames: byte 0 picks one of the golden tests'
//! worlds (every forwarding mode, both families, ARP/ND, ICMP, the drop
//! cases, SYN-proxied NAT and full NAT), then records of [length high,
//! length low, port, frame...] are processed in order, 10 ms apart, through the general and the burst
//! path, with a sweep at the end. Nothing may panic, and every frame gets
//! exactly one verdict counted once.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_core::fwd::{Forwarder, ForwarderConfig};
use rvs_core::stats::CoreStats;
use rvs_core::table::{Compiler, Health, Snapshot};
use rvs_wire::{MacAddr, VecBuf};
use std::sync::{Arc, OnceLock};

const WORLDS: [&str; 16] = [
    include_str!("../worlds/announce.toml"),
    include_str!("../worlds/dr4.toml"),
    include_str!("../worlds/dr6.toml"),
    include_str!("../worlds/drops4.toml"),
    include_str!("../worlds/drops6.toml"),
    include_str!("../worlds/fullnat4.toml"),
    include_str!("../worlds/fullnat6.toml"),
    include_str!("../worlds/nat4.toml"),
    include_str!("../worlds/nat6.toml"),
    include_str!("../worlds/pcap_mac.toml"),
    include_str!("../worlds/tun4.toml"),
    include_str!("../worlds/tun46.toml"),
    include_str!("../worlds/tun6.toml"),
    include_str!("../worlds/tun64.toml"),
    // Appended, so the committed seeds keep their worlds.
    include_str!("../worlds/synproxy4.toml"),
    include_str!("../worlds/synproxy6.toml"),
];

/// The golden port's MAC (the pcap PMD's), unless the world sets one.
const PORT_MAC: MacAddr = MacAddr([0x02, 0x70, 0x63, 0x61, 0x70, 0x00]);

fn snapshots() -> &'static Vec<Arc<Snapshot>> {
    static S: OnceLock<Vec<Arc<Snapshot>>> = OnceLock::new();
    S.get_or_init(|| {
        WORLDS
            .iter()
            .map(|text| {
                let cfg = config::from_str(text, "world.toml").expect("a golden world is valid");
                let mac = cfg.ports[0].mac.map_or(PORT_MAC, |m| m);
                Compiler::new(&cfg).compile(&cfg, &[mac], &Health::new()).expect("a golden world compiles")
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&w, mut rest)) = data.split_first() else { return };
    let snaps = snapshots();
    let snap = snaps[usize::from(w) % snaps.len()].clone();
    let stats = Arc::new(CoreStats::new(snap.backends.len(), snap.services.len()));
    let mut f = Forwarder::new(&ForwarderConfig::single(256, 64, [1, 2, 3, 4]), snap, stats.clone());
    let mut now = 1000u32;
    let mut frames = 0u64;
    while rest.len() >= 3 {
        let len = (usize::from(rest[0]) << 8 | usize::from(rest[1])).min(rest.len() - 3);
        let port_byte = rest[2];
        let port = port_byte & 1;
        let frame = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let mut b = VecBuf::new(frame);
        // The general path, or the burst path (prepare + process_at) as
        // the worker runs it, by the port byte's second bit.
        if rest_bit(port_byte) {
            let mut burst = [b];
            f.prepare(&burst);
            let _ = f.process_at(now, &mut burst[0], port, 0);
        } else {
            let _ = f.process(now, &mut b, port);
        }
        // The frames the forwarder originated (SYN proxy window updates).
        f.drain_extra(|_, _, bytes| assert!(bytes.len() <= rvs_core::fwd::EXTRA_FRAME));
        frames += 1;
        now = now.wrapping_add(10);
    }
    let _ = f.sweep(now.wrapping_add(3_600_000), usize::MAX);
    assert_eq!(verdicts_counted(&stats), frames, "every frame counted exactly once");
});

fn rest_bit(port_byte: u8) -> bool {
    port_byte & 2 != 0
}

/// Frames counted under some verdict (as the forwarder's unit tests count).
fn verdicts_counted(s: &CoreStats) -> u64 {
    use rvs_core::drop::{DropClass, DropReason};
    let f = &s.frames;
    let drops: u64 = DropReason::ALL.iter().filter(|r| r.class() == DropClass::Verdict).map(|r| s.drops[r.index()].get()).sum();
    f.forwarded.get() + f.answered.get() + f.consumed.get() + f.to_kernel.get() + f.handed_over.get() + f.held.get() + drops
}
