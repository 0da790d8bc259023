//! The container image (issue 15): `scripts/container.sh` builds it from
//! the Debian package on a Debian 12 base made locally with debootstrap
//! (no registry needed), and the README's demo runs inside it (directly
//! and through `docker/compose.yaml`) - network namespaces, kernel clients
//! and real servers, rvsd on TAP ports - with its summary checked. Also: the image holds exactly the package's
//! runtime dependencies (no NIC driver it only recommends), and the
//! installed rvsd validates its configuration there. And (b) rvsd in the
//! container with both ports as `net_virtio_user` devices, attached over
//! vhost-user sockets to a DPDK `net_vhost` backend in another process on
//! the host (rvs-pktgen; how a container is attached to OVS-DPDK or VPP):
//! 1,000 flows go from rvs-pktgen into rvsd's client port and come back
//! NATed on its server port, every frame accounted for by both counters.
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
        let compose = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/compose.yaml");
        let _ = run(&["docker-compose", "-f", compose.to_str().unwrap_or_default(), "-p", &self.0, "down"], Duration::from_secs(60));
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
    cmd.extend(["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined"].iter().map(|s| s.to_string()));
    cmd.extend(["--device", "/dev/net/tun", "-v", "/dev/hugepages:/dev/hugepages", &format!("{tag}-demo")].iter().map(|s| s.to_string()));
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let demo = out(&args, 240);
    println!(
        "{}",
        demo.lines().filter(|l| l.contains("client view") || l.starts_with("HTTP") || l.starts_with("UDP")).collect::<Vec<_>>().join("\n")
    );
    assert!(demo.contains("client view vs rvsd: 600 HTTP ok / 600 TCP sessions, 600 UDP ok / 600 UDP sessions: agree"), "{demo}");
    assert!(demo.contains("rvsd stopped cleanly; namespaces removed"), "{demo}");

    // The same through the compose file (docker/compose.yaml).
    let compose = repo.join("docker/compose.yaml");
    let demo = out(
        &["env", &format!("RVS_IMAGE={tag}"), "docker-compose", "-f", compose.to_str().unwrap(), "-p", &tag, "run", "--rm", "demo"],
        240,
    );
    assert!(demo.contains("600 HTTP ok / 600 TCP sessions, 600 UDP ok / 600 UDP sessions: agree"), "compose: {demo}");

    vhost_user(&tag);
}

/// (b): rvsd in the container on virtio-user ports, rvs-pktgen on the
/// host as the vhost-user backend of both.
fn vhost_user(tag: &str) {
    use testbed::bench::{self, Mode, RvsdSetup};
    let dir = std::env::temp_dir().join(format!("rvs-vhost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (csock, ssock) = (dir.join("client.sock"), dir.join("server.sock"));
    // The backend first: net_vhost makes the sockets and waits for the
    // container's virtio-user ends; it sends 1,000 flows from when they
    // connect until 12 s after its start.
    let gen_log = dir.join("pktgen.log");
    let gen = Command::new(testbed::bin("rvs-pktgen").unwrap())
        .args(["--vdev", &format!("net_vhost0,iface={},queues=1", csock.display())])
        .args(["--back", &format!("net_vhost1,iface={},queues=1", ssock.display())])
        .args(["--dst-mac", "02:00:00:00:00:01", "--flows", "1000", "--seconds", "12", "--lcore", "0"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&gen_log).unwrap())
        .stderr(std::fs::File::create(dir.join("pktgen.err")).unwrap())
        .spawn()
        .unwrap();
    let mut gen = bench::Guard(Some(gen));
    let t = Instant::now();
    while !(csock.exists() && ssock.exists()) {
        let err = std::fs::read_to_string(dir.join("pktgen.err")).unwrap_or_default();
        assert!(t.elapsed() < Duration::from_secs(30), "rvs-pktgen made no vhost-user sockets:\n{err}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let setup = RvsdSetup {
        mode: Mode::Nat,
        port0: format!("net_virtio_user0,path={},queues=1,mac=02:00:00:00:00:01", csock.display()),
        port1: format!("net_virtio_user1,path={},queues=1", ssock.display()),
        sessions: 8192,
        mbufs: 8191,
        sloppy: true,
        workers: 1,
        synproxy: false,
        v6: false,
    };
    // vhost-user shares rvsd's packet memory with the backend: hugepages.
    let config =
        bench::rvsd_config(&dir, &setup).replace("mbuf_size = 384", "mbuf_size = 2176").replace("hugepages = false", "hugepages = true");
    std::fs::write(dir.join("rvsd.toml"), &config).unwrap();
    let name = format!("{tag}-vhost");
    let d = dir.to_str().unwrap();
    let mut cmd: Vec<String> = ["docker", "run", "-d", "--name", &name].iter().map(|s| s.to_string()).collect();
    for c in CAPS {
        cmd.extend(["--cap-add".to_string(), c.to_string()]);
    }
    cmd.extend(
        [
            "--security-opt",
            "seccomp=unconfined",
            "-v",
            "/dev/hugepages:/dev/hugepages",
            "-v",
            &format!("{d}:{d}"),
            tag,
            "/usr/sbin/rvsd",
            "-c",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    cmd.push(format!("{d}/rvsd.toml"));
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    out(&args, 60);
    struct Container(String);
    impl Drop for Container {
        fn drop(&mut self) {
            let _ = run(&["docker", "rm", "-f", &self.0], Duration::from_secs(30));
        }
    }
    let _c = Container(name.clone());
    let logs = || out(&["docker", "logs", &name], 30);
    let sock = dir.join("rvsd.sock");
    let rvsd = || -> anyhow::Result<mgmt::report::Report> {
        let mut c = mgmt::control::Client::connect(&sock)?;
        let r = c.call("stats", serde_json::Value::Null)?;
        Ok(serde_json::from_value(r.result.ok_or_else(|| anyhow::anyhow!("no result"))?)?)
    };
    // rvs-pktgen ends after its 12 s and prints its counts.
    let t = Instant::now();
    let counts = loop {
        let text = std::fs::read_to_string(&gen_log).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.starts_with('{')) {
            break serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(60), "rvs-pktgen did not finish:\n{text}\nrvsd:\n{}", logs());
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = gen.0.take().map(|mut c| c.wait());
    let r = rvsd().unwrap_or_else(|e| panic!("rvsd's control socket: {e}\n{}", logs()));
    let (sent, received) = (counts["sent"].as_u64().unwrap(), counts["received"].as_u64().unwrap());
    let (c, s) = (&r.ports[0], &r.ports[1]);
    let dropped: u64 = r.drops.values().sum();
    let drops: std::collections::BTreeMap<&String, &u64> = r.drops.iter().filter(|(_, n)| **n > 0).collect();
    println!(
        "vhost-user: rvs-pktgen sent {sent}, rvsd received {} on client, sent {} on server ({} drops: {:?}), rvs-pktgen received {received}; {} sessions",
        c.rx_packets, s.tx_packets, dropped, drops, r.sessions.created
    );
    assert!(sent > 10_000, "too little traffic to judge: {counts}\n{}", logs());
    assert_eq!(c.rx_packets, sent, "every frame rvs-pktgen put in the client ring reached rvsd");
    assert_eq!(received, s.tx_packets, "every frame rvsd sent on the server port reached rvs-pktgen");
    assert_eq!(r.sessions.created, 1000, "one session per flow");
    assert!(s.tx_packets + dropped >= sent, "rvsd forwarded or counted every frame: {drops:?}");
    assert!(s.tx_packets * 100 >= sent * 99, "rvsd forwarded 99% of what it received: {} of {sent}, {drops:?}", s.tx_packets);
    let _ = std::fs::remove_dir_all(&dir);
}
