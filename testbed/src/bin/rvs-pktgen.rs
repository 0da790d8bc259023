//! rvs-pktgen: a DPDK traffic generator for rvs-bench's second harness.
//!
//! ```text
//! rvs-pktgen --vdev 'net_memif0,role=server,socket=/tmp/x.sock' --dst-mac 02:00:00:00:00:01
//!            (--flows N | --syn) --seconds S [--lcore CPU]
//! ```
//!
//! Sends 64-byte frames to the VIP of rvs-bench's configuration as fast as
//! the port takes them: `--flows N` cycles over N established flows (the
//! same clients, 80% TCP ACK, 20% UDP, as the pcap workload), `--syn` sends
//! TCP SYNs from never-repeating client addresses and ports (a SYN flood).
//! Every frame gets correct IPv4 and L4 checksums. It waits for the peer,
//! keeps sending while peers come and go (rvs-bench measures testpmd and
//! rvsd in turn against it), and prints `{"sent": N, "seconds": S}` at the
//! end. Needs root (DPDK).
use anyhow::{anyhow, bail, Context, Result};
use rvs_dpdk::{Burst, Eal, Mempool, Port, PortSetup};
use rvs_wire::{checksum, ip::proto, ipv4, MacAddr, PacketBuf};
use std::time::{Duration, Instant};
use testbed::bench::{client, pcap_mac, ROUTER_MAC, VIP};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// Writes the frame of flow `i` (or a SYN for client `i`) into `f` (60 bytes).
fn write_frame(f: &mut [u8], dst_mac: MacAddr, i: u64, syn: bool) {
    let (src, sport) = client(usize::try_from(i).unwrap_or(0));
    let tcp = syn || !i.is_multiple_of(5);
    f.fill(0);
    f[0..6].copy_from_slice(&dst_mac.0);
    f[6..12].copy_from_slice(&ROUTER_MAC.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let (l4proto, l4len) = if tcp { (proto::TCP, 20u16) } else { (proto::UDP, 26u16) };
    ipv4::write_header(&mut f[14..34], 0, 20 + l4len, 0, ipv4::FLAG_DF, 64, l4proto, src.into(), VIP.into());
    let seg = &mut f[34..34 + usize::from(l4len)];
    seg[0..2].copy_from_slice(&sport.to_be_bytes());
    if tcp {
        seg[2..4].copy_from_slice(&80u16.to_be_bytes());
        #[expect(clippy::cast_possible_truncation, reason = "a sequence number")]
        seg[4..8].copy_from_slice(&(i as u32).to_be_bytes());
        seg[12] = 5 << 4;
        seg[13] = if syn { 0x02 } else { 0x10 };
        seg[14..16].copy_from_slice(&64240u16.to_be_bytes());
    } else {
        seg[2..4].copy_from_slice(&53u16.to_be_bytes());
        seg[4..6].copy_from_slice(&l4len.to_be_bytes());
    }
    let c = checksum::l4_checksum(checksum::pseudo_v4(src.to_be_bytes(), VIP.to_be_bytes(), l4proto, l4len), seg);
    let at = if tcp { 16 } else { 6 };
    let c = if !tcp && c == 0 { 0xffff } else { c };
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let vdev = arg(&args, "--vdev").context("--vdev required")?;
    let dst_mac: MacAddr =
        arg(&args, "--dst-mac").map_or(Ok(pcap_mac(0)), |m| m.parse::<MacAddr>().map_err(|e| anyhow!("--dst-mac: {e}")))?;
    let syn = args.iter().any(|a| a == "--syn");
    let flows: u64 = arg(&args, "--flows").map_or(Ok(1_000_000), |v| v.parse())?;
    let seconds: f64 = arg(&args, "--seconds").map_or(Ok(10.0), |v| v.parse())?;
    let cpu = arg(&args, "--lcore").unwrap_or_else(|| "0".into());
    let name = vdev.split(',').next().unwrap_or("net_memif0").to_string();
    let eal_args = vec![
        "rvs-pktgen".to_string(),
        "--no-pci".into(),
        format!("--lcores=0@{cpu}"),
        format!("--file-prefix=rvsg{}", std::process::id()),
        "--no-telemetry".into(),
        "--log-level=lib.eal:warning".into(),
    ];
    // Hugepages when there are some (see bench::use_hugepages).
    let mut eal_args = eal_args;
    eal_args.extend(testbed::bench::memory_args(16_383));
    let eal = Eal::init(&eal_args).map_err(|e| anyhow!("EAL: {e}"))?;
    let pool = Mempool::new(&eal, "gen", 16383, 256, 384).map_err(|e| anyhow!("{e}"))?;
    let setup = PortSetup { rx_queues: 1, tx_queues: 1, descriptors: 1024, mtu: 1500, rss_key: [0; 40], mac: None };
    let mut port = Port::open(&eal, &vdev, false, &setup, pool).map_err(|e| anyhow!("{e}"))?;
    let mut tx = port.take_tx(0).context("TX queue")?;
    let mut rx = port.take_rx(0).context("RX queue")?;
    println!("rvs-pktgen: {name} up, waiting for a peer");
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut b = Burst::new();
    let mut back = Burst::new();
    let mut sent = 0u64;
    let mut i = 0u64;
    // Never-repeating SYN sources: an LCG over 2^32 has full period.
    let mut lcg = 0x1234_5678u32;
    let limit = 65_536u64 * 64_000;
    let mut last = (Instant::now(), 0u64);
    let mut up = false;
    let mut loops = 0u32;
    while Instant::now() < end {
        if rx.rx(&mut back) > 0 {
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
        if !pool.alloc_bulk(&mut b, 32) {
            continue;
        }
        for m in b.as_mut_slice() {
            let n = if syn {
                loop {
                    lcg = lcg.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    if u64::from(lcg) < limit {
                        break u64::from(lcg);
                    }
                }
            } else {
                i = if i + 1 >= flows { 0 } else { i + 1 };
                i
            };
            if !m.append(60) {
                bail!("mbuf too small");
            }
            write_frame(m.data_mut(), dst_mac, n, syn);
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
    println!("{}", serde_json::json!({"sent": sent, "seconds": secs}));
    Ok(())
}
