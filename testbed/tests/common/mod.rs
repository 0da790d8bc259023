//! Shared set-up of the end-to-end tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "shared by several test crates, each using a part")]
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
    nat_bed_opts(tag, clients, servers, dataplane, services, false, &|_| Vec::new())
}

/// [`nat_bed`], where the server port also has a kernel interface (`rvsk`)
/// when `kernel` is set (the path health checks and agents take), and
/// server `i` (0-based) gets the extra testkit options `extra(i)`.
pub fn nat_bed_opts(
    tag: &str,
    clients: usize,
    servers: usize,
    dataplane: &str,
    services: &str,
    kernel: bool,
    extra: &dyn Fn(usize) -> Vec<String>,
) -> (Bed, Vec<usize>, Vec<usize>) {
    let mut bed = Bed::new(tag).expect("bed");
    let c = bed.segment("c").unwrap();
    let s = bed.segment("s").unwrap();
    bed.rvsd_port("client", c, &["198.18.0.1/24", "2001:db8::1/64"]);
    if kernel {
        bed.rvsd_port_with_kernel("server", s, &["198.18.1.1/24", "2001:db8:1::1/64"], "rvsk");
    } else {
        bed.rvsd_port("server", s, &["198.18.1.1/24", "2001:db8:1::1/64"]);
    }
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
    for (i, &h) in sv.iter().enumerate() {
        let x = extra(i);
        let x: Vec<&str> = x.iter().map(String::as_str).collect();
        start_server(&mut bed, h, &format!("rs{}", i + 1), &x);
    }
    std::thread::sleep(Duration::from_millis(300));
    bed.wait_neighbors(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}\n{}", bed.rvsd_log()));
    (bed, cl, sv)
}

/// Starts one rvs-testkit server (HTTP :8080, UDP :9000, TCP echo :7000)
/// with extra options; returns its process index.
pub fn start_server(bed: &mut Bed, host: usize, name: &str, extra: &[&str]) -> usize {
    let kit = bin("rvs-testkit").unwrap();
    let mut cmd =
        vec![kit.to_str().unwrap(), "serve", "--name", name, "--http", "[::]:8080", "--udp", "[::]:9000", "--tcp-echo", "[::]:7000"];
    cmd.extend_from_slice(extra);
    bed.spawn(host, &cmd).unwrap()
}

/// Runs rvsadm against the bed's rvsd; its output (fails the test when it
/// fails).
pub fn rvsadm_ok(bed: &Bed, args: &[&str]) -> String {
    let out =
        std::process::Command::new(bin("rvsadm").unwrap()).args(["--socket", bed.socket().to_str().unwrap()]).args(args).output().unwrap();
    assert!(out.status.success(), "rvsadm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
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

/// How the real servers of a routed bed are set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// LVS-DR: VIP on lo, arp_ignore=1/arp_announce=2, replies via the router.
    Dr,
    /// LVS-TUN: VIP on lo, userspace decapsulator, replies via the router.
    Tunnel,
    /// Full NAT: no route to the clients at all.
    FullNat,
    /// NAT: rvsd is the servers' gateway to the clients.
    Nat,
}

/// Clients on 198.18.0.0/24 (2001:db8::/64); real servers on 198.18.1.0/24
/// (2001:db8:1::/64); rvsd on both; a router (198.18.x.254, 2001:db8:x::fe)
/// joins the two segments for the servers' direct replies in DR and tunnel
/// modes. Returns (bed, client, servers, router).
pub fn routed_bed(tag: &str, mode: Mode, services: &str) -> (Bed, usize, Vec<usize>, usize) {
    routed_bed_with(tag, mode, services, "workers = 1")
}

/// [`routed_bed`] with its own `[dataplane]` lines (e.g. "workers = 2":
/// then every rvsd port is a two-queue TAP device).
pub fn routed_bed_with(tag: &str, mode: Mode, services: &str, dataplane: &str) -> (Bed, usize, Vec<usize>, usize) {
    let mut bed = Bed::new(tag).expect("bed");
    let c = bed.segment("c").unwrap();
    let s = bed.segment("s").unwrap();
    bed.rvsd_port("client", c, &["198.18.0.1/24", "2001:db8::1/64"]);
    bed.rvsd_port("server", s, &["198.18.1.1/24", "2001:db8:1::1/64"]);
    let client = bed.host("c0", c, &["198.18.0.10/24", "2001:db8::10/64"], &[]).unwrap();
    let router = bed.host("r", c, &["198.18.0.254/24", "2001:db8::fe/64"], &[]).unwrap();
    bed.attach(router, s, "eth1", &["198.18.1.254/24", "2001:db8:1::fe/64"]).unwrap();
    bed.h(router).ns.sh(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]).unwrap();
    bed.h(router).ns.sh(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]).unwrap();
    let routes: &[(&str, &str)] = match mode {
        Mode::Dr | Mode::Tunnel => &[("198.18.0.0/24", "198.18.1.254"), ("2001:db8::/64", "2001:db8:1::fe")],
        Mode::Nat => &[("198.18.0.0/24", "198.18.1.1"), ("2001:db8::/64", "2001:db8:1::1")],
        Mode::FullNat => &[],
    };
    let servers: Vec<usize> = (0..3)
        .map(|i| {
            bed.host(&format!("s{i}"), s, &[&format!("198.18.1.{}/24", 11 + i), &format!("2001:db8:1::{:x}/64", 0x11 + i)], routes).unwrap()
        })
        .collect();
    for &h in &servers {
        let ns = &bed.h(h).ns;
        if matches!(mode, Mode::Dr | Mode::Tunnel) {
            // The real server holds the VIP without announcing it: it must
            // not answer ARP for it (arp_ignore=1: only for addresses on the
            // asking interface) nor use it as an ARP source (arp_announce=2).
            // IPv6 needs no equivalent: Linux answers neighbour solicitations
            // only for addresses on the receiving interface, and lo is not it.
            ns.sh(&["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"]).unwrap();
            ns.sh(&["ip", "-6", "addr", "add", &format!("{VIP6}/128"), "dev", "lo"]).unwrap();
            for k in [
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
                "net.ipv4.conf.eth0.arp_ignore=1",
                "net.ipv4.conf.eth0.arp_announce=2",
            ] {
                ns.sh(&["sysctl", "-qw", k]).unwrap();
            }
        }
        if mode == Mode::Tunnel {
            for k in [
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
                "net.ipv4.conf.lo.rp_filter=0",
                "net.ipv4.conf.eth0.rp_filter=0",
            ] {
                ns.sh(&["sysctl", "-qw", k]).unwrap();
            }
        }
    }
    bed.start_rvsd(dataplane, services).unwrap_or_else(|e| panic!("{e}"));
    let kit = bin("rvs-testkit").unwrap();
    for (i, &h) in servers.iter().enumerate() {
        let name = format!("rs{}", i + 1);
        let port = if matches!(mode, Mode::Dr | Mode::Tunnel) { "[::]:80" } else { "[::]:8080" };
        bed.spawn(h, &[kit.to_str().unwrap(), "serve", "--name", &name, "--http", port, "--udp", "[::]:9000"]).unwrap();
        if mode == Mode::Tunnel {
            bed.spawn(h, &[kit.to_str().unwrap(), "decap"]).unwrap();
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    bed.wait_neighbors(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}\n{}", bed.rvsd_log()));
    (bed, client, servers, router)
}

/// `[[services]]` for an HTTP VIP (IPv4 or IPv6) in `fwd` mode over the
/// three servers of a routed bed.
pub fn http_service(v6: bool, fwd: &str, sched: &str) -> String {
    let vip = if v6 { VIP6 } else { VIP };
    let port = if fwd == "dr" || fwd == "tunnel" { 80 } else { 8080 };
    let mut s = format!("[[services]]\nvip = \"{vip}\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"{sched}\"\nforwarding = \"{fwd}\"\n");
    for i in 0..3 {
        let a = if v6 { format!("2001:db8:1::{:x}", 0x11 + i) } else { format!("198.18.1.{}", 11 + i) };
        s.push_str(&format!("[[services.real_servers]]\naddress = \"{a}\"\nport = {port}\n"));
    }
    s
}

/// The URL of the VIP.
pub fn vip_url(v6: bool, path: &str) -> String {
    if v6 {
        format!("http://[{VIP6}]:80{path}")
    } else {
        format!("http://{VIP}:80{path}")
    }
}

/// Prints the non-zero drop counters of a report (shown with --no-capture).
pub fn print_drops(tag: &str, r: &mgmt::report::Report) {
    let d: Vec<String> = r.drops.iter().filter(|(_, v)| **v > 0).map(|(k, v)| format!("{k}={v}")).collect();
    println!("{tag}: drops {}", if d.is_empty() { "none".to_string() } else { d.join(" ") });
}
