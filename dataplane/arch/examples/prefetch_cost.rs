//! What one software prefetch of a random line costs on this machine, by
//! working-set size and page size: the question behind the session-table
//! stalls of issue 17 (BENCHMARKS.md, "Why the lookup's misses are not
//! hidden here").
//!
//! `cargo run --release -p rvs-arch --example prefetch_cost`
//!
//! A loop does a fixed amount of dependent arithmetic per iteration and,
//! in turn, nothing more, a prefetch of a random 64-byte line of the
//! working set ([`rvs_arch::prefetch`], as the session lookup issues), or
//! a load of it. Where prefetching works as intended the prefetch column
//! equals the nothing column: the line arrives while the arithmetic runs.
//! What it adds per iteration is what a prefetch costs the core itself,
//! which no prefetch distance hides - on a KVM guest, the address
//! translation of a line whose page the TLB does not hold.
#![expect(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "a measurement program: indices and times as plain numbers"
)]
use std::hint::black_box;
use std::time::Instant;

const ITERS: u64 = 10_000_000;

/// Nanoseconds per iteration of `work` dependent steps plus `what`
/// (0 nothing, 1 a prefetch, 2 a load) of a random line of `v`.
fn run(v: &[u64], what: u8, work: u32) -> f64 {
    let mask = v.len() - 1;
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut acc = 0u64;
    let t = Instant::now();
    for _ in 0..ITERS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x as usize) & mask & !7;
        match what {
            1 => rvs_arch::prefetch(&v[i]),
            2 => acc = acc.wrapping_add(v[i]),
            _ => {}
        }
        let mut y = x;
        for _ in 0..work {
            y = black_box(y.wrapping_mul(3).wrapping_add(1));
        }
        acc = acc.wrapping_add(y);
    }
    black_box(acc);
    t.elapsed().as_nanos() as f64 / ITERS as f64
}

fn main() {
    println!("| working set | pages | work | nothing (ns) | + prefetch (ns) | + load (ns) |");
    println!("|------------:|-------|-----:|-------------:|----------------:|------------:|");
    for (mib, huge) in [(8usize, true), (256, true), (256, false)] {
        let n = (mib << 20) / 8;
        let mut v: Vec<u64> = Vec::with_capacity(n);
        if huge {
            rvs_arch::advise_hugepages(&mut v);
        }
        v.resize(n, 1);
        for work in [10u32, 40] {
            let [a, b, c] = [0u8, 1, 2].map(|what| run(&v, what, work));
            let pages = if huge { "2 MiB (THP)" } else { "4 KiB" };
            println!("| {mib} MiB | {pages} | {work} | {a:.1} | {b:.1} | {c:.1} |");
        }
    }
}
