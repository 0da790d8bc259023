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

/// `n` TCP SYNs, each from a client address and port no other uses.
pub fn syns(n: u32, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    let mut order: Vec<u32> = (0..n).collect();
    shuffle(&mut order, &mut rng);
    order
        .iter()
        .map(|&i| {
            let (ip, port) = client(i);
            let t = Tcp { sport: port, dport: 80, flags: 0x02, seq: i, payload: &[] };
            pad(rvs_testpkt::tcp4(ROUTER_MAC, pcap_mac(0), ip, VIP, &t))
        })
        .collect()
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
}

/// rvsd's configuration for a benchmark.
pub fn rvsd_config(dir: &Path, s: &RvsdSetup) -> String {
    let lcores: Vec<String> = (0..=s.workers).map(|i| format!("{i}@{}", if i == 0 { 0 } else { i })).collect();
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
sessions_per_worker = {sessions}
sessions_v6_per_worker = 1024
fullnat_port_min = 1024
fullnat_port_max = 65535

[[ports]]
name = "client"
device = "{p0}"
addresses = ["198.18.0.1/24"]

[[ports]]
name = "server"
device = "{p1}"
addresses = ["198.18.1.1/24"]
"#,
        sock = dir.join("rvsd.sock").display(),
        workers = s.workers,
        lcores = lcores.join(","),
        mbufs = s.mbufs,
        huge = use_hugepages(s.mbufs),
        sessions = s.sessions,
        p0 = s.port0,
        p1 = s.port1,
    );
    for (i, rs) in SERVERS.iter().enumerate() {
        c.push_str(&format!(
            "\n[[neighbors]]\naddress = \"{}\"\nmac = \"{}\"\nport = \"server\"\n",
            std::net::Ipv4Addr::from(*rs),
            server_mac(i)
        ));
    }
    for (proto, vport, tcp) in [("tcp", 80, true), ("udp", 53, false)] {
        c.push_str(&format!(
            "\n[[services]]\nvip = \"198.18.0.100\"\nport = {vport}\nprotocol = \"{proto}\"\nscheduler = \"rr\"\nforwarding = \"{}\"\n",
            s.mode.name()
        ));
        if tcp && s.sloppy {
            c.push_str("sloppy_tcp = true\n");
        }
        if tcp && s.synproxy {
            c.push_str("synproxy = true\n");
        }
        if s.mode == Mode::FullNat {
            let locals: Vec<String> = (0..LOCALS).map(|i| format!("\"198.18.1.{}\"", 100 + i)).collect();
            c.push_str(&format!("local_addresses = [{}]\n", locals.join(", ")));
        }
        for rs in SERVERS {
            c.push_str(&format!(
                "[[services.real_servers]]\naddress = \"{}\"\nport = {}\n",
                std::net::Ipv4Addr::from(rs),
                s.mode.rs_port(tcp)
            ));
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
pub fn testpmd(vdevs: &[String], mbufs: u32, seconds: u64, tag: &str) -> Result<Vec<f64>> {
    let mut cmd = Command::new("stdbuf");
    cmd.args(["-oL", "dpdk-testpmd", "--no-pci", "--no-telemetry", "-l", "0,1", "--log-level=lib.eal:warning"])
        .args(memory_args(mbufs))
        .arg(format!("--file-prefix=rvsb{}{tag}", std::process::id()));
    for v in vdevs {
        cmd.arg(format!("--vdev={v}"));
    }
    cmd.args(["--", "-i", "--forward-mode=io", "--no-mlockall", "--auto-start", "--burst=32", "--rxd=1024", "--txd=1024"])
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
            };
            let text = rvsd_config(Path::new("/tmp"), &s);
            let c = config::from_str(&text, "bench.toml").unwrap_or_else(|e| panic!("{mode:?}: {e}\n{text}"));
            c.validate(config::Strictness::File).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
            assert_eq!(c.services[0].synproxy, synproxy);
        }
    }
}
