//! Set-up shared by the criterion benches and the `fwdloop` profiling
//! example (which includes this file by path).
#![allow(dead_code, clippy::unwrap_used, reason = "shared by several test crates, each using a part")]
use rvs_core::fwd::{Forwarder, ForwarderConfig};
use rvs_core::stats::CoreStats;
use rvs_core::table::{Compiler, Health};
use rvs_wire::MacAddr;
use std::sync::Arc;

/// The balancer's MAC on the client port.
pub const P0: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xa0]);
/// The balancer's MAC on the server port.
pub const P1: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xa1]);

/// The benchmark world: the shared two ports (config::fixtures), static
/// neighbours for `servers` real servers, and TCP 198.18.0.100:80 round
/// robin over them in `mode`; `sloppy` (the first packet of an established
/// flow creates its session, as in rvs-bench) and 64 full-NAT local
/// addresses (for full NAT) are what the large benchmarks add.
pub fn bench_config(mode: &str, servers: u8, sloppy: bool) -> String {
    let port = if mode == "dr" || mode == "tunnel" { 80 } else { 8080 };
    let mut extra = String::new();
    if sloppy {
        extra.push_str("sloppy_tcp = true\n");
        if mode == "fullnat" {
            let l: Vec<String> = (0..64).map(|i| format!("\"198.18.1.{}\"", 100 + i)).collect();
            extra.push_str(&format!("local_addresses = [{}]\n", l.join(", ")));
        }
    }
    let service = config::fixtures::service("rr", mode, port, &vec![1; usize::from(servers)]);
    let service = service.replacen(&format!("forwarding = \"{mode}\"\n"), &format!("forwarding = \"{mode}\"\n{extra}"), 1);
    format!("{}{}{service}", config::fixtures::two_ports(), config::fixtures::server_neighbours(servers))
}

/// The same world in IPv6: TCP 2001:db8::100:80 round robin over
/// `servers` real servers 2001:db8:1::11.. (static neighbours, the MACs
/// of IPv4's), sloppy, and 64 full-NAT local addresses 2001:db8:1::100..
/// for full NAT.
pub fn bench_config6(mode: &str, servers: u8) -> String {
    let port = if mode == "dr" || mode == "tunnel" { 80 } else { 8080 };
    let mut s = config::fixtures::two_ports();
    for i in 0..servers {
        let a = 11 + i;
        s.push_str(&format!("[[neighbors]]\naddress = \"2001:db8:1::{a:x}\"\nmac = \"02:5e:00:00:00:{a:02x}\"\nport = \"server\"\n\n"));
    }
    s.push_str(&format!(
        "[[services]]\nvip = \"2001:db8::100\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"{mode}\"\nsloppy_tcp = true\n"
    ));
    if mode == "fullnat" {
        let l: Vec<String> = (0..64).map(|i| format!("\"2001:db8:1::{:x}\"", 0x100 + i)).collect();
        s.push_str(&format!("local_addresses = [{}]\n", l.join(", ")));
    }
    for i in 0..servers {
        s.push_str(&format!("\n[[services.real_servers]]\naddress = \"2001:db8:1::{:x}\"\nport = {port}\n", 11 + i));
    }
    s
}

/// A forwarder for `text` with room for `cap` sessions and every port
/// available to full NAT.
pub fn forwarder_for(text: &str, cap: u32) -> Forwarder {
    forwarder_with(text, cap, 1024)
}

/// The same with room for `cap4` IPv4 and `cap6` IPv6 sessions.
pub fn forwarder_with(text: &str, cap4: u32, cap6: u32) -> Forwarder {
    let cfg = config::from_str(text, "bench.toml").unwrap();
    let snap = Compiler::new(&cfg).compile(&cfg, &[P0, P1], &Health::new()).unwrap();
    let stats = Arc::new(CoreStats::new(snap.backends.len(), snap.services.len()));
    let mut fc = ForwarderConfig::single(cap4, cap6, [1, 2, 3, 4]);
    fc.fullnat_ports = (1024, 65535);
    Forwarder::new(&fc, snap, stats)
}

/// A forwarder with three real servers behind 198.18.0.100:80, sloppy
/// TCP, 64 full-NAT addresses and room for `cap` sessions.
pub fn forwarder_big(mode: &str, cap: u32) -> Forwarder {
    forwarder_for(&bench_config(mode, 3, true), cap)
}

/// Rewrites an IPv4 TCP frame's source address and port with rvs-wire's
/// NAT rewriter, which keeps its checksums right (for SYN floods from
/// distinct sources). In an IPv6 frame, `src` replaces the address's last
/// 32 bits.
pub fn set_source(b: &mut rvs_wire::VecBuf, src: u32, sport: u16) {
    use rvs_wire::{ether, ipv4, ipv6, l4, peek, Ipv4, Ipv6, PacketBuf};
    match peek::peek_flow(b.data()) {
        Some(peek::PeekedFlow::V4(old)) => {
            l4::rewrite(&mut b.data_mut()[ether::HEADER_LEN..], ipv4::MIN_HEADER_LEN, &old, Some((Ipv4(src), sport)), None, false);
        }
        Some(peek::PeekedFlow::V6(old)) => {
            let new = Ipv6((old.src.0 & !u128::from(u32::MAX)) | u128::from(src));
            l4::rewrite(&mut b.data_mut()[ether::HEADER_LEN..], ipv6::HEADER_LEN, &old, Some((new, sport)), None, false);
        }
        None => {}
    }
}
