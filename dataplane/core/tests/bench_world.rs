//! The benchmark harness's worlds (`benches/common`, used by `fwdloop`,
//! whose instruction counts `scripts/ipp.sh` reports in BENCHMARKS.md)
//! forward what the harness sends them, in both families: every mode
//! creates a session for a SYN from each new source the harness makes
//! (`set_source`, checksums kept right) and forwards it to a real server.
#![allow(clippy::unwrap_used, reason = "a test: a failed step ends it with its message")]
#[path = "../benches/common/mod.rs"]
mod common;
use rvs_core::fwd::Verdict;
use rvs_testpkt::Tcp;
use rvs_wire::{Ipv6, MacAddr, PacketBuf, VecBuf};

const CLIENT: MacAddr = MacAddr([2, 0xc1, 0, 0, 0, 2]);

fn syns_open_sessions(v6: bool) {
    for mode in ["nat", "fullnat", "dr", "tunnel"] {
        let mut f = if v6 {
            common::forwarder_with(&common::bench_config6(mode, 3), 1024, 1024)
        } else {
            common::forwarder_for(&common::bench_config(mode, 3, true), 1024)
        };
        let t = Tcp { sport: 1024, dport: 80, flags: 0x02, seq: 1, payload: &[] };
        let template = if v6 {
            let net = 0x2001_0db8_u128 << 96;
            rvs_testpkt::tcp6(CLIENT, common::P0, Ipv6(net | 2), Ipv6(net | 0x100), &t)
        } else {
            rvs_testpkt::tcp4(CLIENT, common::P0, 0xc613_0002, 0xc612_0064, &t)
        };
        for n in 0..100u32 {
            let mut b = VecBuf::with_room(&template, 128, 256);
            common::set_source(&mut b, 0xc613_0000 | n, 1024 + u16::try_from(n).unwrap());
            assert!(rvs_testpkt::checksums_ok(b.data()), "{mode}: set_source keeps the checksums right");
            assert_eq!(f.process(0, &mut b, 0), Verdict::Tx(1), "{mode} v6={v6}: SYN {n}");
        }
        let made = if v6 { f.sessions_v6() } else { f.sessions_v4() };
        assert_eq!(made, 100, "{mode} v6={v6}: a session per source");
    }
}

#[test]
fn the_ipv4_bench_world_forwards_what_the_harness_sends() {
    syns_open_sessions(false);
}

#[test]
fn the_ipv6_bench_world_forwards_what_the_harness_sends() {
    syns_open_sessions(true);
}
