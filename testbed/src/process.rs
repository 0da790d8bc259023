//! Processes: commands with a deadline, children stopped by PID, the
//! workspace's binaries.
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// Runs `cmd` in a process group of its own, its standard output going to
/// the file `out` and its standard input empty, bounded by `limit`: on
/// timeout the whole group (the command and whatever it started: a script's
/// valgrind, a harness's rvsd and testpmd) is killed. Returns the exit
/// status (None on timeout) and what it printed.
pub fn run_grouped(cmd: &mut Command, out: &Path, limit: Duration) -> Result<(Option<std::process::ExitStatus>, String)> {
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?)
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if Instant::now() > deadline {
            let pgid = i32::try_from(child.id())?;
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok((status, std::fs::read_to_string(out).unwrap_or_default()))
}

/// `ip ...` with a 10 s deadline.
pub fn ip(args: &[&str]) -> Result<()> {
    let mut v = vec!["ip"];
    v.extend_from_slice(args);
    run(&v, Duration::from_secs(10)).map(|_| ())
}

pub(crate) fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A child process, stopped by PID when dropped.
#[derive(Debug)]
pub struct Proc {
    pub(crate) child: Option<Child>,
    pub(crate) what: String,
    pub(crate) log: PathBuf,
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

/// Parses the JSON a testkit client prints.
pub fn tally(v: &serde_json::Value) -> (u64, u64, std::collections::BTreeMap<String, u64>) {
    let ok = v["ok"].as_u64().unwrap_or(0);
    let failed = v["failed"].as_u64().unwrap_or(0);
    let by = v["by_server"].as_object().map(|m| m.iter().map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0))).collect()).unwrap_or_default();
    (ok, failed, by)
}
