//! A forwarding loop without DPDK, for profilers (callgrind, perf):
//! `cargo run --release -p rvs-core --example fwdloop -- MODE FLOWS BURSTS [syn] [nic] [gen] [v6]`
//! sends BURSTS bursts of 32 packets of FLOWS established flows through
//! `prepare` + `process_at` and prints the time per packet. With `syn`,
//! every packet is instead a SYN from a new source (each creates a
//! session; the table is sized for 256 K of them). With `nic`, every
//! buffer says what a NIC with receive checksum offload says: IPv4 header
//! and TCP checksums verified good (so rvs sums neither). With `v6`, the
//! flows are IPv6 (to 2001:db8::100, from 2001:db8::/96).
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "a benchmark: a failed step ends the run with its message"
)]
#[path = "../benches/common/mod.rs"]
mod common;
use rvs_core::fwd::Verdict;
use rvs_testpkt::Tcp;
use rvs_wire::{Ipv6, MacAddr, NicCsum, VecBuf};
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("dr", String::as_str).to_string();
    let flows: u32 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(1024);
    let bursts: u64 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let syn = args.iter().skip(3).any(|a| a == "syn");
    let nic = args.iter().skip(3).any(|a| a == "nic");
    // With `gen`, established flows' frames are made from one template per
    // packet (as for `syn`) instead of read from a table of FLOWS frames:
    // at 1 M flows that table is 60+ MB of cache misses of the harness's
    // own, which a NIC's freshly written frames do not have.
    let gen = args.iter().skip(3).any(|a| a == "gen");
    let v6 = args.iter().skip(3).any(|a| a == "v6");
    let p0 = common::P0;
    let cap = if syn { 1 << 18 } else { flows + flows / 2 + 64 };
    let mut f = if v6 { common::forwarder_with(&common::bench_config6(&mode, 3), 1024, cap) } else { common::forwarder_big(&mode, cap) };
    let frames: Vec<Vec<u8>> = (0..flows)
        .map(|i| {
            let client = MacAddr([2, 0xc1, 0, 0, 0, 2]);
            let t = Tcp { sport: 1024 + (i >> 16) as u16, dport: 80, flags: if syn { 0x02 } else { 0x10 }, seq: i, payload: &[] };
            let mut v = if v6 {
                let net = 0x2001_0db8_u128 << 96;
                rvs_testpkt::tcp6(client, p0, Ipv6(net | 0xc613_0000 | u128::from(i & 0xffff)), Ipv6(net | 0x100), &t)
            } else {
                rvs_testpkt::tcp4(client, p0, 0xc613_0000 | (i & 0xffff), 0xc612_0064, &t)
            };
            v.resize(v.len().max(60), 0);
            v
        })
        .collect();
    let flow = |b: &mut VecBuf, i: u32| {
        b.reset(&frames[0]);
        common::set_source(b, 0xc613_0000 | (i & 0xffff), 1024 + (i >> 16) as u16);
    };
    if !syn {
        let mut b = VecBuf::with_room(&[], 128, 256);
        for (i, fr) in frames.iter().enumerate() {
            if gen {
                flow(&mut b, i as u32);
            } else {
                b.reset(fr);
            }
            assert!(matches!(f.process(0, &mut b, 0), Verdict::Tx(1)));
        }
    }
    let mut bufs: Vec<VecBuf> = (0..32).map(|_| VecBuf::with_room(&[], 128, 256)).collect();
    let mut x = 0x9e37_79b9u32;
    let t = Instant::now();
    let mut n = 0u32;
    for _ in 0..bursts {
        for b in &mut bufs {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if gen {
                flow(b, x % flows);
            } else {
                b.reset(&frames[(x % flows) as usize]);
            }
            if syn {
                // A new source for every SYN: 198.19.0.0/16 plus the
                // template's port, checksums updated incrementally.
                n += 1;
                common::set_source(b, 0xc613_0000 | (n & 0xffff), 1024 + (n >> 16) as u16);
            }
            if nic {
                b.set_nic_csum(NicCsum::Good, NicCsum::Good);
            }
        }
        f.prepare(&bufs);
        for (i, b) in bufs.iter_mut().enumerate() {
            black_box(f.process_at(0, b, 0, i));
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / (bursts * 32) as f64;
    if syn {
        let made = if v6 { f.sessions_v6() } else { f.sessions_v4() };
        assert_eq!(made as u64, bursts * 32, "every SYN created a session");
    }
    let family = if v6 { " IPv6" } else { "" };
    println!("{mode}{family}: {flows} flows, {ns:.1} ns per packet (buffer fill included)");
}
