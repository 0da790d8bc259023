//! Scale-out, end to end: three rvsd boxes behind a router running BIRD
//! with ECMP (`merge paths`, hashing on ports), each box announcing the
//! VIP by BGP through its own BIRD (testbed::cluster); DR real servers in
//! cluster mode (Maglev, sessions created for mid-flow segments); real
//! kernel TCP.
//!
//! * the VIP's route reaches the router; new connections spread over the
//!   boxes;
//! * a box that drains and stops, a box that dies (`kill -9` of rvsd and
//!   its BIRD; BFD), a box that joins: long-lived connections moved by the
//!   router keep their real server, none is lost;
//! * failed health checks withdraw the VIP from that box only;
//! * identical Maglev choices from three rvsd with different worker counts
//!   and configuration histories.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
mod common;
use std::time::{Duration, Instant};
use testbed::cluster::*;
use testbed::pair::{epoch_ms, outcome};
use testbed::{bin, Bed};

/// Starts boxes `boxes` and waits until the router routes the VIP over
/// all of them; returns how long that took after the last start.
fn start_all(c: &mut Cluster, boxes: &[usize]) -> Duration {
    for &i in boxes {
        c.start(i);
    }
    let t = Instant::now();
    c.wait_hops(boxes, Duration::from_secs(20));
    t.elapsed()
}

/// How long the long-lived connections of a test run.
const LOAD_S: u64 = 10;

/// A cluster of three with `boxes` running and routed, carrying 1,000
/// long-lived connections (each a request every 100 ms) for [`LOAD_S`],
/// all established: the load's process index.
fn loaded(tag: &str, boxes: &[usize]) -> (Cluster, usize) {
    let mut c = cluster(tag, 3);
    start_all(&mut c, boxes);
    let load = start_load(&mut c, 1000, LOAD_S);
    std::thread::sleep(Duration::from_secs(3));
    (c, load)
}

/// Long-lived connections to the VIP for `secs` (rvs-testkit failover).
fn start_load(c: &mut Cluster, conns: usize, secs: u64) -> usize {
    let kit = bin("rvs-testkit").unwrap();
    let url = format!("http://{VIP}/");
    let conns = conns.to_string();
    let secs = secs.to_string();
    c.bed
        .spawn(c.client, &[kit.to_str().unwrap(), "failover", "--url", &url, "--conns", &conns, "--interval-ms", "100", "--seconds", &secs])
        .unwrap()
}

fn finish_load(c: &mut Cluster, load: usize, secs: u64) -> serde_json::Value {
    let out = c.bed.wait(load, Duration::from_secs(secs + 40)).unwrap();
    let line = out.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no result from the load: {out}"));
    serde_json::from_str(line).unwrap()
}

/// Every long-lived connection survived and was answered by one real
/// server throughout; returns how many there were.
fn assert_kept(v: &serde_json::Value, what: &str) -> usize {
    let long = v["long"].as_array().unwrap();
    for (i, c) in long.iter().enumerate() {
        assert_eq!(c["ok"], true, "{what}: connection {i} lost: {c}");
        let servers = c["servers"].as_array().unwrap();
        assert_eq!(servers.len(), 1, "{what}: connection {i} changed real server: {c}");
    }
    long.len()
}

/// Box `i`'s `rvsadm show node` and its Prometheus metrics of the node.
fn operator_view(c: &mut Cluster, i: usize) -> (String, String) {
    let rvsadm = bin("rvsadm").unwrap();
    c.bed.select(i);
    let out = std::process::Command::new(&rvsadm).arg("--socket").arg(c.bed.socket()).args(["show", "node"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m = c.bed.lb().sh(&["curl", "-sf", "http://127.0.0.1:9580/metrics"]).unwrap();
    let m = m.lines().filter(|l| l.starts_with("rvs_node") || l.starts_with("rvs_vip")).collect::<Vec<_>>().join("\n");
    (String::from_utf8_lossy(&out.stdout).into_owned(), m)
}

#[test]
fn vips_are_announced_and_new_connections_spread_over_the_boxes() {
    let mut c = cluster("cl-spread", 3);
    let took = start_all(&mut c, &[0, 1, 2]);
    eprintln!("the router routes {VIP} over three boxes {took:?} after the last box started");
    for i in 0..3 {
        let n = c.node(i);
        assert_eq!(n["announced"], serde_json::json!([VIP]), "box {i}: {n}");
        assert_eq!(n["drained"], false);
    }
    let before: Vec<u64> = (0..3).map(|i| c.created(i)).collect();
    let out = common::kit(&c.bed, c.client, &["http", "--url", &format!("http://{VIP}/"), "--count", "1500"], 180);
    assert_eq!(out["ok"], 1500, "{out}");
    let shares: Vec<u64> = (0..3).map(|i| c.created(i) - before[i]).collect();
    let total: u64 = shares.iter().sum();
    assert_eq!(total, 1500, "every connection opened one session on one box: {shares:?}");
    eprintln!("sessions per box: {shares:?}");
    for (i, &s) in shares.iter().enumerate() {
        let frac = s as f64 / total as f64;
        assert!((frac - 1.0 / 3.0).abs() <= 0.15 / 3.0, "box {i} took {s} of {total} ({frac:.3}), not within 15% of a third: {shares:?}");
    }
    // rvsadm node drain / undrain: withdrawn, then announced again.
    let rvsadm = bin("rvsadm").unwrap();
    c.bed.select(2);
    for (verb, boxes) in [("drain", &[0, 1][..]), ("undrain", &[0, 1, 2][..])] {
        let out = std::process::Command::new(&rvsadm).arg("--socket").arg(c.bed.socket()).args(["node", verb]).output().unwrap();
        assert!(out.status.success(), "node {verb}: {}", String::from_utf8_lossy(&out.stderr));
        let took = c.wait_hops(boxes, Duration::from_secs(10));
        eprintln!("node {verb}: the router's next hops followed in {took:?}");
    }
    // A service removed: its VIP withdrawn (from that box).
    let out =
        std::process::Command::new(&rvsadm).arg("--socket").arg(c.bed.socket()).args(["-D", "-t", &format!("{VIP}:80")]).output().unwrap();
    assert!(out.status.success(), "-D: {}", String::from_utf8_lossy(&out.stderr));
    let took = c.wait_hops(&[0, 1], Duration::from_secs(10));
    eprintln!("service removed from box 2: withdrawn in {took:?}");
}

#[test]
fn a_box_that_drains_and_stops_loses_no_connection() {
    let (mut c, load) = loaded("cl-drain", &[0, 1, 2]);
    let on_box0 = c.created(0);
    assert!(on_box0 > 100, "box 0 carries connections before it drains: {on_box0}");
    c.bed.select(0);
    let n = c.bed.call("node.drain", serde_json::Value::Null).unwrap();
    assert_eq!(n["drained"], true, "{n}");
    let t = Instant::now();
    let took = c.wait_hops(&[1, 2], Duration::from_secs(10));
    eprintln!("box 0 drained: the router dropped it {took:?} later");
    let node = c.node(0);
    assert!(node["announced"].as_array().unwrap().is_empty(), "{node}");
    assert_eq!(node["withheld"][0][1], "drained", "{node}");
    // What operators see: rvsadm and Prometheus.
    let (out, m) = operator_view(&mut c, 0);
    assert!(out.contains("node      drained") && out.contains(&format!("withheld  {VIP} (drained)")), "{out}");
    assert!(m.contains("rvs_node_drained 1") && m.contains("rvs_node_announced_vips 0"), "{m}");
    assert!(m.contains(&format!("rvs_vip_announced{{vip=\"{VIP}\"}} 0")), "{m}");
    let (out, m) = operator_view(&mut c, 1);
    assert!(out.contains("node      in service") && out.contains(&format!("announced {VIP}")), "{out}");
    assert!(m.contains("rvs_node_announced_vips 1") && m.contains(&format!("rvs_vip_announced{{vip=\"{VIP}\"}} 1")), "{m}");
    std::thread::sleep(Duration::from_millis(500).saturating_sub(t.elapsed()));
    c.stop(0);
    let v = finish_load(&mut c, load, LOAD_S);
    let n = assert_kept(&v, "drain");
    assert_eq!(n, 1000);
    let moved: u64 = (1..3).map(|i| c.created(i)).sum();
    eprintln!("box 0 left cleanly: {n} connections kept their real server; boxes 1 and 2 created {moved} sessions");
}

#[test]
fn a_box_that_dies_is_routed_around_and_its_flows_keep_their_servers() {
    let (mut c, load) = loaded("cl-kill", &[0, 1, 2]);
    let kill_ms = epoch_ms();
    c.kill(1);
    let took = c.wait_hops(&[0, 2], Duration::from_secs(10));
    let v = finish_load(&mut c, load, LOAD_S);
    let o = outcome(&v, kill_ms);
    eprintln!("box 1 killed: the router dropped it {took:?} later; every connection answered again {:?} after the kill; {o:?}", o.recovery);
    let n = assert_kept(&v, "kill");
    assert_eq!((n, o.lost), (1000, 0));
    assert!(o.recovery <= Duration::from_secs(5), "recovery {:?} (BFD: goal < 1 s)", o.recovery);
}

#[test]
fn a_box_that_joins_takes_flows_that_keep_their_servers() {
    let (mut c, load) = loaded("cl-join", &[0, 1]);
    c.start(2);
    let took = c.wait_hops(&[0, 1, 2], Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    let joined = c.created(2);
    let v = finish_load(&mut c, load, LOAD_S);
    let n = assert_kept(&v, "join");
    eprintln!("box 2 joined: routed {took:?} after its start; it took {joined} mid-flow connections; {n} kept their real server");
    assert!(joined > 50, "the router moved flows onto the new box: {joined}");
}

#[test]
fn failed_health_checks_withdraw_the_vip_from_that_box_only() {
    let mut c = cluster("cl-health", 3);
    start_all(&mut c, &[0, 1, 2]);
    // Box 2 loses its path to the real servers (its checks fail); the
    // others still reach them.
    c.bed.select(2);
    for k in 0..3 {
        c.bed.lb().sh(&["ip", "route", "add", "blackhole", &format!("198.18.1.{}/32", 11 + k)]).unwrap();
    }
    let took = c.wait_hops(&[0, 1], Duration::from_secs(10));
    let node = c.node(2);
    assert_eq!(node["withheld"], serde_json::json!([[VIP, "no real server up"]]), "{node}");
    for i in 0..2 {
        assert_eq!(c.node(i)["announced"], serde_json::json!([VIP]), "box {i} still announces");
    }
    eprintln!("box 2's checks failed: the router dropped it {took:?} after its path was cut");
    let out = common::kit(&c.bed, c.client, &["http", "--url", &format!("http://{VIP}/"), "--count", "100"], 60);
    assert_eq!(out["ok"], 100, "{out}");
    // Its path back: announced again.
    c.bed.select(2);
    for k in 0..3 {
        c.bed.lb().sh(&["ip", "route", "del", "blackhole", &format!("198.18.1.{}/32", 11 + k)]).unwrap();
    }
    c.wait_hops(&[0, 1, 2], Duration::from_secs(10));
    // A clean stop (SIGTERM): withdrawn at once, still forwarding for
    // drain_ms (1 s here), then gone.
    c.bed.select(2);
    c.bed.signal_rvsd(nix::sys::signal::Signal::SIGTERM).unwrap();
    let took = c.wait_hops(&[0, 1], Duration::from_millis(900));
    let node = c.node(2);
    assert_eq!(node["stopping"], true, "rvsd still runs, withdrawn, while it drains: {node}");
    c.stop(2);
    eprintln!("SIGTERM: withdrawn {took:?} later, before the stop");
}

/// The services of the identical-table test: a Maglev service over `rs`.
fn mh_service(rs: &[u8]) -> String {
    let mut s =
        "[[services]]\nvip = \"198.18.0.100\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"mh\"\nforwarding = \"dr\"\ncluster = true\n"
            .to_string();
    for &k in rs {
        s.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{k}\"\nport = 80\n"));
    }
    s
}

#[test]
fn three_balancers_with_different_histories_make_the_same_maglev_choices() {
    let mut bed = Bed::new("cl-mh").unwrap();
    let cseg = bed.segment("c").unwrap();
    let sseg = bed.segment("s").unwrap();
    bed.add_balancer().unwrap();
    bed.add_balancer().unwrap();
    let other = "[[services]]\nvip = \"198.18.0.101\"\nport = 443\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"dr\"\n\
                 [[services.real_servers]]\naddress = \"198.18.1.40\"\nport = 443\n";
    let servers: Vec<u8> = (11..31).collect();
    for (i, workers) in [(0, 1), (1, 2), (2, 1)] {
        bed.select(i);
        bed.rvsd_port("client", cseg, &[&format!("198.18.0.{}/24", 2 + i)]);
        bed.rvsd_port("server", sseg, &[&format!("198.18.1.{}/24", 2 + i)]);
        // Box 0: the final configuration at once. Box 1: servers in reverse
        // order, after another service. Box 2: a history of additions and
        // removals (slots reused in another order) ending the same.
        let first = match i {
            0 => mh_service(&servers),
            1 => format!("{other}\n{}", mh_service(&servers.iter().rev().copied().collect::<Vec<_>>())),
            _ => format!("{}\n{other}", mh_service(&[40, 41, 42, 13, 12])),
        };
        bed.start_rvsd(&format!("workers = {workers}"), &first).unwrap_or_else(|e| panic!("balancer {i}: {e}"));
        if i == 2 {
            let mut steps: Vec<u8> = vec![40, 41];
            steps.extend(servers.iter().rev().filter(|&&k| k != 12 && k != 13));
            bed.reload_with(&format!("{}\n{other}", mh_service(&[42, 13, 12]))).unwrap();
            bed.reload_with(&format!("{}\n{other}", mh_service(&steps))).unwrap();
            let mut last: Vec<u8> = servers.clone();
            last.rotate_left(7);
            bed.reload_with(&format!("{other}\n{}", mh_service(&last))).unwrap();
        }
    }
    // 100,000 random flows (a fixed-seed generator), asked of each.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let flows: Vec<(String, u16)> = (0..100_000)
        .map(|_| {
            let r = next();
            // Clients of 198.19.0.0/16 (computed, never sent).
            let b = r.to_le_bytes();
            (format!("198.19.{}.{}", b[1], b[2]), u16::try_from(1024 + (r >> 40) % 60000).unwrap())
        })
        .collect();
    let mut answers: Vec<Vec<serde_json::Value>> = Vec::new();
    for i in 0..3 {
        bed.select(i);
        let mut mine = Vec::new();
        for chunk in flows.chunks(2000) {
            let args = serde_json::json!({"key": {"protocol": "tcp", "vip": "198.18.0.100", "port": 80}, "clients": chunk});
            let r = bed.call("choose", args).unwrap();
            mine.extend(r["servers"].as_array().unwrap().iter().cloned());
        }
        assert_eq!(mine.len(), flows.len());
        answers.push(mine);
    }
    let differ = |a: &[serde_json::Value], b: &[serde_json::Value]| a.iter().zip(b).filter(|(x, y)| x != y).count();
    assert_eq!(differ(&answers[0], &answers[1]), 0, "box 1 (2 workers, reversed order) chose differently");
    assert_eq!(differ(&answers[0], &answers[2]), 0, "box 2 (another history) chose differently");
    let mut by = std::collections::BTreeMap::new();
    for a in &answers[0] {
        *by.entry(a.as_str().unwrap().to_string()).or_insert(0u64) += 1;
    }
    assert_eq!(by.len(), 20, "every real server gets flows: {by:?}");
    eprintln!("100000 flows: the same real server from all three balancers; spread {:?}", by.values().collect::<Vec<_>>());
}
