//! rvsd's life on a bed: its configuration (generated `[daemon]` and
//! `[[ports]]`, the test's own sections), start with its TAP interfaces
//! wired into their segments, reload, kill and restart, the control
//! socket, and a clean stop with its final report.
use crate::bed::Bed;
use crate::netns::SEQ;
use crate::process::{bin, Proc};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Bed {
    /// The `[[ports]]` TOML for the declared rvsd ports.
    pub fn ports_toml(&self) -> String {
        let mut s = String::new();
        for (i, p) in self.lbc().ports.iter().enumerate() {
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
        self.lbc_mut().dataplane = dataplane.to_string();
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
        let dataplane = &self.lbc().dataplane;
        // The bed's defaults, unless the test's dataplane lines set them.
        let defaults: String =
            ["hugepages = false", "idle_backoff_us = 200", "mbufs = 8191", "sessions_per_worker = 65536", "sessions_v6_per_worker = 16384"]
                .iter()
                .filter(|d| {
                    let key = d.split(' ').next().unwrap_or_default();
                    !dataplane.lines().any(|l| l.split('=').next().is_some_and(|k| k.trim() == key))
                })
                .map(|d| format!("{d}\n"))
                .collect();
        let cfg = format!(
            "[daemon]\ncontrol_socket = \"{}\"\nmetrics_listen = \"127.0.0.1:9580\"\n{}\n\n[dataplane]\n{defaults}{dataplane}\n\n{}{rest}\n",
            self.socket().display(),
            self.lbc().daemon_extra,
            self.ports_toml()
        );
        let path = self.lb_file("rvs", "toml");
        std::fs::write(&path, &cfg)?;
        Ok(path)
    }

    /// The configuration file rvsd runs with (the one [`Bed::write_config`]
    /// writes).
    pub fn config_path(&self) -> PathBuf {
        self.lb_file("rvs", "toml")
    }

    /// Starts rvsd with an existing configuration file.
    pub fn start_rvsd_with(&mut self, path: &Path) -> Result<()> {
        let rvsd = bin("rvsd")?;
        let stats = self.lb_file("final-stats", "json");
        let mut cmd: Vec<&str> = Vec::new();
        if !self.lbc().env.is_empty() {
            cmd.push("/usr/bin/env");
            cmd.extend(self.lbc().env.iter().map(String::as_str));
        }
        cmd.extend([rvsd.to_str().unwrap_or("rvsd"), "-c", path.to_str().unwrap_or(""), "--final-stats", stats.to_str().unwrap_or("")]);
        let proc = self.lbc().ns.spawn(&cmd, &self.lb_file("rvsd", "log"))?;
        self.lbc_mut().rvsd = Some(proc);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut c) = mgmt::control::Client::connect(&self.socket()) {
                if c.call("ping", serde_json::Value::Null).is_ok_and(|r| r.ok) {
                    break;
                }
            }
            let running = self.lbc_mut().rvsd.as_mut().is_some_and(Proc::running);
            if !running {
                bail!("rvsd exited during start-up:\n{}", self.rvsd_log());
            }
            if Instant::now() > deadline {
                bail!("rvsd did not open its control socket in 30 s:\n{}", self.rvsd_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for (i, p) in self.lbc().ports.clone().into_iter().enumerate() {
            self.lbc().ns.sh(&["ip", "link", "set", &p.tap, "netns", self.sw.name()])?;
            // The TAP PMD gives the kernel side of the TAP the DPDK port's
            // MAC; as a bridge port, that MAC would count as the bridge's
            // own and frames to rvsd would never leave the bridge.
            let mac = format!(
                "02:b5:{:02x}:{:02x}:{:02x}:{:02x}",
                std::process::id() >> 8 & 0xff,
                std::process::id() & 0xff,
                SEQ.load(Ordering::Relaxed) & 0xff,
                (self.cur << 4 | i) & 0xff
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
        let mut p = self.lbc_mut().rvsd.take().ok_or_else(|| anyhow!("rvsd not running"))?;
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
        self.lbc().rvsd.as_ref().ok_or_else(|| anyhow!("rvsd not running"))?.signal(sig)
    }

    /// The running rvsd's PID.
    pub fn rvsd_pid(&self) -> Option<u32> {
        self.lbc().rvsd.as_ref().and_then(Proc::pid)
    }

    /// The running rvsd's resident memory, KiB (VmRSS).
    pub fn rvsd_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.rvsd_pid()?)).ok()?;
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok())
    }

    /// Frames the kernel could not hand to rvsd on its port `i`: the TAP
    /// queue was full (the TAP's `tx_dropped`, kernel side). What a flood
    /// loses before rvsd sees it, so no counter of rvsd's can.
    pub fn tap_dropped(&self, i: usize) -> Result<u64> {
        let tap = &self.lbc().ports.get(i).ok_or_else(|| anyhow!("no port {i}"))?.tap;
        let v = self.sw.sh(&["cat", &format!("/sys/class/net/{tap}/statistics/tx_dropped")])?;
        v.trim().parse().with_context(|| format!("tx_dropped of {tap}: {v:?}"))
    }

    /// Starts tcpdump (Debian's) on rvsd port `i`'s TAP, capturing what the
    /// kernel hands to rvsd there (the TAP's egress) into `out`, packet by
    /// packet; returns once it listens. Stop it with
    /// [`crate::process::Proc::stop`] (SIGTERM: it flushes and reports its
    /// counts in its log).
    pub fn capture_port(&mut self, i: usize, out: &Path) -> Result<usize> {
        let tap = self.lbc().ports.get(i).ok_or_else(|| anyhow!("no port {i}"))?.tap.clone();
        let log = self.dir.join(format!("tcpdump-{tap}-{}.log", self.procs.len()));
        let o = out.display().to_string();
        let p = self
            .sw
            .spawn(&["tcpdump", "-i", &tap, "-Q", "out", "--immediate-mode", "-B", "32768", "-U", "-n", "-s", "0", "-w", &o], &log)?;
        self.procs.push(p);
        let idx = self.procs.len() - 1;
        let t = Instant::now();
        while !self.procs[idx].log().contains("listening on") {
            if t.elapsed() > Duration::from_secs(10) {
                bail!("tcpdump did not start: {}", self.procs[idx].log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(idx)
    }

    /// rvsd's output so far.
    pub fn rvsd_log(&self) -> String {
        std::fs::read_to_string(self.lb_file("rvsd", "log")).unwrap_or_default()
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

    /// Stops rvsd (SIGTERM) and returns its final report and output.
    pub fn stop_rvsd(&mut self) -> Result<(mgmt::report::Report, String)> {
        let mut p = self.lbc_mut().rvsd.take().ok_or_else(|| anyhow!("rvsd not running"))?;
        let clean = p.stop(Duration::from_secs(15));
        let log = p.log();
        if !clean {
            bail!("rvsd did not exit cleanly on SIGTERM:\n{log}");
        }
        let stats =
            std::fs::read_to_string(self.lb_file("final-stats", "json")).with_context(|| format!("no final stats; rvsd output:\n{log}"))?;
        Ok((serde_json::from_str(&stats)?, log))
    }
}
