//! The management state: running configuration, compilation, publishing.
//!
//! Every change (a control request, a reload, a health verdict) goes the
//! same way: build the candidate configuration, validate it, compile it into
//! a snapshot, record counter bases for new real servers, publish it. If any
//! step fails nothing changes: the running configuration and the workers'
//! snapshot stay as they were. Publishing is a pointer swap the workers
//! notice between bursts, so no packet waits on management and sessions
//! survive (real servers keep their slots across publishes).
use crate::proto::{CmdError, ErrorCode};
use crate::report::{Accounting, Report};
use config::{Config, Strictness};
use dataplane::net::MacAddr;
use dataplane::stats::CoreStats;
use dataplane::table::{BackendKey, Compiler, Health};
use dataplane::worker::Shared;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Management state, owned by the management thread (behind a mutex shared
/// with the control-socket threads; never touched by workers).
#[derive(Debug)]
pub struct Manager {
    config: Config,
    config_path: Option<PathBuf>,
    compiler: Compiler,
    macs: Vec<MacAddr>,
    health: Health,
    shared: Arc<Shared>,
    cores: Vec<Arc<CoreStats>>,
    accounting: Accounting,
    port_missed: Vec<u64>,
    last_tick: Instant,
    started: Instant,
}

impl Manager {
    /// Management for a running dataplane whose first snapshot was
    /// compiled by `compiler` from `config`.
    pub fn new(
        config: Config,
        config_path: Option<PathBuf>,
        compiler: Compiler,
        macs: Vec<MacAddr>,
        shared: Arc<Shared>,
        cores: Vec<Arc<CoreStats>>,
    ) -> Manager {
        let mut accounting = Accounting::default();
        accounting.rebase_new(&shared.snapshot.load(), &cores);
        Manager {
            config,
            config_path,
            compiler,
            macs,
            health: Health::new(),
            shared,
            cores,
            accounting,
            port_missed: Vec::new(),
            last_tick: Instant::now(),
            started: Instant::now(),
        }
    }

    /// The running configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where the configuration was read from.
    pub fn config_path(&self) -> Option<&PathBuf> {
        self.config_path.as_ref()
    }

    /// Seconds since start.
    pub fn uptime(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// The per-core counters.
    pub fn cores(&self) -> &[Arc<CoreStats>] {
        &self.cores
    }

    /// The shared worker state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Validates, compiles and publishes `next`; on any failure nothing
    /// changes.
    pub fn apply(&mut self, next: Config, strictness: Strictness) -> Result<(), CmdError> {
        next.validate(strictness)?;
        if next.ports != self.config.ports || next.dataplane != self.config.dataplane || next.daemon != self.config.daemon {
            let what = if next.ports != self.config.ports {
                "ports"
            } else if next.dataplane != self.config.dataplane {
                "dataplane"
            } else {
                "daemon"
            };
            return Err(CmdError::field(
                ErrorCode::Invalid,
                what,
                format!("[{what}] cannot change while rvsd runs; restart rvsd to apply it"),
            ));
        }
        self.health.retain(|k, _| {
            next.services.iter().any(|s| s.key() == k.0 && s.real_servers.iter().any(|r| r.address == k.1 && s.port_of(r) == k.2))
        });
        let snap = self.compiler.compile(&next, &self.macs, &self.health).map_err(|e| CmdError::new(ErrorCode::Invalid, e.to_string()))?;
        self.accounting.rebase_new(&snap, &self.cores);
        self.shared.publish(snap);
        self.config = next;
        Ok(())
    }

    /// Sets a real server's health and republishes when it changed.
    pub fn set_health(&mut self, key: BackendKey, up: bool) -> Result<bool, CmdError> {
        let was = self.health.get(&key).copied().unwrap_or(true);
        if was == up {
            return Ok(false);
        }
        self.health.insert(key, up);
        let snap =
            self.compiler.compile(&self.config, &self.macs, &self.health).map_err(|e| CmdError::new(ErrorCode::Internal, e.to_string()))?;
        self.accounting.rebase_new(&snap, &self.cores);
        self.shared.publish(snap);
        Ok(true)
    }

    /// Re-reads the configuration file and applies it.
    pub fn reload(&mut self) -> Result<(), CmdError> {
        let path =
            self.config_path.clone().ok_or_else(|| CmdError::new(ErrorCode::Invalid, "rvsd was started without a configuration file"))?;
        let next = config::from_file(&path)?;
        self.apply(next, Strictness::File)
    }

    /// Zeroes the reported counters (`ipvsadm -Z`).
    pub fn zero(&mut self) {
        self.accounting.zero(&self.shared.snapshot.load(), &self.cores);
    }

    /// Records the devices' missed-packet counters (read by the caller,
    /// which owns the ports).
    pub fn set_port_missed(&mut self, missed: Vec<u64>) {
        self.port_missed = missed;
    }

    /// Periodic work (call about once a second): rate estimates every two
    /// seconds; tell the compiler which freed slots are safe to reuse (every
    /// worker has swept its sessions since); forget retired real servers
    /// whose sessions have all ended, republishing without them.
    pub fn tick(&mut self) {
        let secs = self.last_tick.elapsed().as_secs_f64();
        if secs >= 2.0 {
            self.accounting.tick(&self.shared.snapshot.load(), &self.cores, secs);
            self.last_tick = Instant::now();
        }
        let safe = self.cores.iter().map(|c| c.swept_generation.get()).min().unwrap_or(0);
        self.compiler.set_safe_generation(safe);
        let cores = &self.cores;
        let has_sessions = |slot: u16| {
            let n: i64 = cores
                .iter()
                .filter_map(|c| c.backends.get(usize::from(slot)))
                .map(|b| {
                    #[expect(clippy::cast_possible_wrap, reason = "gauges are wrapping differences")]
                    let x = b.active.get().wrapping_add(b.inactive.get()) as i64;
                    x
                })
                .sum();
            n > 0
        };
        if self.compiler.reap(has_sessions) {
            if let Ok(snap) = self.compiler.compile(&self.config, &self.macs, &self.health) {
                self.accounting.rebase_new(&snap, &self.cores);
                self.shared.publish(snap);
            }
        }
    }

    /// The statistics report.
    pub fn report(&self) -> Report {
        self.accounting.report(&self.config, &self.shared.snapshot.load(), &self.cores, &self.port_missed)
    }

    /// True when every worker runs the latest published snapshot.
    pub fn quiescent(&self) -> bool {
        let g = self.shared.snapshot.load().generation;
        self.cores.iter().all(|c| c.generation.get() == g)
    }
}
