//! End-to-end ICMP: path-MTU discovery across rvsd, proven by the kernels
//! themselves (a real server or client only lowers its path MTU when the
//! ICMP error's quoted header matches one of its own sockets).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
mod common;
use common::*;
use std::time::Duration;
use testbed::{bin, tally, Bed};

/// The path MTU a host has cached towards `dst` (from `ip route get`).
fn cached_mtu(bed: &Bed, host: usize, dst: &str) -> Option<u32> {
    let out = bed.h(host).ns.sh(&["ip", "route", "get", dst]).ok()?;
    let words: Vec<&str> = out.split_whitespace().collect();
    words.windows(2).find(|w| w[0] == "mtu").and_then(|w| w[1].parse().ok())
}

/// The client sits behind router r1 whose link to it has a small MTU
/// (1000, or 1280 for IPv6): the real servers' full-size replies make r1
/// send "fragmentation needed" / "packet too big" to the VIP. rvsd must pass
/// each error to the real server that owns the flow, quoting what that
/// server sent.
fn router_in_front(fwd: &str, v6: bool) {
    let mut bed = Bed::new(&format!("pmtu-{fwd}{}", if v6 { 6 } else { 4 })).unwrap();
    let e = bed.segment("e").unwrap();
    let c = bed.segment("c").unwrap();
    let s = bed.segment("s").unwrap();
    bed.rvsd_port("client", c, &["198.18.0.1/24", "2001:db8::1/64"]);
    bed.rvsd_port("server", s, &["198.18.1.1/24", "2001:db8:1::1/64"]);
    let client = bed
        .host("c0", e, &["198.18.2.10/24", "2001:db8:2::10/64"], &[("198.18.0.0/24", "198.18.2.1"), ("2001:db8::/64", "2001:db8:2::1")])
        .unwrap();
    let r1 = bed.host("r1", e, &["198.18.2.1/24", "2001:db8:2::1/64"], &[]).unwrap();
    bed.attach(r1, c, "eth1", &["198.18.0.254/24", "2001:db8::fe/64"]).unwrap();
    bed.attach(r1, s, "eth2", &["198.18.1.254/24", "2001:db8:1::fe/64"]).unwrap();
    for k in ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"] {
        bed.h(r1).ns.sh(&["sysctl", "-qw", k]).unwrap();
    }
    let small = if v6 { "1280" } else { "1000" };
    bed.h(r1).ns.sh(&["ip", "link", "set", "eth0", "mtu", small]).unwrap();
    let dr = fwd == "dr";
    let (gw4, gw6) = if dr { ("198.18.1.254", "2001:db8:1::fe") } else { ("198.18.1.1", "2001:db8:1::1") };
    let servers: Vec<usize> = (0..3)
        .map(|i| {
            bed.host(
                &format!("s{i}"),
                s,
                &[&format!("198.18.1.{}/24", 11 + i), &format!("2001:db8:1::{:x}/64", 0x11 + i)],
                &[("198.18.2.0/24", gw4), ("2001:db8:2::/64", gw6)],
            )
            .unwrap()
        })
        .collect();
    if dr {
        for &h in &servers {
            let ns = &bed.h(h).ns;
            ns.sh(&["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"]).unwrap();
            ns.sh(&["ip", "-6", "addr", "add", &format!("{VIP6}/128"), "dev", "lo"]).unwrap();
            for k in ["net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"] {
                ns.sh(&["sysctl", "-qw", k]).unwrap();
            }
        }
    }
    bed.start_rvsd("workers = 1", &http_service(v6, fwd, "rr")).unwrap();
    let testkit = bin("rvs-testkit").unwrap();
    let port = if dr { "[::]:80" } else { "[::]:8080" };
    for (i, &h) in servers.iter().enumerate() {
        bed.spawn(h, &[testkit.to_str().unwrap(), "serve", "--name", &format!("rs{}", i + 1), "--http", port]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    bed.wait_neighbors(Duration::from_secs(10)).unwrap();

    // Two large responses: round robin gives them to rs1 and rs2.
    let r = kit(&bed, client, &["http", "--url", &vip_url(v6, "/bytes/30000"), "--count", "2", "--timeout-ms", "8000"], 60);
    let (ok, failed, by) = tally(&r);
    assert_eq!((ok, failed), (2, 0), "{r}\n{}", bed.rvsd_log());
    assert_eq!(by.keys().cloned().collect::<Vec<_>>(), ["rs1", "rs2"]);
    let st = bed.stats().unwrap();
    print_drops(&format!("pmtu-{fwd}{}", if v6 { 6 } else { 4 }), &st);
    assert!(st.icmp_errors_forwarded >= 2, "rvsd forwarded {} ICMP errors", st.icmp_errors_forwarded);
    assert_eq!(st.drops["icmp_error_no_session"], 0);
    // In full NAT the real server's peer is rvsd's local address, so that is
    // where it caches the path MTU (for every client behind it, as in DPVS).
    let client_addr = match (fwd, v6) {
        ("fullnat", false) => "198.18.1.1",
        ("fullnat", true) => "2001:db8:1::1",
        (_, true) => "2001:db8:2::10",
        (_, false) => "198.18.2.10",
    };
    let want: u32 = small.parse().unwrap();
    assert_eq!(cached_mtu(&bed, servers[0], client_addr), Some(want), "rs1 did not learn the path MTU");
    assert_eq!(cached_mtu(&bed, servers[1], client_addr), Some(want), "rs2 did not learn the path MTU");
    assert_eq!(cached_mtu(&bed, servers[2], client_addr), None, "rs3 served nothing and must have learned nothing");
}

#[test]
fn frag_needed_in_front_of_client_reaches_nat_server() {
    router_in_front("nat", false);
}

#[test]
fn packet_too_big_in_front_of_client_reaches_nat_server_v6() {
    router_in_front("nat", true);
}

#[test]
fn frag_needed_in_front_of_client_reaches_dr_server() {
    router_in_front("dr", false);
}

#[test]
fn frag_needed_in_front_of_client_reaches_fullnat_server() {
    router_in_front("fullnat", false);
}

/// In tunnel mode a full-size packet from the client no longer fits once
/// encapsulated: rvsd answers "fragmentation needed" (or "packet too big")
/// announcing 1500 less the outer header, the client's kernel lowers its
/// path MTU to the VIP, and the upload completes.
fn tunnel_too_big(v6: bool) {
    let (bed, client, _, _) = routed_bed(&format!("tunmtu{}", if v6 { 6 } else { 4 }), Mode::Tunnel, &http_service(v6, "tunnel", "rr"));
    let r = kit(&bed, client, &["http", "--url", &vip_url(v6, "/"), "--count", "3", "--post-bytes", "40000", "--timeout-ms", "8000"], 60);
    let (ok, failed, _) = tally(&r);
    assert_eq!((ok, failed), (3, 0), "{r}\n{}", bed.rvsd_log());
    let st = bed.stats().unwrap();
    print_drops(&format!("tunmtu{}", if v6 { 6 } else { 4 }), &st);
    assert!(st.icmp_errors_sent >= 1, "no too-big error sent");
    assert!(st.drops["mtu_exceeded"] >= 1);
    let (vip, want) = if v6 { (VIP6, 1460) } else { (VIP, 1480) };
    assert_eq!(cached_mtu(&bed, client, vip), Some(want), "the client did not learn the tunnel's MTU");
}

#[test]
fn tunnel_frag_needed_v4() {
    tunnel_too_big(false);
}

#[test]
fn tunnel_packet_too_big_v6() {
    tunnel_too_big(true);
}
