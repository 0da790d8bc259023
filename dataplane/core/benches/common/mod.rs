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

/// A forwarder with three real servers behind 198.18.0.100:80, sloppy TCP (the
/// first packet of an established flow creates its session, as in
/// rvs-bench), 64 full-NAT addresses and room for `cap` sessions.
pub fn forwarder_big(mode: &str, cap: u32) -> Forwarder {
    let port = if mode == "dr" || mode == "tunnel" { 80 } else { 8080 };
    let mut text = "[[ports]]\nname = \"c\"\ndevice = \"net_null0\"\naddresses = [\"198.18.0.1/24\"]\n[[ports]]\nname = \"s\"\ndevice = \"net_null1\"\naddresses = [\"198.18.1.1/24\"]\n".to_string();
    for i in 0..3 {
        text.push_str(&format!(
            "[[neighbors]]\naddress = \"198.18.1.{}\"\nmac = \"02:00:00:00:01:{:02x}\"\nport = \"s\"\n",
            11 + i,
            0x11 + i
        ));
    }
    text.push_str(&format!(
        "[[services]]\nvip = \"198.18.0.100\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"{mode}\"\nsloppy_tcp = true\n"
    ));
    if mode == "fullnat" {
        let l: Vec<String> = (0..64).map(|i| format!("\"198.18.1.{}\"", 100 + i)).collect();
        text.push_str(&format!("local_addresses = [{}]\n", l.join(", ")));
    }
    for i in 0..3 {
        text.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{}\"\nport = {port}\n", 11 + i));
    }
    let cfg = config::from_str(&text, "bench.toml").unwrap();
    let snap = Compiler::new(&cfg).compile(&cfg, &[P0, P1], &Health::new()).unwrap();
    let stats = Arc::new(CoreStats::new(snap.backends.len(), snap.services.len()));
    let mut fc = ForwarderConfig::single(cap, 1024, [1, 2, 3, 4]);
    fc.fullnat_ports = (1024, 65535);
    Forwarder::new(&fc, snap, stats)
}

/// Rewrites an IPv4 TCP frame's source address and port, keeping its
/// checksums right (for SYN floods from distinct sources).
pub fn set_source(b: &mut rvs_wire::VecBuf, src: u32, sport: u16) {
    use rvs_wire::{checksum, ipv4, PacketBuf};
    let d = b.data_mut();
    let old = u32::from_be_bytes([d[26], d[27], d[28], d[29]]);
    ipv4::set_src(&mut d[14..34], rvs_wire::Ipv4(src));
    let old_port = u16::from_be_bytes([d[34], d[35]]);
    d[34..36].copy_from_slice(&sport.to_be_bytes());
    let mut c = u16::from_be_bytes([d[50], d[51]]);
    c = checksum::update32(c, old, src);
    c = checksum::update16(c, old_port, sport);
    d[50..52].copy_from_slice(&c.to_be_bytes());
}
