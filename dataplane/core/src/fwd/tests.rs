//! Clocked tests driven by byte buffers: NAT both ways, ARP and echo,
//! connection reuse, and a drop reason for every kind of malformed input.
use super::*;
use crate::conn::State;
use crate::stats::{CoreStats, Counter};
use crate::table::{Compiler, Health};
use config::fixtures;
use rvs_testpkt::Tcp;
use rvs_wire::{arp, checksum, icmp, ipv4, tcp, Ipv4, Ipv6, MacAddr};
use rvs_wire::{ether, NicCsum, VecBuf};
use std::net::Ipv4Addr;

/// A forwarder with a test clock: the tests drive time with `set_now`
/// and call the forwarder's API with that time, as the worker loop does
/// with its clock.
#[derive(Debug)]
struct Clocked {
    f: Forwarder,
    now: u32,
}

impl Clocked {
    fn new(f: Forwarder) -> Clocked {
        Clocked { f, now: 0 }
    }
    fn set_now(&mut self, now: u32) {
        self.now = now;
    }
    fn process<B: PacketBuf>(&mut self, b: &mut B, port: u8) -> Verdict {
        self.f.process(self.now, b, port)
    }
    fn process_handed<B: PacketBuf>(&mut self, b: &mut B, port: u8) -> Verdict {
        self.f.process_handed(self.now, b, port)
    }
    fn process_at<B: PacketBuf>(&mut self, b: &mut B, port: u8, i: usize) -> Verdict {
        self.f.process_at(self.now, b, port, i)
    }
    fn sweep(&mut self, budget: usize) -> usize {
        self.f.sweep(self.now, budget)
    }
    fn urgent_probe(&self, slot: u32) -> Option<crate::table::NeighborRef> {
        self.f.urgent_probe(self.now, slot)
    }
    fn neighbour_probes(&self, out: &mut Vec<(crate::table::NeighborRef, Option<MacAddr>)>) {
        self.f.neighbour_probes(self.now, out);
    }
}

impl std::ops::Deref for Clocked {
    type Target = Forwarder;
    fn deref(&self) -> &Forwarder {
        &self.f
    }
}

impl std::ops::DerefMut for Clocked {
    fn deref_mut(&mut self) -> &mut Forwarder {
        &mut self.f
    }
}

const CLIENT_MAC: MacAddr = MacAddr([0x02, 0xc1, 0, 0, 0, 2]);
const P0_MAC: MacAddr = MacAddr([0x02, 0x00, 0, 0, 0, 0xa0]);
const P1_MAC: MacAddr = MacAddr([0x02, 0x00, 0, 0, 0, 0xa1]);

fn ip(s: &str) -> Ipv4 {
    Ipv4::from(s.parse::<Ipv4Addr>().unwrap())
}

fn rs_mac(i: u8) -> MacAddr {
    MacAddr([0x02, 0x5e, 0, 0, 0, 10 + i])
}

/// The shared two-port world (config::fixtures) with static neighbours for
/// three real servers, TCP 198.18.0.100:80 over them (`sched`, `fwd`,
/// weights 1) and UDP 198.18.0.100:53 round robin over two.
fn cfg_text(fwd: &str, sched: &str) -> String {
    cfg_weighted(fwd, sched, &[1, 1, 1])
}

fn cfg_weighted(fwd: &str, sched: &str, weights: &[u32]) -> String {
    let p = if fwd == "nat" || fwd == "fullnat" { 8080 } else { 80 };
    format!(
        "{}{}{}\n[[services]]\nvip = \"198.18.0.100\"\nport = 53\nprotocol = \"udp\"\nscheduler = \"rr\"\nforwarding = \"{fwd}\"\n\
         [[services.real_servers]]\naddress = \"198.18.1.11\"\n[[services.real_servers]]\naddress = \"198.18.1.12\"\n",
        fixtures::two_ports(),
        fixtures::server_neighbours(3),
        fixtures::service(sched, fwd, p, weights)
    )
}

fn forwarder(fwd: &str, sched: &str) -> Clocked {
    let c = config::from_str(&cfg_text(fwd, sched), "t.toml").unwrap();
    let mut comp = Compiler::new(&c);
    let snap = comp.compile(&c, &[P0_MAC, P1_MAC], &Health::new()).unwrap();
    let stats = Arc::new(CoreStats::new(snap.backends.len(), snap.services.len()));
    let mut f = Clocked::new(Forwarder::new(&ForwarderConfig::single(4096, 1024, [1, 2, 3, 4]), snap, stats));
    f.set_now(1000);
    f
}

fn syn(client: impl Into<Ipv4>, cport: u16) -> Vec<u8> {
    rvs_testpkt::tcp4(
        CLIENT_MAC,
        P0_MAC,
        client,
        ip("198.18.0.100"),
        &Tcp { sport: cport, dport: 80, flags: tcp::flags::SYN, seq: 1, payload: &[] },
    )
}

fn drops(f: &Clocked, r: DropReason) -> u64 {
    f.stats().drops[r.index()].get()
}

#[test]
fn nat_forward_and_reply() {
    let mut f = forwarder("nat", "rr");
    let client = ip("198.18.0.2");
    let mut b = VecBuf::new(&syn(client, 40000));
    assert_eq!(f.process(&mut b, 0), Verdict::Tx(1));
    let out = b.data();
    assert!(rvs_testpkt::checksums_ok(out));
    assert_eq!(ether::dst(out), rs_mac(1));
    assert_eq!(ether::src(out), P1_MAC);
    let h = ipv4::Ipv4Header::parse(&out[14..], true).unwrap();
    assert_eq!((h.src, h.dst, h.ttl), (client, ip("198.18.1.11"), 63));
    let t = tcp::TcpHeader::parse(&out[34..]).unwrap();
    assert_eq!((t.sport, t.dport), (40000, 8080));

    // The real server's SYN-ACK comes back through rvs and is un-NATed.
    let reply = rvs_testpkt::tcp4(
        rs_mac(1),
        P1_MAC,
        ip("198.18.1.11"),
        client,
        &Tcp { sport: 8080, dport: 40000, flags: tcp::flags::SYN | tcp::flags::ACK, seq: 9, payload: &[] },
    );
    let mut b = VecBuf::new(&reply);
    assert_eq!(f.process(&mut b, 1), Verdict::Tx(0));
    let out = b.data();
    assert!(rvs_testpkt::checksums_ok(out));
    assert_eq!(ether::dst(out), CLIENT_MAC);
    assert_eq!(ether::src(out), P0_MAC);
    let h = ipv4::Ipv4Header::parse(&out[14..], true).unwrap();
    assert_eq!((h.src, h.dst), (ip("198.18.0.100"), client));
    let t = tcp::TcpHeader::parse(&out[34..]).unwrap();
    assert_eq!((t.sport, t.dport), (80, 40000));

    // The client's ACK establishes; counters follow.
    let ack = rvs_testpkt::tcp4(
        CLIENT_MAC,
        P0_MAC,
        client,
        ip("198.18.0.100"),
        &Tcp { sport: 40000, dport: 80, flags: tcp::flags::ACK, seq: 2, payload: b"GET /" },
    );
    let mut b = VecBuf::new(&ack);
    assert_eq!(f.process(&mut b, 0), Verdict::Tx(1));
    let s = f.stats();
    let slot = f.snapshot().service(ip("198.18.0.100"), 80, 6).unwrap().backends[0];
    let bs = &s.backends[usize::from(slot)];
    assert_eq!((bs.conns.get(), bs.active.get(), bs.inactive.get(), bs.pkts_in.get(), bs.pkts_out.get()), (1, 1, 0, 2, 1));
    assert_eq!(f.sessions_v4(), 1);
}

#[test]
fn round_robin_spreads_new_flows_and_sessions_stick() {
    let mut f = forwarder("nat", "rr");
    let mut seen = Vec::new();
    for i in 0..6u16 {
        let mut b = VecBuf::new(&syn(ip("198.18.0.2"), 40000 + i));
        assert_eq!(f.process(&mut b, 0), Verdict::Tx(1));
        seen.push(ipv4::Ipv4Header::parse(&b.data()[14..], true).unwrap().dst);
    }
    assert_eq!(seen[..3], [ip("198.18.1.11"), ip("198.18.1.12"), ip("198.18.1.13")]);
    assert_eq!(seen[..3], seen[3..]);
    // A retransmitted SYN stays on its server.
    let mut b = VecBuf::new(&syn(ip("198.18.0.2"), 40001));
    assert_eq!(f.process(&mut b, 0), Verdict::Tx(1));
    assert_eq!(ipv4::Ipv4Header::parse(&b.data()[14..], true).unwrap().dst, ip("198.18.1.12"));
}

#[test]
fn weighted_round_robin_via_forwarder() {
    let c = cfg_weighted("nat", "wrr", &[1, 2, 3]);
    let c = config::from_str(&c, "t.toml").unwrap();
    let mut comp = Compiler::new(&c);
    let snap = comp.compile(&c, &[P0_MAC, P1_MAC], &Health::new()).unwrap();
    let stats = Arc::new(CoreStats::new(snap.backends.len(), snap.services.len()));
    let mut f = Clocked::new(Forwarder::new(&ForwarderConfig::single(4096, 1024, [1, 2, 3, 4]), snap, stats));
    let mut n = std::collections::HashMap::new();
    for i in 0..600u16 {
        let mut b = VecBuf::new(&syn(ip("198.18.0.2"), 1000 + i));
        assert_eq!(f.process(&mut b, 0), Verdict::Tx(1));
        *n.entry(ipv4::Ipv4Header::parse(&b.data()[14..], true).unwrap().dst).or_insert(0) += 1;
    }
    assert_eq!((n[&ip("198.18.1.11")], n[&ip("198.18.1.12")], n[&ip("198.18.1.13")]), (100, 200, 300));
}

#[test]
fn udp_nat_and_zero_checksum() {
    let mut f = forwarder("nat", "rr");
    let mut frame = rvs_testpkt::udp4(CLIENT_MAC, P0_MAC, ip("198.18.0.2"), ip("198.18.0.100"), 5353, 53, b"query");
    let mut b = VecBuf::new(&frame);
    assert_eq!(f.process(&mut b, 0), Verdict::Tx(1));
    assert!(rvs_testpkt::checksums_ok(b.data()));
    // RFC 768: a zero UDP checksum stays zero after NAT.
    frame[40] = 0;
    frame[41] = 0;
    let frame2 = {
        let mut g = frame.clone();
        g[35] = 0x36; // another source port: a new flow
        g
    };
    let mut b = VecBuf::new(&frame2);
    assert_eq!(f.process(&mut b, 0), Verdict::Tx(1));
    assert_eq!(&b.data()[40..42], &[0, 0]);
}

#[test]
fn dr_rewrites_only_macs_and_ttl() {
    let mut f = forwarder("dr", "rr");
    let frame = syn(ip("198.18.0.2"), 40000);
    let mut b = VecBuf::new(&frame);
    assert_eq!(f.process(&mut b, 0), Verdict::Tx(1));
    let out = b.data();
    assert_eq!(ether::dst(out), rs_mac(1));
    assert_eq!(&out[14 + 12..14 + 20], &frame[14 + 12..14 + 20]); // addresses untouched
    assert_eq!(&out[34..], &frame[34..]); // TCP untouched
    assert_eq!(out[22], 63);
    assert!(rvs_testpkt::checksums_ok(out));
}

#[test]
fn new_syn_on_closing_session_starts_afresh() {
    let mut f = forwarder("nat", "rr");
    let client = ip("198.18.0.2");
    let mut b = VecBuf::new(&syn(client, 40000));
    f.process(&mut b, 0);
    let first = ipv4::Ipv4Header::parse(&b.data()[14..], true).unwrap().dst;
    let rst = rvs_testpkt::tcp4(
        CLIENT_MAC,
        P0_MAC,
        client,
        ip("198.18.0.100"),
        &Tcp { sport: 40000, dport: 80, flags: tcp::flags::RST, seq: 2, payload: &[] },
    );
    let mut b = VecBuf::new(&rst);
    assert_eq!(f.process(&mut b, 0), Verdict::Tx(1));
    let mut b = VecBuf::new(&syn(client, 40000));
    assert_eq!(f.process(&mut b, 0), Verdict::Tx(1));
    let second = ipv4::Ipv4Header::parse(&b.data()[14..], true).unwrap().dst;
    assert_ne!(first, second, "the reused 5-tuple was scheduled anew");
    assert_eq!(f.stats().sessions_reused.get(), 1);
    assert_eq!(f.sessions_v4(), 1);
}

/// Full NAT's local ports: with 16 ports and two real servers, 32 flows
/// fit - each real server gets every port once (a port is free for a real
/// server when no reply key of its own holds it: the quick count of where
/// keys end says "perhaps", and the lookup decides); the 33rd is refused
/// (`local_ports_exhausted`); once the sessions expire every port is
/// handed out again, without a reply key ever shared.
#[test]
fn full_nat_local_ports_are_shared_across_servers_and_reused() {
    let c = config::from_str(&cfg_weighted("fullnat", "rr", &[1, 1]), "t.toml").unwrap();
    let mut comp = Compiler::new(&c);
    let snap = comp.compile(&c, &[P0_MAC, P1_MAC], &Health::new()).unwrap();
    let stats = Arc::new(CoreStats::new(snap.backends.len(), snap.services.len()));
    let mut fc = ForwarderConfig::single(4096, 1024, [1, 2, 3, 4]);
    fc.fullnat_ports = (2000, 2015);
    let mut f = Clocked::new(Forwarder::new(&fc, snap, stats));
    let mut client = 0u32;
    for round in 0..2u32 {
        f.set_now(1000 + round * 200_000);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..32 {
            client += 1;
            let mut b = VecBuf::new(&syn(ip("198.18.0.2") + client, 40000));
            assert_eq!(f.process(&mut b, 0), Verdict::Tx(1), "round {round}, flow {}", seen.len());
            let h = ipv4::Ipv4Header::parse(&b.data()[14..], true).unwrap();
            let t = tcp::TcpHeader::parse(&b.data()[34..]).unwrap();
            assert_eq!(h.src, ip("198.18.1.1"), "the server port's address");
            assert!((2000..=2015).contains(&t.sport), "{}", t.sport);
            assert!(seen.insert((h.dst, t.dport, h.src, t.sport)), "reply key {:?}:{} given twice", h.dst, t.sport);
        }
        for rs in ["198.18.1.11", "198.18.1.12"] {
            assert_eq!(seen.iter().filter(|k| k.0 == ip(rs)).count(), 16, "{rs}: every port once");
        }
        client += 1;
        let mut b = VecBuf::new(&syn(ip("198.18.0.2") + client, 40000));
        assert_eq!(f.process(&mut b, 0), Verdict::Drop(DropReason::LocalPortsExhausted));
        // Past the SYN timeout: every session expires.
        f.set_now(1000 + round * 200_000 + 121_000);
        let mut n = 0;
        for _ in 0..200 {
            n += f.sweep(64);
        }
        assert_eq!((n, f.sessions_v4()), (32, 0));
    }
    assert_eq!(drops(&f, DropReason::LocalPortsExhausted), 2);
}

#[test]
fn sessions_expire_and_sweep_releases_gauges() {
    let mut f = forwarder("nat", "rr");
    let mut b = VecBuf::new(&syn(ip("198.18.0.2"), 40000));
    f.process(&mut b, 0);
    assert_eq!(f.sessions_v4(), 1);
    f.set_now(1000 + 121_000); // past tcp_syn (120 s)
    let mut n = 0;
    for _ in 0..200 {
        n += f.sweep(64);
    }
    assert_eq!(n, 1);
    assert_eq!(f.sessions_v4(), 0);
    let total: u64 = f.stats().backends.iter().map(|b| b.inactive.get()).sum();
    assert_eq!(total, 0);
}

#[test]
fn answers_arp_for_vip_and_own_address_only() {
    let mut f = forwarder("nat", "rr");
    let mut frame = vec![0u8; 60];
    arp::write_request(&mut frame, CLIENT_MAC, Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 100), MacAddr::BROADCAST);
    let mut b = VecBuf::new(&frame);
    assert_eq!(f.process(&mut b, 0), Verdict::Answer(0));
    let a = arp::Arp::parse(&b.data()[14..]).unwrap();
    assert_eq!((a.op, a.sha, a.spa), (arp::OP_REPLY, P0_MAC, Ipv4Addr::new(198, 18, 0, 100)));
    // Own address of port 0, asked on port 0: answered.
    arp::write_request(&mut frame, CLIENT_MAC, Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 1), MacAddr::BROADCAST);
    let mut b = VecBuf::new(&frame);
    assert_eq!(f.process(&mut b, 0), Verdict::Answer(0));
    // Port 1's address asked on port 0, or a stranger: refused.
    arp::write_request(&mut frame, CLIENT_MAC, Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 1, 1), MacAddr::BROADCAST);
    assert_eq!(f.process(&mut VecBuf::new(&frame), 0), Verdict::Drop(DropReason::ArpNotForUs));
    arp::write_request(&mut frame, CLIENT_MAC, Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 77), MacAddr::BROADCAST);
    assert_eq!(f.process(&mut VecBuf::new(&frame), 0), Verdict::Drop(DropReason::ArpNotForUs));
}

#[test]
fn learns_neighbours_from_arp() {
    // The same configuration without static neighbours.
    let text = cfg_text("nat", "rr");
    let start = text.find("[[neighbors]]").unwrap();
    let end = text.find("[[services]]").unwrap();
    let text = format!("{}{}", &text[..start], &text[end..]);
    let c = config::from_str(&text, "t.toml").unwrap();
    let mut comp = Compiler::new(&c);
    let snap = comp.compile(&c, &[P0_MAC, P1_MAC], &Health::new()).unwrap();
    let stats = Arc::new(CoreStats::new(snap.backends.len(), snap.services.len()));
    let mut f = Clocked::new(Forwarder::new(&ForwarderConfig::single(4096, 1024, [1, 2, 3, 4]), snap, stats));
    f.set_now(5);
    // Unresolved: the SYN is rewritten and held for the real server's
    // neighbour slot (with no destination MAC yet), one urgent probe goes
    // out however many frames wait, and the periodic probes are due.
    let mut held = VecBuf::new(&syn(ip("198.18.0.2"), 1));
    let Verdict::Hold { port: 1, neigh } = f.process(&mut held, 0) else { panic!("not held") };
    assert_eq!(&held.data()[..6], &[0; 6]);
    assert_eq!(&held.data()[6..12], &P1_MAC.0);
    assert_eq!(f.neighbour_mac(neigh), None);
    let urgent = f.urgent_probe(neigh).expect("a probe for the held frame");
    assert_eq!(f.urgent_probe(neigh), None, "one probe per gap");
    let mut probes = Vec::new();
    f.neighbour_probes(&mut probes);
    assert_eq!(probes.len(), 2, "the urgently probed neighbour is not due again");
    assert!(probes.iter().all(|p| p.0.slot != neigh));
    let mut frame = [0u8; 128];
    let (len, port) = f.build_probe(&probes[0].0, probes[0].1, &mut frame).unwrap();
    assert_eq!(port, 1);
    let req = arp::Arp::parse(&frame[14..len]).unwrap();
    assert_eq!(req.spa, Ipv4Addr::new(198, 18, 1, 1));
    // The real server answers; the next SYN goes through.
    for i in 1..=3u8 {
        let mut reply = vec![0u8; 60];
        ether::write_header(&mut reply, P1_MAC, rs_mac(i), ether::ethertype::ARP);
        arp::Arp {
            op: arp::OP_REPLY,
            sha: rs_mac(i),
            spa: Ipv4Addr::new(198, 18, 1, 10 + i),
            tha: P1_MAC,
            tpa: Ipv4Addr::new(198, 18, 1, 1),
        }
        .write(&mut reply[14..]);
        assert_eq!(f.process(&mut VecBuf::new(&reply), 1), Verdict::Consumed);
    }
    assert_eq!(f.process(&mut VecBuf::new(&syn(ip("198.18.0.2"), 2)), 0), Verdict::Tx(1));
    // The held frame's neighbour is the one that was probed, now resolved.
    let i = usize::from(urgent.addr.to_string().rsplit('.').next().unwrap().parse::<u8>().unwrap() - 10);
    assert_eq!(f.neighbour_mac(neigh), Some(rs_mac(u8::try_from(i).unwrap())));
}

#[test]
fn answers_echo_to_vip() {
    let mut f = forwarder("nat", "rr");
    let p = rvs_testpkt::ping4(CLIENT_MAC, P0_MAC, ip("198.18.0.2"), ip("198.18.0.100"), 7, 1);
    let mut b = VecBuf::new(&p);
    assert_eq!(f.process(&mut b, 0), Verdict::Answer(0));
    let h = ipv4::Ipv4Header::parse(&b.data()[14..], true).unwrap();
    assert_eq!((h.src, h.dst), (ip("198.18.0.100"), ip("198.18.0.2")));
    let m = icmp::IcmpHeader::parse_v4(&b.data()[34..]).unwrap();
    assert_eq!(m.ty, icmp::v4::ECHO_REPLY);
    assert_eq!(ether::dst(b.data()), CLIENT_MAC);
}

#[test]
fn ttl_one_gets_time_exceeded() {
    let mut f = forwarder("nat", "rr");
    let mut frame = syn(ip("198.18.0.2"), 40000);
    frame[22] = 1;
    frame[24] = 0;
    frame[25] = 0;
    let c = checksum::checksum(&frame[14..34]);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
    let mut b = VecBuf::new(&frame);
    assert_eq!(f.process(&mut b, 0), Verdict::Reply { port: 0, reason: DropReason::TtlExceeded });
    let h = ipv4::Ipv4Header::parse(&b.data()[14..], true).unwrap();
    assert_eq!((h.src, h.dst, h.proto), (ip("198.18.0.1"), ip("198.18.0.2"), 1));
    assert_eq!(icmp::IcmpHeader::parse_v4(&b.data()[34..]).unwrap().ty, icmp::v4::TIME_EXCEEDED);
    assert_eq!(drops(&f, DropReason::TtlExceeded), 1);
    assert_eq!(f.sessions_v4(), 0, "a packet that cannot leave opens no session");
}

/// Every malformation is dropped with its own reason and nothing panics.
#[test]
fn malformed_frames_are_dropped_per_reason() {
    let mut f = forwarder("nat", "rr");
    let good = syn(ip("198.18.0.2"), 40000);
    let mut cases: Vec<(Vec<u8>, DropReason)> = Vec::new();
    cases.push((good[..13].to_vec(), DropReason::EthTruncated));
    cases.push((good[..30].to_vec(), DropReason::Ipv4Truncated));
    let mut v = good.clone();
    v[14] = 0x65;
    cases.push((v, DropReason::Ipv4BadVersion));
    let mut v = good.clone();
    v[14] = 0x44;
    cases.push((v, DropReason::Ipv4BadHeaderLen));
    let mut v = good.clone();
    v[16..18].copy_from_slice(&200u16.to_be_bytes());
    cases.push((v, DropReason::Ipv4BadTotalLen));
    let mut v = good.clone();
    v[16..18].copy_from_slice(&10u16.to_be_bytes());
    cases.push((v, DropReason::Ipv4BadTotalLen));
    let mut v = good.clone();
    v[24] ^= 0x55;
    cases.push((v, DropReason::Ipv4BadChecksum));
    let mut v = good.clone();
    v[34 + 12] = 0xf0; // data offset 15 words: past the segment
    cases.push((v, DropReason::TcpBadHeaderLen));
    let mut v = good.clone();
    v[34 + 16] ^= 0x01; // TCP checksum
    cases.push((v, DropReason::TcpBadChecksum));
    let mut v = good.clone();
    v.truncate(34 + 10);
    v[16..18].copy_from_slice(&30u16.to_be_bytes());
    let c = {
        v[24] = 0;
        v[25] = 0;
        checksum::checksum(&v[14..34])
    };
    v[24..26].copy_from_slice(&c.to_be_bytes());
    cases.push((v, DropReason::TcpTruncated));
    let mut v = good.clone();
    v[0..6].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
    cases.push((v, DropReason::EthNotForUs));
    let mut v = good.clone();
    v[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
    cases.push((v, DropReason::EthUnsupported));
    let mut v = good.clone();
    v[26..30].copy_from_slice(&[224, 0, 0, 1]);
    let c = {
        v[24] = 0;
        v[25] = 0;
        checksum::checksum(&v[14..34])
    };
    v[24..26].copy_from_slice(&c.to_be_bytes());
    cases.push((v, DropReason::Ipv4BadSource));
    // A non-SYN with no session, a SYN+FIN, a port with no service.
    let ack = rvs_testpkt::tcp4(
        CLIENT_MAC,
        P0_MAC,
        ip("198.18.0.2"),
        ip("198.18.0.100"),
        &Tcp { sport: 1, dport: 80, flags: tcp::flags::ACK, seq: 1, payload: &[] },
    );
    cases.push((ack, DropReason::TcpNoSession));
    let synfin = rvs_testpkt::tcp4(
        CLIENT_MAC,
        P0_MAC,
        ip("198.18.0.2"),
        ip("198.18.0.100"),
        &Tcp { sport: 2, dport: 80, flags: tcp::flags::SYN | tcp::flags::FIN, seq: 1, payload: &[] },
    );
    cases.push((synfin, DropReason::TcpBadFlags));
    let other = rvs_testpkt::tcp4(
        CLIENT_MAC,
        P0_MAC,
        ip("198.18.0.2"),
        ip("198.18.0.100"),
        &Tcp { sport: 3, dport: 81, flags: tcp::flags::SYN, seq: 1, payload: &[] },
    );
    cases.push((other, DropReason::NoService));
    let stray = rvs_testpkt::tcp4(
        CLIENT_MAC,
        P0_MAC,
        ip("198.18.0.2"),
        ip("198.18.7.7"),
        &Tcp { sport: 3, dport: 81, flags: tcp::flags::SYN, seq: 1, payload: &[] },
    );
    cases.push((stray, DropReason::TcpNoSession));
    let mut udp = rvs_testpkt::udp4(CLIENT_MAC, P0_MAC, ip("198.18.0.2"), ip("198.18.0.100"), 5, 53, b"x");
    udp[38..40].copy_from_slice(&4u16.to_be_bytes());
    cases.push((udp.clone(), DropReason::UdpBadLen));
    udp[38..40].copy_from_slice(&9u16.to_be_bytes());
    udp[41] ^= 0xff;
    cases.push((udp, DropReason::UdpBadChecksum));
    let mut frag = good.clone();
    frag[20] = 0x20; // MF
    let c = {
        frag[24] = 0;
        frag[25] = 0;
        checksum::checksum(&frag[14..34])
    };
    frag[24..26].copy_from_slice(&c.to_be_bytes());
    cases.push((frag, DropReason::Fragment));

    for (i, (frame, want)) in cases.iter().enumerate() {
        let before = drops(&f, *want);
        let got = f.process(&mut VecBuf::new(frame), 0);
        assert_eq!(got, Verdict::Drop(*want), "case {i}");
        assert_eq!(drops(&f, *want), before + 1, "case {i} counted");
    }
    assert_eq!(f.sessions_v4(), 0, "no malformed packet created a session");
}

/// A corpus of valid frames of every kind rvs parses.
fn corpus() -> Vec<Vec<u8>> {
    let c6 = 0x2001_0db8u128 << 96 | 0x10;
    let vip6 = 0x2001_0db8u128 << 96 | 0x100;
    let rs6 = 0x2001_0db8_0001u128 << 80 | 0x11;
    let mut v = vec![
        syn(ip("198.18.0.2"), 40000),
        rvs_testpkt::udp4(CLIENT_MAC, P0_MAC, ip("198.18.0.2"), ip("198.18.0.100"), 5, 53, b"q"),
        rvs_testpkt::tcp4(
            rs_mac(1),
            P1_MAC,
            ip("198.18.1.11"),
            ip("198.18.0.2"),
            &Tcp { sport: 8080, dport: 40000, flags: tcp::flags::SYN | tcp::flags::ACK, seq: 1, payload: &[] },
        ),
        rvs_testpkt::tcp6(CLIENT_MAC, P0_MAC, c6, vip6, &Tcp { sport: 40000, dport: 80, flags: tcp::flags::SYN, seq: 1, payload: b"x" }),
        rvs_testpkt::udp6(rs_mac(1), P1_MAC, rs6, c6, 9000, 5, b"a"),
        rvs_testpkt::ping4(CLIENT_MAC, P0_MAC, ip("198.18.0.2"), ip("198.18.0.100"), 1, 1),
    ];
    let mut arp = vec![0u8; 60];
    arp::write_request(&mut arp, CLIENT_MAC, Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 100), MacAddr::BROADCAST);
    v.push(arp);
    let mut ns = vec![0u8; 128];
    let n = icmp::write_neighbor_solicit(&mut ns, CLIENT_MAC, Ipv6(c6), Ipv6(vip6), None);
    ns.truncate(n);
    v.push(ns);
    // ICMP errors quoting a session's packet, both families.
    for base in [
        syn(ip("198.18.0.2"), 40000),
        rvs_testpkt::tcp6(CLIENT_MAC, P0_MAC, c6, vip6, &Tcp { sport: 40000, dport: 80, flags: tcp::flags::SYN, seq: 1, payload: &[] }),
    ] {
        let mut b = VecBuf::new(&base);
        let v6 = ether::ethertype(&base) == ether::ethertype::IPV6;
        if v6 {
            icmp::error_v6(&mut b, P0_MAC, Ipv6(vip6), icmp::v6::PACKET_TOO_BIG, 0, 1280);
        } else {
            icmp::error_v4(&mut b, P0_MAC, ip("198.18.0.100"), icmp::v4::DEST_UNREACH, 4, 1000);
        }
        let mut e = b.to_vec();
        ether::set_macs(&mut e, P0_MAC, CLIENT_MAC);
        v.push(e);
    }
    v
}

/// Random byte flips and truncations of every corpus frame, through
/// forwarders in every mode: nothing panics, and the verdict is always
/// well-formed.
#[test]
fn fuzzed_frames_never_panic() {
    use proptest::prelude::*;
    let fwds: Vec<std::cell::RefCell<Clocked>> =
        ["nat", "fullnat", "dr", "tunnel"].iter().map(|m| std::cell::RefCell::new(forwarder(m, "rr"))).collect();
    let corpus = corpus();
    // Open a session in each forwarder so replies and errors find one.
    for f in &fwds {
        for frame in &corpus {
            let _ = f.borrow_mut().process(&mut VecBuf::new(frame), 0);
        }
    }
    proptest!(ProptestConfig { cases: 20000, ..ProptestConfig::default() }, |(which in 0usize..64, flips in prop::collection::vec((0usize..160, any::<u8>()), 0..6), cut in 1usize..200, port in 0u8..3)| {
        let mut v = corpus[which % corpus.len()].clone();
        for (at, x) in flips {
            if at < v.len() { v[at] ^= x; }
        }
        v.truncate(cut.min(v.len()));
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for f in &fwds {
            let mut b = VecBuf::new(&v);
            let before = verdicts_counted(f.borrow().stats());
            let verdict = f.borrow_mut().process(&mut b, port);
            prop_assert_eq!(verdicts_counted(f.borrow().stats()), before + 1, "exactly one count for {:?}", verdict);
            match verdict {
                Verdict::Tx(p) | Verdict::Answer(p) => prop_assert!(p < 2 && b.len() >= 14),
                Verdict::Reply { port: p, reason } => prop_assert!(p < 2 && b.len() >= 14 && reason.class() == crate::drop::DropClass::Verdict),
                Verdict::Hold { port: p, .. } => prop_assert!(p < 2 && b.len() >= 14),
                Verdict::Drop(r) => prop_assert_eq!(r.class(), crate::drop::DropClass::Verdict),
                Verdict::Consumed | Verdict::Kernel(_) | Verdict::Handover(_) => {}
            }
        }
    });
    assert_eq!(RUNS.load(std::sync::atomic::Ordering::Relaxed), 20000, "every case ran");
}

static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Every verdict counter of a core: frames forwarded, answered, consumed,
/// passed to the kernel, handed over, held, and verdict-class drops.
fn verdicts_counted(s: &CoreStats) -> u64 {
    let f = &s.frames;
    let drops: u64 =
        DropReason::ALL.iter().filter(|r| r.class() == crate::drop::DropClass::Verdict).map(|r| s.drops[r.index()].get()).sum();
    f.forwarded.get() + f.answered.get() + f.consumed.get() + f.to_kernel.get() + f.handed_over.get() + f.held.get() + drops
}

/// The counting invariant over every frame kind the tests generate (the
/// corpus: every mode, both families, ARP/ND, ICMP errors, TTL 1, too
/// big, malformed and policy cases), in every mode, on both ports and
/// twice over (new flows, then established ones): each frame is counted
/// exactly once, under the counter its verdict names.
#[test]
fn every_frame_is_counted_exactly_once_by_its_verdict() {
    for mode in ["nat", "fullnat", "dr", "tunnel"] {
        let mut f = forwarder(mode, "rr");
        for round in 0..2 {
            for (i, frame) in corpus().iter().enumerate() {
                for port in 0..2u8 {
                    let s = f.stats().clone();
                    let before = verdicts_counted(&s);
                    let (fw, an, drops) =
                        (s.frames.forwarded.get(), s.frames.answered.get(), s.drops.iter().map(Counter::get).sum::<u64>());
                    let v = f.process(&mut VecBuf::new(frame), port);
                    assert_eq!(verdicts_counted(&s), before + 1, "{mode} round {round} frame {i} port {port}: {v:?}");
                    match v {
                        Verdict::Tx(_) => assert_eq!(s.frames.forwarded.get(), fw + 1),
                        Verdict::Answer(_) => assert_eq!(s.frames.answered.get(), an + 1),
                        Verdict::Reply { .. } | Verdict::Drop(_) => {
                            assert_eq!(s.drops.iter().map(Counter::get).sum::<u64>(), drops + 1, "{mode} frame {i}: {v:?}");
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// A forwarder over a configuration text.
fn forwarder_from(text: &str, cap: u32) -> (Clocked, Compiler, config::Config) {
    let c = config::from_str(text, "t.toml").unwrap();
    let mut comp = Compiler::new(&c);
    let snap = comp.compile(&c, &[P0_MAC, P1_MAC], &Health::new()).unwrap();
    let stats = Arc::new(CoreStats::new(snap.backends.len(), snap.services.len()));
    let mut f = Clocked::new(Forwarder::new(&ForwarderConfig::single(cap, 1024, [5, 6, 7, 8]), snap, stats));
    f.set_now(1000);
    (f, comp, c)
}

fn dst_of(b: &VecBuf) -> Ipv4 {
    ipv4::Ipv4Header::parse(&b.data()[14..], true).unwrap().dst
}

#[test]
fn persistence_keeps_a_client_network_on_one_server() {
    let text = cfg_text("nat", "rr").replacen(
        "forwarding = \"nat\"\n",
        "forwarding = \"nat\"\npersistence = { timeout = 300, netmask = 24 }\n",
        1,
    );
    let (mut f, _, _) = forwarder_from(&text, 4096);
    let mut first = None;
    for (i, client) in ["198.18.0.2", "198.18.0.3", "198.18.0.2", "198.18.0.77"].iter().cycle().take(40).enumerate() {
        let mut b = VecBuf::new(&syn(ip(client), 10_000 + u16::try_from(i).unwrap()));
        assert_eq!(f.process(&mut b, 0), Verdict::Tx(1));
        let d = dst_of(&b);
        assert_eq!(*first.get_or_insert(d), d, "connection {i} from {client} left its server");
    }
    // Without persistence, round robin would have used all three.
    let (mut g, _, _) = forwarder_from(&cfg_text("nat", "rr"), 4096);
    let mut seen = std::collections::HashSet::new();
    for i in 0..6u16 {
        let mut b = VecBuf::new(&syn(ip("198.18.0.2"), 10_000 + i));
        g.process(&mut b, 0);
        seen.insert(dst_of(&b));
    }
    assert_eq!(seen.len(), 3);
}

#[test]
fn persistence_template_expires_after_the_last_connection() {
    let text = cfg_text("nat", "rr").replacen("forwarding = \"nat\"\n", "forwarding = \"nat\"\npersistence = { timeout = 60 }\n", 1);
    let (mut f, _, _) = forwarder_from(&text, 4096);
    let mut b = VecBuf::new(&syn(ip("198.18.0.2"), 1));
    f.process(&mut b, 0);
    let server = dst_of(&b);
    // The session times out (SYN 120 s) and is swept; the template then
    // lives 60 s more.
    f.set_now(1000 + 121_000);
    for _ in 0..200 {
        f.sweep(64);
    }
    f.set_now(1000 + 121_000 + 30_000);
    let mut b = VecBuf::new(&syn(ip("198.18.0.2"), 2));
    f.process(&mut b, 0);
    assert_eq!(dst_of(&b), server, "template still alive 30 s after the last connection");
    f.set_now(1000 + 121_000 + 30_000 + 121_000 + 61_000);
    for _ in 0..200 {
        f.sweep(64);
    }
    let mut b = VecBuf::new(&syn(ip("198.18.0.2"), 3));
    f.process(&mut b, 0);
    assert_ne!(dst_of(&b), server, "after the timeout the client is scheduled anew (round robin moves on)");
}

fn without(text: &str, addr: &str, port: u16) -> String {
    text.replacen(&format!("[[services.real_servers]]\naddress = \"{addr}\"\nport = {port}\nweight = 1\n"), "", 1)
}

#[test]
fn removed_server_resets_or_keeps_sessions() {
    for keep in [false, true] {
        let mut text = cfg_text("nat", "rr");
        if keep {
            text = text.replacen("forwarding = \"nat\"\n", "forwarding = \"nat\"\non_remove = \"keep\"\n", 1);
        }
        let (mut f, mut comp, _) = forwarder_from(&text, 4096);
        let mut b = VecBuf::new(&syn(ip("198.18.0.2"), 40000));
        f.process(&mut b, 0);
        assert_eq!(dst_of(&b), ip("198.18.1.11"));
        let c2 = config::from_str(&without(&text, "198.18.1.11", 8080), "t.toml").unwrap();
        f.install(comp.compile(&c2, &[P0_MAC, P1_MAC], &Health::new()).unwrap());
        let ack = rvs_testpkt::tcp4(
            CLIENT_MAC,
            P0_MAC,
            ip("198.18.0.2"),
            ip("198.18.0.100"),
            &Tcp { sport: 40000, dport: 80, flags: tcp::flags::ACK, seq: 2, payload: b"more" },
        );
        let mut b = VecBuf::new(&ack);
        let v = f.process(&mut b, 0);
        if keep {
            assert_eq!(v, Verdict::Tx(1), "kept sessions still reach the removed server");
            assert_eq!(dst_of(&b), ip("198.18.1.11"));
            // New connections never go to it.
            for i in 0..6u16 {
                let mut b = VecBuf::new(&syn(ip("198.18.0.9"), 2000 + i));
                f.process(&mut b, 0);
                assert_ne!(dst_of(&b), ip("198.18.1.11"));
            }
        } else {
            assert_eq!(v, Verdict::Reply { port: 0, reason: DropReason::NoBackend }, "the client gets a reset");
            let d = b.data();
            assert_eq!(ether::dst(d), CLIENT_MAC);
            let h = ipv4::Ipv4Header::parse(&d[14..], true).unwrap();
            assert_eq!((h.src, h.dst), (ip("198.18.0.100"), ip("198.18.0.2")));
            assert!(rvs_testpkt::checksums_ok(d));
            let t = tcp::TcpHeader::parse(&d[34..]).unwrap();
            assert_eq!((t.sport, t.dport, t.flags, t.seq), (80, 40000, tcp::flags::RST, 0), "RST with the segment's ACK number");
            assert_eq!(f.sessions_v4(), 0);
            assert_eq!(f.stats().resets_sent.get(), 1);
        }
    }
}

#[test]
fn sweep_purges_sessions_of_removed_servers_and_reports_passes() {
    let text = cfg_text("nat", "rr");
    let (mut f, mut comp, _) = forwarder_from(&text, 1024);
    for i in 0..6u16 {
        let mut b = VecBuf::new(&syn(ip("198.18.0.2"), 3000 + i));
        f.process(&mut b, 0);
    }
    assert_eq!(f.sessions_v4(), 6);
    let c2 = config::from_str(&without(&text, "198.18.1.11", 8080), "t.toml").unwrap();
    let snap = comp.compile(&c2, &[P0_MAC, P1_MAC], &Health::new()).unwrap();
    let g = snap.generation;
    f.install(snap);
    for _ in 0..40 {
        f.sweep(64);
    }
    assert!(f.stats().swept_generation.get() >= g, "a full pass since the removal is reported");
    let total: u64 = f.stats().backends.iter().map(|b| b.inactive.get()).sum();
    assert_eq!(total, 4, "gauges stay exact");
    // The removed server's two TCP sessions are tombstones that refer to no
    // server and reset the client's next segment.
    let tombs: Vec<u16> = f.sessions4().filter(|s| s.state == State::Reset).map(|s| s.cport).collect();
    assert_eq!(tombs.len(), 2);
    assert!(f.sessions4().all(|s| s.state == State::Reset || f.snapshot().backend(s.backend).is_some()));
    let ack = rvs_testpkt::tcp4(
        CLIENT_MAC,
        P0_MAC,
        ip("198.18.0.2"),
        ip("198.18.0.100"),
        &Tcp { sport: tombs[0], dport: 80, flags: tcp::flags::ACK, seq: 9, payload: &[] },
    );
    let mut b = VecBuf::new(&ack);
    assert_eq!(f.process(&mut b, 0), Verdict::Reply { port: 0, reason: DropReason::NoBackend });
    assert_eq!(tcp::TcpHeader::parse(&b.data()[34..]).unwrap().flags, tcp::flags::RST);
    assert_eq!(f.sessions_v4(), 5);
    // The other tombstone times out (tcp_close, 10 s).
    f.set_now(1000 + 11_000);
    for _ in 0..40 {
        f.sweep(64);
    }
    assert_eq!(f.sessions_v4(), 4);
    let total: u64 = f.stats().backends.iter().map(|b| b.inactive.get()).sum();
    assert_eq!(total, 4, "tombstones never touch the gauges again");
}

#[test]
fn full_table_refuses_or_forwards_statelessly() {
    // DR so that stateless forwarding is possible.
    for stateless in [false, true] {
        let mut text = cfg_text("dr", "rr");
        if stateless {
            text = text.replacen("forwarding = \"dr\"\n", "forwarding = \"dr\"\nwhen_full = \"stateless\"\n", 1);
        }
        let (mut f, _, _) = forwarder_from(&text, 1024);
        for i in 0..1024u32 {
            // Clients from 198.19.0.0/16: none is one of the balancer's
            // own addresses (those are martian sources).
            let client = 0xc613_0000 | (i + 2);
            let mut b = VecBuf::new(&syn(client, 5000));
            assert_eq!(f.process(&mut b, 0), Verdict::Tx(1));
        }
        assert_eq!(f.sessions_v4(), 1024);
        let newcomer = syn(ip("198.18.7.7"), 7777);
        let v = f.process(&mut VecBuf::new(&newcomer), 0);
        if stateless {
            assert_eq!(v, Verdict::Tx(1));
            // Its next segment has no session either, and follows the same
            // Maglev choice.
            let mut b1 = VecBuf::new(&newcomer);
            f.process(&mut b1, 0);
            let ack = rvs_testpkt::tcp4(
                CLIENT_MAC,
                P0_MAC,
                ip("198.18.7.7"),
                ip("198.18.0.100"),
                &Tcp { sport: 7777, dport: 80, flags: tcp::flags::ACK, seq: 2, payload: b"x" },
            );
            let mut b2 = VecBuf::new(&ack);
            assert_eq!(f.process(&mut b2, 0), Verdict::Tx(1));
            assert_eq!(ether::dst(b1.data()), ether::dst(b2.data()));
            assert!(f.stats().stateless_flows.get() >= 3);
        } else {
            assert_eq!(v, Verdict::Drop(DropReason::SessionTableFull));
        }
    }
}

#[test]
fn least_connection_sees_the_other_cores() {
    let text = cfg_text("nat", "lc");
    let c = config::from_str(&text, "t.toml").unwrap();
    let mut comp = Compiler::new(&c);
    let snap = comp.compile(&c, &[P0_MAC, P1_MAC], &Health::new()).unwrap();
    let peers: Vec<Arc<CoreStats>> = (0..2).map(|_| Arc::new(CoreStats::new(snap.backends.len(), snap.services.len()))).collect();
    let mut cfg0 = ForwarderConfig::single(4096, 1024, [1, 2, 3, 4]);
    cfg0.cores = 2;
    let mut cfg1 = cfg0.clone();
    cfg1.core = 1;
    let mut a = Clocked::new(Forwarder::new(&cfg0, snap.clone(), peers[0].clone()));
    let mut b = Clocked::new(Forwarder::new(&cfg1, snap, peers[1].clone()));
    a.set_peers(peers.clone());
    b.set_peers(peers.clone());
    // Core A opens two connections: lc gives them to rs1 and rs2.
    for port in [1u16, 2] {
        a.process(&mut VecBuf::new(&syn(ip("198.18.0.2"), port)), 0);
    }
    // Core B, once it has refreshed the other cores' counts, sends its new
    // connection to the idle rs3 rather than to rs1.
    b.refresh_load();
    let mut x = VecBuf::new(&syn(ip("198.18.0.3"), 3));
    b.process(&mut x, 0);
    assert_eq!(dst_of(&x), ip("198.18.1.13"));
}

/// Everything a forwarder counted, for comparing two of them.
fn counters(f: &Clocked) -> Vec<u64> {
    let s = f.stats();
    let mut v: Vec<u64> = s.drops.iter().map(Counter::get).collect();
    for b in &s.backends {
        v.extend([b.conns.get(), b.active.get(), b.inactive.get(), b.pkts_in.get(), b.pkts_out.get(), b.bytes_in.get(), b.bytes_out.get()]);
    }
    for x in &s.services {
        v.extend([x.conns.get(), x.pkts_in.get(), x.pkts_out.get(), x.bytes_in.get(), x.bytes_out.get()]);
    }
    v.extend([
        s.sessions_v4.get(),
        s.sessions_v6.get(),
        s.sessions_created.get(),
        s.sessions_expired.get(),
        s.sessions_reused.get(),
        s.icmp_errors_sent.get(),
        s.neigh_held.get(),
    ]);
    v
}

/// A frame of the fast-path comparison and what a NIC said of it (IP
/// header checksum, L4 checksum).
type NicFrame = (Vec<u8>, NicCsum, NicCsum);

/// Sends the same 600 bursts of 32 frames made by `frame` (given a random
/// number source: `rnd(n)` is below `n`) through `fast` and through `slow`
/// (its fast path off), and checks they agree packet for packet: the same
/// verdict, the same bytes out, the same counters after every burst. Time
/// passes every 100 bursts, past the SYN timeout. Returns how many packets
/// the fast path forwarded.
fn paths_agree(mode: &str, fast: &mut Clocked, slow: &mut Clocked, mut frame: impl FnMut(&mut dyn FnMut(u64) -> u64) -> NicFrame) -> u64 {
    slow.set_fast_path(false);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut now = 1000u32;
    for round in 0..600 {
        if round % 100 == 99 {
            now += 130_000; // past the SYN timeout: half-open sessions expire
            fast.set_now(now);
            slow.set_now(now);
        }
        let burst: Vec<NicFrame> = (0..32).map(|_| frame(&mut rnd)).collect();
        let nic = |(f, ip, l4): &NicFrame| {
            let mut b = VecBuf::new(f);
            b.set_nic_csum(*ip, *l4);
            b
        };
        let mut fb: Vec<VecBuf> = burst.iter().map(nic).collect();
        let mut sb: Vec<VecBuf> = burst.iter().map(nic).collect();
        let burst: Vec<Vec<u8>> = burst.into_iter().map(|b| b.0).collect();
        let in_port = |f: &[u8]| u8::from(f[6..12] != CLIENT_MAC.0);
        fast.prepare(&fb);
        slow.prepare(&sb);
        for i in 0..32 {
            let vf = fast.process_at(&mut fb[i], in_port(&burst[i]), i);
            let vs = slow.process_at(&mut sb[i], in_port(&burst[i]), i);
            assert_eq!(vf, vs, "{mode}: verdicts differ for {:02x?}", burst[i]);
            assert_eq!(fb[i].data(), sb[i].data(), "{mode}: output differs for {:02x?}", burst[i]);
        }
        assert_eq!(counters(fast), counters(slow), "{mode}: counters differ after round {round}");
    }
    let fast_hits = fast.stats().fast_path.get();
    assert_eq!(slow.stats().fast_path.get(), 0);
    assert!(fast_hits > 2000, "{mode}: the mix exercised the fast path ({fast_hits} packets)");
    println!("{mode}: {fast_hits} of {} packets took the fast path", 600 * 32);
    fast_hits
}

/// The TCP flags of the comparison's frames, one at random.
fn random_flags(rnd: &mut dyn FnMut(u64) -> u64) -> u8 {
    [tcp::flags::SYN, tcp::flags::ACK, tcp::flags::ACK | tcp::flags::PSH, tcp::flags::FIN | tcp::flags::ACK, tcp::flags::RST]
        [usize::try_from(rnd(5)).unwrap()]
}

/// The fast path and the general path agree packet for packet (see
/// [`paths_agree`]) over a random mix of new and established flows in both
/// directions, TCP state changes, and frames the fast path must leave to
/// the general one (TTL 1, bad checksums and lengths, options, multicast,
/// other MACs, our own address as source, a SYN on a closing session, time
/// passing so sessions expire), in every mode; the session tables end
/// equal.
#[test]
fn fast_path_equals_general_path() {
    for mode in ["nat", "fullnat", "dr", "tunnel"] {
        let mut fast = forwarder(mode, "rr");
        let mut slow = forwarder(mode, "rr");
        paths_agree(mode, &mut fast, &mut slow, |rnd| {
            // Now and then the VIP itself as source (the "land"
            // attack), which both paths must drop as such.
            let c = if rnd(64) == 0 { ip("198.18.0.100") } else { ip("198.18.0.2") + u32::try_from(rnd(4)).unwrap() };
            let cport = 40000 + u16::try_from(rnd(24)).unwrap();
            let flags = random_flags(rnd);
            let mut f = match rnd(10) {
                0..=5 => rvs_testpkt::tcp4(
                    CLIENT_MAC,
                    P0_MAC,
                    c,
                    ip("198.18.0.100"),
                    &Tcp { sport: cport, dport: 80, flags, seq: 1, payload: b"data" },
                ),
                6 => rvs_testpkt::udp4(CLIENT_MAC, P0_MAC, c, ip("198.18.0.100"), cport, 53, b"q"),
                _ => {
                    // A reply from one of the real servers (NAT: to the
                    // client; full NAT: to a local address and port).
                    let rs = ip("198.18.1.11") + u32::try_from(rnd(3)).unwrap();
                    let (dst, dport) =
                        if mode == "fullnat" { (ip("198.18.1.1"), 1024 + u16::try_from(rnd(40)).unwrap()) } else { (c, cport) };
                    let sport = if mode == "nat" || mode == "fullnat" { 8080 } else { 80 };
                    rvs_testpkt::tcp4(rs_mac(1), P1_MAC, rs, dst, &Tcp { sport, dport, flags, seq: 9, payload: b"resp" })
                }
            };
            // Now and then something the fast path must refuse.
            let mut l4 = [NicCsum::Unknown, NicCsum::Good][usize::try_from(rnd(2)).unwrap()];
            match rnd(40) {
                0 => f[22] = 1,                                         // TTL 1
                1 => f[24] ^= 0x40,                                     // IPv4 checksum
                2 => f[16..18].copy_from_slice(&9999u16.to_be_bytes()), // total length
                3 => f[0] = 0x03,                                       // another MAC
                4 if f[23] == 6 => {
                    f[46] = 0x40; // TCP data offset 16 bytes
                    l4 = NicCsum::Unknown;
                }
                5 => f[30] = 224, // multicast destination
                6 => {
                    // A TCP/UDP checksum the NIC found wrong.
                    let at = if f[23] == 6 { 50 } else { 40 };
                    f[at] ^= 0x01;
                    l4 = NicCsum::Bad;
                }
                7 if f[23] == 17 => f[38..40].copy_from_slice(&3u16.to_be_bytes()), // UDP length
                _ => {}
            }
            // What a NIC with checksum offload would have said, or
            // nothing (no offload): the IPv4 verdict is the truth.
            let ip = match (rnd(3), checksum::checksum(&f[14..34]) == 0) {
                (0, _) => NicCsum::Unknown,
                (_, true) => NicCsum::Good,
                (_, false) => NicCsum::Bad,
            };
            (f, ip, l4)
        });
        let a: Vec<_> = fast.sessions4().copied().collect();
        let b: Vec<_> = slow.sessions4().copied().collect();
        assert_eq!(a, b, "{mode}: session tables differ");
    }
}

/// The shared two ports with an IPv6 TCP service 2001:db8::100:80 in mode
/// `fwd` over three real servers 2001:db8:1::11-13 (static neighbours, the
/// MACs of IPv4's), and UDP 2001:db8::100:53 over two.
fn cfg_text6(fwd: &str) -> String {
    let p = if fwd == "nat" || fwd == "fullnat" { 8080 } else { 80 };
    let mut s = fixtures::two_ports();
    for i in 1..=3u8 {
        s.push_str(&format!("[[neighbors]]\naddress = \"2001:db8:1::{}\"\nmac = \"{}\"\nport = \"server\"\n\n", 10 + i, rs_mac(i)));
    }
    s.push_str(&format!(
        "[[services]]\nvip = \"2001:db8::100\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"{fwd}\"\n"
    ));
    for i in 1..=3u8 {
        s.push_str(&format!("[[services.real_servers]]\naddress = \"2001:db8:1::{}\"\nport = {p}\n", 10 + i));
    }
    s.push_str(&format!(
        "[[services]]\nvip = \"2001:db8::100\"\nport = 53\nprotocol = \"udp\"\nscheduler = \"rr\"\nforwarding = \"{fwd}\"\n"
    ));
    for i in 1..=2u8 {
        s.push_str(&format!("[[services.real_servers]]\naddress = \"2001:db8:1::{}\"\n", 10 + i));
    }
    s
}

/// The same over IPv6: IPv6's fast path and the general path agree packet
/// for packet in every mode, with frames the fast path must leave to the
/// general one (hop limit 1, payload length past the frame, extension
/// headers, a multicast destination, other MACs, bad TCP data offsets, UDP
/// lengths and checksums, our own address as source).
#[test]
fn fast_path_equals_general_path_ipv6() {
    for mode in ["nat", "fullnat", "dr", "tunnel"] {
        let mut fast = forwarder_from(&cfg_text6(mode), 4096).0;
        let mut slow = forwarder_from(&cfg_text6(mode), 4096).0;
        let vip = ip6("2001:db8::100");
        paths_agree(mode, &mut fast, &mut slow, |rnd| {
            let c = if rnd(64) == 0 { vip } else { Ipv6(ip6("2001:db8::2").0 + u128::from(rnd(4))) };
            let cport = 40000 + u16::try_from(rnd(24)).unwrap();
            let flags = random_flags(rnd);
            let mut f = match rnd(10) {
                0..=5 => rvs_testpkt::tcp6(CLIENT_MAC, P0_MAC, c, vip, &Tcp { sport: cport, dport: 80, flags, seq: 1, payload: b"data" }),
                6 => rvs_testpkt::udp6(CLIENT_MAC, P0_MAC, c, vip, cport, 53, b"q"),
                _ => {
                    let rs = Ipv6(ip6("2001:db8:1::11").0 + u128::from(rnd(3)));
                    let (dst, dport) =
                        if mode == "fullnat" { (ip6("2001:db8:1::1"), 1024 + u16::try_from(rnd(40)).unwrap()) } else { (c, cport) };
                    let sport = if mode == "nat" || mode == "fullnat" { 8080 } else { 80 };
                    rvs_testpkt::tcp6(rs_mac(1), P1_MAC, rs, dst, &Tcp { sport, dport, flags, seq: 9, payload: b"resp" })
                }
            };
            let tcp_seg = f[20] == 6;
            let mut l4 = [NicCsum::Unknown, NicCsum::Good][usize::try_from(rnd(2)).unwrap()];
            match rnd(40) {
                0 => f[21] = 1,                                         // hop limit 1
                1 => f[18..20].copy_from_slice(&9999u16.to_be_bytes()), // payload length
                2 => f[20] = 0,                                         // a hop-by-hop header
                3 => f[0] = 0x03,                                       // another MAC
                4 if tcp_seg => {
                    f[66] = 0x40; // TCP data offset 16 bytes
                    l4 = NicCsum::Unknown;
                }
                5 => f[38] = 0xff, // multicast destination
                6 => {
                    let at = if tcp_seg { 70 } else { 60 };
                    f[at] ^= 0x01;
                    l4 = NicCsum::Bad;
                }
                7 if !tcp_seg => f[58..60].copy_from_slice(&3u16.to_be_bytes()), // UDP length
                8 if !tcp_seg => {
                    f[60..62].fill(0); // no UDP checksum: refused over IPv6
                    l4 = NicCsum::Unknown;
                }
                _ => {}
            }
            (f, NicCsum::Unknown, l4)
        });
        let a: Vec<_> = fast.sessions6().copied().collect();
        let b: Vec<_> = slow.sessions6().copied().collect();
        assert_eq!(a, b, "{mode}: session tables differ");
    }
}

/// A header checksum the NIC verified is not summed again, on either path:
/// a frame whose IPv4 checksum is wrong is dropped as such when the NIC
/// did not check it or found it wrong, and taken on the NIC's word when it
/// says good (which shows the sum was skipped). A TCP checksum the NIC
/// found wrong drops an established flow's packet on both paths.
#[test]
fn nic_checksum_verdicts_are_used() {
    for fast_path in [true, false] {
        let mut f = forwarder("dr", "rr");
        f.f.set_fast_path(fast_path);
        let client = ip("198.18.0.2");
        let ack = |flags: u8| {
            rvs_testpkt::tcp4(
                CLIENT_MAC,
                P0_MAC,
                client,
                ip("198.18.0.100"),
                &Tcp { sport: 40000, dport: 80, flags, seq: 2, payload: b"x" },
            )
        };
        assert_eq!(f.process(&mut VecBuf::new(&syn(client, 40000)), 0), Verdict::Tx(1));
        let run = |f: &mut Clocked, frame: &[u8], ip_v: NicCsum, l4_v: NicCsum| {
            let mut b = [VecBuf::new(frame)];
            b[0].set_nic_csum(ip_v, l4_v);
            f.f.prepare(&b);
            f.process_at(&mut b[0], 0, 0)
        };
        let good = ack(tcp::flags::ACK);
        let mut bad_ip = good.clone();
        bad_ip[24] ^= 0x40;
        for v in [NicCsum::Unknown, NicCsum::Bad] {
            assert_eq!(run(&mut f, &bad_ip, v, NicCsum::Unknown), Verdict::Drop(DropReason::Ipv4BadChecksum), "{v:?}");
        }
        assert_eq!(drops(&f, DropReason::Ipv4BadChecksum), 2);
        assert_eq!(run(&mut f, &bad_ip, NicCsum::Good, NicCsum::Unknown), Verdict::Tx(1), "taken on the NIC's word");
        assert_eq!(run(&mut f, &good, NicCsum::Good, NicCsum::Good), Verdict::Tx(1));
        assert_eq!(run(&mut f, &good, NicCsum::Good, NicCsum::Bad), Verdict::Drop(DropReason::TcpBadChecksum));
        assert_eq!(f.stats().fast_path.get(), if fast_path { 2 } else { 0 }, "fast path {fast_path}");
        assert_eq!(drops(&f, DropReason::Ipv4BadChecksum), 2);
    }
}

/// Two forwarders as two worker cores: a packet offered to the wrong core
/// is handed to the owner, which processes it (never handing it on).
/// Returns the final verdict and the core that produced it.
fn two_cores(fs: &mut [Clocked; 2], first: usize, frame: &[u8], port: u8) -> (Verdict, usize, VecBuf) {
    let mut b = VecBuf::new(frame);
    match fs[first].process(&mut b, port) {
        Verdict::Handover(c) => {
            let c = usize::from(c);
            assert_ne!(c, first);
            let v = fs[c].process_handed(&mut b, port);
            assert!(!matches!(v, Verdict::Handover(_)));
            (v, c, b)
        }
        v => (v, first, b),
    }
}

fn steered_pair(text: &str) -> [Clocked; 2] {
    let c = config::from_str(text, "t.toml").unwrap();
    let mut comp = Compiler::new(&c);
    let snap = comp.compile(&c, &[P0_MAC, P1_MAC], &Health::new()).unwrap();
    let mk = |core: u16| {
        let mut fc = ForwarderConfig::single(8192, 1024, [1, 2, 3, 4]);
        fc.core = core;
        fc.cores = 2;
        fc.fullnat_ports = (1024 + core * 1000, 2023 + core * 1000);
        fc.steering = Some(Steering::new(2, 128, 1024, 1000, false));
        let stats = Arc::new(CoreStats::new(snap.backends.len(), snap.services.len()));
        let mut f = Clocked::new(Forwarder::new(&fc, snap.clone(), stats));
        f.set_now(1000);
        f
    };
    [mk(0), mk(1)]
}

#[test]
fn replies_reach_the_owning_core_whatever_queue_they_arrive_on() {
    for mode in ["nat", "fullnat", "dr", "tunnel"] {
        let mut fs = steered_pair(&cfg_text(mode, "rr"));
        let mut owners = [0usize; 2];
        for i in 0..400u32 {
            let client = ip("198.18.0.2") + i % 50;
            let cport = u16::try_from(20000 + i).unwrap();
            // The client's SYN arrives on either queue; its owner handles it.
            let (v, owner, out) = two_cores(&mut fs, usize::try_from(i % 2).unwrap(), &syn(client, cport), 0);
            assert_eq!(v, Verdict::Tx(1), "{mode} flow {i}");
            owners[owner] += 1;
            if mode == "dr" || mode == "tunnel" {
                continue;
            }
            // The reply comes back on the other queue than the SYN did, or
            // the same: either way the owner processes it.
            let o = out.data();
            let h = ipv4::Ipv4Header::parse(&o[14..], true).unwrap();
            let t = tcp::TcpHeader::parse(&o[34..]).unwrap();
            let reply = rvs_testpkt::tcp4(
                ether::dst(o),
                P1_MAC,
                h.dst,
                h.src,
                &Tcp { sport: t.dport, dport: t.sport, flags: tcp::flags::SYN | tcp::flags::ACK, seq: 9, payload: &[] },
            );
            let arrive = usize::try_from(i / 2 % 2).unwrap();
            let (v, core, back) = two_cores(&mut fs, arrive, &reply, 1);
            assert_eq!((v, core), (Verdict::Tx(0), owner), "{mode} reply {i}");
            let b = back.data();
            let h = ipv4::Ipv4Header::parse(&b[14..], true).unwrap();
            assert_eq!((h.src, h.dst), (ip("198.18.0.100"), client));
            if i % 8 == 0 {
                // A router on the client's side says the reply was too big:
                // the error quotes the reply, reaches the owner from either
                // queue, and goes on to the real server.
                let mut e = VecBuf::new(b);
                assert!(icmp::error_v4(&mut e, CLIENT_MAC, ip("198.18.0.254"), icmp::v4::DEST_UNREACH, 4, 1400));
                let mut e = e.to_vec();
                ether::set_macs(&mut e, P0_MAC, CLIENT_MAC);
                let (v, core, _) = two_cores(&mut fs, 1 - owner, &e, 0);
                assert_eq!((v, core), (Verdict::Tx(1), owner), "{mode} icmp {i}");
            }
            // The client's next packet finds the session too.
            let ack = rvs_testpkt::tcp4(
                CLIENT_MAC,
                P0_MAC,
                client,
                ip("198.18.0.100"),
                &Tcp { sport: cport, dport: 80, flags: tcp::flags::ACK, seq: 2, payload: b"x" },
            );
            let (v, core, _) = two_cores(&mut fs, 1 - arrive, &ack, 0);
            assert_eq!((v, core), (Verdict::Tx(1), owner), "{mode} ack {i}");
        }
        // Both cores own flows; no flow has a session on both.
        assert!(owners.iter().all(|&n| n > 100), "{mode}: {owners:?}");
        assert_eq!(fs[0].sessions_v4() + fs[1].sessions_v4(), 400, "{mode}");
        let created: u64 = fs.iter().map(|f| f.stats().services.iter().map(|s| s.conns.get()).sum::<u64>()).sum();
        assert_eq!(created, 400, "{mode}");
    }
}

#[test]
fn persistent_services_keep_a_client_network_on_one_core() {
    let text = cfg_text("nat", "rr").replacen(
        "forwarding = \"nat\"\n",
        "forwarding = \"nat\"\npersistence = { timeout = 300, netmask = 24 }\n",
        1,
    );
    let mut fs = steered_pair(&text);
    let mut seen = std::collections::HashMap::new();
    for i in 0..200u32 {
        let client = ip("198.19.0.0") + (i % 4) * 256 + i % 200 + 1;
        let (v, owner, out) = two_cores(&mut fs, usize::try_from(i % 2).unwrap(), &syn(client, u16::try_from(30000 + i).unwrap()), 0);
        assert_eq!(v, Verdict::Tx(1));
        let e = seen.entry(client.mask(24)).or_insert((owner, dst_of(&out)));
        assert_eq!(*e, (owner, dst_of(&out)), "a client network stays on one core and one real server");
    }
    assert_eq!(seen.len(), 4);
}

const ATTACKER_MAC: MacAddr = MacAddr([0x02, 0xba, 0xd0, 0, 0, 1]);

/// The NAT configuration without static neighbours, plus an IPv6 service
/// whose real server 2001:db8:1::11 sits on the server port.
fn dynamic_neighbours() -> Clocked {
    let text = cfg_text("nat", "rr");
    let start = text.find("[[neighbors]]").unwrap();
    let end = text.find("[[services]]").unwrap();
    let text = format!(
        "{}{}[[services]]\nvip = \"2001:db8::100\"\nport = 80\nprotocol = \"tcp\"\nforwarding = \"nat\"\n[[services.real_servers]]\naddress = \"2001:db8:1::11\"\n",
        &text[..start],
        &text[end..]
    );
    forwarder_from(&text, 4096).0
}

fn arp_frame(op: u16, sha: MacAddr, spa: &str, tpa: &str, to: MacAddr) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    ether::write_header(&mut f, to, sha, ether::ethertype::ARP);
    arp::Arp { op, sha, spa: spa.parse().unwrap(), tha: MacAddr::ZERO, tpa: tpa.parse().unwrap() }.write(&mut f[14..]);
    f
}

fn ip6(s: &str) -> Ipv6 {
    Ipv6::from(s.parse::<std::net::Ipv6Addr>().unwrap())
}

/// An advertisement from `mac` that `target` is at `mac`, sent to `to`.
fn na_frame(mac: MacAddr, to_mac: MacAddr, target: &str, to: &str) -> Vec<u8> {
    let mut f = vec![0u8; 86];
    icmp::write_neighbor_advert(&mut f, mac, to_mac, ip6(target), ip6(to), true);
    f
}

/// A solicitation from `src` (at `mac`) for `target`.
fn ns_frame(mac: MacAddr, src: &str, target: &str) -> Vec<u8> {
    let mut f = vec![0u8; 86];
    icmp::write_neighbor_solicit(&mut f, mac, ip6(src), ip6(target), None);
    f
}

fn slot_of(f: &Clocked, addr: IpAddr) -> u32 {
    f.snapshot().neighbors.iter().find(|n| n.addr == addr).unwrap().slot
}

/// Fault 2 of issue 10: a forged ARP or ND message from the client segment
/// claiming a real server's address used to replace its MAC. A neighbour is
/// now learned only from the port whose network holds it.
#[test]
fn neighbours_are_learned_only_on_their_own_port() {
    let mut f = dynamic_neighbours();
    let rs4 = slot_of(&f, "198.18.1.11".parse().unwrap());
    let rs6 = slot_of(&f, "2001:db8:1::11".parse().unwrap());
    // The real servers answer on their own port: learned.
    let reply = arp_frame(arp::OP_REPLY, rs_mac(1), "198.18.1.11", "198.18.1.1", P1_MAC);
    assert_eq!(f.process(&mut VecBuf::new(&reply), 1), Verdict::Consumed);
    let na = na_frame(rs_mac(1), P1_MAC, "2001:db8:1::11", "2001:db8:1::1");
    assert_eq!(f.process(&mut VecBuf::new(&na), 1), Verdict::Consumed);
    assert_eq!((f.neighbour_mac(rs4), f.neighbour_mac(rs6)), (Some(rs_mac(1)), Some(rs_mac(1))));
    // Forgeries from the client port, in every shape: refused, counted,
    // and the servers' MACs stay.
    let forged = [
        (arp_frame(arp::OP_REPLY, ATTACKER_MAC, "198.18.1.11", "198.18.0.1", P0_MAC), "ARP reply"),
        (arp_frame(arp::OP_REQUEST, ATTACKER_MAC, "198.18.1.11", "198.18.0.100", MacAddr::BROADCAST), "ARP request"),
        (arp_frame(arp::OP_REQUEST, ATTACKER_MAC, "198.18.1.11", "198.18.1.11", MacAddr::BROADCAST), "gratuitous ARP"),
        (na_frame(ATTACKER_MAC, P0_MAC, "2001:db8:1::11", "2001:db8::1"), "neighbour advertisement"),
        (ns_frame(ATTACKER_MAC, "2001:db8:1::11", "2001:db8::1"), "neighbour solicitation"),
    ];
    for (frame, what) in &forged {
        assert_eq!(f.process(&mut VecBuf::new(frame), 0), Verdict::Drop(DropReason::NeighWrongPort), "{what}");
    }
    assert_eq!(drops(&f, DropReason::NeighWrongPort), forged.len() as u64);
    assert_eq!((f.neighbour_mac(rs4), f.neighbour_mac(rs6)), (Some(rs_mac(1)), Some(rs_mac(1))), "not poisoned");
    // NAT still reaches the real server's true MAC.
    let mut b = VecBuf::new(&syn(ip("198.18.0.2"), 4000));
    assert_eq!(f.process(&mut b, 0), Verdict::Tx(1));
    assert_eq!(ether::dst(b.data()), rs_mac(1));
    // A genuine change of MAC on the right port is still learned.
    let moved = arp_frame(arp::OP_REPLY, rs_mac(9), "198.18.1.11", "198.18.1.1", P1_MAC);
    assert_eq!(f.process(&mut VecBuf::new(&moved), 1), Verdict::Consumed);
    assert_eq!(f.neighbour_mac(rs4), Some(rs_mac(9)));
}

/// Nobody else may claim a VIP or one of our addresses, on any port: such
/// frames are refused, counted as `addr_conflict`, and the claimant is
/// recorded for management's log (on a pair: a second master).
#[test]
fn claims_to_our_addresses_are_conflicts() {
    let mut f = dynamic_neighbours();
    let claims = [
        (arp_frame(arp::OP_REPLY, ATTACKER_MAC, "198.18.0.100", "198.18.0.1", P0_MAC), 0, "VIP by ARP reply"),
        (arp_frame(arp::OP_REQUEST, ATTACKER_MAC, "198.18.0.100", "198.18.0.100", MacAddr::BROADCAST), 0, "VIP by gratuitous ARP"),
        (arp_frame(arp::OP_REQUEST, ATTACKER_MAC, "198.18.1.1", "198.18.1.11", MacAddr::BROADCAST), 1, "port address by ARP"),
        (na_frame(ATTACKER_MAC, P0_MAC, "2001:db8::100", "2001:db8::1"), 0, "IPv6 VIP by NA"),
        (ns_frame(ATTACKER_MAC, "2001:db8::1", "2001:db8::100"), 0, "port address as NS source"),
    ];
    for (frame, port, what) in &claims {
        assert_eq!(f.process(&mut VecBuf::new(frame), *port), Verdict::Drop(DropReason::AddrConflict), "{what}");
    }
    assert_eq!(drops(&f, DropReason::AddrConflict), claims.len() as u64);
    assert_eq!(f.stats().last_conflict(), ("2001:db8::1".parse().unwrap(), ATTACKER_MAC.0, 0));
    // Our own announcement seen again is not a conflict; duplicate address
    // detection (source ::) for a VIP is answered, as before.
    let ours = arp_frame(arp::OP_REQUEST, P0_MAC, "198.18.0.100", "198.18.0.100", MacAddr::BROADCAST);
    assert_ne!(f.process(&mut VecBuf::new(&ours), 0), Verdict::Drop(DropReason::AddrConflict));
    let dad = ns_frame(CLIENT_MAC, "::", "2001:db8::100");
    assert_eq!(f.process(&mut VecBuf::new(&dad), 0), Verdict::Answer(0));
}

/// Fault 7 of issue 10: a segment whose source is the VIP itself (the
/// "land" attack) or any of our addresses is martian: dropped, counted,
/// and it never opens a session.
#[test]
fn land_attack_and_own_sources_are_dropped() {
    let mut f = dynamic_neighbours();
    let vip = ip("198.18.0.100");
    for (src, port) in [(vip, 0u8), (ip("198.18.0.1"), 0), (ip("198.18.1.1"), 1)] {
        let land = rvs_testpkt::tcp4(
            CLIENT_MAC,
            if port == 0 { P0_MAC } else { P1_MAC },
            src,
            vip,
            &Tcp { sport: 80, dport: 80, flags: tcp::flags::SYN, seq: 1, payload: &[] },
        );
        assert_eq!(f.process(&mut VecBuf::new(&land), port), Verdict::Drop(DropReason::OwnSource));
    }
    let land6 = rvs_testpkt::tcp6(
        CLIENT_MAC,
        P0_MAC,
        ip6("2001:db8::100"),
        ip6("2001:db8::100"),
        &Tcp { sport: 80, dport: 80, flags: tcp::flags::SYN, seq: 1, payload: &[] },
    );
    assert_eq!(f.process(&mut VecBuf::new(&land6), 0), Verdict::Drop(DropReason::OwnSource));
    assert_eq!(f.sessions_v4() + f.sessions_v6(), 0);
    assert_eq!(drops(&f, DropReason::OwnSource), 4);
}

/// Fault 8 of issue 10: 3,000 segments with TTL 1 are 3,000 `ttl_exceeded`
/// drops, whether or not the ICMP answer was rate limited (it used to count
/// the limited ones twice: 5,000).
#[test]
fn ttl_exceeded_is_counted_once_per_frame_under_rate_limiting() {
    let mut f = forwarder("nat", "rr");
    let mut answered = 0;
    for i in 0..3000u32 {
        let mut frame = syn(ip("198.18.0.2"), u16::try_from(1000 + i).unwrap());
        frame[22] = 1;
        frame[24..26].fill(0);
        let c = checksum::checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&c.to_be_bytes());
        match f.process(&mut VecBuf::new(&frame), 0) {
            Verdict::Reply { reason: DropReason::TtlExceeded, .. } => answered += 1,
            v => assert_eq!(v, Verdict::Drop(DropReason::TtlExceeded)),
        }
    }
    assert_eq!(drops(&f, DropReason::TtlExceeded), 3000);
    assert_eq!(answered, 1000, "the ICMP rate limit (1000/s per core) holds");
    assert_eq!(f.stats().icmp_errors_sent.get(), 1000);
}

/// A client packet of flow `cport` with `flags`.
fn client_segment(cport: u16, flags: u8) -> Vec<u8> {
    rvs_testpkt::tcp4(
        CLIENT_MAC,
        P0_MAC,
        ip("198.18.0.2"),
        ip("198.18.0.100"),
        &Tcp { sport: cport, dport: 80, flags, seq: 2, payload: b"x" },
    )
}

#[test]
fn a_backup_forwards_nothing_and_answers_no_arp_for_the_vip() {
    let mut f = forwarder("nat", "rr");
    f.set_role(false, true);
    let mut b = VecBuf::new(&syn(ip("198.18.0.2"), 40000));
    assert_eq!(f.process(&mut b, 0), Verdict::Drop(DropReason::HaStandby));
    let mut req = vec![0u8; 60];
    arp::write_request(&mut req, CLIENT_MAC, Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 100), MacAddr::BROADCAST);
    assert_eq!(f.process(&mut VecBuf::new(&req), 0), Verdict::Drop(DropReason::HaStandby));
    // Its own address still answers (VRRP, sync and management use it).
    arp::write_request(&mut req, CLIENT_MAC, Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 1), MacAddr::BROADCAST);
    assert_eq!(f.process(&mut VecBuf::new(&req), 0), Verdict::Answer(0));
    // Nothing is emitted for the backups while standing by.
    assert_eq!(f.take_sync().count(), 0);
    // Active again: forwarding resumes.
    f.set_role(true, true);
    let mut b = VecBuf::new(&syn(ip("198.18.0.2"), 40000));
    assert_eq!(f.process(&mut b, 0), Verdict::Tx(1));
}

#[test]
fn a_synced_backup_takes_over_established_flows_on_the_same_servers() {
    let mut master = forwarder("nat", "rr");
    let mut backup = forwarder("nat", "rr");
    master.set_role(true, true);
    backup.set_role(false, true);
    // Ten flows through the master: SYN (not synced: a handshake in
    // flight is retried by the client), then the ACK that establishes.
    let mut servers = Vec::new();
    let mut recs = Vec::new();
    for i in 0..10u16 {
        let mut b = VecBuf::new(&syn(ip("198.18.0.2"), 41000 + i));
        assert_eq!(master.process(&mut b, 0), Verdict::Tx(1));
        servers.push(dst_of(&b));
        assert_eq!(master.take_sync().count(), 0, "SYN_RECV is not synced");
        let mut b = VecBuf::new(&client_segment(41000 + i, tcp::flags::ACK));
        assert_eq!(master.process(&mut b, 0), Verdict::Tx(1));
        recs.extend(master.take_sync());
    }
    assert_eq!(recs.len(), 10, "one record per established flow");
    let now = backup.now;
    for r in &recs {
        backup.apply_sync(now, r).unwrap();
    }
    assert_eq!(backup.sessions_v4(), 10);
    assert_eq!(backup.stats().sync.applied.get(), 10);
    // Failover: the backup becomes master; mid-flow segments (no SYN)
    // find their sessions and go to the same real servers.
    backup.set_role(true, true);
    for (i, want) in servers.iter().enumerate() {
        let mut b = VecBuf::new(&client_segment(41000 + u16::try_from(i).unwrap(), tcp::flags::ACK | tcp::flags::PSH));
        assert_eq!(backup.process(&mut b, 0), Verdict::Tx(1), "flow {i}");
        assert_eq!(dst_of(&b), *want, "flow {i} keeps its real server");
    }
    // A flow ended on the master ends on the backup too.
    let mut b = VecBuf::new(&client_segment(41000, tcp::flags::RST));
    master.process(&mut b, 0);
    let recs: Vec<_> = master.take_sync().collect();
    assert!(!recs.is_empty());
    for r in &recs {
        let _ = backup.apply_sync(now, r);
    }
    let s = backup.sessions4().find(|s| s.cport == 41000).map(|s| s.state);
    assert!(matches!(s, None | Some(State::Close)), "{s:?}");
}

#[test]
fn records_for_what_the_backup_does_not_have_are_refused_and_counted() {
    let mut master = forwarder("nat", "rr");
    master.set_role(true, true);
    let mut b = VecBuf::new(&syn(ip("198.18.0.2"), 42000));
    master.process(&mut b, 0);
    let mut b = VecBuf::new(&client_segment(42000, tcp::flags::ACK));
    master.process(&mut b, 0);
    let rec = master.take_sync().next().unwrap();
    // A backup configured without that service, or without that server.
    let (mut other, _, _) = forwarder_from(&cfg_text("nat", "rr").replace("port = 80\n", "port = 81\n"), 4096);
    assert_eq!(other.apply_sync(1000, &rec), Err(SyncReject::NoService));
    let (mut other, _, _) = forwarder_from(&without(&cfg_text("nat", "rr"), &dst_of(&b).to_string(), 8080), 4096);
    assert_eq!(other.apply_sync(1000, &rec), Err(SyncReject::NoServer));
    let mut bad = rec;
    if let rvs_wire::sync::AnyRecord::V4(r) = &mut bad {
        r.state = 99;
    }
    let mut backup = forwarder("nat", "rr");
    assert_eq!(backup.apply_sync(1000, &bad), Err(SyncReject::BadRecord));
    assert_eq!(backup.stats().sync.rejected[2].get(), 1);
    // A client that is one of the balancer's own addresses (the VIP, a
    // port's address), as the forwarder would never have admitted.
    for own in ["198.18.0.100", "198.18.1.1"] {
        let mut ours = rec;
        if let rvs_wire::sync::AnyRecord::V4(r) = &mut ours {
            r.client = ip(own);
        }
        assert_eq!(backup.apply_sync(1000, &ours), Err(SyncReject::BadRecord), "{own}");
    }
    assert_eq!(backup.stats().sync.rejected[2].get(), 3);
    assert_eq!(backup.sessions_v4(), 0);
}

#[test]
fn a_bulk_walk_emits_every_synced_session() {
    let mut master = forwarder("nat", "rr");
    master.set_role(true, true);
    for i in 0..50u16 {
        let mut b = VecBuf::new(&syn(ip("198.18.0.2"), 43000 + i));
        master.process(&mut b, 0);
        if i % 2 == 0 {
            let mut b = VecBuf::new(&client_segment(43000 + i, tcp::flags::ACK));
            master.process(&mut b, 0);
        }
    }
    let _ = master.take_sync().count();
    let mut cursor = 0;
    let now = master.now;
    while !master.bulk_sync(now, &mut cursor, 1000) {}
    assert_eq!(master.take_sync().count(), 25, "the established half, not the handshakes");
}

#[test]
fn a_udp_flow_is_synced_once_its_client_reaches_the_threshold() {
    let text = cfg_text("nat", "rr").replacen("\"2001:db8::1/64\"]\n", "\"2001:db8::1/64\"]\nkernel_interface = \"rvsk\"\n", 1)
        + "\n[ha]\nport = \"client\"\nvrid = 51\nsync_udp_threshold = 3\n";
    let (mut master, _, _) = forwarder_from(&text, 4096);
    master.set_role(true, true);
    let query = |cport| rvs_testpkt::udp4(CLIENT_MAC, P0_MAC, ip("198.18.0.2"), ip("198.18.0.100"), cport, 53, b"q");
    // A one-shot query is never streamed; a flow is, once, at its third packet.
    assert_eq!(master.process(&mut VecBuf::new(&query(6000)), 0), Verdict::Tx(1));
    for n in 1..=5 {
        assert_eq!(master.process(&mut VecBuf::new(&query(6001)), 0), Verdict::Tx(1));
        let recs: Vec<_> = master.take_sync().collect();
        assert_eq!(recs.len(), usize::from(n == 3), "packet {n}: {recs:?}");
    }
    // A bulk walk and the refresh send only the flow past the threshold.
    let (mut cursor, now) = (0, master.now);
    while !master.bulk_sync(now, &mut cursor, 10_000) {}
    assert_eq!(master.take_sync().count(), 1);
    // Without [ha] (threshold 1) a UDP flow is synced at creation.
    let mut plain = forwarder("nat", "rr");
    plain.set_role(true, true);
    assert_eq!(plain.process(&mut VecBuf::new(&query(6002)), 0), Verdict::Tx(1));
    assert_eq!(plain.take_sync().count(), 1);
}

mod synproxy;
