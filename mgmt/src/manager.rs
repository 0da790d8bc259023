//! The management state: running configuration, compilation, publishing.
//!
//! Every change (a control request, a reload, a health verdict) goes the
//! same way: build the candidate configuration, validate it, compile it into
//! a snapshot, record counter bases for new real servers, publish it. If any
//! step fails nothing changes: the running configuration and the workers'
//! snapshot stay as they were. Publishing is a pointer swap the workers
//! notice between bursts, so no packet waits on management and sessions
//! survive (real servers keep their slots across publishes).
use crate::health::{AgentSays, Checker, ProbeResult, ProbeSpec};
use crate::proto::{CmdError, ErrorCode};
use crate::report::{Accounting, HealthEvent, HealthReport, Report};
use config::{Config, Strictness};
use dataplane::worker::Shared;
use rvs_core::stats::CoreStats;
use rvs_core::table::{BackendKey, CompileError, Compiler, Health};
use rvs_wire::MacAddr;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest wait for the workers' expedited sweep.
const SWEEP_WAIT: Duration = Duration::from_secs(3);

/// Management state, owned by the management thread (behind a mutex shared
/// with the control-socket threads; never touched by workers).
#[derive(Debug)]
pub struct Manager {
    config: Config,
    config_path: Option<PathBuf>,
    /// Changes made through the control socket since the file was last
    /// read or written: a reload would lose them, so it is refused unless
    /// forced ([`Manager::reload`]).
    unsaved: bool,
    /// Real servers in maintenance by hand (`rvsadm server maint`):
    /// drained (weight 0 to the workers) whatever their health, until
    /// `rvsadm server ready`; kept across reloads while they exist.
    maint: std::collections::HashSet<BackendKey>,
    /// Per service with a `quorum`: whether it has it now.
    quorum: HashMap<config::ServiceKey, bool>,
    /// Hooks started and not yet reaped (`notify_up`, `quorum_down`...).
    hooks: Vec<std::process::Child>,
    compiler: Compiler,
    macs: Vec<MacAddr>,
    health: Health,
    shared: Arc<Shared>,
    cores: Vec<Arc<CoreStats>>,
    accounting: Accounting,
    port_missed: Vec<u64>,
    last_tick: Instant,
    started: Instant,
    checker: Option<Checker>,
    checks: HashMap<BackendKey, CheckState>,
    /// The rates of the last minutes, for the status page's charts.
    history: crate::status::History,
    /// Address conflicts and wrong-port neighbour claims seen so far (to
    /// log when they grow).
    seen_conflicts: u64,
    seen_wrong_port: u64,
    /// The pair, when `[ha]` is configured and its threads run.
    ha: Option<(Arc<crate::ha::HaCommon>, crate::ha::Settings)>,
    /// The VIPs' announcement, when `[announce]` is configured.
    announcer: Option<crate::announce::Announcer>,
}

/// A check kind as the configuration spells it.
fn kind_name(k: config::CheckKind) -> &'static str {
    match k {
        config::CheckKind::Tcp => "tcp",
        config::CheckKind::Http => "http",
        config::CheckKind::Https => "https",
        config::CheckKind::SendExpect => "send_expect",
        config::CheckKind::Command => "command",
        config::CheckKind::Udp => "udp",
        config::CheckKind::Dns => "dns",
        config::CheckKind::Smtp => "smtp",
    }
}

/// Results kept per real server.
const HISTORY: usize = 10;

/// A real server's health-check state (rise/fall counting).
#[derive(Debug)]
struct CheckState {
    /// Up: every one of its checks is.
    up: bool,
    /// Started down by `alpha`: the first good result of each check brings
    /// that check up.
    alpha: bool,
    /// Per check of the server (rise/fall count each on its own).
    each: Vec<OneCheck>,
    since: Instant,
    checks: u64,
    failures: u64,
    history: VecDeque<(Instant, ProbeResult)>,
    agent: Option<(Instant, ProbeResult)>,
}

/// One check of a real server.
#[derive(Clone, Debug)]
struct OneCheck {
    up: bool,
    alpha: bool,
    successes: u32,
    failures_in_row: u32,
    last: Option<(bool, String)>,
}

impl OneCheck {
    fn new(up: bool) -> OneCheck {
        OneCheck { up, alpha: !up, successes: 0, failures_in_row: 0, last: None }
    }
}

impl CheckState {
    /// Fits the per-check state to `n` checks: a check new to the server
    /// starts as the server is (down under `alpha`, else up).
    fn fit(&mut self, n: usize) {
        let start = !self.alpha;
        self.each.resize_with(n, || OneCheck::new(start));
    }

    fn new() -> CheckState {
        CheckState {
            up: true,
            alpha: false,
            each: Vec::new(),
            since: Instant::now(),
            checks: 0,
            failures: 0,
            history: VecDeque::new(),
            agent: None,
        }
    }
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
        // The first snapshot's counters were made with it, so its bases are
        // zero: read now, they would hide what the workers (started before
        // management) already counted - a replay's first frames above all.
        accounting.rebase_new(&shared.snapshot.load(), &[]);
        Manager {
            config,
            config_path,
            unsaved: false,
            maint: std::collections::HashSet::new(),
            quorum: HashMap::new(),
            hooks: Vec::new(),
            compiler,
            macs,
            health: Health::new(),
            shared,
            cores,
            accounting,
            port_missed: Vec::new(),
            last_tick: Instant::now(),
            started: Instant::now(),
            checker: None,
            checks: HashMap::new(),
            history: crate::status::History::default(),
            seen_conflicts: 0,
            seen_wrong_port: 0,
            ha: None,
            announcer: None,
        }
    }

    /// Stops the health checker (rvsd stopping): no probe starts any
    /// more; those in flight are waited for a moment (see
    /// [`Checker`]'s `Drop`). Health states stay as they were.
    pub fn stop_health_checks(&mut self) {
        self.checker = None;
    }

    /// Starts the health checker for the running configuration.
    pub fn start_health_checks(&mut self) {
        let checker = Checker::start(4);
        checker.sync(ProbeSpec::from_config(&self.config));
        self.checker = Some(checker);
        let cfg = self.config.clone();
        let mut health = std::mem::take(&mut self.health);
        self.alpha(&cfg, &mut health);
        self.health = health;
        if let Err(e) = self.republish() {
            log::error!("health: cannot publish: {}", e.message);
        }
        self.check_quorum();
    }

    /// Real servers new to `cfg` whose check has `alpha` start down.
    fn alpha(&mut self, cfg: &Config, health: &mut Health) {
        for s in &cfg.services {
            for r in s.real_servers.iter().filter(|r| s.main_check_of(r).is_some_and(|h| h.alpha)) {
                let key = (s.key(), r.address, s.port_of(r));
                if let std::collections::hash_map::Entry::Vacant(v) = self.checks.entry(key) {
                    let mut st = CheckState::new();
                    st.up = false;
                    st.alpha = true;
                    v.insert(st);
                    health.entry(key).or_default().up = false;
                }
            }
        }
    }

    /// Starts a hook (not waited for; reaped later). `vars` replace
    /// `{name}` in the arguments and are set as RVS_NAME.
    fn run_hook(&mut self, what: &str, argv: &[String], vars: &[(&str, String)]) {
        self.hooks.retain_mut(|c| c.try_wait().map_or(true, |done| done.is_none()));
        let Some((prog, args)) = argv.split_first() else { return };
        let subst = |a: &String| vars.iter().fold(a.clone(), |a, (k, v)| a.replace(&format!("{{{k}}}"), v));
        let mut cmd = std::process::Command::new(subst(prog));
        cmd.args(args.iter().map(subst)).stdin(std::process::Stdio::null());
        for (k, v) in vars {
            cmd.env(format!("RVS_{}", k.to_uppercase()), v);
        }
        match cmd.spawn() {
            Ok(c) => {
                log::info!("hook {what}: started {} (pid {})", argv.join(" "), c.id());
                self.hooks.push(c);
            }
            Err(e) => log::warn!("hook {what}: cannot run {prog}: {e}"),
        }
    }

    /// keepalived's `omega`: the `notify_down` of every up real server of
    /// `old` that is no longer in the running configuration (all of them
    /// when `exiting`), and the `quorum_down` of every service that had
    /// its quorum and leaves.
    fn omega(&mut self, old: &Config, exiting: bool) {
        let mut runs = Vec::new();
        for s in &old.services {
            let key = s.key();
            let now = if exiting { None } else { self.config.service(&key) };
            for r in &s.real_servers {
                let Some(hc) = s.main_check_of(r).filter(|h| h.omega) else { continue };
                let bk = (key, r.address, s.port_of(r));
                let stays = now.is_some_and(|n| n.real_servers.iter().any(|x| x.address == r.address && n.port_of(x) == bk.2));
                let up = self.checks.get(&bk).is_none_or(|c| c.up);
                if !stays && up {
                    let vars = vec![
                        ("address", bk.1.to_string()),
                        ("port", bk.2.to_string()),
                        ("service", key.to_string()),
                        ("state", "down".to_string()),
                    ];
                    runs.push(("notify", hc.notify_down.clone(), vars));
                }
            }
            let omega = s.service_checks().next().is_some_and(|h| h.omega);
            if omega
                && s.quorum > 0
                && (now.is_none() || now.is_some_and(|n| n.quorum == 0))
                && self.quorum.get(&key).copied().unwrap_or(true)
            {
                runs.push(("quorum", s.quorum_down.clone(), vec![("service", key.to_string()), ("state", "down".to_string())]));
                self.quorum.remove(&key);
            }
        }
        for (what, argv, vars) in runs {
            self.run_hook(what, &argv, &vars);
        }
    }

    /// rvsd is stopping: keepalived's `omega` hooks for every service.
    pub fn on_exit(&mut self) {
        let cfg = self.config.clone();
        self.omega(&cfg, true);
    }

    /// Runs `quorum_up` / `quorum_down` where a service's quorum changed:
    /// the weights of its up servers (not in maintenance) against
    /// `quorum` -/+ `hysteresis`.
    fn check_quorum(&mut self) {
        let mut runs = Vec::new();
        for s in self.config.services.iter().filter(|s| s.quorum > 0) {
            let key = s.key();
            let sum: u32 = s
                .real_servers
                .iter()
                .filter(|r| {
                    let k = (key, r.address, s.port_of(r));
                    self.health.get(&k).is_none_or(|h| h.up) && !self.maint.contains(&k)
                })
                .map(|r| r.weight)
                .sum();
            let had = self.quorum.get(&key).copied().unwrap_or(true);
            let has = if had { sum >= s.quorum.saturating_sub(s.hysteresis) } else { sum >= s.quorum + s.hysteresis };
            self.quorum.insert(key, has);
            if has != had {
                log::info!(
                    "service {key}: quorum {} (up weight {sum}, quorum {} hysteresis {})",
                    if has { "regained" } else { "lost" },
                    s.quorum,
                    s.hysteresis
                );
                let argv = if has { s.quorum_up.clone() } else { s.quorum_down.clone() };
                runs.push((argv, vec![("service", key.to_string()), ("state", if has { "up" } else { "down" }.to_string())]));
            }
        }
        self.quorum.retain(|k, _| self.config.services.iter().any(|s| s.key() == *k && s.quorum > 0));
        for (argv, vars) in runs {
            self.run_hook("quorum", &argv, &vars);
        }
    }

    /// The configuration as it is compiled: without the real servers that a
    /// health check took out of services whose `on_down` is `remove`.
    fn effective(&self, cfg: &Config) -> Config {
        let mut eff = cfg.clone();
        for s in &mut eff.services {
            let (key, port) = (s.key(), s.port);
            for r in &mut s.real_servers {
                if self.maint.contains(&(key, r.address, if r.port == 0 { port } else { r.port })) {
                    r.weight = 0;
                }
            }
            let removed: Vec<bool> = s
                .real_servers
                .iter()
                .map(|r| {
                    s.main_check_of(r).is_some_and(|h| h.on_down == config::OnDown::Remove)
                        && self.health.get(&(key, r.address, s.port_of(r))).is_some_and(|h| !h.up)
                })
                .collect();
            let mut gone = removed.into_iter();
            s.real_servers.retain(|_| !gone.next().unwrap_or(false));
        }
        eff
    }

    /// Compiles and publishes the running configuration with the current
    /// health.
    fn republish(&mut self) -> Result<(), CmdError> {
        let eff = self.effective(&self.config);
        let snap = self.compile(&eff).map_err(|e| CmdError::new(ErrorCode::Internal, e.to_string()))?;
        self.accounting.rebase_new(&snap, &self.cores);
        self.shared.publish(snap);
        Ok(())
    }

    /// Compiles `cfg` with the current health. When every free slot is
    /// still waiting for the workers to sweep out sessions of its last
    /// occupant (a configuration cleared and re-applied at once), asks the
    /// workers to sweep now, waits for them (bounded) and tries again.
    fn compile(&mut self, cfg: &Config) -> Result<Arc<rvs_core::table::Snapshot>, CompileError> {
        match self.compiler.compile(cfg, &self.macs, &self.health) {
            Err(e @ (CompileError::TooManyServices(_) | CompileError::TooManyBackends(_) | CompileError::TooManyNeighbours(_))) => {
                let Some(g) = self.compiler.waiting_generation() else { return Err(e) };
                let t = Instant::now();
                if !self.expedite_sweep(g, SWEEP_WAIT) {
                    return Err(e);
                }
                log::info!(
                    "every free slot was still held by sessions of removed services or servers: the workers swept them out in {} ms",
                    t.elapsed().as_millis()
                );
                self.compiler.compile(cfg, &self.macs, &self.health)
            }
            r => r,
        }
    }

    /// Asks every worker to sweep its sessions past generation `g` now and
    /// waits up to `limit`; true when they all did (the slots freed up to
    /// `g` are then reusable).
    fn expedite_sweep(&mut self, g: u64, limit: Duration) -> bool {
        self.shared.sweep_request.fetch_max(g, Ordering::Relaxed);
        let deadline = Instant::now() + limit;
        loop {
            let safe = self.cores.iter().map(|c| c.swept_generation.get()).min().unwrap_or(g);
            if safe >= g {
                self.compiler.set_safe_generation(safe);
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Applies the health-check and feedback results that arrived; returns
    /// true when a real server changed state or weight (and the change was
    /// published).
    pub fn poll_health(&mut self) -> bool {
        let Some(checker) = &self.checker else { return false };
        let results = checker.drain();
        if results.is_empty() {
            return false;
        }
        let mut changed = false;
        let mut notify = Vec::new();
        for r in results {
            let (key, feedback, _) = r.id;
            let Some(svc) = self.config.service(&key.0) else { continue };
            if feedback {
                let pct = match r.agent {
                    Some(AgentSays::Percent(p)) => Some(p),
                    Some(AgentSays::Drain) => Some(0),
                    Some(AgentSays::Up) => None,
                    None => self.health.get(&key).and_then(|h| h.weight_pct),
                };
                let h = self.health.entry(key).or_default();
                if h.weight_pct != pct {
                    h.weight_pct = pct;
                    changed = true;
                }
                self.checks.entry(key).or_insert_with(CheckState::new).agent = Some((Instant::now(), r));
                continue;
            }
            let Some(rs) = svc.real_servers.iter().find(|x| x.address == key.1 && svc.port_of(x) == key.2) else { continue };
            let checks = svc.checks_of(rs);
            let (Some(hc), Some(main)) = (checks.get(r.id.2), checks.first()) else { continue };
            let (rise, fall) = (hc.rise, hc.fall);
            let st = self.checks.entry(key).or_insert_with(CheckState::new);
            st.fit(checks.len());
            st.checks += 1;
            if !r.ok {
                st.failures += 1;
            }
            let Some(one) = st.each.get_mut(r.id.2) else { continue };
            if r.ok {
                one.successes += 1;
                one.failures_in_row = 0;
            } else {
                one.failures_in_row += 1;
                one.successes = 0;
            }
            one.last = Some((r.ok, r.message.clone()));
            let flip = if one.up { !r.ok && one.failures_in_row >= fall } else { r.ok && (one.successes >= rise || one.alpha) };
            if flip {
                one.up = !one.up;
                one.alpha = false;
            }
            let up = st.each.iter().all(|c| c.up);
            if up != st.up {
                st.up = up;
                st.alpha = false;
                st.since = Instant::now();
                let which = if checks.len() > 1 { format!(" by its {} check", kind_name(hc.kind)) } else { String::new() };
                log::info!(
                    "health: {} -> {} is {}{which} ({})",
                    key.0,
                    crate::ipvsadm::addr_port(key.1, key.2),
                    if st.up { "UP" } else { "DOWN" },
                    r.message
                );
                self.health.entry(key).or_default().up = st.up;
                changed = true;
                let argv = if st.up { main.notify_up.clone() } else { main.notify_down.clone() };
                let state = if st.up { "up" } else { "down" };
                notify.push((
                    argv,
                    vec![
                        ("address", key.1.to_string()),
                        ("port", key.2.to_string()),
                        ("service", key.0.to_string()),
                        ("state", state.to_string()),
                    ],
                ));
            }
            let mut r = r;
            if checks.len() > 1 {
                r.message = format!("{}: {}", kind_name(hc.kind), r.message);
            }
            st.history.push_back((Instant::now(), r));
            while st.history.len() > HISTORY {
                st.history.pop_front();
            }
        }
        if changed {
            if let Err(e) = self.republish() {
                log::error!("health: cannot publish: {}", e.message);
            }
        }
        for (argv, vars) in notify {
            self.run_hook("notify", &argv, &vars);
        }
        if changed {
            self.check_quorum();
        }
        changed
    }

    /// The health-check view of every checked real server.
    pub fn health_reports(&self) -> crate::report::HealthMap {
        let now = Instant::now();
        let event = |(at, r): &(Instant, ProbeResult)| HealthEvent {
            ago_s: now.saturating_duration_since(*at).as_secs_f64(),
            ok: r.ok,
            message: r.message.clone(),
            took_ms: r.took.as_secs_f64() * 1000.0,
        };
        self.checks
            .iter()
            .map(|(k, st)| {
                let svc = self.config.service(&k.0);
                let checks = svc
                    .and_then(|s| s.real_servers.iter().find(|r| r.address == k.1 && s.port_of(r) == k.2).map(|r| s.checks_of(r)))
                    .unwrap_or_default();
                let kind = (!checks.is_empty()).then(|| checks.iter().map(|h| kind_name(h.kind)).collect::<Vec<_>>().join("+"));
                let each = checks
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        let one = st.each.get(i);
                        crate::report::CheckReport {
                            kind: kind_name(h.kind).to_string(),
                            port: h.port.unwrap_or(k.2),
                            up: one.is_none_or(|c| c.up),
                            last: one.and_then(|c| c.last.as_ref().map(|(_, m)| m.clone())),
                        }
                    })
                    .collect();
                (
                    *k,
                    HealthReport {
                        check: kind,
                        up: st.up,
                        since_s: now.saturating_duration_since(st.since).as_secs_f64(),
                        checks: st.checks,
                        failures: st.failures,
                        history: st.history.iter().rev().map(event).collect(),
                        agent: st.agent.as_ref().map(event),
                        weight_pct: self.health.get(k).and_then(|h| h.weight_pct),
                        each,
                    },
                )
            })
            .collect()
    }

    /// A real server's state beside its configured weight: in maintenance,
    /// up by its checks, the percentage its feedback agent gives.
    pub fn server_state(&self, key: &BackendKey) -> (bool, bool, Option<u8>) {
        let h = self.health.get(key);
        (self.maint.contains(key), h.is_none_or(|h| h.up), h.and_then(|h| h.weight_pct))
    }

    /// The rates of the last minutes (the status page's charts).
    pub fn history(&self) -> &crate::status::History {
        &self.history
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
        rvs_core::memory::check(&next)?;
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
        let keep = |k: &BackendKey| {
            next.services.iter().any(|s| s.key() == k.0 && s.real_servers.iter().any(|r| r.address == k.1 && s.port_of(r) == k.2))
        };
        let mut health: Health = self.health.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (*k, *v)).collect();
        if self.checker.is_some() {
            self.alpha(&next, &mut health);
        }
        let old_health = std::mem::replace(&mut self.health, health);
        let eff = self.effective(&next);
        let snap = match self.compile(&eff) {
            Ok(s) => s,
            Err(e) => {
                self.health = old_health;
                return Err(CmdError::new(ErrorCode::Invalid, e.to_string()));
            }
        };
        self.accounting.rebase_new(&snap, &self.cores);
        self.shared.publish(snap);
        self.checks.retain(|k, _| keep(k));
        self.maint.retain(|k| keep(k));
        let old = std::mem::replace(&mut self.config, next);
        self.omega(&old, false);
        if let Some(c) = &self.checker {
            c.sync(ProbeSpec::from_config(&self.config));
        }
        self.check_quorum();
        Ok(())
    }

    /// Re-reads the configuration file and applies what changed.
    ///
    /// Refused, and nothing changes, while changes made through the
    /// control socket are unsaved (they would vanish) unless `force`:
    /// `rvsadm save-config` writes them to the file first, `rvsadm reload
    /// --force` discards them.
    pub fn reload(&mut self, force: bool) -> Result<crate::ops::Diff, CmdError> {
        let path =
            self.config_path.clone().ok_or_else(|| CmdError::new(ErrorCode::Invalid, "rvsd was started without a configuration file"))?;
        if self.unsaved && !force {
            return Err(CmdError::field(
                ErrorCode::Invalid,
                "reload",
                format!(
                    "the running configuration has changes made through the control socket that {} does not have: \
                     `rvsadm save-config` writes them to it, `rvsadm reload --force` discards them",
                    path.display()
                ),
            ));
        }
        let next = config::from_file_with(&path, &rvs_core::memory::check)?;
        let diff = crate::ops::diff(&self.config, &next);
        self.apply(next, Strictness::File)?;
        self.unsaved = false;
        Ok(diff)
    }

    /// `rvsadm server maint|ready`: puts a real server in maintenance
    /// (drained at once: no new sessions, established ones continue; its
    /// checks keep running but cannot bring it back) or takes it out.
    pub fn set_maint(&mut self, key: config::ServiceKey, address: IpAddr, port: u16, maint: bool) -> Result<bool, CmdError> {
        let s = self.config.service(&key).ok_or_else(|| CmdError::field(ErrorCode::NotFound, "key", format!("no service {key}")))?;
        let r = s
            .real_servers
            .iter()
            .find(|r| r.address == address && (port == 0 || s.port_of(r) == port))
            .ok_or_else(|| CmdError::field(ErrorCode::NotFound, "address", format!("{address} is not a real server of {key}")))?;
        let bk = (key, address, s.port_of(r));
        let changed = if maint { self.maint.insert(bk) } else { self.maint.remove(&bk) };
        if changed {
            self.republish()?;
            self.check_quorum();
            log::info!(
                "real server {} of {key}: {}",
                crate::ipvsadm::addr_port(address, bk.2),
                if maint { "maintenance (drained by hand)" } else { "ready" }
            );
        }
        Ok(changed)
    }

    /// True while changes made through the control socket are not in the
    /// configuration file.
    pub fn unsaved(&self) -> bool {
        self.unsaved
    }

    /// The running configuration as a TOML file, with a header saying
    /// where it came from. Checked: it loads back to exactly the running
    /// configuration, or it is refused.
    pub fn config_toml(&self) -> Result<String, CmdError> {
        let body = toml::to_string(&self.config).map_err(|e| CmdError::new(ErrorCode::Internal, format!("writing TOML: {e}")))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let text = format!(
            "# rvs.toml written by `rvsadm save-config` at {} from rvsd's running configuration\n\
             # (every field explicit; rvs.toml(5) and /usr/share/doc/rvs/rvs.example.toml explain them).\n\
             # The file it replaced, comments included, was kept as <this file>.bak.\n\n{body}",
            crate::logging::rfc3339(now)
        );
        match config::from_str(&text, "saved") {
            Ok(back) if back == self.config => Ok(text),
            Ok(_) => Err(CmdError::new(
                ErrorCode::Internal,
                "the saved TOML does not load back to the running configuration (a bug: please report)",
            )),
            Err(e) => Err(CmdError::new(ErrorCode::Internal, format!("the saved TOML does not load back: {e}"))),
        }
    }

    /// `rvsadm save-config`: writes the running configuration to the file
    /// rvsd was started with (atomically; the previous file, with its
    /// comments, becomes `FILE.bak`), after which a reload is allowed
    /// again. Returns the path written.
    pub fn save_config(&mut self) -> Result<PathBuf, CmdError> {
        let path =
            self.config_path.clone().ok_or_else(|| CmdError::new(ErrorCode::Invalid, "rvsd was started without a configuration file"))?;
        let text = self.config_toml()?;
        let io = |what: &str, e: std::io::Error| CmdError::new(ErrorCode::Internal, format!("{what} {}: {e}", path.display()));
        let tmp = path.with_extension("toml.new");
        std::fs::write(&tmp, text).map_err(|e| io("writing next to", e))?;
        if path.exists() {
            std::fs::copy(&path, path.with_extension("toml.bak")).map_err(|e| io("keeping a copy of", e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| io("replacing", e))?;
        self.unsaved = false;
        log::info!("configuration saved to {} (the previous file is {}.bak)", path.display(), path.with_extension("toml").display());
        Ok(path)
    }

    /// Applies control-socket changes atomically: all of them or none.
    pub fn apply_ops(&mut self, ops: &[crate::ops::Op]) -> Result<crate::ops::Diff, CmdError> {
        let mut next = self.config.clone();
        for (i, op) in ops.iter().enumerate() {
            crate::ops::apply(&mut next, op).map_err(|mut e| {
                if ops.len() > 1 {
                    e.message = format!("operation {}: {}", i + 1, e.message);
                }
                e
            })?;
        }
        let diff = crate::ops::diff(&self.config, &next);
        let changed = next != self.config;
        self.apply(next, Strictness::Live)?;
        self.unsaved |= changed;
        Ok(diff)
    }

    /// Zeroes the reported counters (`ipvsadm -Z`) of every service, or of
    /// one (`-Z -t VIP:port`) and its real servers; returns how many
    /// services were zeroed. An unknown service is refused.
    pub fn zero(&mut self, only: Option<config::ServiceKey>) -> Result<usize, CmdError> {
        let snap = self.shared.snapshot.load();
        if let Some(k) = only {
            if !snap.services.iter().flatten().any(|s| s.key == k) {
                return Err(CmdError::field(ErrorCode::NotFound, "args.key", format!("no service {k}")));
            }
        }
        let n = self.accounting.zero(&snap, &self.cores, only);
        log::info!("counters zeroed: {}", only.map_or_else(|| "every service".to_string(), |k| format!("service {k}")));
        Ok(n)
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
        self.log_claims();
        let secs = self.last_tick.elapsed().as_secs_f64();
        if secs >= 2.0 {
            self.accounting.tick(&self.shared.snapshot.load(), &self.cores, secs);
            self.last_tick = Instant::now();
            let r = self.report();
            self.history.record(&r);
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
            let _ = self.republish();
        }
    }

    /// Logs ARP/ND claims to our addresses (on a pair: a second master)
    /// and poisoning attempts, when their counters grew since the last
    /// call.
    fn log_claims(&mut self) {
        use rvs_core::DropReason;
        let count = |r: DropReason| self.cores.iter().map(|c| c.drops[r.index()].get()).fold(0u64, u64::wrapping_add);
        let conflicts = count(DropReason::AddrConflict);
        if conflicts != self.seen_conflicts {
            let latest = self.cores.iter().max_by_key(|c| c.drops[DropReason::AddrConflict.index()].get()).map(|c| c.last_conflict());
            if let Some((addr, mac, port)) = latest {
                let port = self.config.ports.get(usize::from(port)).map_or("?", |p| p.name.as_str());
                log::warn!(
                    "address conflict: {} frame(s) from other hosts claimed our addresses (last: {addr} at {} on port {port}); \
                     on an HA pair this means a second master",
                    conflicts.wrapping_sub(self.seen_conflicts),
                    MacAddr(mac)
                );
            }
            self.seen_conflicts = conflicts;
        }
        let wrong = count(DropReason::NeighWrongPort);
        if wrong != self.seen_wrong_port {
            log::warn!(
                "refused {} ARP/ND frame(s) claiming a neighbour's address from the wrong port (poisoning attempt?)",
                wrong.wrapping_sub(self.seen_wrong_port)
            );
            self.seen_wrong_port = wrong;
        }
    }

    /// The statistics report.
    pub fn report(&self) -> Report {
        let mut r =
            self.accounting.report(&self.config, &self.shared.snapshot.load(), &self.cores, &self.port_missed, &self.health_reports());
        for s in &mut r.services {
            let key = config::ServiceKey { protocol: s.protocol, vip: s.vip, port: s.port };
            for rs in &mut s.real_servers {
                rs.maint = self.maint.contains(&(key, rs.address, rs.port));
            }
        }
        r.ha = self.ha_report();
        r.node = self.node_report();
        r
    }

    /// Starts announcing the VIPs (`[announce]`), through the kernel
    /// interface of its port.
    pub fn start_announcing(&mut self) {
        let Some(a) = &self.config.announce else { return };
        let Some(iface) = self.config.ports.iter().find(|p| p.name == a.port).and_then(|p| p.kernel_interface.clone()) else { return };
        self.announcer = Some(crate::announce::Announcer::new(a.table, &iface));
        self.announce();
    }

    /// Brings the announced routes up to date (cheap when nothing changed).
    pub fn announce(&mut self) {
        if let Some(a) = &mut self.announcer {
            a.update(&self.shared.snapshot.load());
        }
    }

    /// `rvsadm node drain|undrain`.
    pub fn drain_node(&mut self, drained: bool) -> Result<crate::announce::NodeReport, CmdError> {
        use crate::proto::ErrorCode;
        let a = self
            .announcer
            .as_mut()
            .ok_or_else(|| CmdError::field(ErrorCode::NotFound, "announce", "this balancer announces nothing (no [announce] section)"))?;
        a.set_drained(drained);
        self.announce();
        self.node_report().ok_or_else(|| CmdError::new(ErrorCode::Internal, "no announcer"))
    }

    /// Stopping: withdraws every VIP now; returns how long to keep
    /// forwarding before the stop (`drain_ms`), if anything is announced
    /// by this node at all.
    pub fn withdraw_for_stop(&mut self) -> Option<Duration> {
        let a = self.announcer.as_mut()?;
        a.set_stopping();
        self.announce();
        self.config.announce.as_ref().map(|c| Duration::from_millis(u64::from(c.drain_ms)))
    }

    /// `rvsadm show node`.
    pub fn node_report(&self) -> Option<crate::announce::NodeReport> {
        self.announcer.as_ref().map(|a| a.report(&self.shared.snapshot.load()))
    }

    /// Attaches the running pair (its counters and settings).
    pub fn set_ha(&mut self, common: Arc<crate::ha::HaCommon>, settings: crate::ha::Settings) {
        self.ha = Some((common, settings));
    }

    /// `rvsadm show ha`, when this node is one of a pair.
    pub fn ha_report(&self) -> Option<crate::ha::HaReport> {
        self.ha.as_ref().map(|(c, s)| c.report(s, &self.cores))
    }

    /// `ipvsadm --start-daemon` / `--stop-daemon`: resumes or pauses the
    /// pair's session sync, after checking the sync id and interface they
    /// name against the configuration.
    pub fn sync_daemon(&mut self, start: bool, syncid: Option<u8>, interface: Option<&str>) -> Result<serde_json::Value, CmdError> {
        use crate::proto::ErrorCode;
        let Some((common, s)) = &self.ha else {
            return Err(CmdError::field(
                ErrorCode::NotFound,
                "ha",
                "this balancer is not one of a pair: configure [ha] in rvs.toml (rvs syncs sessions as part of the pair, its role elected by VRRP)",
            ));
        };
        if !s.sync {
            return Err(CmdError::field(ErrorCode::BadRequest, "ha.sync", "session sync is off in the configuration ([ha] sync = false)"));
        }
        if let Some(id) = syncid.filter(|&id| id != s.sync_id) {
            return Err(CmdError::field(ErrorCode::BadRequest, "syncid", format!("{id}: the pair's sync id is {}", s.sync_id)));
        }
        let port = self.config.ha.as_ref().map(|h| h.port.clone()).unwrap_or_default();
        if let Some(i) = interface.filter(|&i| i != s.iface && i != port) {
            return Err(CmdError::field(
                ErrorCode::BadRequest,
                "mcast-interface",
                format!("{i:?}: the pair syncs on {:?} (port {port:?})", s.iface),
            ));
        }
        common.paused.store(!start, Ordering::Relaxed);
        log::info!("ha sync: {} by the control socket", if start { "resumed" } else { "paused" });
        Ok(serde_json::json!({ "sync": if start { "running" } else { "paused" }, "sync_id": s.sync_id, "interface": s.iface }))
    }

    /// Whether some service has a real server up (the pair's
    /// `track_real_servers`).
    pub fn some_server_up(&self) -> bool {
        let snap = self.shared.snapshot.load();
        snap.backends.iter().flatten().any(|b| b.up && !b.retired && b.effective_weight > 0)
    }

    /// True when every worker runs the latest published snapshot.
    pub fn quiescent(&self) -> bool {
        let g = self.shared.snapshot.load().generation;
        self.cores.iter().all(|c| c.generation.get() == g)
    }
}
