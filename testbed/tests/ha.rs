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
    let mut s = format!("[[services]]\nvip = \"198.18.0.100\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"{fwd}\"\n");
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
    s.push_str(&format!("[[services]]\nvip = \"198.18.0.100\"\nport = 9000\nprotocol = \"udp\"\nscheduler = \"rr\"\nforwarding = \"{ufwd}\"\n"));
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
    let servers: Vec<usize> = (0..3).map(|i| bed.host(&format!("s{i}"), s, &[&format!("198.18.1.{}/24", 11 + i)], routes).unwrap()).collect();
    let kit = bin("rvs-testkit").unwrap();
    for (i, &h) in servers.iter().enumerate() {
        let ns = &bed.h(h).ns;
        if matches!(mode, Mode::Dr | Mode::Tunnel) {
            ns.sh(&["ip", "addr", "add", "198.18.0.100/32", "dev", "lo"]).unwrap();
            for k in ["net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.lo.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0"] {
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
