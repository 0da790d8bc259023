//! The container image (issue 15): `scripts/container.sh` builds it from
//! the Debian package on a Debian 12 base made locally with debootstrap
//! (no registry needed), and the README's demo runs inside it - network
//! namespaces, kernel clients and real servers, rvsd on TAP ports - with
//! its summary checked. Also: the image holds exactly the package's
//! runtime dependencies (no NIC driver it only recommends), and the
//! installed rvsd validates its configuration there.
//!
//! Starts the Docker daemon when none answers (and stops it, by PID, at
//! the end); the images get unique tags and are removed; the base image
//! (`rvs-base:bookworm`) is kept as a cache for the next build.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testbed::process::run;

/// A dockerd this test started: stopped (SIGTERM, by PID) when dropped.
struct Daemon(Option<Child>);
impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            if let Some(pid) = testbed::pid_of(&c) {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            }
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(20) && c.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn docker_answers() -> bool {
    run(&["docker", "info"], Duration::from_secs(20)).is_ok_and(|o| o.status.success())
}

fn daemon() -> Daemon {
    if docker_answers() {
        return Daemon(None);
    }
    let log = std::fs::File::create(std::env::temp_dir().join(format!("rvs-dockerd-{}.log", std::process::id()))).unwrap();
    let child = Command::new("dockerd").stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
    let d = Daemon(Some(child));
    let t = Instant::now();
    while !docker_answers() {
        assert!(t.elapsed() < Duration::from_secs(60), "dockerd did not answer in 60 s");
        std::thread::sleep(Duration::from_millis(500));
    }
    d
}

/// Removes the test's containers and images when dropped.
struct Images(String);
impl Drop for Images {
    fn drop(&mut self) {
        let _ = run(&["docker", "rm", "-f", &format!("{}-run", self.0)], Duration::from_secs(30));
        let _ = run(&["docker", "rmi", "-f", &self.0, &format!("{}-demo", self.0)], Duration::from_secs(60));
    }
}

fn out(cmd: &[&str], secs: u64) -> String {
    let o = run(cmd, Duration::from_secs(secs)).unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let (so, se) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{cmd:?} failed:\n{so}\n{se}");
    format!("{so}{se}")
}

/// What DPDK and the demo need in a container, granted one by one rather
/// than `--privileged` (which asks for every capability, and a machine
/// whose own bounding set lacks one - CAP_SYS_RESOURCE on these - refuses
/// it): hugepages, TAP, namespaces and their links, raw sockets.
const CAPS: [&str; 8] = ["NET_ADMIN", "SYS_ADMIN", "IPC_LOCK", "NET_RAW", "SYS_RAWIO", "DAC_OVERRIDE", "SYS_PTRACE", "SYS_NICE"];

#[test]
fn the_container_image_runs_the_demo() {
    let _daemon = daemon();
    let tag = format!("rvs-ci-{}", std::process::id());
    let _images = Images(tag.clone());
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bins = testbed::bin("rvsd").unwrap().parent().unwrap().to_path_buf();
    let built = out(&["bash", repo.join("scripts/container.sh").to_str().unwrap(), "--bins", bins.to_str().unwrap(), "--tag", &tag], 600);
    println!("{}", built.lines().last().unwrap_or_default());

    // Exactly the runtime packages: what the .deb depends on, not the NIC
    // drivers it only recommends; every library resolves; the installed
    // configuration validates.
    let inside = out(
        &[
            "docker",
            "run",
            "--rm",
            &tag,
            "sh",
            "-c",
            "ldd /usr/sbin/rvsd /usr/sbin/rvsadm; dpkg-query -W -f '${Package}\\n'; /usr/sbin/rvsd -c /etc/rvs/rvs.toml --check",
        ],
        120,
    );
    assert!(!inside.contains("not found"), "{inside}");
    assert!(inside.contains("configuration OK"), "{inside}");
    for p in ["librte-net-tap23", "librte-net-pcap23", "librte-mempool-ring23", "librte-bus-vdev23", "iproute2", "rvs"] {
        assert!(inside.lines().any(|l| l == p), "{p} not in the image:\n{inside}");
    }
    for p in ["librte-net-ixgbe23", "librte-net-mlx5-23", "dpdk", "python3"] {
        assert!(!inside.lines().any(|l| l == p), "{p} is in the image but the package only recommends it (or nothing needs it)");
    }

    // (a) The demo inside the container, its summary checked.
    let mut cmd: Vec<String> = ["docker", "run", "--rm", "--name", &format!("{tag}-run")].iter().map(|s| s.to_string()).collect();
    for c in CAPS {
        cmd.extend(["--cap-add".to_string(), c.to_string()]);
    }
    cmd.extend(
        ["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined"]
            .iter()
            .map(|s| s.to_string()),
    );
    cmd.extend(["--device", "/dev/net/tun", "-v", "/dev/hugepages:/dev/hugepages", &format!("{tag}-demo")].iter().map(|s| s.to_string()));
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let demo = out(&args, 240);
    println!(
        "{}",
        demo.lines().filter(|l| l.contains("client view") || l.starts_with("HTTP") || l.starts_with("UDP")).collect::<Vec<_>>().join("\n")
    );
    assert!(demo.contains("client view vs rvsd: 600 HTTP ok / 600 TCP sessions, 600 UDP ok / 600 UDP sessions: agree"), "{demo}");
    assert!(demo.contains("rvsd stopped cleanly; namespaces removed"), "{demo}");
}
