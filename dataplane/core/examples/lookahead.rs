//! The look-ahead compared in one process, without DPDK: the forwarding
//! loop driven as before issue 17 (`prepare` then `process_at`, the
//! burst's buckets prefetched right before it is processed) and as the
//! worker drives it now (each burst held while the next is received, the
//! next one's buckets prefetched a packet at a time meanwhile:
//! `prefetch_at`, `begin_burst`), alternating every CHUNK bursts over the
//! same established flows, so that a slow minute of a shared machine
//! slows both alike:
//! `cargo run --release -p rvs-core --example lookahead -- MODE FLOWS ROUNDS [CHUNK]`
//! prints the median nanoseconds per packet of each over ROUNDS chunks.
//! The frames are read in order from one array of 2 M random flows' frames,
//! as `net_pcap` reads its ring (buffer fill included in both).
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "a benchmark: a failed step ends the run with its message"
)]
#[path = "../benches/common/mod.rs"]
mod common;
use rvs_core::fwd::{Forwarder, Verdict};
use rvs_testpkt::Tcp;
use rvs_wire::{MacAddr, VecBuf};
use std::hint::black_box;
use std::time::Instant;

const FRAME: usize = 64;
const PACKETS: usize = 1 << 21;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("dr", String::as_str).to_string();
    let flows: u32 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(1 << 20);
    let rounds: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(20);
    let chunk: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let mut f = common::forwarder_big(&mode, flows + flows / 2 + 64);
    let frame = |i: u32| {
        let mut v = rvs_testpkt::tcp4(
            MacAddr([2, 0xc1, 0, 0, 0, 2]),
            common::P0,
            0xc613_0000 | (i & 0xffff),
            0xc612_0064,
            &Tcp { sport: 1024 + (i >> 16) as u16, dport: 80, flags: 0x10, seq: i, payload: &[] },
        );
        v.resize(60, 0);
        v
    };
    for i in 0..flows {
        assert!(matches!(f.process(0, &mut VecBuf::new(&frame(i)), 0), Verdict::Tx(1)));
    }
    let mut arena = vec![0u8; PACKETS * FRAME];
    let mut x = 0x9e37_79b9u32;
    for p in arena.chunks_mut(FRAME) {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let fr = frame(x % flows);
        p[..fr.len()].copy_from_slice(&fr);
    }
    let mut pos = 0usize;
    let mut fill = |bufs: &mut [VecBuf]| {
        for b in bufs {
            b.reset(&arena[pos * FRAME..pos * FRAME + 60]);
            pos = (pos + 1) % PACKETS;
        }
    };
    let room = || (0..32).map(|_| VecBuf::with_room(&[], 128, 256)).collect::<Vec<_>>();
    let (mut a, mut held, mut next) = (room(), room(), room());
    let mut held_slot = 0usize;
    let mut have_held = false;
    let (mut plain, mut piped) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..chunk {
            fill(&mut a);
            f.prepare(&a);
            for (i, b) in a.iter_mut().enumerate() {
                black_box(f.process_at(0, b, 0, i));
            }
        }
        plain.push(t.elapsed().as_nanos() as f64 / (chunk * 32) as f64);
        let t = Instant::now();
        for _ in 0..chunk {
            fill(&mut next);
            piped_step(&mut f, &mut held, &next, held_slot, have_held);
            std::mem::swap(&mut held, &mut next);
            held_slot ^= 1;
            have_held = true;
        }
        piped.push(t.elapsed().as_nanos() as f64 / (chunk * 32) as f64);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (p, q) = (med(&mut plain), med(&mut piped));
    println!(
        "{mode}: {flows} flows, median of {rounds} chunks of {chunk} bursts: prepare {p:.1} ns per packet, one burst ahead {q:.1} ns ({:+.1}%)",
        100.0 * (q - p) / p
    );
}

/// One burst the worker's way: the held burst (in `held_slot`) processed
/// while the next one's buckets are prefetched into the other slot.
fn piped_step(f: &mut Forwarder, held: &mut [VecBuf], next: &[VecBuf], held_slot: usize, have_held: bool) {
    let next_slot = held_slot ^ 1;
    if !have_held {
        f.prefetch_burst(next_slot, next);
        return;
    }
    if std::env::var_os("BULK").is_some() {
        f.prefetch_burst(next_slot, next);
        f.begin_burst(held_slot);
        for (i, b) in held.iter_mut().enumerate() {
            black_box(f.process_at(0, b, 0, i));
        }
        return;
    }
    f.begin_burst(held_slot);
    for (i, b) in held.iter_mut().enumerate() {
        black_box(f.process_at(0, b, 0, i));
        f.prefetch_at(next_slot, i, next.len(), &next[i]);
    }
}
