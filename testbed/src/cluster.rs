//! N active balancers behind a router's ECMP, announced by BGP through
//! BIRD: the bed of the scale-out tests.
//!
//! ```text
//!  client c0 ──(c)── router r ──(f)── box 0..N (rvsd + BIRD each) ──(s)── real servers
//!                       └───────────────────────(s)───────────────────────┘ (DR replies)
//! ```
//!
//! The router runs BIRD with one eBGP session (and BFD) per box and
//! installs the VIP's route with one next hop per box that announces it
//! (`merge paths`), hashing on ports (`fib_multipath_hash_policy = 1`).
//! Each box runs rvsd (one worker, DR, cluster mode, Maglev) and its own
//! BIRD in rvsd's namespace, peering over the client port's kernel
//! interface and exporting the routes rvsd keeps in kernel table 100.
#![expect(clippy::unwrap_used, clippy::panic, reason = "a test harness: a failed step ends the test with its message")]
use crate::{bin, Bed};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The VIP the boxes announce (on no connected network: reached only by
/// the BGP routes).
pub const VIP: &str = "198.18.3.100";

/// Box `i`'s address on the fabric (towards the router).
pub fn box_addr(i: usize) -> String {
    format!("198.18.0.{}", 2 + i)
}

/// The router's address on the fabric.
pub const ROUTER: &str = "198.18.0.254";

/// The `[announce]` section and the cluster-mode DR service over three
/// real servers, with a TCP health check.
pub fn config() -> String {
    let mut s = format!(
        "[announce]\nport = \"client\"\ntable = 100\ndrain_ms = 1000\n\n\
         [[services]]\nvip = \"{VIP}\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"mh\"\nforwarding = \"dr\"\ncluster = true\n\
         [services.health_check]\nkind = \"tcp\"\ninterval = 0.2\ntimeout = 0.5\nrise = 1\nfall = 2\n"
    );
    for k in 0..3 {
        s.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{}\"\nport = 80\n", 11 + k));
    }
    s
}

/// BIRD on box `i`: learns kernel table 100 (rvsd's announced routes) and
/// exports it to the router with next hop self; BFD on the session.
pub fn box_bird(i: usize) -> String {
    let me = box_addr(i);
    format!(
        "router id {me};\n\
         protocol device {{ scan time 1; }}\n\
         protocol kernel vips {{\n  kernel table 100;\n  learn;\n  scan time 1;\n  ipv4 {{ import all; export none; }};\n}}\n\
         protocol bfd {{ interface \"rvsk\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }}; }}\n\
         protocol bgp up {{\n  local {me} as 65001;\n  neighbor {ROUTER} as 65000;\n  hold time 3;\n  keepalive time 1;\n  \
         connect retry time 1;\n  bfd on;\n  ipv4 {{ import none; export where proto = \"vips\"; next hop self; }};\n}}\n"
    )
}

/// BIRD on the router: one session per box, the best routes merged into
/// one multipath kernel route.
pub fn router_bird(n: usize) -> String {
    let mut s = format!(
        "router id {ROUTER};\n\
         protocol device {{ scan time 1; }}\n\
         protocol kernel {{\n  merge paths on;\n  ipv4 {{ import none; export all; }};\n}}\n\
         protocol bfd {{ interface \"eth1\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }}; }}\n"
    );
    for i in 0..n {
        s.push_str(&format!(
            "protocol bgp box{i} {{\n  local {ROUTER} as 65000;\n  neighbor {} as 65001;\n  hold time 3;\n  keepalive time 1;\n  \
             connect retry time 1;\n  bfd on;\n  ipv4 {{ import all; export none; }};\n}}\n",
            box_addr(i)
        ));
    }
    s
}

/// The cluster: a bed with `n` balancers (none started), a router, a
/// client and three DR real servers.
#[derive(Debug)]
pub struct Cluster {
    /// The bed (balancer i is box i).
    pub bed: Bed,
    /// The router host.
    pub router: usize,
    /// The client host.
    pub client: usize,
    /// The real servers.
    pub servers: Vec<usize>,
    /// Each box's BIRD process (a bed process index), while it runs.
    pub birds: Vec<Option<usize>>,
    /// The router's BIRD process.
    pub router_bird: usize,
}

/// Builds the cluster of `n` boxes; the router's BIRD runs, no box does.
pub fn cluster(tag: &str, n: usize) -> Cluster {
    let mut bed = Bed::new(tag).unwrap();
    let f = bed.segment("f").unwrap();
    let s = bed.segment("s").unwrap();
    let c = bed.segment("c").unwrap();
    for _ in 1..n {
        bed.add_balancer().unwrap();
    }
    for i in 0..n {
        bed.select(i);
        bed.rvsd_port_with_kernel("client", f, &[&format!("{}/24", box_addr(i))], "rvsk");
        bed.rvsd_port_with_kernel("server", s, &[&format!("198.18.1.{}/24", 2 + i)], "rvss");
    }
    bed.select(0);
    let router = bed.host("r", c, &["198.18.2.1/24"], &[]).unwrap();
    bed.attach(router, f, "eth1", &[&format!("{ROUTER}/24")]).unwrap();
    bed.attach(router, s, "eth2", &["198.18.1.254/24"]).unwrap();
    for k in ["net.ipv4.ip_forward=1", "net.ipv4.fib_multipath_hash_policy=1"] {
        bed.h(router).ns.sh(&["sysctl", "-qw", k]).unwrap();
    }
    let client = bed.host("c0", c, &["198.18.2.10/24"], &[("198.18.3.0/24", "198.18.2.1")]).unwrap();
    let kit = bin("rvs-testkit").unwrap();
    let mut servers = Vec::new();
    for k in 0..3 {
        let h = bed.host(&format!("s{k}"), s, &[&format!("198.18.1.{}/24", 11 + k)], &[("198.18.2.0/24", "198.18.1.254")]).unwrap();
        let ns = &bed.h(h).ns;
        ns.sh(&["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"]).unwrap();
        for x in [
            "net.ipv4.conf.all.arp_ignore=1",
            "net.ipv4.conf.all.arp_announce=2",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.lo.rp_filter=0",
        ] {
            ns.sh(&["sysctl", "-qw", x]).unwrap();
        }
        bed.spawn(h, &[kit.to_str().unwrap(), "serve", "--name", &format!("rs{}", k + 1), "--http", "0.0.0.0:80"]).unwrap();
        servers.push(h);
    }
    let conf = bed.dir.join("bird-router.conf");
    std::fs::write(&conf, router_bird(n)).unwrap();
    let sock = bed.dir.join("bird-router.ctl");
    let router_bird = spawn_bird(&mut bed, Some(router), &conf, &sock);
    Cluster { bed, router, client, servers, birds: vec![None; n], router_bird }
}

/// Starts BIRD on a host (or, with None, in the selected balancer's
/// namespace) in the foreground; returns its process index.
fn spawn_bird(bed: &mut Bed, host: Option<usize>, conf: &std::path::Path, sock: &std::path::Path) -> usize {
    let args =
        ["/usr/sbin/bird", "-f", "-c", conf.to_str().unwrap(), "-s", sock.to_str().unwrap(), "-P", &format!("{}.pid", sock.display())];
    match host {
        Some(h) => bed.spawn(h, &args).unwrap(),
        None => bed.spawn_on_balancer(&args).unwrap(),
    }
}

impl Cluster {
    /// Starts box `i`: rvsd, then its BIRD.
    pub fn start(&mut self, i: usize) {
        self.bed.select(i);
        self.bed.start_rvsd("workers = 1", &config()).unwrap_or_else(|e| panic!("box {i}: {e}"));
        let conf = self.bed.dir.join(format!("bird-box{i}.conf"));
        std::fs::write(&conf, box_bird(i)).unwrap();
        let sock = self.bed.dir.join(format!("bird-box{i}.ctl"));
        self.birds[i] = Some(spawn_bird(&mut self.bed, None, &conf, &sock));
    }

    /// `kill -9` of box `i`'s rvsd and BIRD.
    pub fn kill(&mut self, i: usize) {
        self.bed.select(i);
        self.bed.kill_rvsd().unwrap();
        if let Some(b) = self.birds[i].take() {
            self.bed.proc(b).signal(nix::sys::signal::Signal::SIGKILL).unwrap();
        }
    }

    /// A clean stop of box `i` (rvsd withdraws, drains, stops), then its
    /// BIRD.
    pub fn stop(&mut self, i: usize) {
        self.bed.select(i);
        self.bed.stop_rvsd().unwrap();
        if let Some(b) = self.birds[i].take() {
            self.bed.proc(b).stop(Duration::from_secs(3));
        }
    }

    /// The router's next hops for the VIP now.
    pub fn next_hops(&self) -> Vec<String> {
        let out = self.bed.h(self.router).ns.sh(&["ip", "-4", "route", "show", &format!("{VIP}/32")]).unwrap_or_default();
        let words: Vec<&str> = out.split_whitespace().collect();
        let mut hops: Vec<String> = words.windows(2).filter(|w| w[0] == "via").map(|w| w[1].to_string()).collect();
        hops.sort();
        hops.dedup();
        hops
    }

    /// Waits until the router's next hops for the VIP are the boxes
    /// `boxes`; returns how long that took.
    pub fn wait_hops(&mut self, boxes: &[usize], limit: Duration) -> Duration {
        let mut want: Vec<String> = boxes.iter().map(|&i| box_addr(i)).collect();
        want.sort();
        let t = Instant::now();
        loop {
            let hops = self.next_hops();
            if hops == want {
                return t.elapsed();
            }
            if t.elapsed() > limit {
                let logs: Vec<String> = (0..self.birds.len()).map(|i| self.bird_log(i)).collect();
                panic!(
                    "router's next hops for {VIP}: {hops:?}, not {want:?} after {limit:?}\nrouter BIRD:\n{}\nboxes' BIRD:\n{}",
                    self.router_log(),
                    logs.join("\n---\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn router_log(&mut self) -> String {
        self.bed.proc(self.router_bird).log()
    }

    /// Box `i`'s BIRD log (empty when it does not run).
    pub fn bird_log(&mut self, i: usize) -> String {
        self.birds[i].map(|b| self.bed.proc(b).log()).unwrap_or_default()
    }

    /// Box `i`'s `show node`.
    pub fn node(&mut self, i: usize) -> serde_json::Value {
        self.bed.select(i);
        self.bed.call("node", serde_json::Value::Null).unwrap_or_else(|e| panic!("box {i}: {e}\n{}", self.bed.rvsd_log()))
    }

    /// Waits until box `i` announces the VIP (its health checks found a
    /// server).
    pub fn wait_announced(&mut self, i: usize, limit: Duration) {
        let t = Instant::now();
        while self.node(i)["announced"].as_array().is_none_or(Vec::is_empty) {
            assert!(t.elapsed() < limit, "box {i} announces nothing after {limit:?}: {}", self.node(i));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// New sessions box `i` has created so far.
    pub fn created(&mut self, i: usize) -> u64 {
        self.bed.select(i);
        self.bed.stats().unwrap().sessions.created
    }

    /// The directory of the bed (configurations, logs).
    pub fn dir(&self) -> PathBuf {
        self.bed.dir.clone()
    }
}
