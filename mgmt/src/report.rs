//! Statistics: summing the per-core counters into one report.
//!
//! Workers write their own counters; management only reads them (relaxed
//! loads, no locks on the fast path) and keeps *bases*: the raw sums at the
//! moment a real server got its slot, or when an operator zeroed counters
//! (`rvsadm -Z`). A reported value is raw minus base. Rates are estimated
//! every two seconds from the difference of totals, as IPVS's estimator
//! does, and smoothed (new = old + (sample - old) / 4).
use config::{Forwarding, Persistence, SchedulerKind};
use rvs_core::drop::DropClass;
use rvs_core::stats::{sum_gauge, CoreStats};
use rvs_core::table::{BackendView, ServiceView, Snapshot};
use rvs_core::DropReason;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

/// Cumulative counters of a service or real server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Connections (sessions) created.
    pub conns: u64,
    /// Packets client -> server.
    pub pkts_in: u64,
    /// Packets server -> client.
    pub pkts_out: u64,
    /// Bytes client -> server.
    pub bytes_in: u64,
    /// Bytes server -> client.
    pub bytes_out: u64,
}

impl Totals {
    fn minus(self, b: Totals) -> Totals {
        Totals {
            conns: self.conns.wrapping_sub(b.conns),
            pkts_in: self.pkts_in.wrapping_sub(b.pkts_in),
            pkts_out: self.pkts_out.wrapping_sub(b.pkts_out),
            bytes_in: self.bytes_in.wrapping_sub(b.bytes_in),
            bytes_out: self.bytes_out.wrapping_sub(b.bytes_out),
        }
    }
}

/// Per-second rates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Connections per second.
    pub cps: f64,
    /// Packets per second in.
    pub inpps: f64,
    /// Packets per second out.
    pub outpps: f64,
    /// Bytes per second in.
    pub inbps: f64,
    /// Bytes per second out.
    pub outbps: f64,
}

/// One health-check or agent result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthEvent {
    /// Seconds ago.
    pub ago_s: f64,
    /// Passed.
    pub ok: bool,
    /// What happened.
    pub message: String,
    /// Duration of the probe, ms.
    pub took_ms: f64,
}

/// A real server's health.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The check's kind (none for feedback only).
    pub check: Option<String>,
    /// Up by the health check.
    pub up: bool,
    /// Seconds in this state.
    pub since_s: f64,
    /// Checks run.
    pub checks: u64,
    /// Checks failed.
    pub failures: u64,
    /// Latest results first.
    pub history: Vec<HealthEvent>,
    /// The feedback agent's last answer.
    pub agent: Option<HealthEvent>,
    /// Weight percentage from the agent.
    pub weight_pct: Option<u8>,
    /// Each of its checks (all must pass), in configuration order.
    #[serde(default)]
    pub each: Vec<CheckReport>,
}

/// One health check of a real server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Its kind (`http`, `tcp`...).
    pub kind: String,
    /// The port it checks.
    pub port: u16,
    /// Passing (by its rise/fall).
    pub up: bool,
    /// Its last result's message.
    pub last: Option<String>,
}

impl HealthReport {
    /// One line for `rvsadm show health`.
    pub fn summary(&self) -> String {
        let mut s = match self.history.first() {
            Some(e) => format!("{} {:.1}s ago: {} ({:.1} ms)", if e.ok { "ok" } else { "FAIL" }, e.ago_s, e.message, e.took_ms),
            None => "no result yet".to_string(),
        };
        s.push_str(&format!(
            "; {} checks, {} failed; {} for {:.0}s",
            self.checks,
            self.failures,
            if self.up { "up" } else { "down" },
            self.since_s
        ));
        if let Some(p) = self.weight_pct {
            s.push_str(&format!("; agent weight {p}%"));
        }
        if self.each.len() > 1 {
            let each: Vec<String> =
                self.each.iter().map(|c| format!("{}:{} {}", c.kind, c.port, if c.up { "up" } else { "DOWN" })).collect();
            s.push_str(&format!("; checks {}", each.join(", ")));
        }
        s
    }
}

/// A real server in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealServerReport {
    /// Address.
    pub address: IpAddr,
    /// Port.
    pub port: u16,
    /// Forwarding method.
    pub forwarding: Forwarding,
    /// Configured weight.
    pub weight: u32,
    /// Effective weight (0 when down).
    pub effective_weight: u32,
    /// Health (false: marked down by a checker).
    pub up: bool,
    /// Established connections.
    pub active: i64,
    /// Other connections.
    pub inactive: i64,
    /// Counters.
    pub totals: Totals,
    /// Rates.
    pub rates: Rates,
    /// Health checks (when the service has them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthReport>,
    /// In maintenance by hand (`rvsadm server maint`): drained, whatever
    /// its health checks say, until `rvsadm server ready`.
    #[serde(default)]
    pub maint: bool,
}

/// A service in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceReport {
    /// Protocol ("tcp"/"udp").
    pub protocol: config::Protocol,
    /// VIP.
    pub vip: IpAddr,
    /// Port.
    pub port: u16,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Persistence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    /// Counters.
    pub totals: Totals,
    /// Rates.
    pub rates: Rates,
    /// New connections sent to the fallback (sorry) server.
    #[serde(default)]
    pub fallback_conns: u64,
    /// Real servers.
    pub real_servers: Vec<RealServerReport>,
}

/// A port in a report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PortReport {
    /// Name.
    pub name: String,
    /// The MAC address rvs uses on it.
    #[serde(default)]
    pub mac: String,
    /// Packets received (by rvs's workers).
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets the device dropped for lack of descriptors or buffers.
    pub rx_missed: u64,
}

/// Session-table counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionReport {
    /// IPv4 sessions now.
    pub v4: i64,
    /// IPv6 sessions now.
    pub v6: i64,
    /// Created since start.
    pub created: u64,
    /// Expired or removed since start.
    pub expired: u64,
    /// Closing sessions replaced by a new SYN.
    pub reused: u64,
}

/// SYN proxy counters, summed over the workers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynproxyReport {
    /// SYNs answered with a cookie.
    pub syns: u64,
    /// ACKs with a valid cookie (connections opened to a real server).
    pub cookies_valid: u64,
    /// ACKs with no valid cookie.
    pub cookies_invalid: u64,
    /// SYNs sent to a real server again (the client probed while the
    /// server had not answered: its first SYN was lost).
    #[serde(default)]
    pub syns_resent: u64,
    /// Handshakes the resend timer could not follow (its ring was full).
    #[serde(default)]
    pub resend_ring_full: u64,
    /// Window updates sent to clients once their real server answered.
    pub window_updates: u64,
    /// Window updates with no room to send them.
    pub updates_lost: u64,
    /// Segments whose SACK blocks were translated.
    pub sack_translated: u64,
}

/// A neighbour in a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborReport {
    /// Address.
    pub address: IpAddr,
    /// Port name.
    pub port: String,
    /// MAC, when resolved.
    pub mac: Option<String>,
    /// Configured statically.
    pub is_static: bool,
}

/// Everything `rvsadm --stats` and the metrics endpoint show.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Snapshot generation running.
    pub generation: u64,
    /// Worker cores.
    pub workers: usize,
    /// Session capacity per worker (ipvsadm's "size").
    pub session_capacity: u64,
    /// Services.
    pub services: Vec<ServiceReport>,
    /// Drops by reason (every reason, zero or not).
    pub drops: BTreeMap<String, u64>,
    /// Ports.
    pub ports: Vec<PortReport>,
    /// Sessions.
    pub sessions: SessionReport,
    /// Packets handed to another core.
    pub handover_out: u64,
    /// Packets received from another core.
    pub handover_in: u64,
    /// ICMP errors generated.
    pub icmp_errors_sent: u64,
    /// ICMP errors forwarded along a session.
    pub icmp_errors_forwarded: u64,
    /// ARP/ND answers sent.
    pub neigh_answers: u64,
    /// ARP/ND probes sent.
    pub neigh_probes: u64,
    /// Frames held until their next hop resolved.
    #[serde(default)]
    pub neigh_held: u64,
    /// The SYN proxy.
    #[serde(default)]
    pub synproxy: SynproxyReport,
    /// Neighbours.
    pub neighbors: Vec<NeighborReport>,
    /// Per worker core: what it received, created and passed around.
    #[serde(default)]
    pub per_worker: Vec<WorkerReport>,
    /// Verdicts on every frame the workers received (with the drops of
    /// class `verdict`, they add up to what was received).
    #[serde(default)]
    pub frames: FrameReport,
    /// Gratuitous ARPs and unsolicited neighbour advertisements sent.
    #[serde(default)]
    pub announcements: u64,
    /// Faults contained in management tasks, by task (control, probe,
    /// management, metrics): each cost one request or check, not
    /// forwarding.
    #[serde(default)]
    pub faults: BTreeMap<String, u64>,
    /// The pair's state, when this node is one of a pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha: Option<crate::ha::HaReport>,
    /// What this node announces, when `[announce]` is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<crate::announce::NodeReport>,
}

/// What the workers did with the frames they received, by verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameReport {
    /// Frames received on the ports.
    pub received: u64,
    /// Frames other cores handed over.
    pub handed_in: u64,
    /// Forwarded.
    pub forwarded: u64,
    /// Answered in place (ARP, ND, echo).
    pub answered: u64,
    /// Taken in (ARP replies learned).
    pub consumed: u64,
    /// Passed to a kernel interface.
    pub to_kernel: u64,
    /// Handed to the owning core.
    pub handed_over: u64,
    /// Held for their next hop's MAC.
    pub held: u64,
    /// Dropped, by a reason of class `verdict`.
    pub dropped: u64,
    /// Lost after their verdict (reasons of class `lost`).
    pub lost: u64,
}

impl FrameReport {
    /// received + handed in - (every verdict): 0 once the workers are idle
    /// (frames in flight between two reads are the only difference).
    pub fn unaccounted(&self) -> i128 {
        let got = i128::from(self.received) + i128::from(self.handed_in);
        let out = [self.forwarded, self.answered, self.consumed, self.to_kernel, self.handed_over, self.held, self.dropped];
        got - out.iter().map(|&x| i128::from(x)).sum::<i128>()
    }
}

/// One worker core's share of the traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerReport {
    /// Packets received from each port's queue of this worker, by port.
    pub rx_packets: Vec<u64>,
    /// Sessions it created.
    pub sessions_created: u64,
    /// Packets it handed to other cores.
    pub handover_out: u64,
    /// Packets other cores handed to it.
    pub handover_in: u64,
    /// Loop iterations that found no packet.
    pub idle_loops: u64,
    /// Loop iterations.
    pub loops: u64,
    /// The time its packets spent in rvsd, with
    /// `dataplane.latency_histogram`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyReport>,
}

/// Percentiles of a latency histogram (each the lower bound of its
/// bucket, at most 12.5% below the true value).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyReport {
    /// Packets measured.
    pub packets: u64,
    /// Median, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// The highest bucket with a packet, ns.
    pub max_ns: u64,
    /// The histogram: (bucket floor ns, packets), non-empty buckets only.
    pub buckets: Vec<(u64, u64)>,
}

impl LatencyReport {
    /// The percentiles of a histogram of [`rvs_core::stats::LATENCY_BUCKETS`]
    /// counts; None when it is empty.
    pub fn of(counts: &[u64]) -> Option<LatencyReport> {
        let packets: u64 = counts.iter().sum();
        if packets == 0 {
            return None;
        }
        let at = |q: f64| {
            #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss, reason = "a rank")]
            let rank = ((packets as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return rvs_core::stats::latency_floor(i);
                }
            }
            0
        };
        let buckets: Vec<(u64, u64)> =
            counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, c)| (rvs_core::stats::latency_floor(i), *c)).collect();
        Some(LatencyReport {
            packets,
            p50_ns: at(0.5),
            p99_ns: at(0.99),
            p999_ns: at(0.999),
            max_ns: buckets.last().map_or(0, |b| b.0),
            buckets,
        })
    }
}

impl Report {
    /// Total drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.values().sum()
    }
}

/// Raw (un-based) totals of a backend slot over all cores.
/// The session gauges are exact (a backend slot is only reused once no
/// session of its previous occupant remains), so they need no base.
fn backend_raw(cores: &[Arc<CoreStats>], slot: usize) -> (Totals, i64, i64) {
    let mut t = Totals::default();
    let mut act = Vec::new();
    let mut inact = Vec::new();
    for c in cores {
        if let Some(b) = c.backends.get(slot) {
            t.conns = t.conns.wrapping_add(b.conns.get());
            t.pkts_in = t.pkts_in.wrapping_add(b.pkts_in.get());
            t.pkts_out = t.pkts_out.wrapping_add(b.pkts_out.get());
            t.bytes_in = t.bytes_in.wrapping_add(b.bytes_in.get());
            t.bytes_out = t.bytes_out.wrapping_add(b.bytes_out.get());
            act.push(&b.active);
            inact.push(&b.inactive);
        }
    }
    (t, sum_gauge(act), sum_gauge(inact))
}

fn service_raw(cores: &[Arc<CoreStats>], slot: usize) -> Totals {
    let mut t = Totals::default();
    for c in cores {
        if let Some(s) = c.services.get(slot) {
            t.conns = t.conns.wrapping_add(s.conns.get());
            t.pkts_in = t.pkts_in.wrapping_add(s.pkts_in.get());
            t.pkts_out = t.pkts_out.wrapping_add(s.pkts_out.get());
            t.bytes_in = t.bytes_in.wrapping_add(s.bytes_in.get());
            t.bytes_out = t.bytes_out.wrapping_add(s.bytes_out.get());
        }
    }
    t
}

/// Bases and rate estimates, kept by management.
#[derive(Debug, Default)]
pub struct Accounting {
    backend_base: HashMap<(u16, u16), Totals>,
    service_base: HashMap<(u16, config::ServiceKey), Totals>,
    backend_rate: HashMap<(u16, u16), (Totals, Rates)>,
    service_rate: HashMap<u16, (Totals, Rates)>,
}

fn ewma(old: f64, sample: f64) -> f64 {
    if old == 0.0 {
        sample
    } else {
        old + (sample - old) / 4.0
    }
}

fn update_rate(prev: &mut (Totals, Rates), now: Totals, secs: f64) {
    let d = now.minus(prev.0);
    #[expect(clippy::cast_precision_loss, reason = "rates are estimates")]
    let r = Rates {
        cps: ewma(prev.1.cps, d.conns as f64 / secs),
        inpps: ewma(prev.1.inpps, d.pkts_in as f64 / secs),
        outpps: ewma(prev.1.outpps, d.pkts_out as f64 / secs),
        inbps: ewma(prev.1.inbps, d.bytes_in as f64 / secs),
        outbps: ewma(prev.1.outbps, d.bytes_out as f64 / secs),
    };
    *prev = (now, r);
}

impl Accounting {
    /// Records bases for backend slots and services that are new in
    /// `snap` (call before publishing it, so no traffic is missed).
    pub fn rebase_new(&mut self, snap: &Snapshot, cores: &[Arc<CoreStats>]) {
        let mut live = std::collections::HashSet::new();
        for b in snap.backends.iter().flatten() {
            live.insert((b.slot, b.gen));
            self.backend_base.entry((b.slot, b.gen)).or_insert_with(|| backend_raw(cores, usize::from(b.slot)).0);
        }
        self.backend_base.retain(|k, _| live.contains(k));
        self.backend_rate.retain(|k, _| live.contains(k));
        let mut svc_live = std::collections::HashSet::new();
        for s in snap.services.iter().flatten() {
            svc_live.insert((s.slot, s.key));
            self.service_base.entry((s.slot, s.key)).or_insert_with(|| service_raw(cores, usize::from(s.slot)));
        }
        self.service_base.retain(|k, _| svc_live.contains(k));
        self.service_rate.retain(|k, _| svc_live.iter().any(|(s, _)| s == k));
    }

    /// Zeroes the reported counters of every service and real server
    /// (`ipvsadm -Z`), or only of service `only` and its real servers
    /// (`ipvsadm -Z -t VIP:port`); gauges are not zeroed. Returns the
    /// number of services zeroed.
    pub fn zero(&mut self, snap: &Snapshot, cores: &[Arc<CoreStats>], only: Option<config::ServiceKey>) -> usize {
        let chosen: Vec<&ServiceView> = snap.services.iter().flatten().filter(|s| only.is_none_or(|k| s.key == k)).collect();
        for b in snap.backends.iter().flatten().filter(|b| chosen.iter().any(|s| s.slot == b.service)) {
            let (t, _, _) = backend_raw(cores, usize::from(b.slot));
            if let Some(base) = self.backend_base.get_mut(&(b.slot, b.gen)) {
                *base = t;
            }
        }
        for s in &chosen {
            self.service_base.insert((s.slot, s.key), service_raw(cores, usize::from(s.slot)));
        }
        chosen.len()
    }

    /// Updates the rate estimates (call every ~2 s with the elapsed time).
    pub fn tick(&mut self, snap: &Snapshot, cores: &[Arc<CoreStats>], secs: f64) {
        if secs <= 0.0 {
            return;
        }
        for b in snap.backends.iter().flatten() {
            let (raw, _, _) = backend_raw(cores, usize::from(b.slot));
            let e = self.backend_rate.entry((b.slot, b.gen)).or_insert((raw, Rates::default()));
            update_rate(e, raw, secs);
        }
        for s in snap.services.iter().flatten() {
            let raw = service_raw(cores, usize::from(s.slot));
            let e = self.service_rate.entry(s.slot).or_insert((raw, Rates::default()));
            update_rate(e, raw, secs);
        }
    }

    /// One real server of a service: its counters since it was (re)added.
    fn real_server(
        &self,
        s: &config::Service,
        r: &config::RealServer,
        b: Option<&BackendView>,
        cores: &[Arc<CoreStats>],
        health: Option<HealthReport>,
    ) -> RealServerReport {
        let port = s.port_of(r);
        let Some(b) = b else {
            // Taken out of the service by a health check (on_down = remove).
            return RealServerReport {
                address: r.address,
                port,
                forwarding: s.forwarding_of(r),
                weight: r.weight,
                effective_weight: 0,
                up: false,
                active: 0,
                inactive: 0,
                totals: Totals::default(),
                rates: Rates::default(),
                health,
                maint: false,
            };
        };
        let (t, active, inactive) = backend_raw(cores, usize::from(b.slot));
        let base = self.backend_base.get(&(b.slot, b.gen)).copied().unwrap_or_default();
        RealServerReport {
            address: r.address,
            port: b.port,
            forwarding: s.forwarding_of(r),
            weight: r.weight,
            effective_weight: b.effective_weight,
            up: b.up,
            active,
            inactive,
            totals: t.minus(base),
            rates: self.backend_rate.get(&(b.slot, b.gen)).map(|x| x.1).unwrap_or_default(),
            health,
            maint: false,
        }
    }

    /// One service and its real servers, in configuration order.
    fn service(
        &self,
        s: &config::Service,
        view: &ServiceView,
        snap: &Snapshot,
        cores: &[Arc<CoreStats>],
        health: &HealthMap,
    ) -> ServiceReport {
        let key = s.key();
        let base = self.service_base.get(&(view.slot, key)).copied().unwrap_or_default();
        let by_key: HashMap<(IpAddr, u16), &BackendView> = snap
            .backends
            .iter()
            .flatten()
            .filter(|b| b.service == view.slot && !b.retired && !b.fallback)
            .map(|b| ((b.addr, b.port), b))
            .collect();
        let real_servers = s
            .real_servers
            .iter()
            .map(|r| {
                let port = s.port_of(r);
                self.real_server(s, r, by_key.get(&(r.address, port)).copied(), cores, health.get(&(key, r.address, port)).cloned())
            })
            .collect();
        ServiceReport {
            protocol: s.protocol,
            vip: s.vip,
            port: s.port,
            name: s.name.clone(),
            scheduler: s.scheduler,
            persistence: s.persistence,
            totals: service_raw(cores, usize::from(view.slot)).minus(base),
            rates: self.service_rate.get(&view.slot).map(|x| x.1).unwrap_or_default(),
            fallback_conns: cores.iter().filter_map(|c| c.services.get(usize::from(view.slot))).map(|x| x.fallback_conns.get()).sum(),
            real_servers,
        }
    }

    /// Builds the report for the running configuration.
    pub fn report(
        &self,
        cfg: &config::Config,
        snap: &Snapshot,
        cores: &[Arc<CoreStats>],
        port_missed: &[u64],
        health: &HealthMap,
    ) -> Report {
        let services = cfg
            .services
            .iter()
            .filter_map(|s| {
                let view = snap.services.iter().flatten().find(|v| v.key == s.key())?;
                Some(self.service(s, view, snap, cores, health))
            })
            .collect();
        let sum = Sum(cores);
        Report {
            generation: snap.generation,
            workers: cores.len(),
            session_capacity: u64::from(cfg.dataplane.sessions_per_worker),
            services,
            drops: DropReason::ALL.iter().map(|r| (r.name().to_string(), sum.of(|c| c.drops[r.index()].get()))).collect(),
            ports: ports(cfg, snap, sum, port_missed),
            sessions: SessionReport {
                v4: sum_gauge(cores.iter().map(|c| &c.sessions_v4)),
                v6: sum_gauge(cores.iter().map(|c| &c.sessions_v6)),
                created: sum.of(|c| c.sessions_created.get()),
                expired: sum.of(|c| c.sessions_expired.get()),
                reused: sum.of(|c| c.sessions_reused.get()),
            },
            handover_out: sum.of(|c| c.handover_out.get()),
            handover_in: sum.of(|c| c.handover_in.get()),
            icmp_errors_sent: sum.of(|c| c.icmp_errors_sent.get()),
            icmp_errors_forwarded: sum.of(|c| c.icmp_errors_forwarded.get()),
            neigh_answers: sum.of(|c| c.neigh_answers.get()),
            neigh_probes: sum.of(|c| c.neigh_probes.get()),
            neigh_held: sum.of(|c| c.neigh_held.get()),
            synproxy: SynproxyReport {
                syns: sum.of(|c| c.synproxy.syns.get()),
                cookies_valid: sum.of(|c| c.synproxy.cookies_valid.get()),
                cookies_invalid: sum.of(|c| c.synproxy.cookies_invalid.get()),
                syns_resent: sum.of(|c| c.synproxy.syns_resent.get()),
                resend_ring_full: sum.of(|c| c.synproxy.resend_ring_full.get()),
                window_updates: sum.of(|c| c.synproxy.window_updates.get()),
                updates_lost: sum.of(|c| c.synproxy.updates_lost.get()),
                sack_translated: sum.of(|c| c.synproxy.sack_translated.get()),
            },
            neighbors: neighbors(cfg, snap),
            per_worker: cores
                .iter()
                .map(|c| WorkerReport {
                    rx_packets: (0..cfg.ports.len()).map(|i| c.port(i).map_or(0, |p| p.rx_pkts.get())).collect(),
                    sessions_created: c.sessions_created.get(),
                    handover_out: c.handover_out.get(),
                    handover_in: c.handover_in.get(),
                    idle_loops: c.idle_loops.get(),
                    loops: c.loops.get(),
                    latency: LatencyReport::of(&c.latency.iter().map(rvs_core::stats::Counter::get).collect::<Vec<_>>()),
                })
                .collect(),
            frames: frames(sum),
            announcements: sum.of(|c| c.announcements.get()),
            faults: crate::fault::Task::ALL.iter().map(|t| (t.name().to_string(), crate::fault::count(*t))).collect(),
            ha: None,
            node: None,
        }
    }
}

/// Health reports by real server.
pub type HealthMap = HashMap<rvs_core::table::BackendKey, HealthReport>;

/// A counter summed over every worker (wrapping, as the counters do).
#[derive(Clone, Copy)]
struct Sum<'a>(&'a [Arc<CoreStats>]);

impl Sum<'_> {
    fn of(self, f: impl Fn(&CoreStats) -> u64) -> u64 {
        self.0.iter().map(|c| f(c)).fold(0u64, u64::wrapping_add)
    }

    fn port(self, i: usize, f: impl Fn(&rvs_core::stats::PortCounters) -> u64) -> u64 {
        self.of(|c| c.port(i).map_or(0, &f))
    }

    fn class(self, class: DropClass) -> u64 {
        DropReason::ALL.iter().filter(|r| r.class() == class).map(|r| self.of(|c| c.drops[r.index()].get())).fold(0u64, u64::wrapping_add)
    }
}

/// Where every received frame went.
fn frames(sum: Sum<'_>) -> FrameReport {
    FrameReport {
        received: (0..rvs_core::stats::MAX_PORTS).map(|i| sum.port(i, |p| p.rx_pkts.get())).fold(0u64, u64::wrapping_add),
        handed_in: sum.of(|c| c.handover_in.get()),
        forwarded: sum.of(|c| c.frames.forwarded.get()),
        answered: sum.of(|c| c.frames.answered.get()),
        consumed: sum.of(|c| c.frames.consumed.get()),
        to_kernel: sum.of(|c| c.frames.to_kernel.get()),
        handed_over: sum.of(|c| c.frames.handed_over.get()),
        held: sum.of(|c| c.frames.held.get()),
        dropped: sum.class(DropClass::Verdict),
        lost: sum.class(DropClass::Lost),
    }
}

fn ports(cfg: &config::Config, snap: &Snapshot, sum: Sum<'_>, missed: &[u64]) -> Vec<PortReport> {
    cfg.ports
        .iter()
        .enumerate()
        .map(|(i, p)| PortReport {
            name: p.name.clone(),
            mac: snap.ports.get(i).map(|x| x.mac.to_string()).unwrap_or_default(),
            rx_packets: sum.port(i, |p| p.rx_pkts.get()),
            rx_bytes: sum.port(i, |p| p.rx_bytes.get()),
            tx_packets: sum.port(i, |p| p.tx_pkts.get()),
            tx_bytes: sum.port(i, |p| p.tx_bytes.get()),
            rx_missed: missed.get(i).copied().unwrap_or(0),
        })
        .collect()
}

fn neighbors(cfg: &config::Config, snap: &Snapshot) -> Vec<NeighborReport> {
    snap.neighbors
        .iter()
        .map(|n| {
            let st = snap.neigh.state(n.slot);
            NeighborReport {
                address: n.addr,
                port: cfg.ports.get(usize::from(n.port)).map(|p| p.name.clone()).unwrap_or_default(),
                mac: st.and_then(|s| s.mac).map(|m| m.to_string()),
                is_static: st.is_some_and(|s| s.is_static),
            }
        })
        .collect()
}
