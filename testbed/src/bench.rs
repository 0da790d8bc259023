//! The benchmark harness behind `rvs-bench`: workloads written as pcap
//! files, rvsd and `dpdk-testpmd` run over the same virtual devices in the
//! same run, and their packet rates sampled once a second.
//!
//! Topology (no NIC needed): port 0 is `net_pcap` replaying a generated
//! file forever (`infinite_rx=1`, no TX stream: what is sent there is
//! dropped), port 1 is `net_null` (`no-rx=1`: transmit only) - or, for the
//! NAT mix, a second `net_pcap` replaying the real servers' replies.
//! testpmd forwards port 0 to port 1 (and 1 to 0) with `io` forwarding: the
//! cost of receiving and sending, the ceiling rvs is measured against.
use anyhow::{anyhow, bail, Context, Result};
use rvs_testpkt::Tcp;
use rvs_wire::MacAddr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The VIP every workload targets (TCP 80 and UDP 53).
pub const VIP: u32 = 0xc612_0064; // 198.18.0.100
/// The real servers (198.18.1.11-13).
pub const SERVERS: [u32; 3] = [0xc612_010b, 0xc612_010c, 0xc612_010d];
/// The IPv6 VIP (TCP 80 and UDP 53).
pub const VIP6: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0100;
/// The IPv6 real servers (2001:db8:1::11-13).
pub const SERVERS6: [u128; 3] =
    [0x2001_0db8_0001_0000_0000_0000_0000_0011, 0x2001_0db8_0001_0000_0000_0000_0000_0012, 0x2001_0db8_0001_0000_0000_0000_0000_0013];
/// The MAC the clients' frames come from (a router in front of rvs).
pub const ROUTER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xfe]);
/// Full NAT local addresses (198.18.1.100 + i): 64 x 64512 ports per real
/// server, enough for millions of flows.
pub const LOCALS: u32 = 64;

/// The MAC DPDK's pcap PMD gives its n-th device in a process.
pub fn pcap_mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0x70, 0x63, 0x61, 0x70, n])
}

fn server_mac(i: usize) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0x01, 0x11 + rvs_wire::num::low_u16(i as u64).to_le_bytes()[0]])
}

/// A forwarding mode under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// LVS-NAT.
    Nat,
    /// Full NAT.
    FullNat,
    /// Direct routing.
    Dr,
    /// IP-in-IP.
    Tunnel,
}

impl Mode {
    /// The configuration's name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Nat => "nat",
            Mode::FullNat => "fullnat",
            Mode::Dr => "dr",
            Mode::Tunnel => "tunnel",
        }
    }

    /// Parses a configuration name.
    pub fn parse(s: &str) -> Result<Mode> {
        Ok(match s {
            "nat" => Mode::Nat,
            "fullnat" => Mode::FullNat,
            "dr" => Mode::Dr,
            "tunnel" => Mode::Tunnel,
            _ => bail!("unknown mode {s:?} (nat, fullnat, dr, tunnel)"),
        })
    }

    /// The real servers' port (DR and tunnel cannot change it).
    fn rs_port(self, tcp: bool) -> u16 {
        match (self, tcp) {
            (Mode::Dr | Mode::Tunnel, true) => 80,
            (Mode::Dr | Mode::Tunnel, false) => 53,
            (_, true) => 8080,
            (_, false) => 5353,
        }
    }
}

/// A small, fast, seeded generator (xorshift64*), so workloads are the same
/// from run to run.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        rvs_wire::num::rem_usize(self.next_u64(), n.max(1))
    }
}

/// The i-th distinct client (address in 198.19.0.0/16, source port).
pub fn client(i: u32) -> (u32, u16) {
    (0xc613_0000 | (i & 0xffff), 1024 + rvs_wire::num::rem_u16(u64::from(i >> 16), 64_000))
}

/// The i-th distinct IPv6 client (address in 2001:db8:c::/64, port).
pub fn client6(i: u32) -> (u128, u16) {
    (0x2001_0db8_000c_0000_0000_0000_0000_0000 | u128::from(i & 0xffff), 1024 + rvs_wire::num::rem_u16(u64::from(i >> 16), 64_000))
}

fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
}

/// Pads a frame to the 60-byte Ethernet minimum (64 on the wire with FCS).
pub fn pad(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

/// `flows` established flows, one minimum-size frame each per pass: 80%
/// TCP (ACK segments; the benchmark service uses `sloppy_tcp`, so the first
/// pass creates the sessions as IPVS's sloppy mode does), 20% UDP. For NAT
/// with `replies`, also the real servers' answer to each flow (round robin
/// gives flow i to server i % 3 in pass order, so the replies are
/// generated in that order and shuffled the same way).
pub fn established(flows: u32, mode: Mode, replies: bool, seed: u64) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut rng = Rng::new(seed);
    let mut order: Vec<u32> = (0..flows).collect();
    shuffle(&mut order, &mut rng);
    let mut fwd = Vec::with_capacity(order.len());
    let mut back = Vec::new();
    let (mut tcp_n, mut udp_n) = (0usize, 0usize);
    for &i in &order {
        let (ip, port) = client(i);
        let tcp = i % 5 != 0;
        if tcp {
            let t = Tcp { sport: port, dport: 80, flags: 0x10, seq: 1, payload: &[] };
            fwd.push(pad(rvs_testpkt::tcp4(ROUTER_MAC, pcap_mac(0), ip, VIP, &t)));
        } else {
            fwd.push(pad(rvs_testpkt::udp4(ROUTER_MAC, pcap_mac(0), ip, VIP, port, 53, &[0u8; 18])));
        }
        if replies && mode == Mode::Nat {
            // rr per service: the k-th TCP flow goes to server k % 3.
            let k = if tcp { tcp_n } else { udp_n };
            let s = k % 3;
            let rs = SERVERS[s];
            if tcp {
                let t = Tcp { sport: mode.rs_port(true), dport: port, flags: 0x10, seq: 7, payload: &[] };
                back.push(pad(rvs_testpkt::tcp4(server_mac(s), pcap_mac(1), rs, ip, &t)));
            } else {
                back.push(pad(rvs_testpkt::udp4(server_mac(s), pcap_mac(1), rs, ip, mode.rs_port(false), port, &[0u8; 18])));
            }
        }
        if tcp {
            tcp_n += 1;
        } else {
            udp_n += 1;
        }
    }
    (fwd, back)
}

/// IPv6 established flows (as [`established`]: 80% TCP ACKs, 20% UDP, one
/// minimum-size frame per flow and pass; no replies).
pub fn established6(flows: u32, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    let mut order: Vec<u32> = (0..flows).collect();
    shuffle(&mut order, &mut rng);
    order
        .iter()
        .map(|&i| {
            let (ip, port) = client6(i);
            if i % 5 != 0 {
                let t = Tcp { sport: port, dport: 80, flags: 0x10, seq: 1, payload: &[] };
                pad(rvs_testpkt::tcp6(ROUTER_MAC, pcap_mac(0), ip, VIP6, &t))
            } else {
                pad(rvs_testpkt::udp6(ROUTER_MAC, pcap_mac(0), ip, VIP6, port, 53, &[0u8; 18]))
            }
        })
        .collect()
}

/// `n` IPv6 TCP SYNs, each from a client address and port no other uses.
pub fn syns6(n: u32, seed: u64) -> Vec<Vec<u8>> {
    syn_frames(n, seed, |i, t| {
        let (ip, port) = client6(i);
        pad(rvs_testpkt::tcp6(ROUTER_MAC, pcap_mac(0), ip, VIP6, &Tcp { sport: port, ..*t }))
    })
}

/// `n` SYNs to port 80 in a seeded random order, client i's made by `frame`
/// from a template segment (its port set by `frame`).
fn syn_frames(n: u32, seed: u64, frame: impl Fn(u32, &Tcp<'_>) -> Vec<u8>) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    let mut order: Vec<u32> = (0..n).collect();
    shuffle(&mut order, &mut rng);
    order.iter().map(|&i| frame(i, &Tcp { sport: 0, dport: 80, flags: 0x02, seq: i, payload: &[] })).collect()
}

/// The RX queue an RSS NIC programmed by rvs gives a client frame: the
/// Toeplitz hash of its addresses and ports with rvs's key, through the
/// redirection table rvs programs (period
/// [`rvs_core::steer::DEFAULT_PERIOD`] on devices without one of their
/// own, as these virtual ones). None for a frame that is not TCP or UDP
/// over IPv4 or IPv6.
pub fn queue_of(frame: &[u8], steering: &rvs_core::steer::Steering) -> Option<u16> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let port = |at: usize| Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]));
    match ethertype {
        0x0800 => {
            let ihl = usize::from(frame.get(14)? & 0x0f) * 4;
            let a = |at: usize| Some(u32::from_be_bytes(frame.get(at..at + 4)?.try_into().ok()?));
            let (src, dst) = (rvs_wire::Ipv4(a(26)?), rvs_wire::Ipv4(a(30)?));
            Some(steering.rss(src, dst, port(14 + ihl)?, port(16 + ihl)?))
        }
        0x86dd => {
            let a = |at: usize| Some(u128::from_be_bytes(frame.get(at..at + 16)?.try_into().ok()?));
            let (src, dst) = (rvs_wire::Ipv6(a(22)?), rvs_wire::Ipv6(a(38)?));
            Some(steering.rss(src, dst, port(54)?, port(56)?))
        }
        _ => None,
    }
}

/// How a workload's frames reach `workers` RX queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spread {
    /// As an RSS NIC programmed by rvs spreads them: each flow on the queue
    /// of its owner ([`queue_of`]).
    Rss,
    /// Every flow on every queue (a NIC without RSS): the cores hand the
    /// frames to the flows' owners.
    All,
}

/// The frames of each of `workers` RX queues.
pub fn split(frames: Vec<Vec<u8>>, workers: u16, spread: Spread) -> Vec<Vec<Vec<u8>>> {
    let n = usize::from(workers.max(1));
    if n == 1 {
        return vec![frames];
    }
    if spread == Spread::All {
        return vec![frames; n];
    }
    let sv = rvs_core::steer::Steering::new(workers, u32::from(rvs_core::steer::DEFAULT_PERIOD), 0, 1, false);
    let mut out = vec![Vec::new(); n];
    for f in frames {
        let q = usize::from(queue_of(&f, &sv).unwrap_or(0));
        out[q].push(f);
    }
    out
}

/// `n` TCP SYNs, each from a client address and port no other uses.
pub fn syns(n: u32, seed: u64) -> Vec<Vec<u8>> {
    syn_frames(n, seed, |i, t| {
        let (ip, port) = client(i);
        pad(rvs_testpkt::tcp4(ROUTER_MAC, pcap_mac(0), ip, VIP, &Tcp { sport: port, ..*t }))
    })
}

/// Megabytes of memory a process with `mbufs` benchmark mbufs needs.
pub fn memory_mb(mbufs: u32) -> u64 {
    u64::from(mbufs) * (384 + 384) / (1 << 20) + 256
}

/// Free 2 MiB hugepages, in megabytes.
pub fn hugepages_free_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:").and_then(|v| v.trim().parse::<u64>().ok()))
        .unwrap_or(0)
        * 2
}

/// True when hugepages can hold a process with `mbufs` mbufs. Both sides
/// of a comparison then run on hugepages (4 KiB pages cost TLB misses, and
/// on these VMs two busy processes on plain pages slow down after seconds).
pub fn use_hugepages(mbufs: u32) -> bool {
    hugepages_free_mb() >= memory_mb(mbufs) + 64
}

/// EAL memory arguments for a process with `mbufs` mbufs.
pub fn memory_args(mbufs: u32) -> Vec<String> {
    if use_hugepages(mbufs) {
        vec!["--in-memory".into()]
    } else {
        vec!["--no-huge".into(), "--no-shconf".into(), format!("-m{}", memory_mb(mbufs) + 256)]
    }
}

/// EAL arguments for every DPDK process of the harness from
/// `RVS_EAL_EXTRA` (space-separated; the bench bundle sets `-d DIR`, its
/// PMDs).
pub fn eal_extra() -> Vec<String> {
    std::env::var("RVS_EAL_EXTRA").map(|v| v.split_whitespace().map(str::to_string).collect()).unwrap_or_default()
}

/// What rvsd is given.
#[derive(Clone, Debug)]
pub struct RvsdSetup {
    /// Forwarding mode of both services.
    pub mode: Mode,
    /// DPDK device of port 0 (clients).
    pub port0: String,
    /// DPDK device of port 1 (real servers).
    pub port1: String,
    /// Session capacity per worker.
    pub sessions: u32,
    /// Mbufs in the pool.
    pub mbufs: u32,
    /// Create sessions from any TCP segment (established workloads).
    pub sloppy: bool,
    /// Worker cores.
    pub workers: u16,
    /// A SYN proxy in front of the TCP service (NAT and full NAT only).
    pub synproxy: bool,
    /// The sessions are IPv6 (`sessions` sizes the IPv6 table then).
    pub v6: bool,
}

/// The CPUs this process may run on.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// The `--lcores` map for a main lcore and `workers` forwarding lcores:
/// one CPU each while there are enough; with fewer CPUs than workers + 1,
/// the workers take every CPU and the main lcore (which waits, it does not
/// spin) shares the first.
pub fn lcore_map(workers: u16) -> String {
    let n = cpus();
    let w = usize::from(workers);
    (0..=w)
        .map(|i| {
            let cpu = if w < n {
                i
            } else if i == 0 {
                0
            } else {
                (i - 1) % n
            };
            format!("{i}@{cpu}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// rvsd's configuration for a benchmark.
pub fn rvsd_config(dir: &Path, s: &RvsdSetup) -> String {
    let (v4_sessions, v6_sessions) = if s.v6 { (1024, s.sessions) } else { (s.sessions, 1024) };
    let mut c = format!(
        r#"[daemon]
control_socket = "{sock}"
metrics_listen = ""

[dataplane]
workers = {workers}
lcores = "{lcores}"
idle_backoff_us = 0
hugepages = {huge}
mbufs = {mbufs}
mbuf_size = 384
descriptors = 1024
sessions_per_worker = {v4_sessions}
sessions_v6_per_worker = {v6_sessions}
fullnat_port_min = 1024
fullnat_port_max = 65535
eal_args = {eal}

[[ports]]
name = "client"
device = "{p0}"
addresses = ["198.18.0.1/24", "2001:db8::1/64"]

[[ports]]
name = "server"
device = "{p1}"
addresses = ["198.18.1.1/24", "2001:db8:1::1/64"]
"#,
        sock = dir.join("rvsd.sock").display(),
        workers = s.workers,
        lcores = lcore_map(s.workers),
        mbufs = s.mbufs,
        huge = use_hugepages(s.mbufs),
        eal = serde_json::to_string(&eal_extra()).unwrap_or_else(|_| "[]".into()),
        p0 = s.port0,
        p1 = s.port1,
    );
    let servers: Vec<(std::net::IpAddr, std::net::IpAddr)> =
        SERVERS.iter().zip(SERVERS6).map(|(a, b)| (std::net::Ipv4Addr::from(*a).into(), std::net::Ipv6Addr::from(b).into())).collect();
    for (i, (rs4, rs6)) in servers.iter().enumerate() {
        for rs in [rs4, rs6] {
            c.push_str(&format!("\n[[neighbors]]\naddress = \"{rs}\"\nmac = \"{}\"\nport = \"server\"\n", server_mac(i)));
        }
    }
    let vips: [(std::net::IpAddr, bool); 2] =
        [(std::net::Ipv4Addr::from(VIP).into(), false), (std::net::Ipv6Addr::from(VIP6).into(), true)];
    for ((proto, vport, tcp), (vip, v6)) in
        [("tcp", 80, true), ("udp", 53, false)].into_iter().flat_map(|p| vips.into_iter().map(move |v| (p, v)))
    {
        c.push_str(&format!(
            "\n[[services]]\nvip = \"{vip}\"\nport = {vport}\nprotocol = \"{proto}\"\nscheduler = \"rr\"\nforwarding = \"{}\"\n",
            s.mode.name()
        ));
        if tcp && s.sloppy {
            c.push_str("sloppy_tcp = true\n");
        }
        if tcp && s.synproxy {
            c.push_str("synproxy = true\n");
        }
        if s.mode == Mode::FullNat {
            let locals: Vec<String> = (0..LOCALS)
                .map(|i| if v6 { format!("\"2001:db8:1::{:x}\"", 0x100 + i) } else { format!("\"198.18.1.{}\"", 100 + i) })
                .collect();
            c.push_str(&format!("local_addresses = [{}]\n", locals.join(", ")));
        }
        for (rs4, rs6) in &servers {
            let rs = if v6 { rs6 } else { rs4 };
            c.push_str(&format!("[[services.real_servers]]\naddress = \"{rs}\"\nport = {}\n", s.mode.rs_port(tcp)));
        }
    }
    c
}

/// A child process killed (by PID) when dropped.
#[derive(Debug)]
pub struct Guard(pub Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The median of some samples (0 when there are none).
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return 0.0;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Runs `dpdk-testpmd` io forwarding over `vdevs` and returns its total TX
/// rate (Mpps) over each of `seconds` one-second periods, after two of
/// warm-up. testpmd runs interactively (its main thread then waits on
/// input instead of spinning beside a generator on a 2-core machine) under
/// `stdbuf -oL`, and is asked `show port stats all` once a second.
pub fn testpmd(vdevs: &[String], mbufs: u32, seconds: u64, tag: &str, cores: u16) -> Result<Vec<f64>> {
    let mut cmd = Command::new("stdbuf");
    let lcores = format!("--lcores={}", lcore_map(cores));
    cmd.args(["-oL", "dpdk-testpmd", "--no-pci", "--no-telemetry", &lcores, "--log-level=lib.eal:warning"])
        .args(memory_args(mbufs))
        .args(eal_extra())
        .arg(format!("--file-prefix=rvsb{}{tag}", std::process::id()));
    for v in vdevs {
        cmd.arg(format!("--vdev={v}"));
    }
    cmd.args(["--", "-i", "--forward-mode=io", "--no-mlockall", "--auto-start", "--burst=32", "--rxd=1024", "--txd=1024"])
        .args([format!("--nb-cores={cores}"), format!("--rxq={cores}"), format!("--txq={cores}")])
        .arg(format!("--total-num-mbufs={mbufs}"))
        .arg("--mbuf-size=384")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = Guard(Some(cmd.spawn().context("cannot run dpdk-testpmd (apt-get install dpdk-dev)")?));
    let c = child.0.as_mut().ok_or_else(|| anyhow!("testpmd"))?;
    let mut stdin = c.stdin.take().ok_or_else(|| anyhow!("testpmd stdin"))?;
    let out = c.stdout.take().ok_or_else(|| anyhow!("testpmd stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
            if tx.send(String::from_utf8_lossy(&line).into_owned()).is_err() {
                return;
            }
        }
    });
    // Forwarding starts once the devices (and a pcap file) are loaded.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) if l.contains("Start automatic packet forwarding") => break,
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(_) => bail!("testpmd did not start forwarding"),
        }
    }
    let mut periods = Vec::new();
    for k in 0..=seconds + 2 {
        stdin.write_all(b"show port stats all\n")?;
        std::thread::sleep(Duration::from_secs(1));
        let mut sum = 0.0;
        while let Ok(l) = rx.try_recv() {
            if let Some(v) = l.split("Tx-pps:").nth(1) {
                sum += v.split_whitespace().next().and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
            }
        }
        // The first answer covers the time since start; the next two are
        // warm-up. Each answer is read a second after its question, when
        // it has long been printed.
        if k >= 3 {
            periods.push(sum / 1e6);
        }
    }
    let _ = stdin.write_all(b"quit\n");
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.try_wait()?.is_none() {
        if Instant::now() > deadline {
            bail!("testpmd did not quit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(periods)
}

/// A running rvsd.
#[derive(Debug)]
pub struct Rvsd {
    child: Guard,
    sock: PathBuf,
    log: PathBuf,
}

impl Rvsd {
    /// Starts rvsd with `config` written into `dir`, trying three times
    /// (a memif server may take a moment to accept a new peer).
    pub fn start(dir: &Path, config: &str) -> Result<Rvsd> {
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(dir, config) {
                Ok(r) => return Ok(r),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        Err(last.unwrap_or_else(|| anyhow!("rvsd did not start")))
    }

    fn start_once(dir: &Path, config: &str) -> Result<Rvsd> {
        let cfg = dir.join("rvs.toml");
        std::fs::write(&cfg, config)?;
        let log = dir.join("rvsd.log");
        let rvsd = crate::bin("rvsd")?;
        let f = std::fs::File::create(&log)?;
        let child = Command::new(rvsd).arg("-c").arg(&cfg).stdout(f.try_clone()?).stderr(f).stdin(Stdio::null()).spawn()?;
        let mut r = Rvsd { child: Guard(Some(child)), sock: dir.join("rvsd.sock"), log };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if r.stats().is_ok() {
                return Ok(r);
            }
            if let Some(c) = r.child.0.as_mut() {
                if c.try_wait()?.is_some() {
                    bail!("rvsd exited:\n{}", std::fs::read_to_string(&r.log).unwrap_or_default());
                }
            }
            if Instant::now() > deadline {
                bail!("rvsd did not start:\n{}", std::fs::read_to_string(&r.log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The statistics report.
    pub fn stats(&self) -> Result<mgmt::report::Report> {
        let mut c = mgmt::control::Client::connect(&self.sock)?;
        let r = c.call("stats", serde_json::Value::Null)?;
        Ok(serde_json::from_value(r.result.ok_or_else(|| anyhow!("no result"))?)?)
    }

    /// Packets rvsd has sent on all ports.
    pub fn tx_packets(&self) -> Result<u64> {
        Ok(self.stats()?.ports.iter().map(|p| p.tx_packets).sum())
    }

    /// Samples the TX rate once a second for `seconds` seconds (Mpps each).
    pub fn sample_tx(&self, seconds: u64) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        let mut last = (Instant::now(), self.tx_packets()?);
        for _ in 0..seconds {
            std::thread::sleep(Duration::from_secs(1));
            let now = (Instant::now(), self.tx_packets()?);
            #[expect(clippy::cast_precision_loss, reason = "rates")]
            out.push((now.1 - last.1) as f64 / now.0.duration_since(last.0).as_secs_f64() / 1e6);
            last = now;
        }
        Ok(out)
    }

    /// Samples the TX rate for `seconds` seconds (as [`Rvsd::sample_tx`])
    /// and, over the whole window, each worker's receive rate (Mpps) and
    /// the frames handed between cores.
    pub fn sample_workers(&self, seconds: u64) -> Result<(Vec<f64>, Vec<f64>, u64)> {
        let (t0, before) = (Instant::now(), self.stats()?);
        let total = self.sample_tx(seconds)?;
        let (secs, after) = (t0.elapsed().as_secs_f64(), self.stats()?);
        let rx = |w: &mgmt::report::WorkerReport| w.rx_packets.iter().sum::<u64>();
        #[expect(clippy::cast_precision_loss, reason = "rates")]
        let per: Vec<f64> = after.per_worker.iter().zip(&before.per_worker).map(|(a, b)| (rx(a) - rx(b)) as f64 / secs / 1e6).collect();
        let handed =
            after.per_worker.iter().map(|w| w.handover_out).sum::<u64>() - before.per_worker.iter().map(|w| w.handover_out).sum::<u64>();
        Ok((total, per, handed))
    }

    /// Stops it (SIGTERM) and returns its log.
    pub fn stop(mut self) -> String {
        if let Some(c) = self.child.0.as_mut() {
            if let Some(pid) = crate::pid_of(c) {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        drop(self.child);
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_are_distinct_valid_minimum_frames() {
        let (f, r) = established(1000, Mode::Nat, true, 1);
        assert_eq!((f.len(), r.len()), (1000, 1000));
        let mut keys = std::collections::HashSet::new();
        for x in &f {
            assert_eq!(x.len(), 60);
            assert!(rvs_testpkt::checksums_ok(x));
            keys.insert(x[26..38].to_vec());
        }
        assert_eq!(keys.len(), 1000, "one frame per flow");
        assert!(r.iter().all(|x| rvs_testpkt::checksums_ok(x)));
        let s = syns(5000, 2);
        let keys: std::collections::HashSet<_> = s.iter().map(|x| x[26..38].to_vec()).collect();
        assert_eq!(keys.len(), 5000);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn the_benchmark_configuration_is_valid() {
        let proxied = [(Mode::Nat, true), (Mode::FullNat, true)];
        for (mode, synproxy) in
            [(Mode::Nat, false), (Mode::FullNat, false), (Mode::Dr, false), (Mode::Tunnel, false)].into_iter().chain(proxied)
        {
            let s = RvsdSetup {
                mode,
                port0: "net_pcap0,rx_pcap=/x.pcap,infinite_rx=1".into(),
                port1: "net_null0,no-rx=1".into(),
                sessions: 1 << 20,
                mbufs: 1 << 16,
                sloppy: !synproxy,
                workers: 1,
                synproxy,
                v6: false,
            };
            let text = rvsd_config(Path::new("/tmp"), &s);
            let c = config::from_str(&text, "bench.toml").unwrap_or_else(|e| panic!("{mode:?}: {e}\n{text}"));
            c.validate(config::Strictness::File).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
            assert_eq!(c.services[0].synproxy, synproxy);
        }
    }

    #[test]
    fn frames_go_to_the_queue_of_their_owner() {
        let sv = rvs_core::steer::Steering::new(4, u32::from(rvs_core::steer::DEFAULT_PERIOD), 0, 1, false);
        let frames: Vec<Vec<u8>> = established(4000, Mode::Nat, false, 1).0.into_iter().chain(established6(4000, 1)).collect();
        let queues = split(frames.clone(), 4, Spread::Rss);
        assert_eq!(queues.iter().map(Vec::len).sum::<usize>(), 8000);
        for (q, fs) in queues.iter().enumerate() {
            assert!(fs.len() > 1500, "queue {q}: {} of 8000", fs.len());
            for f in fs {
                assert_eq!(usize::from(queue_of(f, &sv).unwrap()), q);
            }
        }
        // The owner rule is the forwarder's: Toeplitz over the tuple.
        let f = &frames[0];
        let src = rvs_wire::Ipv4(u32::from_be_bytes(f[26..30].try_into().unwrap()));
        let sport = u16::from_be_bytes([f[34], f[35]]);
        assert_eq!(queue_of(f, &sv), Some(sv.rss(src, rvs_wire::Ipv4(VIP), sport, 80)));
        assert!(split(frames, 3, Spread::All).iter().all(|q| q.len() == 8000));
        assert!(syns6(10, 1).iter().all(|x| rvs_testpkt::checksums_ok(x)));
    }
}
