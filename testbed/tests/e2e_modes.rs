//! End-to-end: direct routing, IP-in-IP tunnel and full NAT, IPv4 and IPv6,
//! with real kernel TCP in network namespaces (100 HTTP requests each).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
mod common;
use common::*;
use std::collections::BTreeMap;
use testbed::tally;

fn run(mode: Mode, v6: bool) {
    run_on(mode, v6, 1);
}

fn run_on(mode: Mode, v6: bool, workers: u16) {
    let fwd = match mode {
        Mode::Dr => "dr",
        Mode::Tunnel => "tunnel",
        Mode::FullNat => "fullnat",
        Mode::Nat => "nat",
    };
    let tag = format!("{fwd}{}w{workers}", if v6 { 6 } else { 4 });
    let (mut bed, client, servers, _) = routed_bed_with(&tag, mode, &http_service(v6, fwd, "rr"), &format!("workers = {workers}"));
    if mode == Mode::FullNat {
        // The real servers cannot reach the clients at all: every reply must
        // come back to rvsd's local address.
        for &s in &servers {
            let dst = if v6 { "2001:db8::10" } else { "198.18.0.10" };
            assert!(bed.h(s).ns.sh(&["ip", "route", "get", dst]).is_err(), "real server has a route to the client");
        }
    }
    let r = kit(&bed, client, &["http", "--url", &vip_url(v6, "/"), "--count", "100", "--concurrency", "2"], 90);
    let (ok, failed, by) = tally(&r);
    assert_eq!((ok, failed), (100, 0), "{tag}: {r}\n{}", bed.rvsd_log());
    let third = 1.0 / 3.0;
    assert_shares(&by, &[("rs1", third), ("rs2", third), ("rs3", third)], 100);

    let st = bed.stats().unwrap();
    print_drops(&tag, &st);
    let svc = &st.services[0];
    let conns: BTreeMap<String, u64> = svc.real_servers.iter().map(|rs| (rs_name(&rs.address), rs.totals.conns)).collect();
    assert_eq!(conns, by, "{tag}: sessions per real server");
    let out_pkts: u64 = svc.real_servers.iter().map(|rs| rs.totals.pkts_out).sum();
    match mode {
        Mode::Dr | Mode::Tunnel => {
            // The replies bypassed rvsd: it forwarded nothing back, and its
            // client port sent only ARP/ND answers.
            assert_eq!(out_pkts, 0, "{tag}: replies went through rvsd");
            let client_tx = st.ports[0].tx_packets;
            assert!(client_tx < 20, "{tag}: rvsd sent {client_tx} packets to the client side");
            assert!(svc.totals.pkts_in >= 400, "{tag}: {:?}", svc.totals);
        }
        Mode::FullNat | Mode::Nat => assert!(out_pkts >= 300, "{tag}: {out_pkts} packets back through rvsd"),
    }
    let drops: Vec<_> = st
        .drops
        .iter()
        .filter(|(k, v)| **v > 0 && !matches!(k.as_str(), "multicast" | "nd_not_for_us" | "eth_not_for_us" | "arp_not_for_us"))
        .collect();
    assert!(drops.is_empty(), "{tag}: unexpected drops {drops:?}");
    if workers > 1 && matches!(mode, Mode::Nat | Mode::FullNat) {
        // Packets that reached the core not owning their session were
        // handed over (TAP spreads a flow's first packets by the kernel's
        // own hash, unrelated to rvs's), and every one was taken.
        println!("{tag}: handover out {} in {}", st.handover_out, st.handover_in);
        assert!(st.handover_out > 0, "{tag}: no packet was handed over");
        assert_eq!(st.handover_out, st.handover_in, "{tag}");
        // Both workers' queues received client packets and replies.
        assert_eq!(st.per_worker.len(), 2, "{tag}");
        for (w, x) in st.per_worker.iter().enumerate() {
            println!("{tag}: worker {w}: {x:?}");
            assert!(x.rx_packets.iter().all(|&n| n > 0), "{tag}: worker {w} idle on a port: {x:?}");
            assert!(x.sessions_created > 0, "{tag}: worker {w} owns no flow");
        }
    }
    let (fin, _) = bed.stop_rvsd().unwrap();
    // One session per connection: no flow got a session on two cores.
    assert_eq!(fin.services[0].totals.conns, 100);
    assert_eq!(fin.sessions.created, 100, "{tag}");
}

#[test]
fn direct_routing_v4() {
    run(Mode::Dr, false);
}

#[test]
fn direct_routing_v6() {
    run(Mode::Dr, true);
}

#[test]
fn tunnel_v4() {
    run(Mode::Tunnel, false);
}

#[test]
fn tunnel_v6() {
    run(Mode::Tunnel, true);
}

#[test]
fn full_nat_v4() {
    run(Mode::FullNat, false);
}

#[test]
fn full_nat_v6() {
    run(Mode::FullNat, true);
}

#[test]
fn nat_v6() {
    run(Mode::Nat, true);
}

/// Two workers, two-queue TAP devices: the client's packets and the real
/// servers' replies arrive on either queue and reach the owning core.
#[test]
fn nat_v4_two_workers() {
    run_on(Mode::Nat, false, 2);
}

#[test]
fn full_nat_v4_two_workers() {
    run_on(Mode::FullNat, false, 2);
}

#[test]
fn full_nat_v6_two_workers() {
    run_on(Mode::FullNat, true, 2);
}
