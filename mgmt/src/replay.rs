//! Offline replay: `rvsd --replay IN.pcap -c FILE [--out OUT.pcap]`.
//!
//! Runs the real dataplane - the same forwarder, session tables and
//! schedulers as a live rvsd - over a capture, with DPDK's `net_pcap` in
//! place of every port: the capture is what the replay port (the first,
//! or `--replay-port NAME`) receives, the other ports receive nothing,
//! and what rvsd sends on any port goes to `OUT.pcap`, merged in time
//! order. No NIC, no namespaces, no hugepages: an operator checks
//! a configuration change against real traffic before deploying it.
//!
//! What a replay changes, and says it changes:
//! * one worker (the verdicts do not depend on the core count);
//! * no health checks, feedback agents, pair or announcements: every real
//!   server is up;
//! * a next hop (real server or gateway) without a static neighbour gets
//!   a made-up MAC (`02:52:50:` and the address's hash), since nobody
//!   answers ARP in a file;
//! * the replay port takes the destination MAC most unicast frames of the
//!   capture carry (the live port's), unless the configuration sets one;
//! * frames are read as fast as the worker takes them, so session ages
//!   are compressed (a capture longer than a timeout ages less here).
use crate::pcap::{self, PcapError};
use config::{Config, MacAddr, StaticNeighbor};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// What a replay runs: the changed configuration and what it needs.
#[derive(Debug)]
pub struct Plan {
    /// The configuration rvsd runs (ports on `net_pcap`).
    pub config: Config,
    /// Frames in the capture.
    pub frames: u64,
    /// The port that receives the capture.
    pub port: usize,
    /// Per port, the file its transmissions go to.
    pub tx: Vec<PathBuf>,
    /// What the replay changed, for the operator.
    pub notes: Vec<String>,
}

/// Why a replay cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The capture cannot be read.
    #[error("{0}: {1}")]
    Capture(PathBuf, PcapError),
    /// No such port.
    #[error("--replay-port: no port named {0:?} (the configuration has {1})")]
    Port(String, String),
    /// A working file.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// Counts the capture's frames and finds the destination MAC most of its
/// unicast frames carry.
fn survey(input: &Path) -> Result<(u64, Option<[u8; 6]>), PcapError> {
    let mut r = pcap::Reader::open(input)?;
    let mut n = 0;
    let mut macs: HashMap<[u8; 6], u64> = HashMap::new();
    while let Some(f) = r.next_frame()? {
        n += 1;
        if let Some(d) = f.data.get(..6).and_then(|d| <[u8; 6]>::try_from(d).ok()) {
            if d[0] & 1 == 0 {
                *macs.entry(d).or_default() += 1;
            }
        }
    }
    Ok((n, macs.into_iter().max_by_key(|(m, c)| (*c, *m)).map(|(m, _)| m)))
}

/// A made-up, stable, locally administered MAC for a next hop.
fn made_up_mac(ip: IpAddr) -> MacAddr {
    let h = rvs_core::sched::stable_hash(ip.to_string().as_bytes(), 0x7265_706c).to_be_bytes();
    MacAddr([0x02, 0x52, 0x50, h[0], h[1], h[2]])
}

/// The configuration and files for replaying `input` into `cfg`;
/// working files go to `dir`.
pub fn plan(cfg: &Config, input: &Path, port: Option<&str>, dir: &Path) -> Result<Plan, ReplayError> {
    let (frames, dst) = survey(input).map_err(|e| ReplayError::Capture(input.to_path_buf(), e))?;
    let port = match port {
        None => 0,
        Some(name) => cfg.ports.iter().position(|p| p.name == name).ok_or_else(|| {
            ReplayError::Port(name.to_string(), cfg.ports.iter().map(|p| format!("{:?}", p.name)).collect::<Vec<_>>().join(", "))
        })?,
    };
    let empty = dir.join("empty.pcap");
    pcap::Writer::create(&empty).and_then(pcap::Writer::finish).map_err(|e| ReplayError::Capture(empty.clone(), e))?;
    let mut c = cfg.clone();
    let mut notes = Vec::new();
    let mut tx = Vec::new();
    for (i, p) in c.ports.iter_mut().enumerate() {
        let out = dir.join(format!("tx{i}.pcap"));
        let rx = if i == port { input } else { empty.as_path() };
        p.device = format!("net_pcap{i},rx_pcap={},tx_pcap={}", rx.display(), out.display());
        tx.push(out);
        if p.kernel_interface.take().is_some() {
            notes.push(format!("port {:?}: no kernel interface", p.name));
        }
        if i == port && p.mac.is_none() {
            if let Some(m) = dst {
                p.mac = Some(MacAddr(m));
                notes.push(format!("port {:?} takes the capture's destination MAC {}", p.name, MacAddr(m)));
            }
        }
    }
    c.dataplane.workers = 1;
    c.dataplane.lcores = None;
    c.dataplane.hugepages = false;
    c.dataplane.idle_backoff_us = c.dataplane.idle_backoff_us.max(10);
    if c.ha.take().is_some() {
        notes.push("no [ha]: the replay forwards as a single node".into());
    }
    if c.announce.take().is_some() {
        notes.push("no [announce]".into());
    }
    c.daemon.metrics_listen = None;
    c.daemon.control_socket = dir.join("control.sock");
    let mut checks = 0;
    for s in &mut c.services {
        checks += usize::from(s.is_checked()) + usize::from(s.feedback.is_some());
        s.health_check = None;
        s.health_checks.clear();
        s.feedback = None;
        for r in &mut s.real_servers {
            r.health_checks.clear();
        }
    }
    if checks > 0 {
        notes.push(format!("no health checks or feedback ({checks} services had them): every real server is up"));
    }
    let targets: Vec<IpAddr> =
        c.services.iter().flat_map(|s| s.real_servers.iter().map(|r| r.address).chain(s.fallback.iter().map(|f| f.address))).collect();
    for t in targets {
        let Some((pi, hop)) = c.egress_for(t) else { continue };
        if c.neighbors.iter().any(|n| n.address == hop) {
            continue;
        }
        let mac = made_up_mac(hop);
        notes.push(format!("next hop {hop}: no static neighbour, uses {mac}"));
        let port = c.ports.get(pi).map(|p| p.name.clone()).unwrap_or_default();
        c.neighbors.push(StaticNeighbor { address: hop, mac, port });
    }
    Ok(Plan { config: c, frames, port, tx, notes })
}

/// The verdicts of a replay, printed at its end.
pub fn summary(plan: &Plan, report: &crate::report::Report) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let rx = report.ports.get(plan.port).map_or(0, |p| p.rx_packets);
    let _ = writeln!(
        o,
        "Replay: {} frames in the capture, {rx} received on port {:?}",
        plan.frames,
        report.ports.get(plan.port).map_or("", |p| p.name.as_str())
    );
    for n in &plan.notes {
        let _ = writeln!(o, "  ({n})");
    }
    let _ = writeln!(o, "Sent:");
    for p in &report.ports {
        let _ = writeln!(o, "  port {:<12} {} frames, {} bytes", p.name, p.tx_packets, p.tx_bytes);
    }
    let _ = writeln!(o, "Dropped, by reason:");
    let mut any = false;
    for (k, v) in report.drops.iter().filter(|(_, v)| **v > 0) {
        let _ = writeln!(o, "  {k:<28} {v}");
        any = true;
    }
    if !any {
        let _ = writeln!(o, "  (none)");
    }
    let _ = writeln!(o, "Sessions created: {}", report.sessions.created);
    let _ = writeln!(o, "Per real server:");
    for s in &report.services {
        let total = s.real_servers.iter().map(|r| r.totals.conns).sum::<u64>().max(1);
        let name = s.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
        let _ = writeln!(
            o,
            "  {} {}{name}: {} connections, {} packets in",
            s.protocol,
            crate::ipvsadm::addr_port(s.vip, s.port),
            s.totals.conns,
            s.totals.pkts_in
        );
        for r in &s.real_servers {
            #[expect(clippy::cast_precision_loss, reason = "a percentage for people")]
            let share = r.totals.conns as f64 * 100.0 / total as f64;
            let _ = writeln!(
                o,
                "    -> {:<28} {:>8} connections {share:>5.1}%  {:>10} packets  {:>12} bytes",
                crate::ipvsadm::addr_port(r.address, r.port),
                r.totals.conns,
                r.totals.pkts_in,
                r.totals.bytes_in
            );
        }
        if s.fallback_conns > 0 {
            let _ = writeln!(o, "    -> sorry server            {:>8} connections", s.fallback_conns);
        }
    }
    o
}

/// A fresh working directory for a replay.
pub fn work_dir() -> Result<PathBuf, ReplayError> {
    let d = std::env::temp_dir().join(format!("rvs-replay-{}", std::process::id()));
    std::fs::create_dir_all(&d).map_err(|e| ReplayError::Io(d.clone(), e))?;
    Ok(d)
}
