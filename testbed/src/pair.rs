//! A pair of balancers on a bed, for the HA tests and the failover demo.
//!
//! Two rvsd (A, balancer 0, and B, balancer 1) in their own namespaces,
//! their client ports on one bridge with a client, their server ports on
//! another with three real servers (NAT: their gateway is the pair's
//! floating 198.18.1.1; DR and tunnel: a router; full NAT: a floating local
//! address). Load from rvs-testkit's `failover` mode, and what it saw
//! measured against the moment of a failover ([`outcome`]).
#![expect(clippy::unwrap_used, clippy::panic, reason = "a test harness: a failed step ends the test or the demo with its message")]
use crate::{bin, Bed};
use std::time::{Duration, Instant};

/// How the pair forwards to its real servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// NAT: the servers' gateway is the pair's floating address.
    Nat,
    /// Full NAT, from a floating local address.
    FullNat,
    /// Direct routing: the servers reply through a router.
    Dr,
    /// IP-in-IP: likewise.
    Tunnel,
}

/// Balancer `i`'s own address on the client (0) and server (1) segment.
pub fn own(i: usize, seg: u8) -> String {
    format!("198.18.{seg}.{}", 2 + i)
}

/// The `[ha]` section of a balancer with `priority`. Link tracking is off:
/// DPDK's TAP driver reads its link state from the interface in rvsd's
/// namespace, and the bed moves every TAP into the switch namespace (on a
/// NIC the link state is the NIC's; the election's FAULT state has unit
/// tests of its own).
pub fn ha_section(priority: u8, extra: &str) -> String {
    format!(
        "[ha]\nport = \"client\"\nvrid = 51\npriority = {priority}\nadvert_interval_ms = 100\nvirtual_addresses = [\"198.18.1.1\"]\ngarp_count = 3\ntrack_link = false\n{extra}\n"
    )
}

/// The service of `mode` over three servers (full NAT with a floating
/// local address).
pub fn service(mode: Mode) -> String {
    let (fwd, port) = match mode {
        Mode::Nat => ("nat", 8080),
        Mode::FullNat => ("fullnat", 8080),
        Mode::Dr => ("dr", 80),
        Mode::Tunnel => ("tunnel", 80),
    };
    let mut s =
        format!("[[services]]\nvip = \"198.18.0.100\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"{fwd}\"\n");
    if mode == Mode::FullNat {
        s.push_str("local_addresses = [\"198.18.1.200\"]\n");
    }
    for i in 0..3 {
        s.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{}\"\nport = {port}\n", 11 + i));
    }
    // UDP echo, NAT-like modes only (DR/tunnel servers answer on :9000 too).
    let (ufwd, uport) = match mode {
        Mode::Dr | Mode::Tunnel => (fwd, 9000),
        _ => (fwd, 9000),
    };
    s.push_str(&format!(
        "[[services]]\nvip = \"198.18.0.100\"\nport = 9000\nprotocol = \"udp\"\nscheduler = \"rr\"\nforwarding = \"{ufwd}\"\n"
    ));
    if mode == Mode::FullNat {
        s.push_str("local_addresses = [\"198.18.1.200\"]\n");
    }
    for i in 0..3 {
        s.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{}\"\nport = {uport}\n", 11 + i));
    }
    s
}

/// A pair on one client and one server segment: A (balancer 0) and B
/// (balancer 1), a client, three real servers (gateway 198.18.1.1, the
/// pair's floating address, in NAT mode; a router for DR and tunnel
/// replies). Neither rvsd is started.
#[derive(Debug)]
pub struct Pair {
    /// The bed (balancer 0 is A, 1 is B).
    pub bed: Bed,
    /// The client host.
    pub client: usize,
    /// The real servers.
    pub servers: Vec<usize>,
    /// Their forwarding mode.
    pub mode: Mode,
}

pub fn pair(tag: &str, mode: Mode) -> Pair {
    let mut bed = Bed::new(tag).unwrap();
    let c = bed.segment("c").unwrap();
    let s = bed.segment("s").unwrap();
    bed.add_balancer().unwrap();
    for i in 0..2 {
        bed.select(i);
        bed.rvsd_port_with_kernel("client", c, &[&format!("{}/24", own(i, 0))], "rvsk");
        bed.rvsd_port("server", s, &[&format!("{}/24", own(i, 1))]);
    }
    bed.select(0);
    let client = bed.host("c0", c, &["198.18.0.10/24"], &[]).unwrap();
    let routes: &[(&str, &str)] = match mode {
        Mode::Nat => &[("198.18.0.0/24", "198.18.1.1")],
        Mode::Dr | Mode::Tunnel => &[("198.18.0.0/24", "198.18.1.254")],
        Mode::FullNat => &[],
    };
    if matches!(mode, Mode::Dr | Mode::Tunnel) {
        let router = bed.host("r", c, &["198.18.0.254/24"], &[]).unwrap();
        bed.attach(router, s, "eth1", &["198.18.1.254/24"]).unwrap();
        bed.h(router).ns.sh(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]).unwrap();
    }
    let servers: Vec<usize> =
        (0..3).map(|i| bed.host(&format!("s{i}"), s, &[&format!("198.18.1.{}/24", 11 + i)], routes).unwrap()).collect();
    let kit = bin("rvs-testkit").unwrap();
    for (i, &h) in servers.iter().enumerate() {
        let ns = &bed.h(h).ns;
        if matches!(mode, Mode::Dr | Mode::Tunnel) {
            ns.sh(&["ip", "addr", "add", "198.18.0.100/32", "dev", "lo"]).unwrap();
            for k in [
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.lo.rp_filter=0",
                "net.ipv4.conf.eth0.rp_filter=0",
            ] {
                ns.sh(&["sysctl", "-qw", k]).unwrap();
            }
        }
        let port = if matches!(mode, Mode::Dr | Mode::Tunnel) { "[::]:80" } else { "[::]:8080" };
        bed.spawn(h, &[kit.to_str().unwrap(), "serve", "--name", &format!("rs{}", i + 1), "--http", port, "--udp", "[::]:9000"]).unwrap();
        if mode == Mode::Tunnel {
            bed.spawn(h, &[kit.to_str().unwrap(), "decap"]).unwrap();
        }
    }
    Pair { bed, client, servers, mode }
}

impl Pair {
    /// Starts balancer `i` with `priority` and extra `[ha]` lines.
    pub fn start(&mut self, i: usize, priority: u8, ha_extra: &str) {
        self.bed.select(i);
        let rest = format!("{}\n{}", ha_section(priority, ha_extra), service(self.mode));
        self.bed.start_rvsd("workers = 1", &rest).unwrap_or_else(|e| panic!("balancer {i}: {e}"));
    }

    /// Balancer `i`'s `show ha`.
    pub fn ha(&mut self, i: usize) -> serde_json::Value {
        self.bed.select(i);
        self.bed.call("ha", serde_json::Value::Null).unwrap_or_else(|e| panic!("balancer {i}: {e}\n{}", self.bed.rvsd_log()))
    }

    pub fn log(&mut self, i: usize) -> String {
        self.bed.select(i);
        self.bed.rvsd_log()
    }

    /// Waits until balancer `i` is in `state`; returns how long it took.
    pub fn wait_state(&mut self, i: usize, state: &str, limit: Duration) -> Duration {
        let t = Instant::now();
        loop {
            if self.ha(i)["state"] == state {
                return t.elapsed();
            }
            if t.elapsed() > limit {
                let (a, b) = (self.log(0), self.log(1));
                panic!("balancer {i} not {state} after {limit:?}: {}\nA:\n{a}\nB:\n{b}", self.ha(i));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// What a failover under load did to the clients.
#[derive(Debug)]
pub struct Outcome {
    /// Long-lived connections lost.
    pub lost: usize,
    /// The longest any of them waited after the kill for its next answer.
    pub recovery: Duration,
    /// UDP flows that got no answer again after the failover.
    pub udp_lost: usize,
    /// New connections that failed, and how many of them fell outside the
    /// gap (kill - 100 ms, kill + recovery + 500 ms).
    pub new_failed: usize,
    pub new_failed_outside: usize,
    pub new_ok: u64,
}

pub fn epoch_ms() -> u64 {
    u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// Reads rvs-testkit failover's JSON against the time of the kill.
pub fn outcome(v: &serde_json::Value, kill_ms: u64) -> Outcome {
    let long = v["long"].as_array().unwrap();
    let lost = long.iter().filter(|c| c["ok"] != true).count();
    // A connection's first answer after the kill: the end of the silence
    // that spans it, or within one interval if none did.
    let recovery_ms = long
        .iter()
        .map(|c| {
            c["gaps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| Some((g[0].as_u64()?, g[1].as_u64()?)))
                .filter(|&(a, b)| a <= kill_ms + 50 && b >= kill_ms)
                .map(|(_, b)| b - kill_ms)
                .max()
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0);
    let udp = v["udp"].as_array().unwrap();
    let udp_lost = udp.iter().filter(|f| f["last"].as_u64().unwrap_or(0) < kill_ms + recovery_ms).count();
    let fails: Vec<u64> = v["new"]["failed"].as_array().into_iter().flatten().filter_map(serde_json::Value::as_u64).collect();
    let outside = fails.iter().filter(|&&t| t + 100 < kill_ms || t > kill_ms + recovery_ms + 500).count();
    Outcome {
        lost,
        recovery: Duration::from_millis(recovery_ms),
        udp_lost,
        new_failed: fails.len(),
        new_failed_outside: outside,
        new_ok: v["new"]["ok"].as_u64().unwrap_or(0),
    }
}

/// Load for `seconds` from the client: 500 long-lived connections
/// requesting every 50 ms, 50 UDP flows, 20 new connections a second.
pub fn start_load(p: &mut Pair, seconds: u64) -> usize {
    let kit = bin("rvs-testkit").unwrap();
    let secs = seconds.to_string();
    let args = [
        kit.to_str().unwrap(),
        "failover",
        "--url",
        "http://198.18.0.100/",
        "--conns",
        "500",
        "--interval-ms",
        "50",
        "--seconds",
        &secs,
        "--udp",
        "198.18.0.100:9000",
        "--udp-flows",
        "50",
        "--new-per-s",
        "20",
    ];
    p.bed.spawn(p.client, &args).unwrap()
}

pub fn finish_load(p: &mut Pair, proc: usize, seconds: u64) -> serde_json::Value {
    let log = p.bed.wait(proc, Duration::from_secs(seconds + 30)).unwrap();
    let line = log.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no result:\n{log}"));
    serde_json::from_str(line).unwrap()
}

/// A and B up, A master, B backup with A's sessions.
pub fn running_pair(tag: &str, mode: Mode, ha_extra: &str) -> Pair {
    let mut p = pair(tag, mode);
    p.start(0, 150, ha_extra);
    p.wait_state(0, "MASTER", Duration::from_secs(3));
    p.start(1, 100, ha_extra);
    p.wait_state(1, "BACKUP", Duration::from_secs(3));
    p.bed.select(0);
    p.bed.wait_neighbors(Duration::from_secs(10)).unwrap();
    p
}

/// Waits until B installed at least `n` records.
pub fn wait_synced(p: &mut Pair, n: u64) {
    let t = Instant::now();
    while p.ha(1)["sync_applied"].as_u64().unwrap_or(0) < n {
        assert!(t.elapsed() < Duration::from_secs(10), "B has {} of {n} sessions: {}\n{}", p.ha(1), p.ha(0), p.log(1));
        std::thread::sleep(Duration::from_millis(50));
    }
}
