//! Golden packet tests through the real binary.
//!
//! `testbed/golden/gen.py` (scapy, independent of rvs) writes, per case, the
//! frames to feed rvsd and the frames it must transmit. rvsd runs with one
//! `net_pcap` port (rx_pcap = the input, tx_pcap = its output); once it has
//! received every input frame it is stopped, and its output must equal the
//! expected frames byte for byte, checksums included, in order.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testbed::pcap;

fn generate() -> PathBuf {
    let out = std::env::temp_dir().join(format!("rvs-golden-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/gen.py");
    // Debian's interpreter, where python3-scapy is installed.
    let python = if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
    let st = Command::new(python).arg(&script).arg(&out).status().expect("run gen.py");
    assert!(st.success(), "gen.py failed (is python3-scapy installed? scripts/setup.sh installs it)");
    out
}

fn run_case(root: &Path, name: &str, n_in: u64) -> Result<(), String> {
    let dir = root.join(name);
    let sock = dir.join("rvsd.sock");
    let out = dir.join("out.pcap");
    let extra = std::fs::read_to_string(dir.join("extra.toml")).unwrap();
    let cfg = format!(
        "[daemon]\ncontrol_socket = \"{}\"\nmetrics_listen = \"\"\n\n[dataplane]\nworkers = 1\nhugepages = false\nidle_backoff_us = 200\nmbufs = 4095\nsessions_per_worker = 4096\nsessions_v6_per_worker = 4096\n{}{}\n[[ports]]\nname = \"p0\"\ndevice = \"net_pcap0,rx_pcap={},tx_pcap={}\"\naddresses = [\"198.18.0.1/24\", \"198.18.1.1/24\", \"2001:db8::1/64\", \"2001:db8:1::1/64\"]\nmtu = 1500\n{}\n{}",
        sock.display(),
        // Announcements have their own case; elsewhere they would only
        // precede the frames under test.
        if extra.contains("announce_count") { "" } else { "announce_count = 0\n" },
        extra,
        dir.join("in.pcap").display(),
        out.display(),
        std::fs::read_to_string(dir.join("port.toml")).unwrap(),
        std::fs::read_to_string(dir.join("case.toml")).unwrap()
    );
    let path = dir.join("rvs.toml");
    std::fs::write(&path, cfg).unwrap();
    let log = std::fs::File::create(dir.join("rvsd.log")).unwrap();
    let mut child = Command::new(testbed::bin("rvsd").unwrap())
        .args(["-c", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut drops = String::new();
    let consumed = loop {
        if Instant::now() > deadline {
            break false;
        }
        if let Ok(Some(_)) = child.try_wait() {
            break false;
        }
        if let Ok(mut c) = mgmt::control::Client::connect(&sock) {
            if let Ok(r) = c.call("stats", serde_json::Value::Null) {
                if let Some(res) = r.result {
                    let rx = res["ports"][0]["rx_packets"].as_u64().unwrap_or(0);
                    let tx = res["ports"][0]["tx_packets"].as_u64().unwrap_or(0);
                    if rx >= n_in {
                        // Let the last burst drain to the TX queue.
                        std::thread::sleep(Duration::from_millis(200));
                        drops = res["drops"]
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .filter(|(_, v)| v.as_u64() != Some(0))
                                    .map(|(k, v)| format!("{k}={v}"))
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            })
                            .unwrap_or_default();
                        let _ = tx;
                        break true;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let stop = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if Instant::now() > stop {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(dir.join("rvsd.log")).unwrap_or_default();
    if !consumed {
        return Err(format!("{name}: rvsd did not consume {n_in} frames in 30 s\n{log}"));
    }
    if !status.is_some_and(|s| s.success()) {
        return Err(format!("{name}: rvsd did not exit cleanly\n{log}"));
    }
    let got = pcap::read(&out).map_err(|e| format!("{name}: {e}"))?;
    let want = pcap::read(&dir.join("expected.pcap")).unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if g != w {
            return Err(format!("{name}: output frame {i} differs ({drops})\n{}", pcap::diff(g, w)));
        }
    }
    if got.len() != want.len() {
        return Err(format!("{name}: rvsd sent {} frames, expected {} (drops: {drops})", got.len(), want.len()));
    }
    println!("{name}: {n_in} frames in, {} out, as expected; drops: {}", got.len(), if drops.is_empty() { "none" } else { &drops });
    Ok(())
}

#[test]
fn golden_packets_every_mode_both_families() {
    let root = generate();
    let cases = std::fs::read_to_string(root.join("cases.txt")).unwrap();
    let mut failures = Vec::new();
    for line in cases.lines() {
        let mut it = line.split_whitespace();
        let (name, n) = (it.next().unwrap(), it.next().unwrap().parse::<u64>().unwrap());
        if let Err(e) = run_case(&root, name, n) {
            failures.push(e);
        }
    }
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&root);
    }
    assert!(
        failures.is_empty(),
        "{} golden case(s) failed (files kept in {}):\n\n{}",
        failures.len(),
        root.display(),
        failures.join("\n\n")
    );
}
