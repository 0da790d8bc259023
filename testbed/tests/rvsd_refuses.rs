//! rvsd refuses bad configurations with a precise message (file, line,
//! field), a non-zero exit status, and nothing started (no control socket,
//! no forwarding).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const GOOD: &str = r#"[daemon]
control_socket = "SOCK"
metrics_listen = ""

[dataplane]
hugepages = false
idle_backoff_us = 200
mbufs = 4095
sessions_per_worker = 4096
sessions_v6_per_worker = 4096

[[ports]]
name = "client"
device = "DEVICE"
addresses = ["198.18.0.1/24"]

[[services]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "rr"

[[services.real_servers]]
address = "198.18.0.11"
port = 8080
"#;

/// Runs `rvsd -c` on `text` (with a vdev that does not create interfaces)
/// and returns (exit code, stderr, whether the socket appeared).
fn refuse(name: &str, text: &str) -> (i32, String, bool) {
    let dir = std::env::temp_dir().join(format!("rvs-refuse-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("rvsd.sock");
    let text = text.replace("SOCK", sock.to_str().unwrap()).replace("DEVICE", "net_null0");
    let path = dir.join("rvs.toml");
    std::fs::write(&path, text).unwrap();
    let rvsd = testbed::bin("rvsd").unwrap();
    let mut child = Command::new(rvsd)
        .args(["-c", path.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rvsd did not refuse {name} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let socket = Path::new(&sock).exists();
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned(), socket)
}

fn expect(name: &str, text: &str, needles: &[&str]) {
    let (code, err, socket) = refuse(name, text);
    assert_eq!(code, 2, "{name}: exit status {code}, stderr:\n{err}");
    assert!(!socket, "{name}: control socket was created");
    for n in needles {
        assert!(err.contains(n), "{name}: {n:?} not in:\n{err}");
    }
}

#[test]
fn malformed_toml() {
    expect("syntax", &GOOD.replace("[[services]]", "[[services]"), &["rvs.toml:17:", "nothing started"]);
}

#[test]
fn unknown_field() {
    expect("unknown", &GOOD.replace("scheduler = \"rr\"", "schedular = \"rr\""), &["rvs.toml:21:", "schedular"]);
}

#[test]
fn vip_without_real_servers() {
    let cut = GOOD.find("[[services.real_servers]]").unwrap();
    expect("empty", &GOOD[..cut], &["rvs.toml:17:", "services[0].real_servers", "no real servers"]);
}

#[test]
fn address_that_does_not_parse() {
    expect("addr", &GOOD.replace("198.18.0.11", "198.18.0.311"), &["rvs.toml:24:", "services[0].real_servers[0].address"]);
}

#[test]
fn port_that_does_not_exist() {
    // The configuration is valid; the device is not: EAL starts, the probe
    // fails, and rvsd names the field and its line.
    let text = GOOD.replace("DEVICE", "net_nosuchdriver0");
    expect("device", &text, &["rvs.toml:14:", "ports[0].device", "net_nosuchdriver0"]);
}

#[test]
fn unreachable_real_server() {
    expect("unreach", &GOOD.replace("198.18.0.11", "203.0.113.9"), &["rvs.toml:24:", "not reachable"]);
}
