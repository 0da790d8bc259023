//! rvs-pktgen: a DPDK traffic generator for rvs-bench's second harness.
//!
//! ```text
//! rvs-pktgen --vdev 'net_memif0,role=server,socket=/tmp/x.sock' --dst-mac 02:00:00:00:00:01
//!            (--flows N | --syn) --seconds S [--lcore CPU] [--back VDEV] [--mpps R]
//! ```
//!
//! Sends 64-byte frames to the VIP of rvs-bench's configuration as fast as
//! the port takes them (or `--mpps R` million a second, in bursts of 32): `--flows N` cycles over N established flows (the
//! same clients, 80% TCP ACK, 20% UDP, as the pcap workload), `--syn` sends
//! TCP SYNs from never-repeating client addresses and ports (a SYN flood).
//! Every frame gets correct IPv4 and L4 checksums. It waits for the peer,
//! keeps sending while peers come and go (rvs-bench measures testpmd and
//! rvsd in turn against it), and prints `{"sent": N, "seconds": S}` at the
//! end. With `--back VDEV` it also opens that device, counts every frame
//! that arrives there (what the forwarder under test sent on), keeps
//! draining it for a second after sending stops, and prints
//! `{"sent": N, "received": M, "seconds": S}`: with `net_vhost` devices,
//! a forwarder in a container attached by `net_virtio_user` over the
//! vhost-user sockets is measured end to end. Needs root (DPDK).
use anyhow::{anyhow, bail, Context, Result};
use rvs_dpdk::{Burst, Eal, Mempool, Port, PortSetup};
use rvs_testpkt::Tcp;
use rvs_wire::l4::{self, FiveTuple};
use rvs_wire::{ether, ip::proto, ipv4, Ipv4, MacAddr, PacketBuf};
use std::time::{Duration, Instant};
use testbed::bench::{client, pad, pcap_mac, ROUTER_MAC, VIP};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// One frame of each kind, from client 0; every frame sent is a copy with
/// the client's address and port rewritten by rvs-wire's NAT rewriter,
/// which keeps the checksums right.
struct Templates {
    tcp: Vec<u8>,
    udp: Vec<u8>,
    /// What the templates carry: client 0 to the VIP.
    tcp_tuple: FiveTuple<Ipv4>,
    udp_tuple: FiveTuple<Ipv4>,
}

impl Templates {
    fn new(dst_mac: MacAddr, syn: bool) -> Templates {
        let (src, sport) = client(0);
        let flags = if syn { 0x02 } else { 0x10 };
        let t = Tcp { sport, dport: 80, flags, seq: 1, payload: &[] };
        let tuple = |proto, dport| FiveTuple { src: Ipv4::from(src), dst: Ipv4::from(VIP), sport, dport, proto };
        Templates {
            tcp: pad(rvs_testpkt::tcp4(ROUTER_MAC, dst_mac, src, VIP, &t)),
            udp: pad(rvs_testpkt::udp4(ROUTER_MAC, dst_mac, src, VIP, sport, 53, &[0u8; 18])),
            tcp_tuple: tuple(proto::TCP, 80),
            udp_tuple: tuple(proto::UDP, 53),
        }
    }

    /// Writes the frame of flow `i` (or a SYN for client `i`) into `f`
    /// (60 bytes): TCP for four flows in five, UDP for the fifth.
    fn write(&self, f: &mut [u8], i: u32, syn: bool) {
        let (src, sport) = client(i);
        let (t, tuple) = if syn || !i.is_multiple_of(5) { (&self.tcp, &self.tcp_tuple) } else { (&self.udp, &self.udp_tuple) };
        f.copy_from_slice(t);
        let ip = &mut f[ether::HEADER_LEN..];
        l4::rewrite(ip, ipv4::MIN_HEADER_LEN, tuple, Some((Ipv4::from(src), sport)), None, false);
    }
}

/// What to send, from the command line.
struct Opts {
    vdev: String,
    dst_mac: MacAddr,
    syn: bool,
    flows: u32,
    seconds: f64,
    cpu: String,
    back: Option<String>,
    mpps: Option<f64>,
}

fn opts() -> Result<Opts> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    Ok(Opts {
        vdev: arg(&args, "--vdev").context("--vdev required")?,
        dst_mac: arg(&args, "--dst-mac").map_or(Ok(pcap_mac(0)), |m| m.parse::<MacAddr>().map_err(|e| anyhow!("--dst-mac: {e}")))?,
        syn: args.iter().any(|a| a == "--syn"),
        flows: arg(&args, "--flows").map_or(Ok(1_000_000), |v| v.parse())?,
        seconds: arg(&args, "--seconds").map_or(Ok(10.0), |v| v.parse())?,
        cpu: arg(&args, "--lcore").unwrap_or_else(|| "0".into()),
        back: arg(&args, "--back"),
        mpps: arg(&args, "--mpps").map(|v| v.parse::<f64>()).transpose()?,
    })
}

/// The flow (or never-repeating SYN source) of each next frame.
struct Flows {
    syn: bool,
    flows: u32,
    i: u32,
    /// An LCG over 2^32 has full period: SYN sources never repeat.
    lcg: u32,
}

impl Flows {
    /// Clients beyond this have no distinct address and port.
    const LIMIT: u64 = 65_536 * 64_000;

    fn next(&mut self) -> u32 {
        if self.syn {
            loop {
                self.lcg = self.lcg.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                if u64::from(self.lcg) < Self::LIMIT {
                    return self.lcg;
                }
            }
        }
        self.i = if self.i + 1 >= self.flows { 0 } else { self.i + 1 };
        self.i
    }
}

fn main() -> Result<()> {
    let o = opts()?;
    let name = o.vdev.split(',').next().unwrap_or("net_memif0").to_string();
    let mut eal_args = vec![
        "rvs-pktgen".to_string(),
        "--no-pci".into(),
        format!("--lcores=0@{}", o.cpu),
        format!("--file-prefix=rvsg{}", std::process::id()),
        "--no-telemetry".into(),
        "--log-level=lib.eal:warning".into(),
    ];
    // Hugepages when there are some (see bench::use_hugepages).
    eal_args.extend(testbed::bench::memory_args(16_383));
    let eal = Eal::init(&eal_args).map_err(|e| anyhow!("EAL: {e}"))?;
    let pool = Mempool::new(&eal, "gen", 16383, 256, 384).map_err(|e| anyhow!("{e}"))?;
    let setup = PortSetup { rx_queues: 1, tx_queues: 1, descriptors: 1024, mtu: 1500, rss_key: [0; 40], mac: None };
    let mut port = Port::open(&eal, &o.vdev, false, &setup, pool).map_err(|e| anyhow!("{e}"))?;
    let mut tx = port.take_tx(0).context("TX queue")?;
    let mut rx = port.take_rx(0).context("RX queue")?;
    let mut back_port = match &o.back {
        Some(dev) => Some(Port::open(&eal, dev, false, &setup, pool).map_err(|e| anyhow!("--back: {e}"))?),
        None => None,
    };
    let mut back_rx = match back_port.as_mut() {
        Some(p) => Some(p.take_rx(0).context("--back RX queue")?),
        None => None,
    };
    let mut received = 0u64;
    println!("rvs-pktgen: {name} up, waiting for a peer");
    let frames = Templates::new(o.dst_mac, o.syn);
    let mut flows = Flows { syn: o.syn, flows: o.flows, i: 0, lcg: 0x1234_5678 };
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(o.seconds);
    let mut b = Burst::new();
    let mut back = Burst::new();
    let mut sent = 0u64;
    let mut last = (Instant::now(), 0u64);
    let mut up = false;
    let mut loops = 0u32;
    while Instant::now() < end {
        if rx.rx(&mut back) > 0 {
            back.free_all();
        }
        if let Some(r) = back_rx.as_mut() {
            received += r.rx(&mut back) as u64;
            back.free_all();
        }
        // The link state is a control-path query: ask now and then.
        loops = loops.wrapping_add(1);
        if !up || loops.is_multiple_of(4096) {
            up = port.link_up();
            if !up {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        }
        // Paced (`--mpps`): a burst only once the schedule allows it.
        if let Some(r) = o.mpps {
            #[expect(clippy::cast_precision_loss, reason = "a schedule")]
            let due = start.elapsed().as_secs_f64() * r * 1e6 >= sent as f64;
            if !due {
                continue;
            }
        }
        if !pool.alloc_bulk(&mut b, 32) {
            continue;
        }
        for m in b.as_mut_slice() {
            if !m.append(60) {
                bail!("mbuf too small");
            }
            frames.write(m.data_mut(), flows.next(), o.syn);
        }
        sent += tx.tx(&mut b) as u64;
        b.free_all();
        if loops.is_multiple_of(65_536) {
            let now = Instant::now();
            if now.duration_since(last.0) >= Duration::from_secs(1) {
                #[expect(clippy::cast_precision_loss, reason = "a rate")]
                let rate = (sent - last.1) as f64 / now.duration_since(last.0).as_secs_f64() / 1e6;
                println!("rvs-pktgen: {rate:.2} Mpps");
                last = (now, sent);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if let Some(r) = back_rx.as_mut() {
        // What is still on its way through the forwarder.
        let drain = Instant::now() + Duration::from_secs(1);
        while Instant::now() < drain {
            if rx.rx(&mut back) > 0 {
                back.free_all();
            }
            received += r.rx(&mut back) as u64;
            back.free_all();
        }
        println!("{}", serde_json::json!({"sent": sent, "received": received, "seconds": secs}));
    } else {
        println!("{}", serde_json::json!({"sent": sent, "seconds": secs}));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rewritten template is byte for byte the frame built from scratch
    /// (the pcap workload's), checksums included.
    #[test]
    fn rewritten_templates_equal_frames_built_from_scratch() {
        let dst = pcap_mac(0);
        let frames = Templates::new(dst, false);
        let syns = Templates::new(dst, true);
        for i in [1u32, 5, 7, 65_535, 65_536, 1_000_003, 4_095_999_999] {
            let (src, sport) = client(i);
            let mut f = [0u8; 60];
            frames.write(&mut f, i, false);
            let want = if i.is_multiple_of(5) {
                pad(rvs_testpkt::udp4(ROUTER_MAC, dst, src, VIP, sport, 53, &[0u8; 18]))
            } else {
                pad(rvs_testpkt::tcp4(ROUTER_MAC, dst, src, VIP, &Tcp { sport, dport: 80, flags: 0x10, seq: 1, payload: &[] }))
            };
            assert_eq!(f.as_slice(), want.as_slice(), "flow {i}");
            assert!(rvs_testpkt::checksums_ok(&f));
            syns.write(&mut f, i, true);
            let want = pad(rvs_testpkt::tcp4(ROUTER_MAC, dst, src, VIP, &Tcp { sport, dport: 80, flags: 0x02, seq: 1, payload: &[] }));
            assert_eq!(f.as_slice(), want.as_slice(), "SYN {i}");
        }
    }
}
