//! Offline replay (`rvsd --replay`): what a live rvsd received, captured
//! with tcpdump on its client port, replayed through `net_pcap` against
//! the same configuration, gives the same verdicts: the same connections,
//! packets and bytes per real server, the same sessions, the same drops by
//! reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
mod common;
use common::*;
use std::collections::BTreeMap;
use std::time::Duration;
use testbed::{bin, tally};

fn services() -> String {
    let mut s =
        format!("[[services]]\nname = \"web\"\nvip = \"{VIP}\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"nat\"\n");
    for i in 0..3 {
        s.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{}\"\nport = 8080\n", 11 + i));
    }
    s.push_str(&format!("\n[[services]]\nvip = \"{VIP}\"\nport = 9000\nprotocol = \"udp\"\nscheduler = \"wrr\"\nforwarding = \"nat\"\n"));
    for i in 0..3 {
        s.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{}\"\nport = 9000\nweight = {}\n", 11 + i, i + 1));
    }
    s
}

/// Per real server: (connections, packets in, bytes in).
fn spread(r: &mgmt::report::Report) -> BTreeMap<String, (u64, u64, u64)> {
    r.services
        .iter()
        .flat_map(|s| {
            s.real_servers.iter().map(move |x| {
                (format!("{}:{} -> {}:{}", s.vip, s.port, x.address, x.port), (x.totals.conns, x.totals.pkts_in, x.totals.bytes_in))
            })
        })
        .collect()
}

fn minus(a: &BTreeMap<String, (u64, u64, u64)>, b: &BTreeMap<String, (u64, u64, u64)>) -> BTreeMap<String, (u64, u64, u64)> {
    a.iter()
        .map(|(k, v)| {
            let o = b.get(k).copied().unwrap_or_default();
            (k.clone(), (v.0 - o.0, v.1 - o.1, v.2 - o.2))
        })
        .collect()
}

fn drops(a: &mgmt::report::Report, b: &mgmt::report::Report) -> BTreeMap<String, u64> {
    a.drops.iter().map(|(k, v)| (k.clone(), v - b.drops.get(k).copied().unwrap_or(0))).filter(|(_, v)| *v > 0).collect()
}

#[test]
fn a_replayed_capture_gives_the_live_verdicts() {
    let (mut bed, cl, _sv) = nat_bed_opts("replay", 1, 3, "workers = 1", &services(), false, &|_| Vec::new());
    let cap = bed.dir.join("client.pcap");
    let dump = bed.capture_port(0, &cap).unwrap();
    let before = bed.stats().unwrap();
    // 200 HTTP connections (rr), 60 UDP flows (wrr 1:2:3), datagrams to a
    // port of the VIP that is no service (dropped, by reason).
    let v = kit(&bed, cl[0], &["http", "--url", &format!("http://{VIP}/"), "--count", "200"], 120);
    let (ok, failed, by) = tally(&v);
    assert_eq!((ok, failed), (200, 0), "{v}");
    let u = kit(&bed, cl[0], &["udp", "--target", &format!("{VIP}:9000"), "--count", "60"], 60);
    for _ in 0..5 {
        bed.h(cl[0]).ns.sh(&["bash", "-c", &format!("echo stray > /dev/udp/{VIP}/9999")]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let live = bed.stats().unwrap();
    assert!(bed.proc(dump).stop(Duration::from_secs(5)), "tcpdump: {}", bed.proc(dump).log());
    let dumped = bed.proc(dump).log();
    assert!(dumped.lines().any(|l| l.trim() == "0 packets dropped by kernel"), "tcpdump lost frames: {dumped}");
    let live_spread = minus(&spread(&live), &spread(&before));
    let live_drops = drops(&live, &before);
    let live_created = live.sessions.created - before.sessions.created;
    // The same configuration, replayed: no namespace, no TAP.
    let out = bed.dir.join("replay-out.pcap");
    let json = bed.dir.join("replay.json");
    let o = std::process::Command::new("timeout")
        .arg("120")
        .arg(bin("rvsd").unwrap())
        .args(["--replay", cap.to_str().unwrap(), "-c", bed.config_path().to_str().unwrap()])
        .args(["--out", out.to_str().unwrap(), "--final-stats", json.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "rvsd --replay: {}\n{text}\n{}", o.status, String::from_utf8_lossy(&o.stderr));
    let replayed: mgmt::report::Report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let frames = mgmt::pcap::read_all(&cap).unwrap().len() as u64;
    assert_eq!(replayed.ports[0].rx_packets, frames, "every captured frame replayed\n{text}");
    assert_eq!(spread(&replayed), live_spread, "per real server (connections, packets, bytes): replay vs live\n{text}");
    assert_eq!(drops(&replayed, &mgmt::report::Report::default()), live_drops, "drops by reason: replay vs live\n{text}");
    assert_eq!(replayed.sessions.created, live_created, "{text}");
    let tcp: u64 = live_spread.iter().filter(|(k, _)| k.contains(":80 ")).map(|(_, v)| v.0).sum();
    assert_eq!(tcp, 200, "{live_spread:?}");
    // What it sent: the forwarded frames (and its ARP answers).
    let sent = mgmt::pcap::read_all(&out).unwrap();
    let tx: u64 = replayed.ports.iter().map(|p| p.tx_packets).sum();
    assert_eq!(sent.len() as u64, tx, "{text}");
    let forwarded: u64 = live_spread.values().map(|v| v.1).sum();
    assert!(tx >= forwarded, "{tx} sent, {forwarded} forwarded\n{text}");
    assert!(text.contains("connections  33.") || text.contains("connections  33"), "{text}");
    println!(
        "replay: {frames} frames; live and replay agree: {live_spread:?}, drops {live_drops:?}; by server live {by:?}; udp {u}\n{text}"
    );
}
