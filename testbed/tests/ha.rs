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
use std::time::{Duration, Instant};
use testbed::pair::*;
use testbed::{bin, Bed};

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
    start_keepalived_for(p, host, priority, 51, "198.18.0.100/32")
}

/// Likewise for `vrid` and `vip` (an IPv6 VIP makes it an IPv6 instance).
fn start_keepalived_for(p: &mut Pair, host: usize, priority: u8, vrid: u8, vip: &str) -> usize {
    let conf = p.bed.dir.join(format!("keepalived-{priority}.conf"));
    std::fs::write(
        &conf,
        format!(
            "global_defs {{\n  vrrp_version 3\n  enable_script_security\n  script_user root\n}}\n\
             vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {vrid}\n  priority {priority}\n  advert_int 0.1\n\
               virtual_ipaddress {{\n    {vip}\n  }}\n}}\n"
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

#[test]
fn with_the_virtual_mac_neighbours_never_relearn_on_failover() {
    let mut p = running_pair("ha-vmac", Mode::Nat, "use_virtual_mac = true");
    let vmac = "00:00:5e:00:01:33"; // VRID 51
    assert_eq!(client_arp_for_vip(&p).as_deref(), Some(vmac));
    let secs = 6;
    let load = start_load(&mut p, secs);
    std::thread::sleep(Duration::from_secs(2));
    wait_synced(&mut p, 500);
    p.bed.select(0);
    let kill_ms = epoch_ms();
    p.bed.kill_rvsd().unwrap();
    p.wait_state(1, "MASTER", Duration::from_secs(3));
    let v = finish_load(&mut p, load, secs);
    let o = outcome(&v, kill_ms);
    eprintln!("virtual MAC: {o:?}");
    assert_eq!((o.lost, o.udp_lost), (0, 0), "{o:?}");
    // The client's entry for the VIP never changed: still the virtual MAC.
    let ns = &p.bed.h(p.client).ns;
    let out = ns.sh(&["ip", "neigh", "show", "198.18.0.100", "dev", "eth0"]).unwrap();
    assert!(out.contains(vmac), "{out}");
    assert_eq!(client_arp_for_vip(&p).as_deref(), Some(vmac), "B answers with the same MAC");
}

/// VRRP over IPv6 (`family = "ipv6"`): adverts go from each kernel
/// interface's link-local address to ff02::12 (hop limit 255); the master
/// owns an IPv6 VIP and its real server's floating IPv6 gateway; a
/// `kill -9` hands both to the backup, which announces them with
/// unsolicited neighbour advertisements.
#[test]
fn vrrp_over_ipv6_elects_and_fails_over() {
    let mut bed = Bed::new("ha-v6").unwrap();
    let c = bed.segment("c").unwrap();
    let s = bed.segment("s").unwrap();
    bed.add_balancer().unwrap();
    for i in 0..2 {
        bed.select(i);
        bed.rvsd_port_with_kernel("client", c, &[&format!("{}/24", own(i, 0)), &format!("2001:db8::{}/64", 2 + i)], "rvsk");
        bed.rvsd_port("server", s, &[&format!("{}/24", own(i, 1)), &format!("2001:db8:1::{}/64", 2 + i)]);
    }
    bed.select(0);
    let client = bed.host("c0", c, &["2001:db8::10/64"], &[]).unwrap();
    let server = bed.host("s0", s, &["2001:db8:1::11/64"], &[("2001:db8::/64", "2001:db8:1::1")]).unwrap();
    let kit = bin("rvs-testkit").unwrap();
    bed.spawn(server, &[kit.to_str().unwrap(), "serve", "--name", "rs1", "--http", "[::]:8080"]).unwrap();
    let mut p = Pair { bed, client, servers: vec![server], mode: Mode::Nat };
    let conf = |priority: u8| {
        format!(
            "[ha]\nport = \"client\"\nfamily = \"ipv6\"\nvrid = 52\npriority = {priority}\nadvert_interval_ms = 100\n\
             virtual_addresses = [\"2001:db8:1::1\"]\ngarp_count = 3\ntrack_link = false\n\n\
             [[services]]\nvip = \"2001:db8::100\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"nat\"\n\
             [[services.real_servers]]\naddress = \"2001:db8:1::11\"\nport = 8080\n"
        )
    };
    for (i, priority) in [(0, 150), (1, 100)] {
        p.bed.select(i);
        p.bed.start_rvsd("workers = 1", &conf(priority)).unwrap_or_else(|e| panic!("balancer {i}: {e}"));
    }
    p.wait_state(0, "MASTER", Duration::from_secs(5));
    p.wait_state(1, "BACKUP", Duration::from_secs(3));
    let t = Instant::now();
    while p.ha(1)["master"].is_null() && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (ha, hb) = (p.ha(0), p.ha(1));
    let master = hb["master"].as_str().unwrap_or_default().to_string();
    assert!(master.starts_with("fe80:"), "B hears A's link-local address as master: {hb}");
    assert!(hb["adverts_received"].as_u64().unwrap() > 0, "{hb}");
    assert!(ha["adverts_sent"].as_u64().unwrap() > 0, "{ha}");
    let url = "http://[2001:db8::100]/";
    let out = common::kit(&p.bed, p.client, &["http", "--url", url, "--count", "20"], 60);
    assert_eq!(out["ok"], 20, "through A: {out}\n{}", p.log(0));
    p.bed.select(0);
    p.bed.kill_rvsd().unwrap();
    let took = p.wait_state(1, "MASTER", Duration::from_secs(3));
    eprintln!("IPv6 VRRP: B master {took:?} after A's kill -9 (master was {master})");
    let out = common::kit(&p.bed, p.client, &["http", "--url", url, "--count", "20"], 60);
    assert_eq!(out["ok"], 20, "through B: {out}\n{}", p.log(1));
    p.bed.select(1);
    let r = p.bed.stats().unwrap();
    assert!(r.frames.forwarded > 0, "B forwarded the IPv6 traffic: {r:?}");
    // keepalived (an IPv6 instance of the same VRID, priority 200) preempts
    // B, and B takes over again when it dies.
    let kad_host = p.bed.host("kad", c, &["2001:db8::9/64"], &[]).unwrap();
    let k = start_keepalived_for(&mut p, kad_host, 200, 52, "2001:db8::100/128");
    wait_keepalived(&mut p, k, "MASTER", Duration::from_secs(8));
    p.wait_state(1, "BACKUP", Duration::from_secs(3));
    let hb = p.ha(1);
    let kad_master = hb["master"].as_str().unwrap_or_default().to_string();
    assert!(kad_master.starts_with("fe80:") && kad_master != master, "B hears keepalived's link-local address: {hb}");
    p.bed.proc(k).signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    let took = p.wait_state(1, "MASTER", Duration::from_secs(3));
    eprintln!("IPv6 VRRP: B master {took:?} after keepalived (master {kad_master}) was killed");
}
