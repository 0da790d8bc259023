//! End-to-end: rvsd in NAT mode between real kernel TCP/UDP clients and real
//! servers in network namespaces, through DPDK TAP ports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
mod common;
use common::*;
use std::collections::BTreeMap;
use testbed::tally;

fn services(sched: &str, weights: [u32; 3]) -> String {
    let mut s = String::new();
    for (proto, port, rport) in [("tcp", 80, 8080), ("udp", 53, 9000)] {
        s.push_str(&format!(
            "[[services]]\nvip = \"{VIP}\"\nport = {port}\nprotocol = \"{proto}\"\nscheduler = \"{sched}\"\nforwarding = \"nat\"\n"
        ));
        for (i, w) in weights.iter().enumerate() {
            s.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{}\"\nport = {rport}\nweight = {w}\n", 11 + i));
        }
    }
    s
}

/// Per-real-server connection counts of a service, keyed by testkit name.
fn rs_conns(r: &mgmt::report::Report, proto: config::Protocol) -> BTreeMap<String, u64> {
    let svc = r.services.iter().find(|s| s.protocol == proto).expect("service");
    svc.real_servers.iter().map(|rs| (rs_name(&rs.address), rs.totals.conns)).collect()
}

fn run(sched: &str, weights: [u32; 3], expected: &[(&str, f64)]) {
    let (mut bed, cl, _) = nat_bed(&format!("nat-{sched}"), 1, 3, "workers = 1", &services(sched, weights));
    let http = kit(&bed, cl[0], &["http", "--url", &format!("http://{VIP}/"), "--count", "300", "--concurrency", "4"], 90);
    let (ok, failed, by_http) = tally(&http);
    assert_eq!((ok, failed), (300, 0), "HTTP: {http}");
    assert_shares(&by_http, expected, 300);

    let udp = kit(&bed, cl[0], &["udp", "--target", &format!("{VIP}:53"), "--count", "300"], 90);
    let (ok, failed, by_udp) = tally(&udp);
    assert_eq!((ok, failed), (300, 0), "UDP: {udp}");
    assert_shares(&by_udp, expected, 300);

    // rvsd's counters agree with what the client saw: one session per
    // HTTP request (each on a new connection) and per UDP echo (each from
    // a new source port), per real server.
    let live = bed.stats().unwrap();
    print_drops(&format!("nat-{sched}"), &live);
    assert_eq!(rs_conns(&live, config::Protocol::Tcp), by_http, "TCP sessions per real server");
    assert_eq!(rs_conns(&live, config::Protocol::Udp), by_udp, "UDP sessions per real server");
    let tcp = live.services.iter().find(|s| s.protocol == config::Protocol::Tcp).unwrap();
    let udp_svc = live.services.iter().find(|s| s.protocol == config::Protocol::Udp).unwrap();
    assert_eq!(tcp.totals.conns, 300);
    assert_eq!(udp_svc.totals.conns, 300);
    // Every UDP echo is one datagram each way (no retries were needed).
    assert_eq!((udp_svc.totals.pkts_in, udp_svc.totals.pkts_out), (300, 300));
    // Each HTTP exchange is at least SYN, ACK, request, FIN in; SYN-ACK, response, FIN out.
    assert!(tcp.totals.pkts_in >= 4 * 300 && tcp.totals.pkts_out >= 3 * 300, "{:?}", tcp.totals);
    assert_eq!(live.drops.get("tcp_bad_checksum"), Some(&0));
    assert_eq!(live.drops.get("no_backend"), Some(&0));

    // A clean SIGTERM prints the final counters, which match too.
    let (fin, out) = bed.stop_rvsd().unwrap();
    assert_eq!(rs_conns(&fin, config::Protocol::Tcp), by_http);
    assert_eq!(rs_conns(&fin, config::Protocol::Udp), by_udp);
    assert!(out.contains("TCP  198.18.0.100:80"), "final listing missing:\n{out}");
}

#[test]
fn nat_round_robin_tcp_and_udp() {
    let third = 1.0 / 3.0;
    run("rr", [1, 1, 1], &[("rs1", third), ("rs2", third), ("rs3", third)]);
}

#[test]
fn nat_weighted_1_2_3() {
    run("wrr", [1, 2, 3], &[("rs1", 1.0 / 6.0), ("rs2", 2.0 / 6.0), ("rs3", 3.0 / 6.0)]);
}
