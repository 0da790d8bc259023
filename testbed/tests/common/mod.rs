//! Shared set-up of the end-to-end tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::collections::BTreeMap;
use std::time::Duration;
use testbed::{bin, Bed};

pub const VIP: &str = "198.18.0.100";
pub const VIP6: &str = "2001:db8::100";

/// The classic LVS-NAT world: clients on 198.18.0.0/24 (and 2001:db8::/64),
/// real servers on 198.18.1.0/24 (2001:db8:1::/64) whose route back to the
/// clients goes through rvsd. Returns the bed and the host indices of the
/// clients and servers; rvsd is started with `services` and every server
/// runs rvs-testkit (HTTP :8080, UDP :9000, TCP echo :7000) named rs1..rsN.
pub fn nat_bed(tag: &str, clients: usize, servers: usize, dataplane: &str, services: &str) -> (Bed, Vec<usize>, Vec<usize>) {
    let mut bed = Bed::new(tag).expect("bed");
    let c = bed.segment("c").unwrap();
    let s = bed.segment("s").unwrap();
    bed.rvsd_port("client", c, &["198.18.0.1/24", "2001:db8::1/64"]);
    bed.rvsd_port("server", s, &["198.18.1.1/24", "2001:db8:1::1/64"]);
    let cl: Vec<usize> = (0..clients)
        .map(|i| {
            bed.host(&format!("c{i}"), c, &[&format!("198.18.0.{}/24", 10 + i), &format!("2001:db8::{:x}/64", 0x10 + i)], &[]).unwrap()
        })
        .collect();
    let sv: Vec<usize> = (0..servers)
        .map(|i| {
            bed.host(
                &format!("s{i}"),
                s,
                &[&format!("198.18.1.{}/24", 11 + i), &format!("2001:db8:1::{:x}/64", 0x11 + i)],
                &[("198.18.0.0/24", "198.18.1.1"), ("2001:db8::/64", "2001:db8:1::1")],
            )
            .unwrap()
        })
        .collect();
    bed.start_rvsd(dataplane, services).unwrap_or_else(|e| panic!("{e}"));
    start_servers(&mut bed, &sv);
    bed.wait_neighbors(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}\n{}", bed.rvsd_log()));
    (bed, cl, sv)
}

/// Starts rvs-testkit servers named rs1.. on the given hosts.
pub fn start_servers(bed: &mut Bed, hosts: &[usize]) {
    let kit = bin("rvs-testkit").unwrap();
    for (i, &h) in hosts.iter().enumerate() {
        let name = format!("rs{}", i + 1);
        bed.spawn(
            h,
            &[kit.to_str().unwrap(), "serve", "--name", &name, "--http", "[::]:8080", "--udp", "[::]:9000", "--tcp-echo", "[::]:7000"],
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
}

/// Runs rvs-testkit on a host and returns its JSON.
pub fn kit(bed: &Bed, host: usize, args: &[&str], timeout_s: u64) -> serde_json::Value {
    let k = bin("rvs-testkit").unwrap();
    let mut cmd = vec![k.to_str().unwrap()];
    cmd.extend_from_slice(args);
    bed.json(host, &cmd, Duration::from_secs(timeout_s)).unwrap_or_else(|e| panic!("{e}\nrvsd:\n{}", bed.rvsd_log()))
}

/// Asserts every share is within 10% (relative) of its expected fraction.
pub fn assert_shares(by: &BTreeMap<String, u64>, expected: &[(&str, f64)], total: u64) {
    for (name, frac) in expected {
        let got = by.get(*name).copied().unwrap_or(0) as f64 / total as f64;
        assert!((got - frac).abs() <= 0.1 * frac, "{name}: share {got:.3}, expected {frac:.3} +-10% ({by:?})");
    }
}

/// Maps a real-server address to its testkit name (198.18.1.11 -> rs1).
pub fn rs_name(addr: &std::net::IpAddr) -> String {
    match addr {
        std::net::IpAddr::V4(a) => format!("rs{}", a.octets()[3] - 10),
        std::net::IpAddr::V6(a) => format!("rs{}", (a.segments()[7] & 0xff) - 0x10),
    }
}
