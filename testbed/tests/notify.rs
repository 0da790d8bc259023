//! systemd's notify protocol, with the test as systemd: rvsd started with
//! `NOTIFY_SOCKET` pointing at the test's datagram socket and
//! `WATCHDOG_USEC` set sends `READY=1` only once it forwards,
//! `RELOADING=1` then `READY=1` around a SIGHUP reload, `WATCHDOG=1` at
//! half the period, none while a worker is stalled (a debug-build hook),
//! and `STOPPING=1` when it stops.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
mod common;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};
use testbed::Bed;

/// Every notification received within `wait`, with its arrival time.
fn drain(s: &UnixDatagram, wait: Duration) -> Vec<(Instant, String)> {
    let end = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        s.set_read_timeout(Some(end.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)))).unwrap();
        if let Ok(n) = s.recv(&mut buf) {
            out.push((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
        }
    }
    out
}

fn count(msgs: &[(Instant, String)], what: &str) -> usize {
    msgs.iter().filter(|(_, m)| m.lines().any(|l| l == what)).count()
}

#[test]
fn rvsd_speaks_systemds_notify_protocol_and_its_watchdog_follows_the_workers() {
    let mut bed = Bed::new("notify").unwrap();
    let c = bed.segment("c").unwrap();
    bed.rvsd_port("client", c, &["198.18.0.1/24"]);
    let path = bed.dir.join("notify.sock");
    let s = UnixDatagram::bind(&path).unwrap();
    bed.rvsd_env(&format!("NOTIFY_SOCKET={}", path.display()));
    bed.rvsd_env("WATCHDOG_USEC=400000");
    let service = "[[services]]\nvip = \"198.18.0.100\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"dr\"\n\
                   [[services.real_servers]]\naddress = \"198.18.0.11\"\nport = 80\n";
    bed.start_rvsd("workers = 1", service).unwrap();
    // start_rvsd returned once the control socket answered: READY came
    // after the workers started (rvsd sends it after "forwarding").
    let first = drain(&s, Duration::from_secs(2));
    let ready = first.iter().position(|(_, m)| m.contains("READY=1")).unwrap_or_else(|| panic!("no READY=1: {first:?}"));
    assert!(first[ready].1.contains("STATUS=forwarding"), "{first:?}");
    assert!(bed.rvsd_log().contains("forwarding; control socket"), "READY after forwarding started");
    let dogs = count(&first, "WATCHDOG=1");
    assert!((5..=13).contains(&dogs), "WATCHDOG=1 every ~200 ms (half of 400 ms): {dogs} in 2 s: {first:?}");
    // A reload: RELOADING=1, then READY=1.
    bed.signal_rvsd(nix::sys::signal::Signal::SIGHUP).unwrap();
    let r = drain(&s, Duration::from_millis(800));
    let reloading = r.iter().position(|(_, m)| m.contains("RELOADING=1")).unwrap_or_else(|| panic!("no RELOADING=1: {r:?}"));
    assert!(r[reloading].1.contains("MONOTONIC_USEC="), "{r:?}");
    assert!(r[reloading..].iter().any(|(_, m)| m.contains("READY=1")), "READY=1 after the reload: {r:?}");
    // A stalled worker: no keep-alive while it is stuck, then again.
    // (The half period in which the stall begins had progress: its
    // keep-alive may still go out.)
    bed.call("debug.stall", serde_json::json!({"ms": 1800})).unwrap();
    let _ = drain(&s, Duration::from_millis(300));
    let stalled = drain(&s, Duration::from_millis(1200));
    assert_eq!(count(&stalled, "WATCHDOG=1"), 0, "no keep-alive while the worker is stuck: {stalled:?}");
    let after = drain(&s, Duration::from_millis(1500));
    assert!(count(&after, "WATCHDOG=1") >= 2, "keep-alives again once it runs: {after:?}");
    assert!(bed.rvsd_log().contains("made no progress: watchdog keep-alive withheld"), "{}", bed.rvsd_log());
    // The stop.
    bed.stop_rvsd().unwrap();
    let last = drain(&s, Duration::from_millis(300));
    assert!(count(&last, "STOPPING=1") == 1, "STOPPING=1 on the stop: {last:?}");
    println!("notify transcript: {:?}", first.iter().chain(&r).map(|(_, m)| m.replace('\n', " ")).take(6).collect::<Vec<_>>());
}

/// The shipped unit files (mgmt/systemd/rvsd.service and the
/// rvs-hugepages.service it requires) pass `systemd-analyze verify` with
/// no complaint (pointed at the built rvsd and the repository's script).
#[test]
fn the_systemd_unit_verifies() {
    let sys = concat!(env!("CARGO_MANIFEST_DIR"), "/../mgmt/systemd");
    let unit = std::fs::read_to_string(format!("{sys}/rvsd.service")).unwrap();
    let huge = std::fs::read_to_string(format!("{sys}/rvs-hugepages.service")).unwrap();
    let rvsd = testbed::bin("rvsd").unwrap();
    let dir = std::env::temp_dir().join(format!("rvs-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (path, hpath) = (dir.join("rvsd.service"), dir.join("rvs-hugepages.service"));
    std::fs::write(&path, unit.replace("/usr/sbin/rvsd", rvsd.to_str().unwrap())).unwrap();
    std::fs::write(&hpath, huge.replace("/usr/lib/rvs/rvs-hugepages", &format!("{sys}/rvs-hugepages"))).unwrap();
    let out =
        testbed::process::run(&["systemd-analyze", "verify", path.to_str().unwrap(), hpath.to_str().unwrap()], Duration::from_secs(30))
            .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "systemd-analyze verify: {err}");
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec=") && unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    assert!(unit.contains("Requires=rvs-hugepages.service"), "rvsd starts after its hugepages");
}

/// The log: timestamped lines with their level, and the audit trail - a
/// change made through rvsadm appears with the caller's uid and the
/// change, a refused one with the reason.
#[test]
fn changes_through_the_socket_are_logged_with_the_uid() {
    let mut bed = Bed::new("audit").unwrap();
    let c = bed.segment("c").unwrap();
    bed.rvsd_port("client", c, &["198.18.0.1/24"]);
    bed.daemon_extra("log_level = \"info\"");
    let service = "[[services]]\nvip = \"198.18.0.100\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"dr\"\n\
                   [[services.real_servers]]\naddress = \"198.18.0.11\"\nport = 80\n";
    bed.start_rvsd("workers = 1", service).unwrap();
    let rvsadm = testbed::bin("rvsadm").unwrap();
    let adm = |args: &[&str]| std::process::Command::new(&rvsadm).arg("--socket").arg(bed.socket()).args(args).output().unwrap();
    assert!(adm(&["-a", "-t", "198.18.0.100:80", "-r", "198.18.0.12", "-g", "-w", "3"]).status.success());
    assert!(!adm(&["-a", "-t", "198.18.0.100:80", "-r", "10.9.9.9", "-g"]).status.success());
    assert!(adm(&["-L", "-n"]).status.success());
    let t = Instant::now();
    let log = loop {
        let log = bed.rvsd_log();
        if log.contains("refused") || t.elapsed() > Duration::from_secs(5) {
            break log;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let done = log.lines().find(|l| l.contains("control: uid 0 batch") && l.contains("198.18.0.12") && l.ends_with("done"));
    let done = done.unwrap_or_else(|| panic!("the change with uid 0:\n{log}"));
    assert!(
        done.contains("INFO") && done.as_bytes()[..4].iter().all(u8::is_ascii_digit) && done.contains('T'),
        "timestamp and level: {done}"
    );
    let refused = log.lines().find(|l| l.contains("control: uid 0 batch") && l.contains("10.9.9.9") && l.contains("refused:"));
    assert!(
        refused.is_some_and(|l| l.contains("WARN") && l.contains("real_servers[2].address: 10.9.9.9 is not")),
        "the refusal with its reason:\n{log}"
    );
    assert!(!log.lines().any(|l| l.contains("control: uid 0 stats")), "read-only requests are not audited:\n{log}");
}
