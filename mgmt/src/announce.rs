//! Announcing VIPs for scale-out behind ECMP: rvsd decides *what* is
//! announced, a routing daemon (BIRD; FRR works the same way) speaks BGP.
//!
//! Each announced VIP is a host route (/32 or /128) in the kernel routing
//! table `[announce] table`, through the kernel interface of the
//! `[announce] port`; no routing rule points at that table, so the routes
//! change nothing in the kernel's own forwarding. BIRD's `kernel` protocol
//! learns the table and its BGP protocol exports what it learned (see
//! `bird.example.conf`). Because the routes go through the TAP device rvsd
//! owns, the kernel deletes them the moment rvsd exits, however it exits:
//! a dead balancer is withdrawn by its own routing daemon, not only by the
//! routers' hold timers.
//!
//! A VIP is announced while some service at it has a real server that is
//! up with a weight above 0 (the health checks' view), the node is not
//! drained (`rvsadm node drain`) and rvsd is not stopping. On a clean stop
//! rvsd withdraws everything, keeps forwarding `drain_ms` while the routers
//! move their flows away, then stops.
use rvs_core::table::Snapshot;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Why a route could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// `ip` could not run.
    #[error("cannot run ip: {0}")]
    Spawn(#[source] std::io::Error),
    /// `ip` refused.
    #[error("ip {args}: {stderr}")]
    Failed {
        /// Its arguments.
        args: String,
        /// What it said.
        stderr: String,
    },
}

/// The VIPs worth announcing in `snap`: those with a service that has a
/// real server up, not retired, with a weight above 0.
pub fn announceable(snap: &Snapshot) -> BTreeSet<IpAddr> {
    snap.services
        .iter()
        .flatten()
        .filter(|s| {
            s.backends
                .iter()
                .filter_map(|&slot| snap.backends.get(usize::from(slot)).and_then(Option::as_ref))
                .any(|b| b.up && !b.retired && b.effective_weight > 0)
        })
        .map(|s| s.key.vip)
        .collect()
}

/// What `rvsadm show node` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The VIPs announced now.
    pub announced: Vec<IpAddr>,
    /// VIPs configured but not announced, and why.
    pub withheld: Vec<(IpAddr, String)>,
    /// Drained by the operator.
    pub drained: bool,
    /// Stopping (withdrawn, draining before the stop).
    pub stopping: bool,
    /// The kernel table of the routes.
    pub table: u32,
    /// The interface the routes go through.
    pub interface: String,
    /// Route changes written.
    pub changes: u64,
    /// The last route change that failed, if any.
    pub last_error: Option<String>,
}

/// The announcer: owned by the manager, brought up to date after every
/// change and health result ([`Announcer::update`]).
#[derive(Debug)]
pub struct Announcer {
    table: u32,
    iface: String,
    announced: BTreeSet<IpAddr>,
    drained: bool,
    stopping: bool,
    changes: u64,
    last_error: Option<String>,
}

fn ip(args: &[&str]) -> Result<(), AnnounceError> {
    let out = std::process::Command::new("ip").args(args).output().map_err(AnnounceError::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(AnnounceError::Failed { args: args.join(" "), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

fn host_route(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v) => format!("{v}/32"),
        IpAddr::V6(v) => format!("{v}/128"),
    }
}

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "-4"
    } else {
        "-6"
    }
}

impl Announcer {
    /// An announcer of routes in `table` through `iface`. Routes a killed
    /// predecessor may have left (only possible if the interface survived
    /// it) are flushed.
    pub fn new(table: u32, iface: &str) -> Announcer {
        let t = table.to_string();
        for fam in ["-4", "-6"] {
            let _ = ip(&[fam, "route", "flush", "table", &t]);
        }
        Announcer {
            table,
            iface: iface.to_string(),
            announced: BTreeSet::new(),
            drained: false,
            stopping: false,
            changes: 0,
            last_error: None,
        }
    }

    /// What should be announced now, given the announceable VIPs.
    fn wanted(&self, announceable: &BTreeSet<IpAddr>) -> BTreeSet<IpAddr> {
        if self.drained || self.stopping {
            BTreeSet::new()
        } else {
            announceable.clone()
        }
    }

    /// Brings the kernel table to what `snap` says; returns whether it
    /// changed anything. A failed change is kept in `last_error` and
    /// retried on the next call.
    pub fn update(&mut self, snap: &Snapshot) -> bool {
        let want = self.wanted(&announceable(snap));
        if want == self.announced {
            return false;
        }
        let t = self.table.to_string();
        let mut changed = false;
        for &a in self.announced.clone().difference(&want) {
            let r = host_route(a);
            match ip(&[family(a), "route", "del", &r, "dev", &self.iface, "table", &t]) {
                Ok(()) => {
                    self.announced.remove(&a);
                    self.changes += 1;
                    changed = true;
                    log(format!("withdrawn {a}"));
                }
                Err(e) => self.failed(e),
            }
        }
        for &a in want.difference(&self.announced.clone()) {
            let r = host_route(a);
            match ip(&[family(a), "route", "replace", &r, "dev", &self.iface, "table", &t, "proto", "static"]) {
                Ok(()) => {
                    self.announced.insert(a);
                    self.changes += 1;
                    changed = true;
                    log(format!("announced {a}"));
                }
                Err(e) => self.failed(e),
            }
        }
        changed
    }

    fn failed(&mut self, e: AnnounceError) {
        let m = e.to_string();
        if self.last_error.as_deref() != Some(m.as_str()) {
            log(format!("route change failed: {m}"));
        }
        self.last_error = Some(m);
    }

    /// `rvsadm node drain` (true) / `undrain` (false).
    pub fn set_drained(&mut self, drained: bool) {
        if drained != self.drained {
            log(if drained { "node drained by the operator: withdrawing every VIP" } else { "node undrained" });
        }
        self.drained = drained;
    }

    /// rvsd is stopping: everything is withdrawn at the next update.
    pub fn set_stopping(&mut self) {
        self.stopping = true;
    }

    /// How many VIPs are announced.
    pub fn announced_count(&self) -> usize {
        self.announced.len()
    }

    /// Whether the operator drained this node.
    pub fn drained(&self) -> bool {
        self.drained
    }

    /// The report of `show node`.
    pub fn report(&self, snap: &Snapshot) -> NodeReport {
        let up = announceable(snap);
        let all: BTreeSet<IpAddr> = snap.services.iter().flatten().map(|s| s.key.vip).collect();
        let withheld = all
            .iter()
            .filter(|a| !self.announced.contains(a))
            .map(|&a| {
                let why = if self.stopping {
                    "stopping"
                } else if self.drained {
                    "drained"
                } else if !up.contains(&a) {
                    "no real server up"
                } else {
                    "route change failed"
                };
                (a, why.to_string())
            })
            .collect();
        NodeReport {
            announced: self.announced.iter().copied().collect(),
            withheld,
            drained: self.drained,
            stopping: self.stopping,
            table: self.table,
            interface: self.iface.clone(),
            changes: self.changes,
            last_error: self.last_error.clone(),
        }
    }
}

fn log(msg: impl AsRef<str>) {
    log::info!("announce: {}", msg.as_ref());
}
