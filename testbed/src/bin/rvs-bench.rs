//! rvs-bench: rvs's packet rate against `dpdk-testpmd` io forwarding over
//! the same virtual devices, in the same run (see BENCHMARKS.md).
//!
//! ```text
//! rvs-bench [--flows N] [--syns N] [--seconds S] [--modes nat,fullnat,dr,tunnel]
//!           [--workloads est,est6,est-all,mix,syn,syn6,spx,memif-est,memif-syn,lat]
//!           [--workers N] [--rounds N]
//!           [--quick] [--dir DIR]
//! ```
//!
//! With `--workers N`, port 0 has N RX queues, one pcap file each, the
//! flows split by rvs's own RSS rule ([`bench::queue_of`]: what an RSS
//! NIC programmed by rvs does), and testpmd's baseline forwards with N
//! cores over N queues of the same files; `est-all` puts every flow on
//! every queue instead (a NIC without RSS: the cores hand frames to the
//! flows' owners). Each row shows the per-core receive rates and the
//! frames handed between cores (0 expected with RSS).
//!
//! `--quick` is the CI smoke run: small files, one second per sample, no
//! thresholds. Needs root (DPDK), `dpdk-testpmd` (Debian's dpdk-dev) and
//! the workspace binaries (`cargo build --release --bins`).
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use testbed::bench::{self, median, Mode, Rvsd, RvsdSetup};

#[derive(Debug)]
struct Opts {
    flows: u32,
    syns: u32,
    seconds: u64,
    modes: Vec<Mode>,
    workloads: Vec<String>,
    workers: u16,
    rounds: usize,
    dir: Option<PathBuf>,
}

fn opts() -> Result<Opts> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut o = Opts {
        flows: 1_000_000,
        syns: 2_000_000,
        seconds: 5,
        modes: vec![Mode::Nat, Mode::FullNat, Mode::Dr, Mode::Tunnel],
        workloads: vec!["est".into(), "mix".into(), "syn".into(), "spx".into(), "memif-est".into(), "memif-syn".into()],
        workers: 1,
        rounds: 3,
        dir: None,
    };
    let mut i = 0;
    while i < args.len() {
        let val = |i: usize| args.get(i + 1).cloned().with_context(|| format!("{} needs a value", args[i]));
        match args[i].as_str() {
            "--quick" => {
                o.flows = 20_000;
                o.syns = 1_000_000;
                o.seconds = 1;
                o.rounds = 1;
                i += 1;
                continue;
            }
            "--flows" => o.flows = val(i)?.parse()?,
            "--syns" => o.syns = val(i)?.parse()?,
            "--seconds" => o.seconds = val(i)?.parse()?,
            "--workers" => o.workers = val(i)?.parse()?,
            "--rounds" => o.rounds = val(i)?.parse::<usize>()?.max(1),
            "--modes" => o.modes = val(i)?.split(',').map(Mode::parse).collect::<Result<_>>()?,
            "--workloads" => o.workloads = val(i)?.split(',').map(str::to_string).collect(),
            "--dir" => o.dir = Some(PathBuf::from(val(i)?)),
            "-h" | "--help" => {
                println!("usage: rvs-bench [--flows N] [--syns N] [--seconds S] [--modes nat,fullnat,dr,tunnel] [--workloads est,mix,syn,spx] [--workers N] [--rounds N] [--quick] [--dir DIR]");
                std::process::exit(0);
            }
            other => bail!("unknown option {other:?} (--help)"),
        }
        i += 2;
    }
    Ok(o)
}

/// One result line (medians over the rounds).
struct Row {
    workload: String,
    mode: &'static str,
    rvs: f64,
    testpmd: f64,
    ratio: f64,
    spread: (f64, f64),
    new_per_s: Option<f64>,
    per_core: Vec<f64>,
    handovers: u64,
    drops: String,
}

fn print_row(r: &Row) {
    let new = r.new_per_s.map_or("-".to_string(), |n| format!("{:.2} M/s", n / 1e6));
    let per: Vec<String> = r.per_core.iter().map(|x| format!("{x:.2}")).collect();
    println!(
        "| {:<22} | {:<7} | {:>8.2} | {:>12.2} | {:>6.1}% | {:>4.0}-{:<4.0}% | {:>11} | {:>14} | {:>10} | {} |",
        r.workload,
        r.mode,
        r.rvs,
        r.testpmd,
        r.ratio * 100.0,
        r.spread.0 * 100.0,
        r.spread.1 * 100.0,
        new,
        per.join(" + "),
        r.handovers,
        r.drops
    );
}

/// What one rvsd run measured.
#[derive(Default)]
struct Measured {
    /// Forwarded Mpps (median of the samples).
    mpps: f64,
    /// New sessions (or SYN-cookie answers) per second.
    new_per_s: Option<f64>,
    /// Drops during the measurement.
    drops: String,
    /// Each worker's receive rate, Mpps.
    per_core: Vec<f64>,
    /// Frames handed between cores during the measurement.
    handovers: u64,
}

fn drops_text(r: &mgmt::report::Report, before: &mgmt::report::Report) -> String {
    let d: Vec<String> = r
        .drops
        .iter()
        .filter_map(|(k, v)| {
            let b = before.drops.get(k).copied().unwrap_or(0);
            (*v > b).then(|| format!("{k}={}", v - b))
        })
        .collect();
    if d.is_empty() {
        "none".into()
    } else {
        d.join(" ")
    }
}

/// Waits until rvsd has created `n` sessions (the first pass over an
/// established-flows file) or `limit` passes.
/// Starts rvsd, waits until every flow has its session, then samples its
/// transmit rate. With `settle`, waits one more second first: replies that
/// came before their flow's first packet were dropped (no session), and
/// the drop counters should show the steady state only.
fn established_run(dir: &Path, setup: &RvsdSetup, n: u64, settle: bool, seconds: u64) -> Result<Measured> {
    let r = Rvsd::start(dir, &bench::rvsd_config(dir, setup))?;
    wait_created(&r, n, Duration::from_secs(60))?;
    if settle {
        std::thread::sleep(Duration::from_secs(1));
    }
    let before = r.stats()?;
    let (samples, per_core, handovers) = r.sample_workers(seconds)?;
    let after = r.stats()?;
    r.stop();
    Ok(Measured { mpps: median(&samples), new_per_s: None, drops: drops_text(&after, &before), per_core, handovers })
}

fn wait_created(r: &Rvsd, n: u64, limit: Duration) -> Result<()> {
    let t = Instant::now();
    while r.stats()?.sessions.created < n {
        if t.elapsed() > limit {
            bail!("rvsd created only {} of {n} sessions in {limit:?}", r.stats()?.sessions.created);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Room in the pools beyond the flows (bursts, hand-over, held frames).
const EXTRA_MBUFS: u32 = 65_536;
/// The sink port of every pcap workload.
const NULL_PORT: &str = "net_null0,no-rx=1";

fn pcap_port(i: u8, f: &Path) -> String {
    pcap_queues(i, std::slice::from_ref(&f.to_path_buf()))
}

/// A `net_pcap` port with one RX queue per file, each looping.
fn pcap_queues(i: u8, files: &[PathBuf]) -> String {
    let rx: Vec<String> = files.iter().map(|f| format!("rx_pcap={}", f.display())).collect();
    format!("net_pcap{i},{},infinite_rx=1", rx.join(","))
}

/// Writes `frames` as the files of `o.workers` RX queues (`stem-qN.pcap`);
/// the files and the frames in each.
fn queue_files(o: &Opts, dir: &Path, stem: &str, frames: Vec<Vec<u8>>, spread: bench::Spread) -> Result<(Vec<PathBuf>, Vec<u64>)> {
    let (mut files, mut shares) = (Vec::new(), Vec::new());
    for (q, fs) in bench::split(frames, o.workers, spread).iter().enumerate() {
        let f = dir.join(format!("{stem}-q{q}.pcap"));
        testbed::pcap::write(&f, fs)?;
        files.push(f);
        shares.push(fs.len() as u64);
    }
    Ok((files, shares))
}

/// Which established-flows workload.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Est {
    /// IPv4 flows spread by RSS.
    V4,
    /// IPv6 flows spread by RSS.
    V6,
    /// IPv4, every flow on every queue.
    All,
    /// IPv4 with the replies on the second port (NAT).
    Mix,
}

/// Established flows, one direction (`mix`: with the replies on the
/// second port).
fn established_workload(o: &Opts, dir: &Path, kind: Est) -> Result<()> {
    let flows = o.flows;
    let mix = kind == Est::Mix;
    let reply_file = dir.join("est-replies.pcap");
    let (f, r) = if kind == Est::V6 { (bench::established6(flows, 1), Vec::new()) } else { bench::established(flows, Mode::Nat, mix, 1) };
    let spread = if kind == Est::All { bench::Spread::All } else { bench::Spread::Rss };
    let stem = match kind {
        Est::V6 => "est6",
        Est::All => "est-all",
        _ => "est",
    };
    let (files, _) = queue_files(o, dir, stem, f, spread)?;
    let port1 = if mix {
        testbed::pcap::write(&reply_file, &r)?;
        pcap_port(1, &reply_file)
    } else {
        NULL_PORT.to_string()
    };
    let queues = u32::from(o.workers.max(1));
    let n = flows;
    // Every queue's file is held in mbufs.
    let frames_held = if kind == Est::All { n * queues } else { n };
    let mbufs = if mix { 2 * n } else { frames_held } + EXTRA_MBUFS;
    let what = match kind {
        Est::V4 => format!("est {} flows", short(flows)),
        Est::V6 => format!("est IPv6 {} flows", short(flows)),
        Est::All => format!("est {} no RSS", short(flows)),
        Est::Mix => format!("est {} + replies", short(flows)),
    };
    let label = if o.workers > 1 { format!("{what} x{}", o.workers) } else { what };
    let (modes, tag) = if mix { (vec![Mode::Nat], "m") } else { (o.modes.clone(), "e") };
    let port0 = pcap_queues(0, &files);
    rounds(
        o,
        &label,
        &modes,
        &mut || Ok(median(&bench::testpmd(&[port0.clone(), port1.clone()], mbufs, o.seconds, tag, o.workers)?)),
        &mut |mode| {
            let setup = RvsdSetup {
                mode,
                port0: port0.clone(),
                port1: port1.clone(),
                sessions: n + n / 2 + 1024,
                mbufs,
                sloppy: true,
                workers: o.workers,
                synproxy: false,
                v6: kind == Est::V6,
            };
            established_run(dir, &setup, u64::from(n), mix, o.seconds)
        },
    )
}

/// A SYN flood from many sources: every packet a new session.
fn syn_workload(o: &Opts, dir: &Path, v6: bool) -> Result<()> {
    let frames = if v6 { bench::syns6(o.syns, 2) } else { bench::syns(o.syns, 2) };
    let (files, shares) = queue_files(o, dir, if v6 { "syn6" } else { "syn" }, frames, bench::Spread::Rss)?;
    let ns = o.syns;
    let what = format!("SYN flood{} {} sources", if v6 { " IPv6" } else { "" }, short(o.syns));
    let label = if o.workers > 1 { format!("{what} x{}", o.workers) } else { what };
    let port0 = pcap_queues(0, &files);
    let per_worker = ns / u32::from(o.workers.max(1));
    rounds(
        o,
        &label,
        &o.modes,
        &mut || Ok(median(&bench::testpmd(&[port0.clone(), NULL_PORT.to_string()], ns + EXTRA_MBUFS, o.seconds, "s", o.workers)?)),
        &mut |mode| {
            let setup = RvsdSetup {
                mode,
                port0: port0.clone(),
                port1: NULL_PORT.to_string(),
                sessions: per_worker + per_worker / 2 + 1024,
                mbufs: ns + EXTRA_MBUFS,
                sloppy: false,
                workers: o.workers,
                synproxy: false,
                v6,
            };
            // On a machine with no CPU to spare for the sampler (workers on
            // every CPU), a sample can come late enough to miss a short
            // pass: such a run is refused and made again, up to 3 times.
            let mut tries = 0;
            loop {
                let r = Rvsd::start(dir, &bench::rvsd_config(dir, &setup))?;
                let m = syn_rate(&r, &shares);
                r.stop();
                tries += 1;
                match m {
                    Err(e) if tries < 3 && e.to_string().contains("too short") => eprintln!("rvs-bench: {e}; again"),
                    m => break m,
                }
            }
        },
    )
}

/// A SYN flood from many sources against a SYN-proxied service: rvs
/// answers every SYN with a cookie SYN-ACK and keeps no state, so the file
/// loops (`infinite_rx`) and the answer rate is sampled in the steady
/// state. NAT and full NAT only (the modes a SYN proxy serves).
fn synproxy_workload(o: &Opts, dir: &Path) -> Result<()> {
    let syn_file = dir.join("syn.pcap");
    if !syn_file.exists() {
        testbed::pcap::write(&syn_file, &bench::syns(o.syns, 2))?;
    }
    let ns = o.syns;
    let label = format!("SYN proxy {} sources", short(o.syns));
    let modes: Vec<Mode> = o.modes.iter().copied().filter(|m| matches!(m, Mode::Nat | Mode::FullNat)).collect();
    rounds(
        o,
        &label,
        &modes,
        &mut || Ok(median(&bench::testpmd(&[pcap_port(0, &syn_file), NULL_PORT.to_string()], ns + EXTRA_MBUFS, o.seconds, "p", 1)?)),
        &mut |mode| {
            let setup = RvsdSetup {
                mode,
                port0: pcap_port(0, &syn_file),
                port1: NULL_PORT.to_string(),
                sessions: 1024,
                mbufs: ns + EXTRA_MBUFS,
                sloppy: false,
                workers: 1,
                synproxy: true,
                v6: false,
            };
            let r = Rvsd::start(dir, &bench::rvsd_config(dir, &setup))?;
            let before = r.stats()?;
            let t = Instant::now();
            let samples = r.sample_tx(o.seconds)?;
            let after = r.stats()?;
            let secs = t.elapsed().as_secs_f64();
            r.stop();
            let (answered, created) = (after.synproxy.syns - before.synproxy.syns, after.sessions.created - before.sessions.created);
            if created != 0 || after.synproxy.cookies_valid != 0 {
                bail!("a SYN proxy kept state for a SYN: {created} sessions, {} valid cookies", after.synproxy.cookies_valid);
            }
            #[expect(clippy::cast_precision_loss, reason = "rates")]
            let rate = answered as f64 / secs;
            Ok(Measured { mpps: median(&samples), new_per_s: Some(rate), drops: drops_text(&after, &before), ..Measured::default() })
        },
    )
}

fn main() -> Result<()> {
    let o = opts()?;
    let dir = o.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("rvs-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir)?;
    let _cleanup = Cleanup(if o.dir.is_none() { Some(dir.clone()) } else { None });
    println!(
        "rvs-bench: {} established flows, {} SYNs, {} s per measurement, {} worker(s); 64-byte frames; DPDK {}",
        o.flows,
        o.syns,
        o.seconds,
        o.workers,
        rvs_dpdk::Eal::version()
    );
    pieces();
    println!();
    println!(
        "| workload               | mode    | rvs Mpps | testpmd Mpps |  ratio | ratio range |  new sess/s | per core Mpps  | hand-overs | rvs drops |"
    );
    println!(
        "|------------------------|---------|---------:|-------------:|-------:|-------------|------------:|---------------:|-----------:|-----------|"
    );
    let want = |w: &str| o.workloads.iter().any(|x| x == w);
    for (w, kind) in [("est", Est::V4), ("est6", Est::V6), ("est-all", Est::All), ("mix", Est::Mix)] {
        if want(w) && (kind != Est::All || o.workers > 1) {
            established_workload(&o, &dir, kind)?;
        }
    }
    if want("syn") {
        syn_workload(&o, &dir, false)?;
    }
    if want("syn6") {
        syn_workload(&o, &dir, true)?;
    }
    if want("spx") {
        synproxy_workload(&o, &dir)?;
    }
    for (w, syn) in [("memif-est", false), ("memif-syn", true)] {
        if want(w) {
            memif(&o, &dir, syn)?;
        }
    }
    if want("lat") {
        latency(&o, &dir)?;
    }
    Ok(())
}

/// The offered loads of the latency workload, Mpps.
const LATENCY_LOADS: [f64; 2] = [0.5, 2.0];

/// Latency and jitter: rvs-pktgen offers established flows over memif at a
/// fixed rate (a moderate load, then a heavier one), rvsd measures each
/// packet's time inside it (`dataplane.latency_histogram`: from the burst
/// that received it to the end of the send that took it out) and the
/// percentiles of the measurement window are printed per mode and load.
fn latency(o: &Opts, dir: &Path) -> Result<()> {
    println!();
    println!(
        "| latency, est {} flows over memif | mode    | offered Mpps | forwarded Mpps | packets | p50 ns | p99 ns | p99.9 ns | max ns |",
        short(o.flows)
    );
    println!(
        "|----------------------------------|---------|-------------:|---------------:|--------:|-------:|-------:|---------:|-------:|"
    );
    let null = "net_null0,no-rx=1".to_string();
    let mut run = 100;
    for &mode in &o.modes {
        for load in LATENCY_LOADS {
            run += 1;
            let (g, client) = start_gen(o, dir, false, run, Some(load))?;
            let setup = RvsdSetup {
                mode,
                port0: client,
                port1: null.clone(),
                sessions: o.flows * 3 / 2 + 1024,
                mbufs: 65_535,
                sloppy: true,
                workers: 1,
                synproxy: false,
                v6: false,
            };
            let config = bench::rvsd_config(dir, &setup).replace("idle_backoff_us = 0", "idle_backoff_us = 0\nlatency_histogram = true");
            let r = Rvsd::start(dir, &config)?;
            wait_created(&r, u64::from(o.flows), Duration::from_secs(60))?;
            std::thread::sleep(Duration::from_secs(1));
            let before = r.stats()?;
            let samples = r.sample_tx(o.seconds)?;
            let after = r.stats()?;
            r.stop();
            drop(g);
            let hist = |rep: &mgmt::report::Report| -> std::collections::BTreeMap<u64, u64> {
                let mut m = std::collections::BTreeMap::new();
                for w in &rep.per_worker {
                    for (floor, n) in w.latency.as_ref().map(|l| l.buckets.clone()).unwrap_or_default() {
                        *m.entry(floor).or_insert(0) += n;
                    }
                }
                m
            };
            let (b, a) = (hist(&before), hist(&after));
            let counts: Vec<u64> = (0..rvs_core::stats::LATENCY_BUCKETS)
                .map(|i| {
                    let f = rvs_core::stats::latency_floor(i);
                    a.get(&f).copied().unwrap_or(0) - b.get(&f).copied().unwrap_or(0)
                })
                .collect();
            let l = mgmt::report::LatencyReport::of(&counts).context("no packet measured")?;
            println!(
                "| {:<32} | {:<7} | {:>12.2} | {:>14.2} | {:>7} | {:>6} | {:>6} | {:>8} | {:>6} |",
                "",
                mode.name(),
                load,
                median(&samples),
                l.packets,
                l.p50_ns,
                l.p99_ns,
                l.p999_ns,
                l.max_ns
            );
        }
    }
    Ok(())
}

/// The second harness: rvs-pktgen in its own process feeds a `net_memif`
/// link; testpmd, then rvsd for each mode, take the other end and forward
/// to `net_null`. Each consumer gets a fresh generator (a memif server does
/// not always take a second peer after the first went away).
fn memif(o: &Opts, dir: &Path, syn: bool) -> Result<()> {
    let null = "net_null0,no-rx=1".to_string();
    let run = std::cell::Cell::new(0u32);
    let next = || {
        run.set(run.get() + 1);
        start_gen(o, dir, syn, run.get(), None)
    };
    let label = if syn { "memif SYN flood".to_string() } else { format!("memif est {} flows", short(o.flows)) };
    rounds(
        o,
        &label,
        &o.modes,
        &mut || {
            let (g, client) = next()?;
            let base = median(&bench::testpmd(&[client, null.clone()], 65_535, o.seconds, if syn { "ms" } else { "me" }, 1)?);
            drop(g);
            Ok(base)
        },
        &mut |mode| {
            let (g, client) = next()?;
            let sessions = if syn { 16_000_000 } else { o.flows * 3 / 2 + 1024 };
            let setup = RvsdSetup {
                mode,
                port0: client,
                port1: null.clone(),
                sessions,
                mbufs: 65_535,
                sloppy: !syn,
                workers: 1,
                synproxy: false,
                v6: false,
            };
            let r = Rvsd::start(dir, &bench::rvsd_config(dir, &setup))?;
            if syn {
                // The table must not fill before the measurement ends.
                std::thread::sleep(Duration::from_millis(500));
            } else {
                wait_created(&r, u64::from(o.flows), Duration::from_secs(60))?;
                // As for testpmd: two seconds of warm-up.
                std::thread::sleep(Duration::from_secs(2));
            }
            let before = r.stats()?;
            let t = Instant::now();
            let samples = r.sample_tx(if syn { o.seconds.min(2) } else { o.seconds })?;
            let after = r.stats()?;
            let secs = t.elapsed().as_secs_f64();
            r.stop();
            drop(g);
            #[expect(clippy::cast_precision_loss, reason = "rates")]
            let created = (after.sessions.created - before.sessions.created) as f64 / secs;
            Ok(Measured {
                mpps: median(&samples),
                new_per_s: syn.then_some(created),
                drops: drops_text(&after, &before),
                ..Measured::default()
            })
        },
    )
}

/// One mode's results over the rounds.
#[derive(Default)]
struct PerMode {
    mpps: Vec<f64>,
    base: Vec<f64>,
    ratio: Vec<f64>,
    new: Vec<f64>,
    per_core: Vec<Vec<f64>>,
    handovers: Vec<u64>,
    drops: String,
}

/// Measures `modes` against a baseline, `o.rounds` times, interleaved (the
/// baseline, then every mode, then again), and prints one row per mode with
/// the medians: on a shared VM the machine's speed drifts over minutes, so
/// each ratio compares runs that are close in time.
fn rounds(
    o: &Opts,
    label: &str,
    modes: &[Mode],
    baseline: &mut dyn FnMut() -> Result<f64>,
    rvs: &mut dyn FnMut(Mode) -> Result<Measured>,
) -> Result<()> {
    let mut res: Vec<PerMode> = modes.iter().map(|_| PerMode::default()).collect();
    for _ in 0..o.rounds {
        let base = baseline()?;
        for (i, &mode) in modes.iter().enumerate() {
            let m = rvs(mode)?;
            let r = &mut res[i];
            r.mpps.push(m.mpps);
            r.base.push(base);
            if base > 0.0 {
                r.ratio.push(m.mpps / base);
            }
            r.new.extend(m.new_per_s);
            r.per_core.push(m.per_core);
            r.handovers.push(m.handovers);
            r.drops = m.drops;
        }
    }
    for (i, &mode) in modes.iter().enumerate() {
        let r = &res[i];
        let cores = r.per_core.iter().map(Vec::len).max().unwrap_or(0);
        let per_core = (0..cores).map(|c| median(&r.per_core.iter().filter_map(|v| v.get(c).copied()).collect::<Vec<_>>())).collect();
        print_row(&Row {
            workload: label.to_string(),
            mode: mode.name(),
            rvs: median(&r.mpps),
            testpmd: median(&r.base),
            ratio: median(&r.ratio),
            spread: (r.ratio.iter().copied().fold(f64::MAX, f64::min), r.ratio.iter().copied().fold(0.0, f64::max)),
            new_per_s: (!r.new.is_empty()).then(|| median(&r.new)),
            per_core,
            handovers: r.handovers.iter().copied().max().unwrap_or(0),
            drops: r.drops.clone(),
        });
    }
    Ok(())
}

/// Starts rvs-pktgen as a memif server on a fresh socket; returns its guard
/// and the device string for the consumer's end.
fn start_gen(o: &Opts, dir: &Path, syn: bool, run: u32, mpps: Option<f64>) -> Result<(bench::Guard, String)> {
    let sock = dir.join(format!("memif{run}.sock"));
    let _ = std::fs::remove_file(&sock);
    let mut cmd = std::process::Command::new(testbed::bin("rvs-pktgen")?);
    cmd.arg("--vdev").arg(format!("net_memif0,role=server,socket={}", sock.display())).args([
        "--dst-mac",
        "02:00:00:00:00:01",
        "--seconds",
        "600",
        "--lcore",
        "0",
    ]);
    let log_path = dir.join(format!("pktgen{run}.log"));
    let log = std::fs::File::create(&log_path)?;
    cmd.stdout(log.try_clone()?).stderr(log);
    if syn {
        cmd.arg("--syn");
    } else {
        cmd.args(["--flows", &o.flows.to_string()]);
    }
    if let Some(r) = mpps {
        cmd.args(["--mpps", &r.to_string()]);
    }
    let g = bench::Guard(Some(cmd.spawn()?));
    let t = Instant::now();
    // (memif sockets are abstract by default: no file to wait for.)
    while !std::fs::read_to_string(&log_path).unwrap_or_default().contains("waiting for a peer") {
        if t.elapsed() > Duration::from_secs(20) {
            bail!("rvs-pktgen did not start: {}", std::fs::read_to_string(&log_path).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((g, format!("net_memif0,role=client,socket={},mac=02:00:00:00:00:01", sock.display())))
}

/// New sessions per second while rvsd makes its first pass over files of
/// distinct SYNs (one per worker's queue, `shares` SYNs each): each
/// worker's counter is sampled every 10 ms and its rate taken between 10%
/// and 90% of its file (every SYN of that pass creates a session); the
/// total is the sum. `per_core` holds each worker's new sessions per second
/// (millions) and `mpps` the frames received meanwhile.
fn syn_rate(r: &Rvsd, shares: &[u64]) -> Result<Measured> {
    let start = r.stats()?;
    // Per sample: time, and per worker (sessions created, frames received).
    let mut samples: Vec<(Instant, Vec<(u64, u64)>)> = Vec::new();
    let t = Instant::now();
    loop {
        let s = r.stats()?;
        let w: Vec<(u64, u64)> = s.per_worker.iter().map(|w| (w.sessions_created, w.rx_packets.iter().sum())).collect();
        let done = w.iter().zip(shares).all(|(x, &n)| x.0 >= n * 95 / 100);
        samples.push((Instant::now(), w));
        if done {
            break;
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!("rvsd created only {} of {} sessions", s.sessions.created, shares.iter().sum::<u64>());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let end = r.stats()?;
    // Each worker over its own first pass: between 10% and 90% of the SYNs
    // of its queue (a worker that finished loops its file, and its SYNs
    // then meet their sessions).
    let (mut rate, mut mpps, mut per_core) = (0.0, 0.0, Vec::new());
    for (w, &n) in shares.iter().enumerate() {
        let at = |frac: u64| samples.iter().find(|s| s.1.get(w).is_some_and(|x| x.0 >= n * frac / 10)).cloned();
        let (Some(lo), Some(hi)) = (at(1), at(9)) else { bail!("too few samples") };
        let dt = hi.0.duration_since(lo.0).as_secs_f64();
        // The window must span enough samples for the rate to mean
        // something (with many workers each pass is short).
        let inside = samples.iter().filter(|s| s.0 >= lo.0 && s.0 <= hi.0).count();
        if dt <= 0.0 || inside < 10 {
            bail!(
                "worker {w}'s first pass ({dt:.3} s, {inside} samples of {}; its {n} SYNs; first sample {:?}, last {:?}) was too short to measure: use more --syns",
                samples.len(),
                samples.first().map(|s| s.1.clone()),
                samples.last().map(|s| s.1.clone())
            );
        }
        let (a, b) = (hi.1[w], lo.1[w]);
        #[expect(clippy::cast_precision_loss, reason = "rates")]
        let (r_w, p_w) = ((a.0 - b.0) as f64 / dt, (a.1 - b.1) as f64 / dt / 1e6);
        rate += r_w;
        mpps += p_w;
        per_core.push(r_w / 1e6);
    }
    let handovers =
        end.per_worker.iter().map(|w| w.handover_out).sum::<u64>() - start.per_worker.iter().map(|w| w.handover_out).sum::<u64>();
    Ok(Measured { mpps, new_per_s: Some(rate), drops: drops_text(&end, &start), per_core, handovers })
}

fn short(n: u32) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// Session memory per flow and Maglev build time, measured here.
fn pieces() {
    for cap in [1u32 << 20, 10_000_000] {
        let t = rvs_core::session::SessionTable::<rvs_wire::Ipv4>::new(cap, [1, 2, 3, 4]);
        #[expect(clippy::cast_precision_loss, reason = "a ratio")]
        let per = t.memory_bytes() as f64 / f64::from(cap);
        println!("session table: {cap} IPv4 sessions in {:.0} MiB, {per:.1} bytes per session", t.memory_bytes() as f64 / 1048576.0);
    }
    let ids: Vec<u64> = (0..100).collect();
    let cands: Vec<rvs_core::sched::Candidate> =
        (0..100u16).map(|i| rvs_core::sched::Candidate { slot: i, weight: 1 + u32::from(i) }).collect();
    let mut times = Vec::new();
    for _ in 0..11 {
        let t = Instant::now();
        let m = rvs_core::sched::MaglevTable::build(&cands, &ids, 65_537);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(m);
    }
    println!("Maglev table of 65537 entries, 100 weighted real servers: built in {:.2} ms (median of 11)", median(&times));
}

struct Cleanup(Option<PathBuf>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(d) = &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
