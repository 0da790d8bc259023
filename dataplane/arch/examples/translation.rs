//! Where a random access's time goes on this machine: the cache, or the
//! address translation. The question behind the session table's remaining
//! stall at 1 M flows (BENCHMARKS.md, "The gap").
//!
//! `cargo run --release -p rvs-arch --example translation`
//!
//! A dependent chase (each load's value is the next index, so nothing
//! overlaps) over a working set on transparent huge pages, in two
//! patterns: any 64-byte line of it (the session table's case: cache
//! misses and translations), and one line per 4 KiB page, at a varying
//! offset, so that the lines themselves (1/64 of the set) stay in the
//! core's L2 while the pages are as many as before. Where the second
//! pattern slows as the set grows, the pages cost, not the lines: on a
//! guest whose 2 MiB pages the host backs with 4 KiB ones, the TLB holds
//! 4 KiB translations only, and each new page is a two-dimensional walk.
//!
//! Then the session lookup's own pattern, to ask whether placing a
//! session's entry in its bucket's 4 KiB page would pay: bursts of 32,
//! every item's "bucket" line prefetched first, then per item the bucket
//! read six items ahead and its "entry" line prefetched, some dependent
//! work, and the entry read and written - with the entry in a random page
//! of a 128 MiB set, or in the bucket's own page; and the same over 1 MiB
//! (every line in the L2: the work and the pipeline's own instructions).
#![expect(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "a measurement program: indices and times as plain numbers"
)]
use std::hint::black_box;
use std::time::Instant;

const STEPS: u64 = 10_000_000;
/// u64 words per 64-byte line and per 4 KiB page.
const LINE: usize = 8;
const PAGE: usize = 512;

/// Nanoseconds per load of a chase through `slots` (word indices into a
/// working set of `words` words) in a random cyclic order.
fn chase(words: usize, slots: &[usize]) -> f64 {
    let mut v: Vec<u64> = Vec::with_capacity(words);
    rvs_arch::advise_hugepages(&mut v);
    v.resize(words, 0);
    // Sattolo's shuffle: one cycle through every slot.
    let mut order: Vec<usize> = slots.to_vec();
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % i as u64) as usize);
    }
    for w in 0..order.len() {
        v[order[w]] = order[(w + 1) % order.len()] as u64;
    }
    let mut i = order[0];
    let t = Instant::now();
    for _ in 0..STEPS {
        i = v[i] as usize;
    }
    black_box(i);
    t.elapsed().as_nanos() as f64 / STEPS as f64
}

/// Nanoseconds per item of the lookup pipeline over a set of `mib` MiB,
/// with `work` dependent steps per item and the entry in the bucket's
/// page when `same_page`.
fn pipeline(mib: usize, same_page: bool, work: u32) -> f64 {
    const BURST: usize = 32;
    const AHEAD: usize = 6;
    const BURSTS: u64 = 200_000;
    let words = (mib << 20) / 8;
    let pages = words / PAGE;
    let mut v: Vec<u64> = Vec::with_capacity(words);
    rvs_arch::advise_hugepages(&mut v);
    v.resize(words, 1);
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as usize
    };
    let (mut bucket, mut entry) = ([0usize; BURST], [0usize; BURST]);
    let mut acc = 0u64;
    let t = Instant::now();
    for _ in 0..BURSTS {
        for i in 0..BURST {
            // Lines 0-15 of a page are buckets, 16-63 entries.
            let p = rnd() % pages;
            bucket[i] = p * PAGE + (rnd() % 16) * LINE;
            let q = if same_page { p } else { rnd() % pages };
            entry[i] = q * PAGE + (16 + rnd() % 48) * LINE;
            rvs_arch::prefetch(&v[bucket[i]]);
        }
        for i in 0..AHEAD {
            acc = acc.wrapping_add(black_box(v[bucket[i]]));
            rvs_arch::prefetch(&v[entry[i]]);
        }
        for i in 0..BURST {
            if i + AHEAD < BURST {
                acc = acc.wrapping_add(black_box(v[bucket[i + AHEAD]]));
                rvs_arch::prefetch(&v[entry[i + AHEAD]]);
            }
            let mut y = acc.wrapping_add(i as u64);
            for _ in 0..work {
                y = black_box(y.wrapping_mul(3).wrapping_add(1));
            }
            acc = acc.wrapping_add(v[entry[i]]);
            v[entry[i] + 1] = y;
        }
    }
    black_box(acc);
    t.elapsed().as_nanos() as f64 / (BURSTS * BURST as u64) as f64
}

fn main() {
    println!("| working set | any line (ns per load) | one line per 4 KiB page (ns per load) |");
    println!("|------------:|-----------------------:|--------------------------------------:|");
    for mib in [4usize, 8, 16, 32, 64, 128, 512] {
        let words = (mib << 20) / 8;
        let lines: Vec<usize> = (0..words / LINE).map(|l| l * LINE).collect();
        // Page p's line is p mod 64: the lines spread over the cache's sets.
        let pages: Vec<usize> = (0..words / PAGE).map(|p| p * PAGE + (p % 64) * LINE).collect();
        let (a, b) = (chase(words, &lines), chase(words, &pages));
        println!("| {mib} MiB | {a:.1} | {b:.1} |");
    }
    println!();
    println!(
        "| work per item | 128 MiB, entry in a random page (ns per item) | 128 MiB, entry in the bucket's page | 1 MiB (all cached) |"
    );
    println!(
        "|--------------:|----------------------------------------------:|------------------------------------:|-------------------:|"
    );
    for work in [0u32, 20, 40] {
        let (a, b, c) = (pipeline(128, false, work), pipeline(128, true, work), pipeline(1, false, work));
        println!("| {work} | {a:.1} | {b:.1} | {c:.1} |");
    }
}
