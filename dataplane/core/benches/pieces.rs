//! Criterion benchmarks of the dataplane's pieces:
//!
//! * `maglev_build/{65537,655373}`: building a Maglev table over 100 real
//!   servers with weights 1..=100;
//! * `session/insert`: inserting NAT sessions (two index keys each) into an
//!   empty table until full, per insert;
//! * `session/lookup_random_1M`: looking up random keys among 1M sessions
//!   (84 MB: cache misses dominate), and `lookup_burst32_prefetch_1M`, the
//!   same 32 at a time with bucket prefetching as the worker does;
//! * `forward/{nat,fullnat,dr,tunnel}`: the forwarder on an established
//!   flow's 64-byte packet, parse to rewrite, per packet;
//! * `burst/established_1M/*`: bursts of 32 packets of 1M established
//!   flows in random order through `prepare` + `process_at` (the worker's
//!   path without the NIC), and `burst/syn_flood/*`: bursts of 32 SYNs from
//!   never-repeating clients (each creates a session);
//! * `sources/lookup_100k/{v4,v6}`: a source check against allow and deny
//!   lists of 100,000 random prefixes (the build time is printed).
//!
//! `cargo bench -p rvs-core --bench pieces` runs them; results and the
//! machine are in BENCHMARKS.md. Bytes per session are printed at start.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "a benchmark: a failed step ends the run with its message"
)]
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rvs_core::fwd::{Forwarder, Verdict};
use rvs_core::sched::{Candidate, MaglevTable};
use rvs_core::session::{Session, SessionFlags, SessionTable};
use rvs_testpkt::Tcp;
use rvs_wire::{Ipv4, Ipv6, MacAddr, PacketBuf, VecBuf};
mod common;
use common::{forwarder_big, P0};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn rng(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn maglev(c: &mut Criterion) {
    let mut r = rng(42);
    let cands: Vec<Candidate> = (0..100).map(|i| Candidate { slot: i, weight: (r() % 100 + 1) as u32 }).collect();
    let ids: Vec<u64> = (0..100).map(|_| r()).collect();
    let mut g = c.benchmark_group("maglev_build");
    g.sample_size(30);
    for m in [65537u32, 655_373] {
        g.bench_function(m.to_string(), |b| b.iter(|| black_box(MaglevTable::build(black_box(&cands), &ids, m))));
    }
    g.finish();
}

fn nat_session(i: u32) -> Session<Ipv4> {
    Session {
        client: Ipv4(0x0a00_0000 | i),
        vip: Ipv4(0xc612_0064),
        rs: Ipv4(0xc612_0100 | (i & 0xff)),
        cport: (i >> 8) as u16 | 1024,
        vport: 80,
        rport: 8080,
        expires: u32::MAX / 2,
        proto: 6,
        state: rvs_core::conn::State::Established,
        flags: SessionFlags::HAS_REPLY,
        ..Session::default()
    }
}

fn sessions(c: &mut Criterion) {
    let t = SessionTable::<Ipv4>::new(10_000_000, [1, 2, 3, 4]);
    eprintln!(
        "session table: {} bytes per IPv4 session (10M capacity: {} MiB)",
        t.memory_bytes() as f64 / 10_000_000.0,
        t.memory_bytes() >> 20
    );
    drop(t);
    let t6 = SessionTable::<Ipv6>::new(1_000_000, [1, 2, 3, 4]);
    eprintln!("session table: {} bytes per IPv6 session", t6.memory_bytes() as f64 / 1_000_000.0);
    drop(t6);

    let mut g = c.benchmark_group("session");
    g.throughput(Throughput::Elements(1));
    g.bench_function("insert", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(1 << 20) as u32;
                let mut t = SessionTable::<Ipv4>::new(n.max(1024), [9, 8, 7, 6]);
                let start = Instant::now();
                for i in 0..n {
                    black_box(t.insert(nat_session(i)).unwrap());
                }
                total += start.elapsed();
                left -= u64::from(n);
            }
            total
        });
    });
    const N: u32 = 1 << 20;
    let mut t = SessionTable::<Ipv4>::new(N, [9, 8, 7, 6]);
    for i in 0..N {
        t.insert(nat_session(i)).unwrap();
    }
    let mut r = rng(7);
    let keys: Vec<_> = (0..N).map(|_| nat_session((r() % u64::from(N)) as u32).forward_key()).collect();
    let mut k = 0usize;
    g.bench_function("lookup_random_1M", |b| {
        b.iter(|| {
            k = (k + 1) & (N as usize - 1);
            let key = &keys[k];
            black_box(t.lookup(key, t.hash(key)))
        })
    });
    g.throughput(Throughput::Elements(32));
    let mut hashes = [0u64; 32];
    g.bench_function("lookup_burst32_prefetch_1M", |b| {
        b.iter(|| {
            k = (k + 32) & (N as usize - 1);
            let batch = &keys[k..(k + 32).min(N as usize)];
            for (h, key) in hashes.iter_mut().zip(batch) {
                *h = t.hash(key);
                t.prefetch(*h);
            }
            for (h, key) in hashes.iter().zip(batch) {
                black_box(t.lookup(key, *h));
            }
        })
    });
    g.finish();
}

const CLIENT_MAC: MacAddr = MacAddr([0x02, 0xc1, 0, 0, 0, 2]);

fn forwarder(mode: &str) -> Forwarder {
    common::forwarder_for(&common::bench_config(mode, 1, false), 1 << 16)
}

fn forward(c: &mut Criterion) {
    let mut g = c.benchmark_group("forward");
    g.throughput(Throughput::Elements(1));
    for mode in ["nat", "fullnat", "dr", "tunnel"] {
        let mut f = forwarder(mode);
        let syn =
            rvs_testpkt::tcp4(CLIENT_MAC, P0, 0xc612_0002, 0xc612_0064, &Tcp { sport: 40000, dport: 80, flags: 2, seq: 1, payload: &[] });
        assert_eq!(f.process(0, &mut VecBuf::new(&syn), 0), Verdict::Tx(1));
        // A 64-byte frame of the established flow.
        let ack = rvs_testpkt::tcp4(
            CLIENT_MAC,
            P0,
            0xc612_0002,
            0xc612_0064,
            &Tcp { sport: 40000, dport: 80, flags: 0x10, seq: 2, payload: &[0; 10] },
        );
        assert_eq!(ack.len(), 64);
        g.bench_function(mode, |b| {
            b.iter_batched_ref(|| VecBuf::new(&ack), |buf| black_box(f.process(0, buf, 0)), BatchSize::SmallInput);
        });
        let _ = VecBuf::new(&ack).len();
    }
    g.finish();
}

/// The i-th client of a large population (198.19.0.0/16 x ports).
fn client_frame(i: u32, flags: u8) -> Vec<u8> {
    let ip = 0xc613_0000 | (i & 0xffff);
    let port = 1024 + ((i >> 16) % 64_000) as u16;
    let mut f = rvs_testpkt::tcp4(CLIENT_MAC, P0, ip, 0xc612_0064, &Tcp { sport: port, dport: 80, flags, seq: i, payload: &[] });
    f.resize(60, 0);
    f
}

/// Times `iters` bursts: `fill` loads the 32 buffers (the NIC's part, not
/// timed), then `prepare` and `process_at` run over them.
fn time_bursts(f: &mut Forwarder, bufs: &mut [VecBuf], iters: u64, mut fill: impl FnMut(&mut Forwarder, &mut [VecBuf])) -> Duration {
    let mut t = Duration::ZERO;
    for _ in 0..iters {
        fill(f, bufs);
        let t0 = Instant::now();
        f.prepare(bufs);
        for (i, buf) in bufs.iter_mut().enumerate() {
            black_box(f.process_at(0, buf, 0, i));
        }
        t += t0.elapsed();
    }
    t
}

/// Bursts of 32 frames through `prepare` + `process_at`, as the worker
/// runs them: 1M established flows in random order (per packet), and a SYN
/// flood of never-repeating clients (per new session).
fn bursts(c: &mut Criterion) {
    const FLOWS: u32 = 1 << 20;
    let mut g = c.benchmark_group("burst");
    g.throughput(Throughput::Elements(32));
    g.sample_size(20);
    let mut r = rng(11);
    let order: Vec<u32> = (0..FLOWS).map(|_| (r() % u64::from(FLOWS)) as u32).collect();
    let frames: Vec<Vec<u8>> = (0..FLOWS).map(|i| client_frame(i, 0x10)).collect();
    // 1k flows: everything in cache, the compute cost alone.
    for mode in ["nat", "dr"] {
        let mut f = forwarder_big(mode, 4096);
        for fr in &frames[..1024] {
            let mut b = VecBuf::new(fr);
            assert!(matches!(f.process(0, &mut b, 0), Verdict::Tx(1)));
        }
        let mut bufs: Vec<VecBuf> = (0..32).map(|_| VecBuf::with_room(&[], 128, 256)).collect();
        let mut k = 0usize;
        g.bench_function(format!("established_1k/{mode}"), |b| {
            b.iter_custom(|iters| {
                time_bursts(&mut f, &mut bufs, iters, |_, bufs| {
                    for buf in bufs {
                        buf.reset(&frames[order[k] as usize & 1023]);
                        k = (k + 1) & (FLOWS as usize - 1);
                    }
                })
            })
        });
    }
    for mode in ["nat", "fullnat", "dr", "tunnel"] {
        let mut f = forwarder_big(mode, FLOWS + FLOWS / 2);
        for fr in &frames {
            let mut b = VecBuf::new(fr);
            assert!(matches!(f.process(0, &mut b, 0), Verdict::Tx(1)));
        }
        let mut bufs: Vec<VecBuf> = (0..32).map(|_| VecBuf::with_room(&[], 128, 256)).collect();
        let mut k = 0usize;
        g.bench_function(format!("established_1M/{mode}"), |b| {
            b.iter_custom(|iters| {
                time_bursts(&mut f, &mut bufs, iters, |_, bufs| {
                    for buf in bufs {
                        buf.reset(&frames[order[k] as usize]);
                        k = (k + 1) & (FLOWS as usize - 1);
                    }
                })
            })
        });
    }
    for mode in ["nat", "fullnat", "dr", "tunnel"] {
        let cap = 4 << 20;
        let mut f = forwarder_big(mode, cap);
        let mut bufs: Vec<VecBuf> = (0..32).map(|_| VecBuf::with_room(&[], 128, 256)).collect();
        let mut next = 0u32;
        g.bench_function(format!("syn_flood/{mode}"), |b| {
            b.iter_custom(|iters| {
                time_bursts(&mut f, &mut bufs, iters, |f, bufs| {
                    if next >= cap - cap / 4 - 64 {
                        *f = forwarder_big(mode, cap);
                        next = 0;
                    }
                    for buf in bufs {
                        buf.reset(&client_frame(next.wrapping_mul(2_654_435_761) >> 2, 0x02));
                        next += 1;
                    }
                })
            })
        });
    }
    g.finish();
}

fn sources(c: &mut Criterion) {
    let mut r = rng(7);
    let mut prefix = |v6: bool| -> config::InterfaceAddr {
        let s = if v6 {
            let a = std::net::Ipv6Addr::from((u128::from(r()) << 64) | u128::from(r()));
            format!("{a}/{}", 16 + r() % 113)
        } else {
            format!("{}/{}", std::net::Ipv4Addr::from(r() as u32), 8 + r() % 25)
        };
        let p: config::InterfaceAddr = s.parse().unwrap();
        format!("{}/{}", p.network(), p.prefix).parse().unwrap()
    };
    let mut g = c.benchmark_group("sources/lookup_100k");
    for v6 in [false, true] {
        let allow: Vec<_> = (0..50_000).map(|_| prefix(v6)).collect();
        let deny: Vec<_> = (0..50_000).map(|_| prefix(v6)).collect();
        let t = Instant::now();
        let lists = rvs_core::acl::SourceLists::build(&allow, &deny);
        let points = if v6 { lists.v6.len() } else { lists.v4.len() };
        println!("source lists, {}: 100000 prefixes built in {:?} ({points} change points)", if v6 { "v6" } else { "v4" }, t.elapsed());
        let mut q = rng(11);
        let probes: Vec<u128> =
            (0..4096).map(|_| if v6 { (u128::from(q()) << 64) | u128::from(q()) } else { u128::from(q() as u32) }).collect();
        let mut i = 0;
        g.bench_function(if v6 { "v6" } else { "v4" }, |b| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(lists.check(v6, black_box(probes[i])))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, maglev, sessions, forward, bursts, sources);
criterion_main!(benches);
