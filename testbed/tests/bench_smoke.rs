//! A short run of the benchmark harness (`rvs-bench --quick`), so it cannot
//! rot: pcap input against testpmd and rvsd, a SYN flood, SYN-cookie
//! answers from a SYN-proxied service, and the memif
//! two-process harness, for NAT and DR. No threshold: the figures of a
//! shared CI machine mean nothing; the run must complete and print them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn benchmark_harness_runs() {
    let dir = std::env::temp_dir().join(format!("rvs-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bench = testbed::bin("rvs-bench").unwrap();
    let out = dir.join("out.txt");
    let mut child = Command::new(&bench)
        .args(["--quick", "--flows", "5000", "--modes", "nat,dr", "--workloads", "est,syn,spx,memif-est", "--dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::inherit())
        // Its own process group: on timeout the harness and everything it
        // started (rvsd, testpmd, the generator) are ended together.
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(100);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let pgid = i32::try_from(child.id()).unwrap();
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut text = String::new();
    std::fs::File::open(&out).unwrap().read_to_string(&mut text).unwrap();
    println!("{text}");
    let _ = std::fs::remove_dir_all(&dir);
    let status = status.unwrap_or_else(|| panic!("rvs-bench did not finish in 100 s:\n{text}"));
    assert!(status.success(), "rvs-bench failed ({status}):\n{text}");
    // One row per workload and mode, each with figures and a ratio.
    for want in ["| est 5k flows", "| SYN flood 1M sources", "| SYN proxy 1M sources", "memif"] {
        assert!(text.lines().any(|l| l.starts_with(want) || l.contains(want)), "no {want:?} row:\n{text}");
    }
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| ") && l.contains('%') && !l.contains("workload")).collect();
    assert!(rows.len() >= 6, "{rows:?}");
}
