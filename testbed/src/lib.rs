//! Network-namespace test beds for rvs: the end-to-end tests and the demo.
//!
//! A [`Bed`] is one isolated world: a namespace for rvsd (`lb`), a
//! namespace of Linux bridges (`sw`, one bridge per L2 segment), and one
//! namespace per host (clients, real servers). rvsd creates its TAP PMD
//! interfaces in `lb`; the bed then moves each into `sw` and plugs it into
//! its segment's bridge. Hosts hang off the bridges through veth pairs. No
//! namespace has a route out: hosts get routes to test prefixes only
//! (198.18.0.0/15, 2001:db8::/32).
//!
//! Everything is cleaned up when the bed is dropped, also when a test
//! fails: processes the bed started are stopped by PID (SIGTERM, then
//! SIGKILL), then its namespaces are deleted. Namespace names carry the
//! creating process's PID (`rvt<pid>-<n>-<role>`), so two runs never
//! collide, and a new bed first removes what a killed earlier run left
//! behind. Every command and wait has a deadline.
#![forbid(unsafe_code)]
pub mod bench;
pub mod pcap;

use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Prefix of every namespace a bed creates.
pub const NS_PREFIX: &str = "rvt";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Runs a command with a deadline; fails on non-zero exit or timeout.
pub fn run(cmd: &[&str], timeout: Duration) -> Result<Output> {
    let (prog, args) = cmd.split_first().ok_or_else(|| anyhow!("empty command"))?;
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", cmd.join(" ")))?;
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {:?}: {}", timeout, cmd.join(" "));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}{}",
            cmd.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(out)
}

/// `ip ...` with a 10 s deadline.
pub fn ip(args: &[&str]) -> Result<()> {
    let mut v = vec!["ip"];
    v.extend_from_slice(args);
    run(&v, Duration::from_secs(10)).map(|_| ())
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes namespaces left by bed-creating processes that no longer run,
/// stopping the processes inside them first.
pub fn sweep_stale() {
    let Ok(out) = run(&["ip", "netns", "list"], Duration::from_secs(10)) else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(NS_PREFIX) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid_alive(pid) {
            continue;
        }
        kill_ns_procs(name);
        let _ = ip(&["netns", "del", name]);
    }
}

fn kill_ns_procs(name: &str) {
    if let Ok(out) = run(&["ip", "netns", "pids", name], Duration::from_secs(10)) {
        for p in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = p.parse::<i32>() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace with loopback up and IPv6 DAD off.
    pub fn new(name: &str) -> Result<Netns> {
        ip(&["netns", "add", name])?;
        let ns = Netns { name: name.to_string() };
        ns.sh(&["ip", "link", "set", "lo", "up"])?;
        for k in [
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.all.dad_transmits=0",
            "net.ipv6.conf.default.dad_transmits=0",
        ] {
            let _ = ns.sh(&["sysctl", "-qw", k]);
        }
        Ok(ns)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs a command inside (10 s deadline), returning stdout.
    pub fn sh(&self, cmd: &[&str]) -> Result<String> {
        self.sh_timeout(cmd, Duration::from_secs(10))
    }

    /// Runs a command inside with a deadline, returning stdout.
    pub fn sh_timeout(&self, cmd: &[&str], timeout: Duration) -> Result<String> {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(cmd);
        let out = run(&v, timeout)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts a long-running command inside; stopped when the guard drops.
    pub fn spawn(&self, cmd: &[&str], log: &Path) -> Result<Proc> {
        let file = std::fs::File::create(log)?;
        let err = file.try_clone()?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {} in {}", cmd.join(" "), self.name))?;
        Ok(Proc { child: Some(child), what: cmd.join(" "), log: log.to_path_buf() })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_ns_procs(&self.name);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A child process, stopped by PID when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Option<Child>,
    what: String,
    log: PathBuf,
}

impl Proc {
    /// Its PID.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while it runs.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns true if it exited
    /// on SIGTERM with status 0.
    pub fn stop(&mut self, grace: Duration) -> bool {
        let Some(mut c) = self.child.take() else { return false };
        if let Some(pid) = pid_of(&c) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// Sends it a signal (`ip netns exec` execs the command: the PID is
    /// the command's own).
    pub fn signal(&self, sig: nix::sys::signal::Signal) -> Result<()> {
        let pid = self.pid().ok_or_else(|| anyhow!("{} has exited", self.what))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(pid)?), sig)?;
        Ok(())
    }

    /// Description for messages.
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

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
struct RvsPort {
    name: String,
    segment: usize,
    tap: String,
    addresses: Vec<String>,
    kernel: Option<String>,
    /// More lines for its `[[ports]]` table (`mac = ...`).
    extra: String,
}

/// One isolated test world.
#[derive(Debug)]
pub struct Bed {
    /// Unique id (in namespace names).
    pub id: String,
    /// Directory for configuration, socket and logs.
    pub dir: PathBuf,
    procs: Vec<Proc>,
    rvsd: Option<Proc>,
    hosts: Vec<Host>,
    segments: Vec<String>,
    ports: Vec<RvsPort>,
    sw: Netns,
    lb: Netns,
    keep_dir: bool,
    dataplane: String,
    daemon_extra: String,
}

/// Where the workspace's binaries are (`target/<profile>/`).
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("RVS_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    }
}

/// The pid of a child we started, to signal it; `None` if it does not fit
/// a `pid_t` (never on Linux). Never pid 0, which would signal our own
/// process group.
pub fn pid_of(c: &Child) -> Option<nix::unistd::Pid> {
    i32::try_from(c.id()).ok().filter(|&p| p > 0).map(nix::unistd::Pid::from_raw)
}

/// Path of a workspace binary, checked to exist.
pub fn bin(name: &str) -> Result<PathBuf> {
    let p = bin_dir().join(name);
    if !p.exists() {
        bail!("{} not found: build the workspace binaries first (cargo build --workspace --bins)", p.display());
    }
    Ok(p)
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
        Ok(Bed {
            id,
            dir,
            procs: Vec::new(),
            rvsd: None,
            hosts: Vec::new(),
            segments: Vec::new(),
            ports: Vec::new(),
            sw,
            lb,
            keep_dir: false,
            dataplane: String::new(),
            daemon_extra: String::new(),
        })
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
        self.sw.sh(&["ip", "link", "set", &br, "up"])?;
        self.segments.push(br);
        Ok(self.segments.len() - 1)
    }

    /// Declares an rvsd port on `segment` with its addresses ("198.18.0.1/24").
    /// (A TAP port has one queue pair per rvsd worker.)
    pub fn rvsd_port(&mut self, name: &str, segment: usize, addresses: &[&str]) {
        let tap = format!("t{}", self.ports.len());
        self.ports.push(RvsPort {
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
        if let Some(p) = self.ports.last_mut() {
            p.kernel = Some(kernel.to_string());
        }
    }

    /// Extra lines for the `[[ports]]` table of declared port `index`
    /// (e.g. `mac = "02:..."`); they take effect at the next start.
    pub fn port_extra(&mut self, index: usize, lines: &str) {
        if let Some(p) = self.ports.get_mut(index) {
            p.extra = lines.to_string();
        }
    }

    /// Extra lines for the `[daemon]` section (socket mode, allowed uids).
    pub fn daemon_extra(&mut self, lines: &str) {
        self.daemon_extra = lines.to_string();
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

    /// The rvsd namespace.
    pub fn lb(&self) -> &Netns {
        &self.lb
    }

    /// The control socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("rvsd.sock")
    }

    /// The `[[ports]]` TOML for the declared rvsd ports.
    pub fn ports_toml(&self) -> String {
        let mut s = String::new();
        for (i, p) in self.ports.iter().enumerate() {
            let addrs: Vec<String> = p.addresses.iter().map(|a| format!("\"{a}\"")).collect();
            s.push_str(&format!(
                "[[ports]]\nname = \"{}\"\ndevice = \"net_tap{i},iface={}\"\naddresses = [{}]\n",
                p.name,
                p.tap,
                addrs.join(", ")
            ));
            if let Some(k) = &p.kernel {
                s.push_str(&format!("kernel_interface = \"{k}\"\n"));
            }
            if !p.extra.is_empty() {
                s.push_str(&p.extra);
                s.push('\n');
            }
            s.push('\n');
        }
        s
    }

    /// Writes the configuration (daemon and ports sections are generated;
    /// `rest` holds `[dataplane]` extras, neighbours and services), starts
    /// rvsd in `lb`, waits for its control socket, and wires its TAP
    /// interfaces into their segments.
    pub fn start_rvsd(&mut self, dataplane: &str, rest: &str) -> Result<()> {
        self.dataplane = dataplane.to_string();
        let path = self.write_config(rest)?;
        self.start_rvsd_with(&path)
    }

    /// Rewrites the configuration file with new `rest` (services...) and
    /// has rvsd reload it (the control socket's `reload`).
    pub fn reload_with(&mut self, rest: &str) -> Result<()> {
        self.write_config(rest)?;
        self.call("reload", serde_json::Value::Null).map(|_| ())
    }

    /// Writes the configuration file (as [`Bed::start_rvsd`] does) without
    /// telling rvsd.
    pub fn write_config(&self, rest: &str) -> Result<PathBuf> {
        let dataplane = &self.dataplane;
        let cfg = format!(
            "[daemon]\ncontrol_socket = \"{}\"\nmetrics_listen = \"127.0.0.1:9580\"\n{}\n\n[dataplane]\nhugepages = false\nidle_backoff_us = 200\nmbufs = 8191\nsessions_per_worker = 65536\nsessions_v6_per_worker = 16384\n{dataplane}\n\n{}{rest}\n",
            self.socket().display(),
            self.daemon_extra,
            self.ports_toml()
        );
        let path = self.dir.join("rvs.toml");
        std::fs::write(&path, &cfg)?;
        Ok(path)
    }

    /// Starts rvsd with an existing configuration file.
    pub fn start_rvsd_with(&mut self, path: &Path) -> Result<()> {
        let rvsd = bin("rvsd")?;
        let stats = self.dir.join("final-stats.json");
        let proc = self.lb.spawn(
            &[rvsd.to_str().unwrap_or("rvsd"), "-c", path.to_str().unwrap_or(""), "--final-stats", stats.to_str().unwrap_or("")],
            &self.dir.join("rvsd.log"),
        )?;
        self.rvsd = Some(proc);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut c) = mgmt::control::Client::connect(&self.socket()) {
                if c.call("ping", serde_json::Value::Null).is_ok_and(|r| r.ok) {
                    break;
                }
            }
            let running = self.rvsd.as_mut().is_some_and(Proc::running);
            if !running {
                bail!("rvsd exited during start-up:\n{}", self.rvsd_log());
            }
            if Instant::now() > deadline {
                bail!("rvsd did not open its control socket in 30 s:\n{}", self.rvsd_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for (i, p) in self.ports.clone().into_iter().enumerate() {
            self.lb.sh(&["ip", "link", "set", &p.tap, "netns", self.sw.name()])?;
            // The TAP PMD gives the kernel side of the TAP the DPDK port's
            // MAC; as a bridge port, that MAC would count as the bridge's
            // own and frames to rvsd would never leave the bridge.
            let mac = format!(
                "02:b5:{:02x}:{:02x}:{:02x}:{:02x}",
                std::process::id() >> 8 & 0xff,
                std::process::id() & 0xff,
                SEQ.load(Ordering::Relaxed) & 0xff,
                i
            );
            self.sw.sh(&["ip", "link", "set", &p.tap, "address", &mac])?;
            let br = &self.segments[p.segment];
            self.sw.sh(&["ip", "link", "set", &p.tap, "master", br])?;
            self.sw.sh(&["ip", "link", "set", &p.tap, "up"])?;
        }
        Ok(())
    }

    /// Rewrites the configuration file with new `rest` and sends rvsd
    /// SIGHUP; returns once the workers run a newer configuration
    /// generation (or the reload was refused: see the log).
    pub fn sighup_with(&mut self, rest: &str) -> Result<()> {
        let before = self.stats()?.generation;
        self.write_config(rest)?;
        self.signal_rvsd(nix::sys::signal::Signal::SIGHUP)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.stats()?.generation == before {
            if Instant::now() > deadline {
                bail!("no new configuration 10 s after SIGHUP:\n{}", self.rvsd_log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Kills rvsd with SIGKILL (a crash: no clean-up, no final report) and
    /// waits for it to be gone; its TAP interfaces vanish with it.
    pub fn kill_rvsd(&mut self) -> Result<()> {
        let mut p = self.rvsd.take().ok_or_else(|| anyhow!("rvsd not running"))?;
        p.signal(nix::sys::signal::Signal::SIGKILL)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.running() {
            if Instant::now() > deadline {
                bail!("rvsd still running 10 s after SIGKILL");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Its control socket file stays behind, as after a real crash.
        Ok(())
    }

    /// Starts rvsd again on the configuration it last ran with (after
    /// [`Bed::kill_rvsd`] or [`Bed::stop_rvsd`]), regenerating the file so
    /// that port extras set since take effect.
    pub fn restart_rvsd(&mut self, rest: &str) -> Result<()> {
        let path = self.write_config(rest)?;
        self.start_rvsd_with(&path)
    }

    /// Sends rvsd a signal.
    pub fn signal_rvsd(&self, sig: nix::sys::signal::Signal) -> Result<()> {
        self.rvsd.as_ref().ok_or_else(|| anyhow!("rvsd not running"))?.signal(sig)
    }

    /// rvsd's output so far.
    pub fn rvsd_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rvsd.log")).unwrap_or_default()
    }

    /// A control-socket client.
    pub fn ctl(&self) -> Result<mgmt::control::Client> {
        Ok(mgmt::control::Client::connect(&self.socket())?)
    }

    /// Calls a control command, failing on an error reply.
    pub fn call(&self, cmd: &str, args: serde_json::Value) -> Result<serde_json::Value> {
        let r = self.ctl()?.call(cmd, args)?;
        if !r.ok {
            bail!("{cmd}: {:?}", r.error);
        }
        Ok(r.result.unwrap_or_default())
    }

    /// The statistics report.
    pub fn stats(&self) -> Result<mgmt::report::Report> {
        Ok(serde_json::from_value(self.call("stats", serde_json::Value::Null)?)?)
    }

    /// Waits until every neighbour rvsd needs is resolved.
    pub fn wait_neighbors(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.stats()?;
            if r.neighbors.iter().all(|n| n.mac.is_some()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("neighbours unresolved after {timeout:?}: {:?}", r.neighbors);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a long-running process on a host (e.g. a server).
    pub fn spawn(&mut self, host: usize, cmd: &[&str]) -> Result<usize> {
        let log = self.dir.join(format!("{}-{}.log", self.hosts[host].name, self.procs.len()));
        let p = self.hosts[host].ns.spawn(cmd, &log)?;
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

    /// Stops rvsd (SIGTERM) and returns its final report and output.
    pub fn stop_rvsd(&mut self) -> Result<(mgmt::report::Report, String)> {
        let mut p = self.rvsd.take().ok_or_else(|| anyhow!("rvsd not running"))?;
        let clean = p.stop(Duration::from_secs(15));
        let log = p.log();
        if !clean {
            bail!("rvsd did not exit cleanly on SIGTERM:\n{log}");
        }
        let stats =
            std::fs::read_to_string(self.dir.join("final-stats.json")).with_context(|| format!("no final stats; rvsd output:\n{log}"))?;
        Ok((serde_json::from_str(&stats)?, log))
    }
}

/// Refuses routes outside the test ranges (198.18.0.0/15, 2001:db8::/32).
fn check_test_prefix(prefix: &str) -> Result<()> {
    let (addr, len) = prefix.split_once('/').ok_or_else(|| anyhow!("{prefix}: not a prefix"))?;
    let len: u8 = len.parse()?;
    let ok = match addr.parse::<std::net::IpAddr>()? {
        std::net::IpAddr::V4(a) => len >= 15 && (u32::from(a) & 0xfffe_0000) == 0xc612_0000,
        std::net::IpAddr::V6(a) => len >= 32 && (u128::from(a) >> 96) == 0x2001_0db8,
    };
    if !ok {
        bail!("route {prefix} leaves the test ranges 198.18.0.0/15 and 2001:db8::/32");
    }
    Ok(())
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(mut p) = self.rvsd.take() {
            p.stop(Duration::from_secs(10));
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

/// Parses the JSON a testkit client prints.
pub fn tally(v: &serde_json::Value) -> (u64, u64, std::collections::BTreeMap<String, u64>) {
    let ok = v["ok"].as_u64().unwrap_or(0);
    let failed = v["failed"].as_u64().unwrap_or(0);
    let by = v["by_server"].as_object().map(|m| m.iter().map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0))).collect()).unwrap_or_default();
    (ok, failed, by)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_test_prefixes_are_routable() {
        assert!(check_test_prefix("198.18.1.0/24").is_ok());
        assert!(check_test_prefix("198.19.0.0/16").is_ok());
        assert!(check_test_prefix("2001:db8:1::/64").is_ok());
        assert!(check_test_prefix("0.0.0.0/0").is_err());
        assert!(check_test_prefix("10.0.0.0/8").is_err());
        assert!(check_test_prefix("198.16.0.0/13").is_err());
        assert!(check_test_prefix("::/0").is_err());
    }
}
