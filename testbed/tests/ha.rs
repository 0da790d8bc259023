//! The active/backup pair, end to end: two rvsd (A and B) in their own
//! namespaces, their client ports on one bridge with the clients, their
//! server ports on another with the real servers; real kernel TCP and UDP.
//!
//! * election: the higher priority is master within three intervals; the
//!   backup answers no ARP for the VIP;
//! * failover under load, for NAT, full NAT, DR and tunnel: 500 long-lived
//!   connections requesting every 50 ms, UDP flows and new connections;
//!   `kill -9` the master; recovery time, connections and flows kept;
//! * clean stop (priority 0), return with preemption after a bulk sync;
//! * forged adverts with authentication on; keepalived as a peer;
//! * malformed VRRP and sync frames, counted and survived.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
mod common;
use common::Mode;
use std::time::{Duration, Instant};
use testbed::{bin, Bed};

/// Balancer `i`'s own address on the client (0) and server (1) segment.
fn own(i: usize, seg: u8) -> String {
    format!("198.18.{seg}.{}", 2 + i)
}

/// The `[ha]` section of a balancer with `priority`. Link tracking is off:
/// DPDK's TAP driver reads its link state from the interface in rvsd's
/// namespace, and the bed moves every TAP into the switch namespace (on a
/// NIC the link state is the NIC's; the election's FAULT state has unit
/// tests of its own).
fn ha_section(priority: u8, extra: &str) -> String {
    format!(
        "[ha]\nport = \"client\"\nvrid = 51\npriority = {priority}\nadvert_interval_ms = 100\nvirtual_addresses = [\"198.18.1.1\"]\ngarp_count = 3\ntrack_link = false\n{extra}\n"
    )
}

/// The service of `mode` over three servers (full NAT with a floating
/// local address).
fn service(mode: Mode) -> String {
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
struct Pair {
    bed: Bed,
    client: usize,
    servers: Vec<usize>,
    mode: Mode,
}

fn pair(tag: &str, mode: Mode) -> Pair {
    let mut bed = Bed::new(tag).expect("bed");
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
    fn start(&mut self, i: usize, priority: u8, ha_extra: &str) {
        self.bed.select(i);
        let rest = format!("{}\n{}", ha_section(priority, ha_extra), service(self.mode));
        self.bed.start_rvsd("workers = 1", &rest).unwrap_or_else(|e| panic!("balancer {i}: {e}"));
    }

    /// Balancer `i`'s `show ha`.
    fn ha(&mut self, i: usize) -> serde_json::Value {
        self.bed.select(i);
        self.bed.call("ha", serde_json::Value::Null).unwrap_or_else(|e| panic!("balancer {i}: {e}\n{}", self.bed.rvsd_log()))
    }

    fn log(&mut self, i: usize) -> String {
        self.bed.select(i);
        self.bed.rvsd_log()
    }

    /// Waits until balancer `i` is in `state`; returns how long it took.
    fn wait_state(&mut self, i: usize, state: &str, limit: Duration) -> Duration {
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

/// The MAC the client's neighbour table holds for the VIP after a fresh ARP
/// (made by one request to the VIP).
fn client_arp_for_vip(p: &Pair) -> Option<String> {
    let ns = &p.bed.h(p.client).ns;
    ns.sh(&["ip", "neigh", "flush", "dev", "eth0"]).unwrap();
    common::kit(&p.bed, p.client, &["http", "--url", "http://198.18.0.100/", "--count", "1"], 20);
    let out = ns.sh(&["ip", "neigh", "show", "198.18.0.100", "dev", "eth0"]).unwrap();
    out.split_whitespace().skip_while(|w| *w != "lladdr").nth(1).map(str::to_string)
}

fn port_mac(bed: &mut Bed, i: usize, port: usize) -> String {
    bed.select(i);
    bed.stats().unwrap().ports[port].mac.clone()
}

#[test]
fn the_higher_priority_is_elected_and_the_backup_answers_no_arp() {
    let mut p = pair("ha-elect", Mode::Nat);
    p.start(1, 100, "");
    // Alone, B becomes master after the master-down interval.
    p.wait_state(1, "MASTER", Duration::from_secs(3));
    p.start(0, 150, "");
    // A preempts within three of its intervals after it is synced.
    let took = p.wait_state(0, "MASTER", Duration::from_secs(5));
    p.wait_state(1, "BACKUP", Duration::from_secs(2));
    let hb = p.ha(1);
    assert_eq!(hb["master"], own(0, 0), "B hears A as master: {hb}");
    let ha = p.ha(0);
    assert!(ha["adverts_sent"].as_u64().unwrap() > 0, "{ha}");
    assert_eq!(ha["synced"], true, "A had B's sessions before preempting: {ha}");
    eprintln!("A took over in {took:?} after start");
    // The client's ARP for the VIP is answered by A's client port only.
    let a_mac = port_mac(&mut p.bed, 0, 0);
    let b_mac = port_mac(&mut p.bed, 1, 0);
    assert_eq!(client_arp_for_vip(&p).as_deref(), Some(a_mac.as_str()));
    p.bed.select(1);
    let r = p.bed.stats().unwrap();
    assert!(r.drops["ha_standby"] > 0, "B dropped the ARP request for the VIP as backup: {:?}", r.drops);
    assert_ne!(a_mac, b_mac);
    // Traffic flows through A.
    let out = common::kit(&p.bed, p.client, &["http", "--url", "http://198.18.0.100/", "--count", "30"], 60);
    assert_eq!(out["ok"], 30, "{out}\n{}", p.log(0));
    let _ = p.servers.len();
}

/// What a failover under load did to the clients.
#[derive(Debug)]
struct Outcome {
    /// Long-lived connections lost.
    lost: usize,
    /// The longest any of them waited after the kill for its next answer.
    recovery: Duration,
    /// UDP flows that got no answer again after the failover.
    udp_lost: usize,
    /// New connections that failed, and how many of them fell outside the
    /// gap (kill - 100 ms, kill + recovery + 500 ms).
    #[expect(dead_code, reason = "printed with the outcome, for the closing figures")]
    new_failed: usize,
    new_failed_outside: usize,
    new_ok: u64,
}

fn epoch_ms() -> u64 {
    u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// Reads rvs-testkit failover's JSON against the time of the kill.
fn outcome(v: &serde_json::Value, kill_ms: u64) -> Outcome {
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
fn start_load(p: &mut Pair, seconds: u64) -> usize {
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

fn finish_load(p: &mut Pair, proc: usize, seconds: u64) -> serde_json::Value {
    let log = p.bed.wait(proc, Duration::from_secs(seconds + 30)).unwrap();
    let line = log.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no result:\n{log}"));
    serde_json::from_str(line).unwrap()
}

/// A and B up, A master, B backup with A's sessions.
fn running_pair(tag: &str, mode: Mode, ha_extra: &str) -> Pair {
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
fn wait_synced(p: &mut Pair, n: u64) {
    let t = Instant::now();
    while p.ha(1)["sync_applied"].as_u64().unwrap_or(0) < n {
        assert!(t.elapsed() < Duration::from_secs(10), "B has {} of {n} sessions: {}\n{}", p.ha(1), p.ha(0), p.log(1));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn failover_under_load(mode: Mode, tag: &str) {
    let mut p = running_pair(tag, mode, "");
    let secs = 8;
    let load = start_load(&mut p, secs);
    // Every connection established (and synced) before the kill.
    std::thread::sleep(Duration::from_secs(3));
    wait_synced(&mut p, 500);
    p.bed.select(0);
    let kill_ms = epoch_ms();
    p.bed.kill_rvsd().unwrap();
    let took = p.wait_state(1, "MASTER", Duration::from_secs(3));
    let v = finish_load(&mut p, load, secs);
    let o = outcome(&v, kill_ms);
    let hb = p.ha(1);
    eprintln!("{mode:?}: B master {took:?} after the kill; {o:?}; B: {hb}");
    assert_eq!(o.lost, 0, "{mode:?}: established connections lost: {o:?}\n{}", p.log(1));
    assert_eq!(o.udp_lost, 0, "{mode:?}: UDP flows lost: {o:?}");
    assert_eq!(o.new_failed_outside, 0, "{mode:?}: new connections failed outside the gap: {o:?}");
    assert!(o.new_ok > 50, "{o:?}");
    assert!(o.recovery <= Duration::from_millis(1500), "{mode:?}: recovery {:?} (goal 1 s): {o:?}", o.recovery);
}

#[test]
fn failover_under_load_nat() {
    failover_under_load(Mode::Nat, "ha-fo-nat");
}

#[test]
fn failover_under_load_fullnat() {
    failover_under_load(Mode::FullNat, "ha-fo-fnat");
}

#[test]
fn failover_under_load_dr() {
    failover_under_load(Mode::Dr, "ha-fo-dr");
}

#[test]
fn failover_under_load_tunnel() {
    failover_under_load(Mode::Tunnel, "ha-fo-tun");
}

#[test]
fn a_clean_stop_hands_over_at_once_and_loses_nothing() {
    let mut p = running_pair("ha-stop", Mode::Nat, "");
    let secs = 6;
    let load = start_load(&mut p, secs);
    std::thread::sleep(Duration::from_secs(2));
    wait_synced(&mut p, 500);
    p.bed.select(0);
    let t = Instant::now();
    let stop_ms = epoch_ms();
    p.bed.signal_rvsd(nix::sys::signal::Signal::SIGTERM).unwrap();
    let took = p.wait_state(1, "MASTER", Duration::from_secs(2));
    let v = finish_load(&mut p, load, secs);
    let o = outcome(&v, stop_ms);
    eprintln!("clean stop: B master {took:?} after SIGTERM ({:?} measured from here); {o:?}", t.elapsed());
    assert!(took <= Duration::from_millis(200), "takeover took {took:?}:\n{}", p.log(1));
    assert_eq!(o.lost, 0, "{o:?}");
    assert_eq!(o.udp_lost, 0, "{o:?}");
    p.bed.select(0);
    let (_, log) = p.bed.stop_rvsd().unwrap();
    assert!(log.contains("MASTER -> INIT"), "A gave up mastership on SIGTERM:\n{log}");
}

#[test]
fn the_old_master_returns_bulk_syncs_then_preempts_without_loss() {
    let mut p = running_pair("ha-return", Mode::Nat, "");
    let secs = 14;
    let load = start_load(&mut p, secs);
    std::thread::sleep(Duration::from_secs(2));
    wait_synced(&mut p, 500);
    p.bed.select(0);
    let kill_ms = epoch_ms();
    p.bed.kill_rvsd().unwrap();
    p.wait_state(1, "MASTER", Duration::from_secs(3));
    std::thread::sleep(Duration::from_secs(2));
    // A comes back: backup first, asks B for the table, then preempts.
    let back_ms = epoch_ms();
    p.start(0, 150, "");
    let took = p.wait_state(0, "MASTER", Duration::from_secs(10));
    p.wait_state(1, "BACKUP", Duration::from_secs(2));
    let ha = p.ha(0);
    assert_eq!(ha["bulk_received"], 1, "A bulk-synced from B before preempting: {ha}");
    assert!(ha["sync_applied"].as_u64().unwrap() >= 500, "{ha}");
    assert!(p.log(0).contains("bulk transfer from 198.18.0.3 complete"), "{}", p.log(0));
    let v = finish_load(&mut p, load, secs);
    let o = outcome(&v, kill_ms);
    eprintln!("return: A master again {took:?} after its restart; {o:?}");
    assert_eq!(o.lost, 0, "established connections lost across both moves: {o:?}\nA:\n{}\nB:\n{}", p.log(0), p.log(1));
    assert_eq!(o.udp_lost, 0, "{o:?}");
    // The second move (back to A) left no long silence either.
    let second = outcome(&v, back_ms + u64::try_from(took.as_millis()).unwrap());
    assert!(second.recovery <= Duration::from_millis(1500), "{second:?}");
}

/// A shared key for the pair, in the bed's directory.
fn key_file(p: &Pair) -> String {
    let f = p.bed.dir.join("ha.key");
    std::fs::write(&f, "a shared secret of the pair, 32+ bytes\n").unwrap();
    f.display().to_string()
}

#[test]
fn forged_adverts_change_nothing_with_authentication_on() {
    let mut p = pair("ha-auth", Mode::Nat);
    let key = format!("auth_key_file = \"{}\"", key_file(&p));
    p.start(0, 150, &key);
    p.wait_state(0, "MASTER", Duration::from_secs(3));
    p.start(1, 100, &key);
    p.wait_state(1, "BACKUP", Duration::from_secs(3));
    let before: Vec<u64> = (0..2).map(|i| p.ha(i)["transitions"].as_u64().unwrap()).collect();
    // A third host on the client segment claims priority 254 for VRID 51.
    let forger = p.bed.host("forger", 0, &["198.18.0.66/24"], &[]).unwrap();
    let kit = bin("rvs-testkit").unwrap();
    for tag in ["none", "bad"] {
        p.bed
            .h(forger)
            .ns
            .sh_timeout(
                &[
                    kit.to_str().unwrap(),
                    "vrrp",
                    "--from",
                    "198.18.0.66",
                    "--vrid",
                    "51",
                    "--priority",
                    "254",
                    "--count",
                    "15",
                    "--interval-ms",
                    "100",
                    "--tag",
                    tag,
                ],
                Duration::from_secs(10),
            )
            .unwrap();
    }
    assert_eq!(p.ha(0)["state"], "MASTER", "A stays master: {}", p.ha(0));
    assert_eq!(p.ha(1)["state"], "BACKUP", "B stays backup: {}", p.ha(1));
    for (i, before) in before.iter().enumerate() {
        let h = p.ha(i);
        let d = &h["advert_drops"];
        assert!(d["auth_missing"].as_u64().unwrap_or(0) >= 10, "balancer {i}: {h}");
        assert!(d["auth_bad"].as_u64().unwrap_or(0) >= 10, "balancer {i}: {h}");
        assert_eq!(h["transitions"], *before, "no role change from forged adverts: {h}");
    }
    // The authenticated pair still fails over.
    p.bed.select(0);
    p.bed.kill_rvsd().unwrap();
    p.wait_state(1, "MASTER", Duration::from_secs(2));
}

#[test]
fn malformed_vrrp_and_sync_frames_are_counted_and_survived() {
    let mut p = running_pair("ha-junk", Mode::Nat, "");
    let before: Vec<u64> = (0..2).map(|i| p.ha(i)["transitions"].as_u64().unwrap()).collect();
    let junk = p.bed.host("junk", 0, &["198.18.0.67/24"], &[]).unwrap();
    let kit = bin("rvs-testkit").unwrap();
    let out =
        p.bed.h(junk).ns.sh(&[kit.to_str().unwrap(), "ha-junk", "--from", "198.18.0.67", "--vrid", "51", "--sync-port", "8848"]).unwrap();
    eprintln!("sent: {out}");
    std::thread::sleep(Duration::from_millis(300));
    for (i, before) in before.iter().enumerate() {
        let h = p.ha(i);
        let d = &h["advert_drops"];
        for reason in ["truncated", "bad_version", "bad_checksum", "other_vrid", "bad_trailer", "bad_ttl"] {
            assert!(d[reason].as_u64().unwrap_or(0) >= 1, "balancer {i}: VRRP {reason} not counted: {h}");
        }
        let s = &h["sync_drops"];
        for reason in ["truncated", "bad_version", "unknown_kind", "bad_size", "other_sync_id"] {
            assert!(s[reason].as_u64().unwrap_or(0) >= 1, "balancer {i}: sync {reason} not counted: {h}");
        }
        assert_eq!(h["transitions"], *before, "balancer {i}: no role change: {h}");
    }
    // The record for a service nobody has: the backup's worker refused it
    // (the master ignores records while it forwards).
    let hb = p.ha(1);
    assert_eq!(hb["sync_rejected"]["no_service"], 1, "{hb}");
    // Both still serve and elect.
    let out = common::kit(&p.bed, p.client, &["http", "--url", "http://198.18.0.100/", "--count", "20"], 60);
    assert_eq!(out["ok"], 20, "{out}");
    p.bed.select(0);
    p.bed.kill_rvsd().unwrap();
    p.wait_state(1, "MASTER", Duration::from_secs(2));
}

/// keepalived (Debian's) in its own namespace on the client segment, with a
/// `vrrp_instance` of the pair's VRID and VIP; returns its process index.
fn start_keepalived(p: &mut Pair, host: usize, priority: u8) -> usize {
    let conf = p.bed.dir.join(format!("keepalived-{priority}.conf"));
    std::fs::write(
        &conf,
        format!(
            "global_defs {{\n  vrrp_version 3\n  enable_script_security\n  script_user root\n}}\n\
             vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n  advert_int 0.1\n\
               virtual_ipaddress {{\n    198.18.0.100/32\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let pid = p.bed.dir.join(format!("keepalived-{priority}"));
    let (c, v) = (format!("{}.pid", pid.display()), format!("{}.vrrp.pid", pid.display()));
    let args = [
        "/usr/sbin/keepalived",
        "--dont-fork",
        "--log-console",
        "--log-detail",
        "--vrrp",
        "-f",
        conf.to_str().unwrap(),
        "-p",
        &c,
        "-r",
        &v,
    ];
    p.bed.spawn(host, &args).unwrap()
}

/// Waits until keepalived's log says it entered `state` (MASTER/BACKUP).
fn wait_keepalived(p: &mut Pair, k: usize, state: &str, limit: Duration) -> Duration {
    let t = Instant::now();
    let want = format!("Entering {state} STATE");
    loop {
        let log = p.bed.proc(k).log();
        // The last transition it logged.
        let last = log.lines().rev().find(|l| l.contains("Entering ") && l.contains(" STATE"));
        if last.is_some_and(|l| l.contains(&want)) {
            return t.elapsed();
        }
        assert!(t.elapsed() < limit, "keepalived not {state} after {limit:?}:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn keepalived_and_rvs_agree_on_the_master_both_ways() {
    let mut p = pair("ha-kad", Mode::Nat);
    let kad_host = p.bed.host("kad", 0, &["198.18.0.9/24"], &[]).unwrap();
    // rvs master (150), keepalived backup (100).
    p.start(0, 150, "sync = false");
    p.wait_state(0, "MASTER", Duration::from_secs(3));
    let k = start_keepalived(&mut p, kad_host, 100);
    wait_keepalived(&mut p, k, "BACKUP", Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(p.ha(0)["state"], "MASTER", "{}", p.ha(0));
    wait_keepalived(&mut p, k, "BACKUP", Duration::from_secs(1));
    assert!(p.ha(0)["advert_drops"].as_object().is_none_or(|d| d.get("bad_checksum").is_none()), "keepalived's adverts parse: {}", p.ha(0));
    // rvs goes: keepalived takes over.
    p.bed.select(0);
    p.bed.kill_rvsd().unwrap();
    let took = wait_keepalived(&mut p, k, "MASTER", Duration::from_secs(3));
    eprintln!("keepalived master {took:?} after rvs was killed");
    // Now the reverse: keepalived master (200), rvs backup, hearing it.
    p.bed.proc(k).stop(Duration::from_secs(5));
    let k2 = start_keepalived(&mut p, kad_host, 200);
    wait_keepalived(&mut p, k2, "MASTER", Duration::from_secs(5));
    p.start(0, 150, "sync = false");
    p.wait_state(0, "BACKUP", Duration::from_secs(3));
    std::thread::sleep(Duration::from_secs(1));
    let h = p.ha(0);
    assert_eq!(h["state"], "BACKUP", "{h}");
    assert_eq!(h["master"], "198.18.0.9", "rvs hears keepalived as master: {h}");
    assert!(h["adverts_received"].as_u64().unwrap() >= 5, "{h}");
    // keepalived goes: rvs takes over.
    p.bed.proc(k2).signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    let took = p.wait_state(0, "MASTER", Duration::from_secs(3));
    eprintln!("rvs master {took:?} after keepalived was killed");
}

#[test]
fn operators_see_the_pair_and_control_its_sync() {
    let mut p = pair("ha-ops", Mode::Nat);
    let states = p.bed.dir.join("states");
    let hook = p.bed.dir.join("notify.sh");
    std::fs::write(&hook, format!("#!/bin/sh\necho \"$1\" >> {}\n", states.display())).unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p.start(0, 150, &format!("notify = \"{}\"", hook.display()));
    p.wait_state(0, "MASTER", Duration::from_secs(3));
    p.start(1, 100, "");
    p.wait_state(1, "BACKUP", Duration::from_secs(3));
    // The notify hook ran on each transition, with the state.
    let t = Instant::now();
    while std::fs::read_to_string(&states).unwrap_or_default() != "BACKUP\nMASTER\n" {
        assert!(t.elapsed() < Duration::from_secs(3), "hook: {:?}", std::fs::read_to_string(&states));
        std::thread::sleep(Duration::from_millis(20));
    }
    p.bed.select(0);
    let rvsadm = bin("rvsadm").unwrap();
    let sock = p.bed.socket();
    let adm = |args: &[&str]| {
        let out = std::process::Command::new(&rvsadm).arg("--socket").arg(&sock).args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, out, err) = adm(&["show", "ha"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("state     MASTER") && out.contains("vrid      51, priority 150") && out.contains("synced"), "{out}");
    assert_eq!(adm(&["-L", "--daemon"]).1, "master sync daemon (mcast=rvsk, syncid=51)\n");
    // ipvsadm's daemon controls pause and resume the pair's sync.
    assert_eq!(adm(&["--stop-daemon", "master"]).0, Some(0));
    assert_eq!(p.ha(0)["sync_paused"], true);
    assert_eq!(adm(&["-L", "--daemon"]).1, "");
    let (code, _, err) = adm(&["--start-daemon", "master", "--syncid", "52"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("syncid") && err.contains("51"), "{err}");
    let (code, _, err) = adm(&["--start-daemon", "master", "--syncid", "51", "--mcast-interface", "rvsk"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(p.ha(0)["sync_paused"], false);
    // Prometheus has the state and the sync counters.
    p.bed.select(0);
    let m = p.bed.lb().sh(&["curl", "-sf", "http://127.0.0.1:9580/metrics"]).unwrap();
    assert!(m.contains("rvs_ha_state{vrid=\"51\"} 2"), "{}", m.lines().filter(|l| l.contains("rvs_ha")).collect::<Vec<_>>().join("\n"));
    assert!(m.contains("rvs_ha_adverts_sent_total ") && m.contains("rvs_sync_records_sent_total "), "metrics");
    p.bed.select(1);
    let m = p.bed.lb().sh(&["curl", "-sf", "http://127.0.0.1:9580/metrics"]).unwrap();
    assert!(m.contains("rvs_ha_state{vrid=\"51\"} 1"), "B is backup");
    // The log has every transition.
    assert!(p.log(0).contains("BACKUP -> MASTER (vrid 51, priority 150"), "{}", p.log(0));
}
