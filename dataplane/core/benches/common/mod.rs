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

/// A forwarder for `text` with room for `cap` sessions and every port
/// available to full NAT.
pub fn forwarder_for(text: &str, cap: u32) -> Forwarder {
    let cfg = config::from_str(text, "bench.toml").unwrap();
    let snap = Compiler::new(&cfg).compile(&cfg, &[P0, P1], &Health::new()).unwrap();
    let stats = Arc::new(CoreStats::new(snap.backends.len(), snap.services.len()));
    let mut fc = ForwarderConfig::single(cap, 1024, [1, 2, 3, 4]);
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
/// distinct sources).
pub fn set_source(b: &mut rvs_wire::VecBuf, src: u32, sport: u16) {
    use rvs_wire::{ether, ipv4, l4, peek, Ipv4, PacketBuf};
    let Some(peek::PeekedFlow::V4(old)) = peek::peek_flow(b.data()) else { return };
    l4::rewrite(&mut b.data_mut()[ether::HEADER_LEN..], ipv4::MIN_HEADER_LEN, &old, Some((Ipv4(src), sport)), None, false);
}
