//! What a configuration will cost in memory, checked before anything is
//! allocated.
//!
//! rvsd preallocates everything a worker needs (session tables,
//! persistence templates, counters) and the mbuf pool at start, and builds
//! Maglev tables per service. A configuration that asks for more than the
//! machine can give used to pass `--check` and then abort rvsd in the
//! middle of start-up (`sessions_per_worker = 4294967295`: 128 GiB), or
//! grow without bound through the control socket (1,024 services with
//! `mh_table_size = 10000019`: ~20 GB). [`check`] refuses such a
//! configuration with the field that costs the most, the estimate and the
//! budget: `dataplane.memory_budget_mb`, or 80% of this machine's memory
//! when that is 0.
//!
//! The figures come from the allocating code itself
//! ([`SessionTable::memory_for`], the counter and Maglev entry sizes), so
//! they stay right when those change.
use crate::fwd::{fixed_buffers_bytes, persistence_capacity};
use crate::session::SessionTable;
use crate::stats::{BackendStats, ServiceStats};
use config::{Config, ConfigError, ConfigErrors, SchedulerKind, WhenFull};
use rvs_wire::{Ipv4, Ipv6};

/// Bytes of one mbuf beyond its data room (the `rte_mbuf` header and the
/// pool's per-object overhead).
const MBUF_OVERHEAD: u64 = 384;

/// An estimate, by part, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Session tables of every worker (IPv4 and IPv6).
    pub sessions: u64,
    /// Persistence templates of every worker.
    pub persistence: u64,
    /// The mbuf pool.
    pub mbufs: u64,
    /// Per-core counters, per-backend scheduler state and each worker's
    /// fixed buffers.
    pub counters: u64,
    /// Maglev tables (services using `mh`, or `when_full = "stateless"`).
    pub maglev: u64,
}

impl Estimate {
    /// The whole.
    pub fn total(&self) -> u64 {
        self.sessions + self.persistence + self.mbufs + self.counters + self.maglev
    }
}

/// The memory `cfg` needs once running.
pub fn estimate(cfg: &Config) -> Estimate {
    let dp = &cfg.dataplane;
    let workers = u64::from(dp.workers.max(1));
    let sessions = SessionTable::<Ipv4>::memory_for(dp.sessions_per_worker) + SessionTable::<Ipv6>::memory_for(dp.sessions_v6_per_worker);
    // Full-NAT port counts: each worker counts its share of the port range
    // for every local address (its services' own, else the port addresses).
    let fullnat = cfg.services.iter().any(|s| {
        s.forwarding == config::Forwarding::FullNat || s.real_servers.iter().any(|r| r.forwarding == Some(config::Forwarding::FullNat))
    });
    let local_ports = if fullnat {
        let mut locals: Vec<std::net::IpAddr> = cfg.services.iter().flat_map(|s| s.local_addresses.iter().copied()).collect();
        locals.extend(cfg.ports.iter().flat_map(|p| p.addresses.iter().map(|a| a.addr)));
        locals.sort();
        locals.dedup();
        let v4 = locals.iter().filter(|a| a.is_ipv4()).count();
        let ports = usize::from(dp.fullnat_port_max.saturating_sub(dp.fullnat_port_min)) + 1;
        SessionTable::<Ipv4>::local_ports_memory_for(v4, ports) + SessionTable::<Ipv6>::local_ports_memory_for(locals.len() - v4, ports)
    } else {
        0
    };
    let persistence = SessionTable::<Ipv4>::memory_for(persistence_capacity(dp.sessions_per_worker))
        + SessionTable::<Ipv6>::memory_for(persistence_capacity(dp.sessions_v6_per_worker));
    // The compiler keeps twice the configured slots (see table::Compiler).
    let slots_b = 2 * u64::from(dp.max_real_servers);
    let slots_s = 2 * u64::from(dp.max_services);
    let per_core =
        slots_b * (size_of::<BackendStats>() as u64 + 24) + slots_s * (size_of::<ServiceStats>() as u64 + 64) + fixed_buffers_bytes();
    let maglev = cfg
        .services
        .iter()
        .filter(|s| s.scheduler == SchedulerKind::Mh || s.when_full.unwrap_or(dp.when_full) == WhenFull::Stateless)
        .map(|s| u64::from(s.mh_table_size) * size_of::<u16>() as u64)
        .sum();
    Estimate {
        sessions: sessions * workers + local_ports,
        persistence: persistence * workers,
        mbufs: u64::from(dp.mbufs) * (u64::from(dp.mbuf_size) + MBUF_OVERHEAD),
        counters: per_core * workers,
        maglev,
    }
}

/// The budget in bytes: `dataplane.memory_budget_mb`, or 80% of this
/// machine's memory when that is 0 (16 GiB if it cannot be read).
pub fn budget(cfg: &Config) -> u64 {
    if cfg.dataplane.memory_budget_mb > 0 {
        return u64::from(cfg.dataplane.memory_budget_mb) << 20;
    }
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| l.strip_prefix("MemTotal:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(16 << 30, |kb| kb << 10);
    total / 5 * 4
}

fn gib(b: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "a rounded figure for a message")]
    let g = b as f64 / f64::from(1u32 << 30);
    format!("{g:.1} GiB")
}

/// Refuses `cfg` when its estimate exceeds the budget, naming the field
/// that costs the most.
pub fn check(cfg: &Config) -> Result<(), ConfigErrors> {
    let e = estimate(cfg);
    let budget = budget(cfg);
    if e.total() <= budget {
        return Ok(());
    }
    let dp = &cfg.dataplane;
    let biggest_mh = cfg
        .services
        .iter()
        .enumerate()
        .filter(|(_, s)| s.scheduler == SchedulerKind::Mh || s.when_full.unwrap_or(dp.when_full) == WhenFull::Stateless)
        .max_by_key(|(_, s)| s.mh_table_size);
    let field = if e.maglev >= e.sessions.max(e.persistence).max(e.mbufs).max(e.counters) {
        biggest_mh.map_or("services".to_string(), |(i, _)| format!("services[{i}].mh_table_size"))
    } else if e.mbufs >= e.sessions.max(e.counters) {
        "dataplane.mbufs".to_string()
    } else if e.counters >= e.sessions {
        "dataplane.max_real_servers".to_string()
    } else if SessionTable::<Ipv6>::memory_for(dp.sessions_v6_per_worker) > SessionTable::<Ipv4>::memory_for(dp.sessions_per_worker) {
        "dataplane.sessions_v6_per_worker".to_string()
    } else {
        "dataplane.sessions_per_worker".to_string()
    };
    let source =
        if dp.memory_budget_mb > 0 { "dataplane.memory_budget_mb" } else { "80% of this machine's memory; set dataplane.memory_budget_mb" };
    let msg = format!(
        "the configuration needs about {} (sessions {}, persistence {}, mbufs {}, counters {}, Maglev tables {}) \
         with {} worker(s); the budget is {} ({source})",
        gib(e.total()),
        gib(e.sessions),
        gib(e.persistence),
        gib(e.mbufs),
        gib(e.counters),
        gib(e.maglev),
        dp.workers,
        gib(budget),
    );
    Err(ConfigErrors(vec![ConfigError::new(field, msg)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_wire::{Ipv4, Ipv6};

    fn cfg(extra: &str, services: &str) -> Config {
        let text = format!(
            "[dataplane]\nmemory_budget_mb = 4096\n{extra}\n[[ports]]\nname = \"a\"\ndevice = \"net_null0\"\naddresses = [\"198.18.0.1/24\"]\n{services}"
        );
        config::from_str(&text, "t.toml").unwrap()
    }

    #[test]
    fn estimates_match_what_is_allocated() {
        let t = SessionTable::<Ipv4>::new(100_000, [1, 2, 3, 4]);
        assert_eq!(SessionTable::<Ipv4>::memory_for(100_000), t.memory_bytes() as u64);
        let t = SessionTable::<Ipv6>::new(5_000, [1, 2, 3, 4]);
        assert_eq!(SessionTable::<Ipv6>::memory_for(5_000), t.memory_bytes() as u64);
    }

    #[test]
    fn an_impossible_table_is_refused_naming_the_field() {
        assert!(check(&cfg("", "")).is_ok(), "the defaults fit 4 GiB: {:?}", estimate(&cfg("", "")));
        let e = check(&cfg("sessions_per_worker = 4294967295", "")).unwrap_err();
        let first = e.first().unwrap();
        assert_eq!(first.field, "dataplane.sessions_per_worker");
        assert!(first.message.contains("budget is 4.0 GiB"), "{}", first.message);
        let e = check(&cfg("workers = 8\nsessions_per_worker = 33554432", "")).unwrap_err();
        assert_eq!(e.first().unwrap().field, "dataplane.sessions_per_worker");
        let e = check(&cfg("mbufs = 4000000", "")).unwrap_err();
        assert_eq!(e.first().unwrap().field, "dataplane.mbufs");
    }

    #[test]
    fn many_large_maglev_tables_are_refused() {
        let mut services = String::new();
        for i in 0..300 {
            services.push_str(&format!(
                "[[services]]\nvip = \"198.18.0.100\"\nport = {}\nprotocol = \"tcp\"\nscheduler = \"mh\"\nmh_table_size = 10000019\n[[services.real_servers]]\naddress = \"198.18.0.11\"\n",
                i + 1
            ));
        }
        let c = cfg("", &services);
        assert!(estimate(&c).maglev > 5 << 30);
        let e = check(&c).unwrap_err();
        assert!(e.first().unwrap().field.ends_with(".mh_table_size"), "{e}");
    }
}
