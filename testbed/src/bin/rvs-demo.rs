//! rvs-demo: rvsd balancing real traffic, end to end, on this machine.
//!
//! Builds a namespace world (two clients on 198.18.0.0/24, three real
//! servers on 198.18.1.0/24 that route back through rvsd), starts rvsd on
//! two DPDK TAP ports with the embedded configuration (`src/demo.toml`:
//! HTTP weighted 1:2:3 with an HTTP health check, UDP echo round robin,
//! NAT), runs 300 HTTP requests and 300 UDP echoes from each client, prints
//! how they were spread and rvsd's counters (with the real `rvsadm`), and
//! tears everything down. Needs root.
//!
//! `rvs-demo ha [nat|fullnat|dr|tunnel]` runs the failover demo instead: an
//! active/backup pair under load, its master killed, and what the clients
//! lost (see `testbed::pair`).
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use testbed::{bin, tally, Bed};

const CONFIG: &str = include_str!("../demo.toml");

fn hugepages_free() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:").and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

fn bar(frac: f64) -> String {
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a bar length")]
    let n = (frac * 40.0).round() as usize;
    "#".repeat(n)
}

fn print_spread(title: &str, by: &BTreeMap<String, u64>, addrs: &[&str], weights: &[u32]) {
    let total: u64 = by.values().sum();
    let wsum: u32 = weights.iter().sum();
    println!("{title}");
    for (i, a) in addrs.iter().enumerate() {
        let name = format!("rs{}", i + 1);
        let n = by.get(&name).copied().unwrap_or(0);
        #[expect(clippy::cast_precision_loss, reason = "percentages")]
        let frac = if total == 0 { 0.0 } else { n as f64 / total as f64 };
        let want = f64::from(weights[i]) / f64::from(wsum);
        println!("  {name} {a:<18} {n:>5}  {:>5.1}%  (weight {}, expect {:>4.1}%)  {}", frac * 100.0, weights[i], want * 100.0, bar(frac));
    }
}

/// The namespace world: two clients, three real servers that route back
/// through rvsd, rvsd itself on two TAP ports, and the servers' daemons.
struct World {
    bed: Bed,
    clients: Vec<usize>,
    kit: String,
}

fn build(huge: bool) -> anyhow::Result<World> {
    let mut bed = Bed::new("demo")?;
    let c = bed.segment("c")?;
    let s = bed.segment("s")?;
    bed.rvsd_port("client", c, &["198.18.0.1/24", "2001:db8::1/64"]);
    bed.rvsd_port("server", s, &["198.18.1.1/24", "2001:db8:1::1/64"]);
    let clients: Vec<usize> =
        (0..2).map(|i| bed.host(&format!("c{i}"), c, &[&format!("198.18.0.{}/24", 10 + i)], &[])).collect::<Result<_, _>>()?;
    let servers: Vec<usize> = (0..3)
        .map(|i| bed.host(&format!("s{i}"), s, &[&format!("198.18.1.{}/24", 11 + i)], &[("198.18.0.0/24", "198.18.1.1")]))
        .collect::<Result<_, _>>()?;
    let cfg = CONFIG.replace("SOCKET", &bed.socket().display().to_string()).replace("HUGEPAGES", if huge { "true" } else { "false" });
    let path = bed.dir.join("rvs.toml");
    std::fs::write(&path, cfg)?;
    println!("rvs demo: 2 clients -> VIP 198.18.0.100 (NAT) -> 3 real servers, all in network namespaces");
    println!(
        "  rvsd: 1 worker on {} with 2 TAP PMD ports, {}",
        rvs_dpdk::Eal::version(),
        if huge { "hugepages" } else { "no hugepages (run scripts/setup.sh to reserve them)" }
    );
    bed.start_rvsd_with(&path)?;
    let kit = bin("rvs-testkit")?.to_str().unwrap_or("rvs-testkit").to_string();
    for (i, &h) in servers.iter().enumerate() {
        bed.spawn(h, &[&kit, "serve", "--name", &format!("rs{}", i + 1), "--http", "0.0.0.0:8080", "--udp", "0.0.0.0:9000"])?;
    }
    std::thread::sleep(Duration::from_millis(300));
    bed.wait_neighbors(Duration::from_secs(10))?;
    Ok(World { bed, clients, kit })
}

/// Runs the same rvs-testkit command from every client at once; returns
/// their reports and the seconds it took.
fn from_every_client(w: &World, args: &[&str]) -> anyhow::Result<(Vec<serde_json::Value>, f64)> {
    let t0 = Instant::now();
    let out = std::thread::scope(|sc| {
        let hs: Vec<_> = w
            .clients
            .iter()
            .map(|&c| {
                let mut argv = vec![w.kit.as_str()];
                argv.extend_from_slice(args);
                sc.spawn(move || w.bed.json(c, &argv, Duration::from_secs(120)))
            })
            .collect();
        hs.into_iter().map(|h| h.join().map_err(|_| anyhow::anyhow!("client thread"))?).collect::<anyhow::Result<Vec<_>>>()
    })?;
    Ok((out, t0.elapsed().as_secs_f64()))
}

/// Answers that worked, that failed, and by real server, over all clients.
fn merge(vs: &[serde_json::Value]) -> (u64, u64, BTreeMap<String, u64>) {
    let mut ok = 0;
    let mut failed = 0;
    let mut by = BTreeMap::new();
    for v in vs {
        let (o, f, b) = tally(v);
        ok += o;
        failed += f;
        for (k, n) in b {
            *by.entry(k).or_insert(0) += n;
        }
    }
    (ok, failed, by)
}

/// rvsd's own view, through the real rvsadm on the control socket.
fn print_rvsadm(bed: &Bed) -> anyhow::Result<()> {
    let rvsadm = bin("rvsadm")?;
    let sock = bed.socket();
    for args in [&["-L", "-n", "--stats"][..], &["-L", "-n"][..], &["show", "health"][..]] {
        let out = std::process::Command::new(&rvsadm).arg("--socket").arg(&sock).args(args).output()?;
        println!();
        println!("# rvsadm {}", args.join(" "));
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            anyhow::bail!("rvsadm {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(())
}

/// rvsd's counters; returns whether its sessions agree with what the
/// clients saw.
fn print_counters(r: &mgmt::report::Report, http_ok: u64, udp_ok: u64) -> bool {
    let drops: Vec<String> = r.drops.iter().filter(|(_, v)| **v > 0).map(|(k, v)| format!("{k}={v}")).collect();
    println!();
    println!(
        "sessions created {}, open {}; ARP/ND answers {}, probes {}",
        r.sessions.created,
        r.sessions.v4 + r.sessions.v6,
        r.neigh_answers,
        r.neigh_probes
    );
    println!("drops by reason: {}", if drops.is_empty() { "none".to_string() } else { drops.join(", ") });
    println!("  (on TAP links the kernel's own IPv6 router solicitations and MLD reports reach rvsd; it drops and counts them)");
    for p in &r.ports {
        println!(
            "port {:<7} rx {:>6} pkts {:>9} bytes   tx {:>6} pkts {:>9} bytes",
            p.name, p.rx_packets, p.rx_bytes, p.tx_packets, p.tx_bytes
        );
    }
    let tcp_sessions: u64 = r.services.iter().filter(|s| s.protocol == config::Protocol::Tcp).map(|s| s.totals.conns).sum();
    let udp_sessions: u64 = r.services.iter().filter(|s| s.protocol == config::Protocol::Udp).map(|s| s.totals.conns).sum();
    let agree = tcp_sessions == http_ok && udp_sessions == udp_ok;
    println!(
        "client view vs rvsd: {http_ok} HTTP ok / {tcp_sessions} TCP sessions, {udp_ok} UDP ok / {udp_sessions} UDP sessions: {}",
        if agree { "agree" } else { "DISAGREE" }
    );
    agree
}

/// `rvs-demo ha [nat|fullnat|dr|tunnel]`: the pair, loaded, and its master
/// killed.
fn pair_demo(mode: testbed::pair::Mode) -> anyhow::Result<()> {
    use testbed::pair;
    let started = Instant::now();
    println!("rvs HA demo ({mode:?}): two rvsd, A (priority 150) and B (priority 100), elect a master with VRRPv3 every 100 ms");
    println!("  and stream sessions to each other; a client opens 500 long-lived connections (a request every 50 ms each),");
    println!("  50 UDP flows and 20 new connections a second to VIP 198.18.0.100; then A is killed with SIGKILL.");
    let mut p = pair::running_pair("demo-ha", mode, "");
    println!("A is {}, B is {}", p.ha(0)["state"].as_str().unwrap_or("?"), p.ha(1)["state"].as_str().unwrap_or("?"));
    let secs = 8;
    let load = pair::start_load(&mut p, secs);
    std::thread::sleep(Duration::from_secs(3));
    pair::wait_synced(&mut p, 500);
    println!("B holds {} sessions synced from A; killing A (kill -9)", p.ha(1)["sync_applied"]);
    p.bed.select(0);
    let kill_ms = pair::epoch_ms();
    p.bed.kill_rvsd()?;
    let took = p.wait_state(1, "MASTER", Duration::from_secs(5));
    let v = pair::finish_load(&mut p, load, secs);
    let o = pair::outcome(&v, kill_ms);
    let long = v["long"].as_array().map_or(0, Vec::len);
    let udp = v["udp"].as_array().map_or(0, Vec::len);
    println!();
    println!("B became master {:.0} ms after the kill", took.as_secs_f64() * 1000.0);
    println!("every long-lived connection answered again within {} ms of the kill", o.recovery.as_millis());
    println!("established connections kept: {} of {long}; UDP flows kept: {} of {udp}", long - o.lost, udp - o.udp_lost);
    println!("new connections: {} succeeded, {} failed (all inside the gap: {})", o.new_ok, o.new_failed, o.new_failed_outside == 0);
    let rvsadm = bin("rvsadm")?;
    p.bed.select(1);
    let out = std::process::Command::new(&rvsadm).arg("--socket").arg(p.bed.socket()).args(["show", "ha"]).output()?;
    println!();
    println!("# rvsadm show ha (B)");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    drop(p);
    println!("namespaces removed. Demo took {:.1} s.", started.elapsed().as_secs_f64());
    if o.lost + o.udp_lost + o.new_failed_outside > 0 {
        anyhow::bail!("the failover lost traffic");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("ha") {
        let mode = match args.get(1).map(String::as_str) {
            None | Some("nat") => testbed::pair::Mode::Nat,
            Some("fullnat") => testbed::pair::Mode::FullNat,
            Some("dr") => testbed::pair::Mode::Dr,
            Some("tunnel") => testbed::pair::Mode::Tunnel,
            Some(other) => anyhow::bail!("rvs-demo ha {other:?}: nat, fullnat, dr or tunnel"),
        };
        return pair_demo(mode);
    }
    let started = Instant::now();
    let mut w = build(hugepages_free() >= 128)?;
    // Both clients at once: HTTP, then UDP.
    let (http, http_secs) = from_every_client(&w, &["http", "--url", "http://198.18.0.100/", "--count", "300", "--concurrency", "4"])?;
    let (udp, udp_secs) = from_every_client(&w, &["udp", "--target", "198.18.0.100:53", "--count", "300"])?;
    let (hok, hfail, hby) = merge(&http);
    let (uok, ufail, uby) = merge(&udp);
    println!();
    print_spread(
        &format!("HTTP tcp/80, wrr 1:2:3: {} requests from 2 clients, {hok} ok, {hfail} failed, {http_secs:.2} s", hok + hfail),
        &hby,
        &["198.18.1.11:8080", "198.18.1.12:8080", "198.18.1.13:8080"],
        &[1, 2, 3],
    );
    print_spread(
        &format!("UDP  udp/53, rr:        {} echoes from 2 clients, {uok} ok, {ufail} failed, {udp_secs:.2} s", uok + ufail),
        &uby,
        &["198.18.1.11:9000", "198.18.1.12:9000", "198.18.1.13:9000"],
        &[1, 1, 1],
    );
    let r = w.bed.stats()?;
    print_rvsadm(&w.bed)?;
    let agree = print_counters(&r, hok, uok);
    let (_, _) = w.bed.stop_rvsd()?;
    println!("rvsd stopped cleanly; namespaces removed. Demo took {:.1} s.", started.elapsed().as_secs_f64());
    drop(w);
    if hfail + ufail > 0 || !agree {
        anyhow::bail!("demo saw failures");
    }
    Ok(())
}
