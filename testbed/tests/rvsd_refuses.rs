//! rvsd refuses bad configurations with a precise message (file, line,
//! field), a non-zero exit status, and nothing started (no control socket,
//! no forwarding).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
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

// Issue 10, fault 9: configurations that used to pass and then could not
// work are refused before anything starts, with file, line and field.

#[test]
fn real_server_that_is_the_vip_or_our_own_address() {
    expect("rs-vip", &GOOD.replace("198.18.0.11", "198.18.0.100"), &["rvs.toml:24:", "services[0].real_servers[0].address", "VIP"]);
    expect("rs-own", &GOOD.replace("198.18.0.11", "198.18.0.1"), &["rvs.toml:24:", "services[0].real_servers[0].address", "port address"]);
}

#[test]
fn broadcast_vip() {
    expect("bcast", &GOOD.replace("198.18.0.100", "255.255.255.255"), &["rvs.toml:18:", "services[0].vip", "not a unicast address"]);
}

#[test]
fn health_check_without_a_kernel_path() {
    let text = GOOD.replace("[[services.real_servers]]", "[services.health_check]\nkind = \"http\"\n\n[[services.real_servers]]");
    expect("check", &text, &["rvs.toml:", "services[0].health_check", "kernel_interface", "\"client\""]);
}

#[test]
fn session_table_beyond_the_memory_budget() {
    let text = GOOD.replace("sessions_per_worker = 4096\n", "sessions_per_worker = 4294967295\n");
    expect("sessions", &text, &["rvs.toml:9:", "dataplane.sessions_per_worker", "budget"]);
}

#[test]
fn maglev_tables_beyond_the_memory_budget() {
    let mut text = GOOD.replace("[dataplane]\n", "[dataplane]\nmemory_budget_mb = 2048\nmax_services = 1024\n");
    for p in 1..=1023 {
        text.push_str(&format!(
            "\n[[services]]\nvip = \"198.18.0.101\"\nport = {p}\nprotocol = \"tcp\"\nscheduler = \"mh\"\nmh_table_size = 10000019\n[[services.real_servers]]\naddress = \"198.18.0.11\"\n"
        ));
    }
    expect("maglev", &text, &["rvs.toml:", ".mh_table_size", "budget is 2.0 GiB", "Maglev tables 19."]);
}

#[test]
fn refusals_without_a_line_say_where() {
    // Not UTF-8: the line and column of the first bad byte.
    let text = GOOD.replace("protocol = \"tcp\"", "protocol = \"t\u{fffd}cp\"").replace('\u{fffd}', "\u{1}");
    let dir = std::env::temp_dir().join(format!("rvs-refuse-{}-utf8", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rvs.toml");
    let mut bytes = text.replace("SOCK", dir.join("s").to_str().unwrap()).replace("DEVICE", "net_null0").into_bytes();
    let at = bytes.iter().position(|&b| b == 1).unwrap();
    bytes[at] = 0xff;
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new(testbed::bin("rvsd").unwrap()).args(["--check", "-c", path.to_str().unwrap()]).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("rvs.toml:20:14:") && err.contains("UTF-8"), "{err}");
    // No [[ports]] at all: the whole file.
    let cut = GOOD.find("[[ports]]").unwrap();
    let end = GOOD.find("[[services]]").unwrap();
    expect("noports", &format!("{}{}", &GOOD[..cut], &GOOD[end..]), &["rvs.toml: (whole file):", "ports"]);
}
