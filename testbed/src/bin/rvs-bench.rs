//! rvs-bench: rvs's packet rate against `dpdk-testpmd` io forwarding over
//! the same virtual devices, in the same run (see BENCHMARKS.md).
//!
//! ```text
//! rvs-bench [--flows N] [--syns N] [--seconds S] [--modes nat,fullnat,dr,tunnel]
//!           [--workloads est,mix,syn,spx,memif-est,memif-syn] [--workers N] [--rounds N]
//!           [--quick] [--dir DIR]
//! ```
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
    drops: String,
}

fn print_row(r: &Row) {
    let new = r.new_per_s.map_or("-".to_string(), |n| format!("{:.2} M/s", n / 1e6));
    println!(
        "| {:<22} | {:<7} | {:>8.2} | {:>12.2} | {:>6.1}% | {:>4.0}-{:<4.0}% | {:>11} | {} |",
        r.workload,
        r.mode,
        r.rvs,
        r.testpmd,
        r.ratio * 100.0,
        r.spread.0 * 100.0,
        r.spread.1 * 100.0,
        new,
        r.drops
    );
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
fn established_run(dir: &Path, setup: &RvsdSetup, n: u64, settle: bool, seconds: u64) -> Result<(f64, Option<f64>, String)> {
    let r = Rvsd::start(dir, &bench::rvsd_config(dir, setup))?;
    wait_created(&r, n, Duration::from_secs(60))?;
    if settle {
        std::thread::sleep(Duration::from_secs(1));
    }
    let before = r.stats()?;
    let samples = r.sample_tx(seconds)?;
    let after = r.stats()?;
    r.stop();
    Ok((median(&samples), None, drops_text(&after, &before)))
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
    format!("net_pcap{i},rx_pcap={},infinite_rx=1", f.display())
}

/// Established flows, one direction (`mix`: with the replies on the
/// second port).
fn established_workload(o: &Opts, dir: &Path, mix: bool) -> Result<()> {
    let flows = o.flows;
    let est_file = dir.join("est.pcap");
    let reply_file = dir.join("est-replies.pcap");
    let (f, r) = bench::established(flows, Mode::Nat, mix, 1);
    testbed::pcap::write(&est_file, &f)?;
    let port1 = if mix {
        testbed::pcap::write(&reply_file, &r)?;
        pcap_port(1, &reply_file)
    } else {
        NULL_PORT.to_string()
    };
    let n = flows;
    let mbufs = if mix { 2 * n } else { n } + EXTRA_MBUFS;
    let (label, modes, tag) = if mix {
        (format!("est {} + replies", short(flows)), vec![Mode::Nat], "m")
    } else {
        (format!("est {} flows", short(flows)), o.modes.clone(), "e")
    };
    rounds(
        o,
        &label,
        &modes,
        &mut || Ok(median(&bench::testpmd(&[pcap_port(0, &est_file), port1.clone()], mbufs, o.seconds, tag)?)),
        &mut |mode| {
            let setup = RvsdSetup {
                mode,
                port0: pcap_port(0, &est_file),
                port1: port1.clone(),
                sessions: n + n / 2 + 1024,
                mbufs,
                sloppy: true,
                workers: o.workers,
                synproxy: false,
            };
            established_run(dir, &setup, u64::from(n), mix, o.seconds)
        },
    )
}

/// A SYN flood from many sources: every packet a new session.
fn syn_workload(o: &Opts, dir: &Path) -> Result<()> {
    let syn_file = dir.join("syn.pcap");
    testbed::pcap::write(&syn_file, &bench::syns(o.syns, 2))?;
    let ns = o.syns;
    let label = format!("SYN flood {} sources", short(o.syns));
    rounds(
        o,
        &label,
        &o.modes,
        &mut || Ok(median(&bench::testpmd(&[pcap_port(0, &syn_file), NULL_PORT.to_string()], ns + EXTRA_MBUFS, o.seconds, "s")?)),
        &mut |mode| {
            let setup = RvsdSetup {
                mode,
                port0: pcap_port(0, &syn_file),
                port1: NULL_PORT.to_string(),
                sessions: ns + ns / 2 + 1024,
                mbufs: ns + EXTRA_MBUFS,
                sloppy: false,
                workers: o.workers,
                synproxy: false,
            };
            let r = Rvsd::start(dir, &bench::rvsd_config(dir, &setup))?;
            let (rate, mpps, drops) = syn_rate(&r, u64::from(ns))?;
            r.stop();
            Ok((mpps, Some(rate), drops))
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
        &mut || Ok(median(&bench::testpmd(&[pcap_port(0, &syn_file), NULL_PORT.to_string()], ns + EXTRA_MBUFS, o.seconds, "p")?)),
        &mut |mode| {
            let setup = RvsdSetup {
                mode,
                port0: pcap_port(0, &syn_file),
                port1: NULL_PORT.to_string(),
                sessions: 1024,
                mbufs: ns + EXTRA_MBUFS,
                sloppy: false,
                workers: o.workers,
                synproxy: true,
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
            Ok((median(&samples), Some(rate), drops_text(&after, &before)))
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
    println!("| workload               | mode    | rvs Mpps | testpmd Mpps |  ratio | ratio range |  new sess/s | rvs drops |");
    println!("|------------------------|---------|---------:|-------------:|-------:|-------------|------------:|-----------|");
    let want = |w: &str| o.workloads.iter().any(|x| x == w);
    if want("est") {
        established_workload(&o, &dir, false)?;
    }
    if want("mix") {
        established_workload(&o, &dir, true)?;
    }
    if want("syn") {
        syn_workload(&o, &dir)?;
    }
    if want("spx") {
        synproxy_workload(&o, &dir)?;
    }
    for (w, syn) in [("memif-est", false), ("memif-syn", true)] {
        if want(w) {
            memif(&o, &dir, syn)?;
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
        start_gen(o, dir, syn, run.get())
    };
    let label = if syn { "memif SYN flood".to_string() } else { format!("memif est {} flows", short(o.flows)) };
    rounds(
        o,
        &label,
        &o.modes,
        &mut || {
            let (g, client) = next()?;
            let base = median(&bench::testpmd(&[client, null.clone()], 65_535, o.seconds, if syn { "ms" } else { "me" })?);
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
                workers: o.workers,
                synproxy: false,
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
            Ok((median(&samples), syn.then_some(created), drops_text(&after, &before)))
        },
    )
}

/// Measures `modes` against a baseline, `o.rounds` times, interleaved (the
/// baseline, then every mode, then again), and prints one row per mode with
/// the medians: on a shared VM the machine's speed drifts over minutes, so
/// each ratio compares runs that are close in time.
#[expect(clippy::type_complexity, reason = "per mode: four sample lists and the drops, local to this function")]
fn rounds(
    o: &Opts,
    label: &str,
    modes: &[Mode],
    baseline: &mut dyn FnMut() -> Result<f64>,
    rvs: &mut dyn FnMut(Mode) -> Result<(f64, Option<f64>, String)>,
) -> Result<()> {
    let mut res: Vec<(Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, String)> = modes.iter().map(|_| Default::default()).collect();
    for _ in 0..o.rounds {
        let base = baseline()?;
        for (i, &mode) in modes.iter().enumerate() {
            let (mpps, new, drops) = rvs(mode)?;
            let r = &mut res[i];
            r.0.push(mpps);
            r.1.push(base);
            if base > 0.0 {
                r.2.push(mpps / base);
            }
            if let Some(n) = new {
                r.3.push(n);
            }
            r.4 = drops;
        }
    }
    for (i, &mode) in modes.iter().enumerate() {
        let (m, b, ratio, new, drops) = &res[i];
        print_row(&Row {
            workload: label.to_string(),
            mode: mode.name(),
            rvs: median(m),
            testpmd: median(b),
            ratio: median(ratio),
            spread: (ratio.iter().copied().fold(f64::MAX, f64::min), ratio.iter().copied().fold(0.0, f64::max)),
            new_per_s: (!new.is_empty()).then(|| median(new)),
            drops: drops.clone(),
        });
    }
    Ok(())
}

/// Starts rvs-pktgen as a memif server on a fresh socket; returns its guard
/// and the device string for the consumer's end.
fn start_gen(o: &Opts, dir: &Path, syn: bool, run: u32) -> Result<(bench::Guard, String)> {
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

/// New sessions per second while rvsd makes its first pass over a file of
/// distinct SYNs: the counter is sampled every 10 ms and the rate taken
/// between 10% and 90% of the file (every SYN of that pass creates a
/// session). Returns (sessions/s, Mpps forwarded meanwhile, drops).
fn syn_rate(r: &Rvsd, n: u64) -> Result<(f64, f64, String)> {
    let start = r.stats()?;
    let mut samples: Vec<(Instant, u64, u64)> = Vec::new();
    let t = Instant::now();
    loop {
        let s = r.stats()?;
        let tx: u64 = s.ports.iter().map(|p| p.tx_packets).sum();
        samples.push((Instant::now(), s.sessions.created, tx));
        if s.sessions.created >= n * 95 / 100 {
            break;
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!("rvsd created only {} of {n} sessions", s.sessions.created);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let end = r.stats()?;
    let lo = samples.iter().find(|s| s.1 >= n / 10).copied();
    let hi = samples.iter().find(|s| s.1 >= n * 9 / 10).copied();
    let (Some(lo), Some(hi)) = (lo, hi) else { bail!("too few samples") };
    let dt = hi.0.duration_since(lo.0).as_secs_f64();
    if dt <= 0.0 {
        bail!("the first pass was faster than the sampling: use more --syns");
    }
    #[expect(clippy::cast_precision_loss, reason = "rates")]
    let rate = (hi.1 - lo.1) as f64 / dt;
    #[expect(clippy::cast_precision_loss, reason = "rates")]
    let mpps = (hi.2 - lo.2) as f64 / dt / 1e6;
    Ok((rate, mpps, drops_text(&end, &start)))
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
