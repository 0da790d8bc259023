//! rvsd: the rvs daemon.
//!
//! `rvsd -c /etc/rvs/rvs.toml` validates the configuration (refusing a bad
//! one with file:line: field: message, exit status 2), starts the DPDK
//! dataplane (exit status 3 if DPDK fails), serves the control socket, and
//! runs until SIGINT or SIGTERM, when it stops the workers and prints its
//! final counters. SIGHUP re-reads the configuration file and applies the
//! difference (an invalid file is refused and the running state kept).
use clap::Parser;
use mgmt::control::{Access, ControlError, ControlServer, Limits};
use mgmt::daemon::Daemon;
use mgmt::fault::{self, Task};
use mgmt::ipvsadm::{self, Format, Options};
use mgmt::notify::Notifier;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(name = "rvsd", version, about = "rvs: a DPDK Layer-4 load balancer (IPVS-compatible)")]
struct Args {
    /// Configuration file.
    #[arg(short, long, default_value = "/etc/rvs/rvs.toml")]
    config: PathBuf,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Write the final statistics report (JSON) to this file at exit.
    #[arg(long)]
    final_stats: Option<PathBuf>,
    /// Offline replay: run the dataplane over this capture (classic pcap,
    /// Ethernet) with net_pcap in place of every port, print the verdicts
    /// by reason and the spread over the real servers, and exit. No NIC,
    /// namespaces or hugepages needed.
    #[arg(long, value_name = "IN.pcap")]
    replay: Option<PathBuf>,
    /// With --replay: write every frame rvsd sends, on any port, here
    /// (time order).
    #[arg(long, value_name = "OUT.pcap", requires = "replay")]
    out: Option<PathBuf>,
    /// With --replay: the port that receives the capture (default: the
    /// first).
    #[arg(long, value_name = "NAME", requires = "replay")]
    replay_port: Option<String>,
    /// Print a generated document and exit: man (rvsd.8), toml-man
    /// (rvs.toml.5), bash or zsh (completions). Used by the package build.
    #[arg(long, hide = true, value_name = "WHAT")]
    generate: Option<String>,
}

/// `--generate WHAT`: prints the document, or exits with status 2.
fn generate(what: &str) -> ! {
    use clap::CommandFactory;
    let text = match what {
        "man" => mgmt::docs::rvsd_man(Args::command()).ok(),
        "toml-man" => Some(mgmt::docs::toml_man(env!("CARGO_PKG_VERSION"))),
        shell => mgmt::docs::completion(Args::command(), shell),
    };
    match text {
        Some(t) => {
            print!("{t}");
            std::process::exit(0)
        }
        None => {
            eprintln!("rvsd: --generate: man, toml-man, bash or zsh, not {what:?}");
            std::process::exit(2)
        }
    }
}

fn log(msg: impl AsRef<str>) {
    log::info!("{}", msg.as_ref());
}

/// Reads and validates the configuration, or exits with status 2.
fn load(args: &Args) -> config::Config {
    match config::from_file_with(&args.config, &rvs_core::memory::check) {
        Ok(c) => c,
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("rvsd: {e}");
            }
            eprintln!("rvsd: configuration refused; nothing started");
            std::process::exit(2);
        }
    }
}

/// `--check`: the verdict and the memory the configuration would take.
fn check(cfg: &config::Config, file: &str) {
    let mem = rvs_core::memory::estimate(cfg).total();
    println!(
        "{file}: configuration OK ({} ports, {} services; about {} MiB of {} MiB budget)",
        cfg.ports.len(),
        cfg.services.len(),
        mem >> 20,
        rvs_core::memory::budget(cfg) >> 20
    );
}

/// The control socket, with the access rules and limits of `[daemon]`.
fn serve_control(daemon: &Daemon, d: &config::Daemon) -> Result<ControlServer, ControlError> {
    let access = Access { uids: d.allowed_uids.clone(), gids: d.allowed_gids.clone() };
    ControlServer::start(
        &d.control_socket,
        d.socket_mode,
        d.socket_group.as_deref(),
        access,
        Limits::from_config(d),
        daemon.manager.clone(),
    )
}

/// SIGINT and SIGTERM set `stop`, SIGHUP sets `hup`.
fn signals() -> (Arc<AtomicBool>, Arc<AtomicBool>) {
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            log(format!("cannot handle signal {sig}: {e}"));
        }
    }
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone()) {
        log(format!("cannot handle SIGHUP: {e}"));
    }
    (stop, hup)
}

/// The management loop until `stop`: reloads on SIGHUP, health-check
/// results, once a second the port counters and rates. Each round is
/// contained: a fault costs that round, never forwarding.
fn manage(daemon: &Daemon, stop: &AtomicBool, hup: &AtomicBool, ha: Option<&mgmt::ha::Ha>, notify: &mut Notifier) {
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let _ = fault::contain(Task::Management, || {
            fault::injection_point(Task::Management);
            if hup.swap(false, Ordering::Relaxed) {
                notify.reloading();
                // Unsaved changes made through rvsadm are not discarded by
                // a signal: the reload is refused and says so.
                match fault::lock(&daemon.manager).reload(false) {
                    Ok(d) => log(format!("SIGHUP: configuration reloaded: {}", serde_json::to_string(&d).unwrap_or_default())),
                    Err(e) => log(format!("SIGHUP: reload refused, running configuration kept: {}", e.message)),
                }
                notify.ready("forwarding");
            }
            // systemd's watchdog: a keep-alive only while every worker
            // makes progress.
            let loops: Vec<u64> = fault::lock(&daemon.manager).cores().iter().map(|c| c.loops.get()).collect();
            let stuck = notify.watchdog(&loops);
            if !stuck.is_empty() {
                log(format!("workers {stuck:?} made no progress: watchdog keep-alive withheld"));
            }
            fault::lock(&daemon.manager).poll_health();
            fault::lock(&daemon.manager).announce();
            if let Some(h) = ha {
                h.common.links_up.store(!h.settings.track_link || daemon.links_up(), Ordering::Relaxed);
                h.common
                    .servers_up
                    .store(!h.settings.track_real_servers || fault::lock(&daemon.manager).some_server_up(), Ordering::Relaxed);
            }
            if last.elapsed() >= Duration::from_secs(1) {
                daemon.refresh_port_stats();
                fault::lock(&daemon.manager).tick();
                last = Instant::now();
            }
        });
    }
}

/// The final counters, as `ipvsadm -L --stats --exact` plus drops, ports
/// and sessions.
fn print_final(report: &mgmt::report::Report, table_size: u64) {
    let opts = Options { format: Format::Stats, exact: true, nosort: false, names: None };
    print!("{}", ipvsadm::list(report, table_size, opts));
    println!("Drops:");
    let mut any = false;
    for (k, v) in &report.drops {
        if *v > 0 {
            println!("  {k:<28} {v}");
            any = true;
        }
    }
    if !any {
        println!("  (none)");
    }
    println!("Ports:");
    for p in &report.ports {
        println!(
            "  {:<12} rx {} pkts {} bytes, tx {} pkts {} bytes, missed {}",
            p.name, p.rx_packets, p.rx_bytes, p.tx_packets, p.tx_bytes, p.rx_missed
        );
    }
    println!(
        "Sessions: created {}, expired {}, reused {}, open v4 {} v6 {}",
        report.sessions.created, report.sessions.expired, report.sessions.reused, report.sessions.v4, report.sessions.v6
    );
}

fn write_final(report: &mgmt::report::Report, path: &std::path::Path) {
    match serde_json::to_string_pretty(report) {
        Ok(s) => {
            if let Err(e) = std::fs::write(path, s) {
                log(format!("cannot write {}: {e}", path.display()));
            }
        }
        Err(e) => log(format!("cannot encode final stats: {e}")),
    }
}

/// `--replay`: the dataplane over a capture, then the verdicts. Exits.
fn replay(args: &Args, cfg: config::Config, input: &std::path::Path, file: &str) -> ! {
    use mgmt::replay;
    let fail = |msg: String, code: i32| -> ! {
        eprintln!("rvsd: {msg}");
        std::process::exit(code)
    };
    let dir = replay::work_dir().unwrap_or_else(|e| fail(e.to_string(), 2));
    let plan = replay::plan(&cfg, input, args.replay_port.as_deref(), &dir).unwrap_or_else(|e| fail(e.to_string(), 2));
    mgmt::logging::init(mgmt::logging::level_of(cfg.daemon.log_level));
    let daemon = Daemon::start(plan.config.clone(), None, file).unwrap_or_else(|e| fail(format!("{e}; nothing replayed"), e.exit_code()));
    // Done when the whole capture was received and nothing moved for a
    // moment (the last frames forwarded); a capture whose last frames the
    // device refuses (longer than an mbuf) ends when nothing moves for 2 s.
    let deadline = Instant::now() + Duration::from_secs(60 + plan.frames / 50_000);
    let (mut last, mut since) = ((u64::MAX, u64::MAX), Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let r = fault::lock(&daemon.manager).report();
        let rx = r.ports.get(plan.port).map_or(0, |p| p.rx_packets);
        let now = (rx, r.ports.iter().map(|p| p.tx_packets).sum());
        if now != last {
            (last, since) = (now, Instant::now());
        }
        let still = since.elapsed();
        if (rx >= plan.frames && still >= Duration::from_millis(200)) || still >= Duration::from_secs(2) {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("rvsd: replay: {rx} of {} frames received before the deadline", plan.frames);
            break;
        }
    }
    let report = daemon.shutdown();
    print!("{}", replay::summary(&plan, &report));
    if let Some(path) = &args.final_stats {
        write_final(&report, path);
    }
    let mut code = 0;
    if let Some(out) = &args.out {
        let tx: Vec<&std::path::Path> = plan.tx.iter().map(PathBuf::as_path).collect();
        match mgmt::pcap::merge(&tx, out) {
            Ok(n) => println!("Wrote {n} frames to {}", out.display()),
            Err(e) => {
                eprintln!("rvsd: --out {}: {e}", out.display());
                code = 1;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::process::exit(code)
}

fn main() {
    let args = Args::parse();
    if let Some(what) = &args.generate {
        generate(what);
    }
    let file = args.config.display().to_string();
    let cfg = load(&args);
    if args.check {
        return check(&cfg, &file);
    }
    if let Some(input) = args.replay.clone() {
        replay(&args, cfg, &input, &file);
    }
    mgmt::logging::init(mgmt::logging::level_of(cfg.daemon.log_level));
    let daemon_cfg = cfg.daemon.clone();
    let daemon = match Daemon::start(cfg, Some(args.config.clone()), &file) {
        Ok(d) => d,
        Err(e) => {
            log::error!("{e}");
            log::error!("start-up failed; nothing is forwarding");
            std::process::exit(e.exit_code());
        }
    };
    let control = match serve_control(&daemon, &daemon_cfg) {
        Ok(c) => c,
        Err(e) => {
            log::error!("daemon.control_socket: {e}");
            let _ = daemon.shutdown();
            std::process::exit(2);
        }
    };
    let (stop, hup) = signals();
    let ha = match daemon.start_ha(stop.clone()) {
        Ok(h) => h,
        Err(e) => {
            log::error!("{e}");
            drop(control);
            let _ = daemon.shutdown();
            std::process::exit(2);
        }
    };
    fault::lock(&daemon.manager).start_health_checks();
    fault::lock(&daemon.manager).start_announcing();
    let metrics = match daemon_cfg.metrics_listen {
        Some(addr) => match mgmt::metrics::MetricsServer::start(addr, daemon.manager.clone()) {
            Ok(m) => {
                log(format!("metrics on http://{}/metrics", m.addr));
                Some(m)
            }
            Err(e) => {
                log::error!("daemon.metrics_listen: cannot listen on {addr}: {e}");
                drop(control);
                let _ = daemon.shutdown();
                std::process::exit(2);
            }
        },
        None => None,
    };
    log(format!("forwarding; control socket {}", control.path().display()));
    let mut notify = Notifier::from_env();
    notify.ready("forwarding");
    manage(&daemon, &stop, &hup, ha.as_ref(), &mut notify);
    log("stopping");
    notify.stopping();
    // Scale-out: withdraw every VIP, keep forwarding while the routers
    // move the flows away, then stop.
    let drain = fault::lock(&daemon.manager).withdraw_for_stop();
    if let Some(d) = drain {
        log(format!("VIPs withdrawn; forwarding {} ms more before the stop", d.as_millis()));
        std::thread::sleep(d);
    }
    if let Some(h) = ha {
        // A master says it stops (priority 0); the workers still run to
        // put that advert on the wire.
        h.stop();
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(metrics);
    drop(control);
    let size = daemon.table_size;
    let report = daemon.shutdown();
    print_final(&report, size);
    if let Some(path) = &args.final_stats {
        write_final(&report, path);
    }
}
