//! Network namespaces: created with unique names, deleted on drop, and
//! swept when a killed earlier run left them behind; routes only to the
//! test ranges.
use crate::process::{ip, pid_alive, run, Proc};
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Prefix of every namespace a bed creates.
pub const NS_PREFIX: &str = "rvt";

pub(crate) static SEQ: AtomicU32 = AtomicU32::new(0);

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

/// Refuses routes outside the test ranges (198.18.0.0/15, 2001:db8::/32).
pub(crate) fn check_test_prefix(prefix: &str) -> Result<()> {
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
