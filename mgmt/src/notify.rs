//! systemd's service notification protocol (sd_notify(3)), spoken without
//! libsystemd: datagrams to the socket `$NOTIFY_SOCKET` names (a path, or
//! an abstract name written `@name`).
//!
//! rvsd sends `READY=1` once its ports are up and its workers forward,
//! `RELOADING=1` (with `MONOTONIC_USEC`) and `READY=1` around a SIGHUP
//! reload, `STOPPING=1` when it stops, `STATUS=` lines saying what it does,
//! and - when systemd set `WATCHDOG_USEC` (`WatchdogSec=` in the unit) -
//! `WATCHDOG=1` at half that period, but only while every worker makes
//! progress: a stuck worker stops the keep-alives and systemd restarts the
//! service. Without `$NOTIFY_SOCKET` nothing is sent.
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// The notification socket, if rvsd runs under systemd (or a test acting
/// as it).
#[derive(Debug)]
pub struct Notifier {
    sock: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    /// Half of `WATCHDOG_USEC`, when systemd asked for keep-alives.
    watchdog: Option<Duration>,
    last_keepalive: Instant,
    /// Each worker's loop count at the last keep-alive.
    loops: Vec<u64>,
}

impl Notifier {
    /// From the environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`,
    /// `WATCHDOG_PID`).
    pub fn from_env() -> Notifier {
        let sock = std::env::var_os("NOTIFY_SOCKET").and_then(|p| {
            let p = p.to_string_lossy().into_owned();
            let addr = if let Some(name) = p.strip_prefix('@') {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?
            } else {
                std::os::unix::net::SocketAddr::from_pathname(&p).ok()?
            };
            Some((UnixDatagram::unbound().ok()?, addr))
        });
        let for_us = std::env::var("WATCHDOG_PID").ok().and_then(|p| p.parse::<u32>().ok()).is_none_or(|p| p == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us)
            .map(|u| Duration::from_micros(u / 2));
        Notifier { sock, watchdog, last_keepalive: Instant::now(), loops: Vec::new() }
    }

    /// Sends one notification (lines `KEY=value`); errors are ignored, as
    /// sd_notify's are.
    pub fn send(&self, msg: &str) {
        if let Some((s, addr)) = &self.sock {
            let _ = s.send_to_addr(msg.as_bytes(), addr);
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// `RELOADING=1` before a reload (with the monotonic time systemd
    /// 253+ expects).
    pub fn reloading(&self) {
        let usec = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_nsec()).unwrap_or(0) / 1000)
            .unwrap_or(0);
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading the configuration"));
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    /// Called from the management loop with each worker's loop counter:
    /// sends `WATCHDOG=1` once per half period if every worker's counter
    /// moved since the last keep-alive. Returns the workers that did not
    /// (empty when all did or no keep-alive was due).
    pub fn watchdog(&mut self, loops: &[u64]) -> Vec<usize> {
        let Some(period) = self.watchdog else { return Vec::new() };
        if self.last_keepalive.elapsed() < period {
            return Vec::new();
        }
        let stuck: Vec<usize> = if self.loops.len() == loops.len() {
            loops.iter().zip(&self.loops).enumerate().filter(|(_, (now, then))| now == then).map(|(i, _)| i).collect()
        } else {
            Vec::new()
        };
        self.loops = loops.to_vec();
        self.last_keepalive = Instant::now();
        if stuck.is_empty() {
            self.send("WATCHDOG=1");
        }
        stuck
    }
}
