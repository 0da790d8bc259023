//! A test bed: rvsd's namespace, a namespace of bridges (one per L2
//! segment), hosts on veth pairs, and the processes started on them; all
//! of it removed on drop.
use crate::netns::{check_test_prefix, sweep_stale, Netns, NS_PREFIX, SEQ};
use crate::process::Proc;
use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A host on the bed.
#[derive(Debug)]
pub struct Host {
    /// Its namespace.
    pub ns: Netns,
    /// Its name on the bed.
    pub name: String,
    /// IPv4 address.
    pub v4: Option<String>,
    /// IPv6 address.
    pub v6: Option<String>,
}

/// A port rvsd will own.
#[derive(Debug, Clone)]
pub(crate) struct RvsPort {
    pub(crate) name: String,
    pub(crate) segment: usize,
    pub(crate) tap: String,
    pub(crate) addresses: Vec<String>,
    pub(crate) kernel: Option<String>,
    /// More lines for its `[[ports]]` table (`mac = ...`).
    pub(crate) extra: String,
}

/// One balancer of a bed: its namespace, ports, configuration and rvsd.
#[derive(Debug)]
pub(crate) struct Lb {
    pub(crate) ns: Netns,
    pub(crate) rvsd: Option<Proc>,
    pub(crate) ports: Vec<RvsPort>,
    pub(crate) dataplane: String,
    pub(crate) daemon_extra: String,
    /// Environment variables rvsd starts with (`NAME=value`).
    pub(crate) env: Vec<String>,
}

impl Lb {
    fn new(ns: Netns) -> Lb {
        Lb { ns, rvsd: None, ports: Vec::new(), dataplane: String::new(), daemon_extra: String::new(), env: Vec::new() }
    }
}

/// One isolated test world. It has one balancer (`lb`) unless
/// [`Bed::add_balancer`] adds more (a pair); the rvsd methods act on the
/// balancer [`Bed::select`] chose (the first by default).
#[derive(Debug)]
pub struct Bed {
    /// Unique id (in namespace names).
    pub id: String,
    /// Directory for configuration, socket and logs.
    pub dir: PathBuf,
    pub(crate) procs: Vec<Proc>,
    pub(crate) hosts: Vec<Host>,
    pub(crate) segments: Vec<String>,
    pub(crate) sw: Netns,
    pub(crate) lbs: Vec<Lb>,
    pub(crate) cur: usize,
    pub(crate) keep_dir: bool,
}

impl Bed {
    /// Creates the `lb` and `sw` namespaces of a new bed.
    pub fn new(tag: &str) -> Result<Bed> {
        if !nix::unistd::geteuid().is_root() {
            bail!("test beds need root (network namespaces)");
        }
        sweep_stale();
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let id = format!("{NS_PREFIX}{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("{id}-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let lb = Netns::new(&format!("{id}-lb"))?;
        let sw = Netns::new(&format!("{id}-sw"))?;
        Ok(Bed { id, dir, procs: Vec::new(), hosts: Vec::new(), segments: Vec::new(), sw, lbs: vec![Lb::new(lb)], cur: 0, keep_dir: false })
    }

    /// Adds another balancer (its own namespace, ports and rvsd: the
    /// second node of a pair); returns its index.
    pub fn add_balancer(&mut self) -> Result<usize> {
        let n = self.lbs.len();
        self.lbs.push(Lb::new(Netns::new(&format!("{}-lb{n}", self.id))?));
        Ok(n)
    }

    /// Makes balancer `i` the one the rvsd methods act on.
    pub fn select(&mut self, i: usize) {
        assert!(i < self.lbs.len(), "no balancer {i}");
        self.cur = i;
    }

    /// The balancer selected.
    pub(crate) fn lbc(&self) -> &Lb {
        &self.lbs[self.cur]
    }

    pub(crate) fn lbc_mut(&mut self) -> &mut Lb {
        &mut self.lbs[self.cur]
    }

    /// A file of the selected balancer: `stem.ext` for the first,
    /// `stem<i>.ext` for the others.
    pub(crate) fn lb_file(&self, stem: &str, ext: &str) -> PathBuf {
        if self.cur == 0 {
            self.dir.join(format!("{stem}.{ext}"))
        } else {
            self.dir.join(format!("{stem}{}.{ext}", self.cur))
        }
    }

    /// Starts the selected balancer's rvsd with `NAME=value` in its
    /// environment (e.g. systemd's `NOTIFY_SOCKET`).
    pub fn rvsd_env(&mut self, var: &str) {
        self.lbc_mut().env.push(var.to_string());
    }

    /// Keeps the bed's directory (logs) after drop, for debugging.
    pub fn keep_logs(&mut self) {
        self.keep_dir = true;
    }

    /// Adds an L2 segment (a bridge in `sw`); returns its index.
    pub fn segment(&mut self, name: &str) -> Result<usize> {
        let br = format!("br-{name}");
        self.sw.sh(&["ip", "link", "add", &br, "type", "bridge"])?;
        let _ = self.sw.sh(&["ip", "link", "set", &br, "type", "bridge", "mcast_snooping", "0"]);
        // A switch forwards frames as they are: where br_netfilter is loaded
        // (Docker loads it) the bridge would pass IP through the host's
        // netfilter, which drops a wrong IPv4 header checksum before it can
        // reach rvsd (the setting is per namespace; this is the bed's own).
        for t in ["iptables", "ip6tables", "arptables"] {
            let _ = self.sw.sh(&["sysctl", "-qw", &format!("net.bridge.bridge-nf-call-{t}=0")]);
        }
        self.sw.sh(&["ip", "link", "set", &br, "up"])?;
        self.segments.push(br);
        Ok(self.segments.len() - 1)
    }

    /// Declares an rvsd port on `segment` with its addresses ("198.18.0.1/24").
    /// (A TAP port has one queue pair per rvsd worker.)
    pub fn rvsd_port(&mut self, name: &str, segment: usize, addresses: &[&str]) {
        let cur = self.cur;
        let lb = self.lbc_mut();
        // Unique in the switch namespace, where every balancer's TAPs go.
        let tap = if cur == 0 { format!("t{}", lb.ports.len()) } else { format!("t{cur}-{}", lb.ports.len()) };
        lb.ports.push(RvsPort {
            name: name.to_string(),
            segment,
            tap,
            addresses: addresses.iter().map(|s| (*s).to_string()).collect(),
            kernel: None,
            extra: String::new(),
        });
    }

    /// Like [`Bed::rvsd_port`], with a kernel interface (the exception path
    /// health checks use) named `kernel` in rvsd's namespace.
    pub fn rvsd_port_with_kernel(&mut self, name: &str, segment: usize, addresses: &[&str], kernel: &str) {
        self.rvsd_port(name, segment, addresses);
        if let Some(p) = self.lbc_mut().ports.last_mut() {
            p.kernel = Some(kernel.to_string());
        }
    }

    /// Extra lines for the `[[ports]]` table of declared port `index`
    /// (e.g. `mac = "02:..."`); they take effect at the next start.
    pub fn port_extra(&mut self, index: usize, lines: &str) {
        if let Some(p) = self.lbc_mut().ports.get_mut(index) {
            p.extra = lines.to_string();
        }
    }

    /// Extra lines for the `[daemon]` section (socket mode, allowed uids).
    pub fn daemon_extra(&mut self, lines: &str) {
        self.lbc_mut().daemon_extra = lines.to_string();
    }

    /// Adds a host on `segment` with addresses and routes `(prefix, via)`.
    pub fn host(&mut self, name: &str, segment: usize, addresses: &[&str], routes: &[(&str, &str)]) -> Result<usize> {
        let ns = Netns::new(&format!("{}-{name}", self.id))?;
        let br = self.segments.get(segment).ok_or_else(|| anyhow!("no segment {segment}"))?.clone();
        let sw_if = format!("v-{name}");
        self.sw.sh(&["ip", "link", "add", &sw_if, "type", "veth", "peer", "name", "eth0", "netns", ns.name()])?;
        self.sw.sh(&["ip", "link", "set", &sw_if, "master", &br])?;
        self.sw.sh(&["ip", "link", "set", &sw_if, "up"])?;
        ns.sh(&["ip", "link", "set", "eth0", "up"])?;
        let mut v4 = None;
        let mut v6 = None;
        for a in addresses {
            if a.contains(':') {
                ns.sh(&["ip", "-6", "addr", "add", a, "dev", "eth0", "nodad"])?;
                v6 = Some(a.split('/').next().unwrap_or(a).to_string());
            } else {
                ns.sh(&["ip", "addr", "add", a, "dev", "eth0"])?;
                v4 = Some(a.split('/').next().unwrap_or(a).to_string());
            }
        }
        for (prefix, via) in routes {
            check_test_prefix(prefix)?;
            let fam = if prefix.contains(':') { "-6" } else { "-4" };
            ns.sh(&["ip", fam, "route", "add", prefix, "via", via])?;
        }
        self.hosts.push(Host { ns, name: name.to_string(), v4, v6 });
        Ok(self.hosts.len() - 1)
    }

    /// Plugs an existing host into another segment as `ifname` with more
    /// addresses (routers, multi-homed hosts).
    pub fn attach(&mut self, host: usize, segment: usize, ifname: &str, addresses: &[&str]) -> Result<()> {
        let br = self.segments.get(segment).ok_or_else(|| anyhow!("no segment {segment}"))?.clone();
        let h = &self.hosts[host];
        let sw_if = format!("v-{}-{ifname}", h.name);
        self.sw.sh(&["ip", "link", "add", &sw_if, "type", "veth", "peer", "name", ifname, "netns", h.ns.name()])?;
        self.sw.sh(&["ip", "link", "set", &sw_if, "master", &br])?;
        self.sw.sh(&["ip", "link", "set", &sw_if, "up"])?;
        h.ns.sh(&["ip", "link", "set", ifname, "up"])?;
        for a in addresses {
            if a.contains(':') {
                h.ns.sh(&["ip", "-6", "addr", "add", a, "dev", ifname, "nodad"])?;
            } else {
                h.ns.sh(&["ip", "addr", "add", a, "dev", ifname])?;
            }
        }
        Ok(())
    }

    /// A host by index.
    pub fn h(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    /// The selected balancer's namespace.
    pub fn lb(&self) -> &Netns {
        &self.lbc().ns
    }

    /// The selected balancer's control socket path.
    pub fn socket(&self) -> PathBuf {
        self.lb_file("rvsd", "sock")
    }

    /// Starts a long-running process on a host (e.g. a server).
    pub fn spawn(&mut self, host: usize, cmd: &[&str]) -> Result<usize> {
        let log = self.dir.join(format!("{}-{}.log", self.hosts[host].name, self.procs.len()));
        let p = self.hosts[host].ns.spawn(cmd, &log)?;
        self.procs.push(p);
        Ok(self.procs.len() - 1)
    }

    /// Starts a long-running process in the selected balancer's namespace
    /// (beside its rvsd: a routing daemon).
    pub fn spawn_on_balancer(&mut self, cmd: &[&str]) -> Result<usize> {
        let log = self.lb_file(&format!("lb-proc{}", self.procs.len()), "log");
        let p = self.lbc().ns.spawn(cmd, &log)?;
        self.procs.push(p);
        Ok(self.procs.len() - 1)
    }

    /// A started process.
    pub fn proc(&mut self, i: usize) -> &mut Proc {
        &mut self.procs[i]
    }

    /// Waits for a started process to exit (killing it after `timeout`)
    /// and returns its output.
    pub fn wait(&mut self, i: usize, timeout: Duration) -> Result<String> {
        let p = &mut self.procs[i];
        let deadline = Instant::now() + timeout;
        while p.running() {
            if Instant::now() > deadline {
                p.stop(Duration::from_secs(1));
                bail!("{} did not finish in {timeout:?}", p.what());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(p.log())
    }

    /// Runs a command on a host and parses its stdout as JSON.
    pub fn json(&self, host: usize, cmd: &[&str], timeout: Duration) -> Result<serde_json::Value> {
        let out = self.hosts[host].ns.sh_timeout(cmd, timeout)?;
        serde_json::from_str(out.trim()).with_context(|| format!("not JSON from {}: {out}", cmd.join(" ")))
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for lb in &mut self.lbs {
            if let Some(mut p) = lb.rvsd.take() {
                p.stop(Duration::from_secs(10));
            }
        }
        for mut p in self.procs.drain(..) {
            p.stop(Duration::from_secs(3));
        }
        self.hosts.clear();
        if !self.keep_dir && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
