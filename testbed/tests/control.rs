//! The control socket and rvsadm against a running rvsd: every verb, the
//! ipvsadm listing format, save/clear/restore, socket security, and
//! malformed or hostile requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testbed::{bin, Bed};

const SERVICES: &str = r#"
[[neighbors]]
address = "198.18.1.11"
mac = "02:00:00:00:01:11"
port = "server"

[[services]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "wrr"
forwarding = "nat"
[[services.real_servers]]
address = "198.18.1.11"
port = 8080
weight = 1
[[services.real_servers]]
address = "198.18.1.12"
port = 8080
weight = 2

[[services]]
vip = "198.18.0.101"
port = 443
protocol = "tcp"
scheduler = "sh"
forwarding = "dr"
persistence = { timeout = 600, netmask = 24 }
[[services.real_servers]]
address = "198.18.1.11"
weight = 3

[[services]]
vip = "198.18.0.100"
port = 53
protocol = "udp"
scheduler = "rr"
forwarding = "fullnat"
[[services.real_servers]]
address = "198.18.1.13"
port = 5353

[[services]]
vip = "2001:db8::100"
port = 80
protocol = "tcp"
forwarding = "tunnel"
[[services.real_servers]]
address = "2001:db8:1::11"
"#;

/// ipvsadm 1.2x prints exactly this for the configuration above.
const GOLDEN_LIST: &str = "IP Virtual Server version 1.2.1 (size=65536)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.100:80 wrr
  -> 198.18.1.11:8080             Masq    1      0          0         
  -> 198.18.1.12:8080             Masq    2      0          0         
TCP  198.18.0.101:443 sh persistent 600 mask 255.255.255.0
  -> 198.18.1.11:443              Route   3      0          0         
UDP  198.18.0.100:53 rr
  -> 198.18.1.13:5353             FullNat 1      0          0         
TCP  [2001:db8::100]:80 wlc
  -> [2001:db8:1::11]:80          Tunnel  1      0          0         
";

const GOLDEN_STATS: &str = "IP Virtual Server version 1.2.1 (size=65536)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  198.18.0.100:80                     0        0        0        0        0
  -> 198.18.1.11:8080                    0        0        0        0        0
  -> 198.18.1.12:8080                    0        0        0        0        0
TCP  198.18.0.101:443                    0        0        0        0        0
  -> 198.18.1.11:443                     0        0        0        0        0
UDP  198.18.0.100:53                     0        0        0        0        0
  -> 198.18.1.13:5353                    0        0        0        0        0
TCP  [2001:db8::100]:80                  0        0        0        0        0
  -> [2001:db8:1::11]:80                 0        0        0        0        0
";

fn bed(tag: &str, daemon: &str) -> Bed {
    let mut b = Bed::new(tag).unwrap();
    let c = b.segment("c").unwrap();
    let s = b.segment("s").unwrap();
    b.rvsd_port("client", c, &["198.18.0.1/24", "2001:db8::1/64"]);
    b.rvsd_port("server", s, &["198.18.1.1/24", "2001:db8:1::1/64"]);
    b.daemon_extra(daemon);
    b.start_rvsd("workers = 1", SERVICES).unwrap();
    b
}

/// Runs rvsadm (optionally as another uid) with `stdin`; returns (status, stdout, stderr).
fn rvsadm_as(b: &Bed, uid: Option<u32>, args: &[&str], stdin: &str) -> (i32, String, String) {
    let exe = bin("rvsadm").unwrap();
    let sock = b.socket();
    let mut cmd = match uid {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args([&format!("--reuid={u}"), &format!("--regid={u}"), "--clear-groups"]).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let mut child =
        cmd.arg("--socket").arg(&sock).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "rvsadm {args:?} hung");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn ok(b: &Bed, args: &[&str]) -> String {
    let (code, out, err) = rvsadm_as(b, None, args, "");
    assert_eq!(code, 0, "rvsadm {args:?} failed: {err}{out}");
    out
}

fn fails(b: &Bed, args: &[&str], code: i32, needle: &str) {
    let (c, out, err) = rvsadm_as(b, None, args, "");
    assert_eq!(c, code, "rvsadm {args:?}: {out}{err}");
    assert!(err.contains(needle), "rvsadm {args:?}: {needle:?} not in {err:?}");
}

#[test]
fn listing_matches_ipvsadm_golden_text() {
    let b = bed("ctl-golden", "");
    assert_eq!(ok(&b, &["-L", "-n"]), GOLDEN_LIST);
    assert_eq!(ok(&b, &["-Ln"]), GOLDEN_LIST);
    assert_eq!(ok(&b, &["-l", "-n", "--stats"]), GOLDEN_STATS);
    // One service only: the titles and that service, as ipvsadm.
    let one = ok(&b, &["-L", "-n", "-t", "198.18.0.101:443"]);
    assert_eq!(one, "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  198.18.0.101:443 sh persistent 600 mask 255.255.255.0\n  -> 198.18.1.11:443              Route   3      0          0         \n");
    let rate = ok(&b, &["-L", "-n", "--rate"]);
    assert!(rate.starts_with("IP Virtual Server version 1.2.1 (size=65536)\nProt LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n"), "{rate}");
    let conns = ok(&b, &["-L", "-n", "-c"]);
    assert_eq!(conns, "IPVS connection entries\npro expire state       source             virtual            destination\n");
    // Without -n, as ipvsadm: ports by their /etc/services names, hosts by
    // name when they resolve (these test addresses have none; the
    // resolver's timeouts are short so a DNS that does not answer cannot
    // stall the test).
    let out = Command::new(bin("rvsadm").unwrap())
        .args(["--socket", b.socket().to_str().unwrap(), "-L"])
        .env("RES_OPTIONS", "timeout:1 attempts:1")
        .output()
        .unwrap();
    let named = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{named}");
    let services = std::fs::read_to_string("/etc/services").unwrap_or_default();
    if services.contains("\nhttp\t") || services.contains("\nhttp ") {
        assert!(named.contains("TCP  198.18.0.100:http wrr\n"), "{named}");
        assert!(named.contains("UDP  198.18.0.100:domain rr\n"), "{named}");
        assert!(named.contains("TCP  198.18.0.101:https sh persistent 600"), "{named}");
        assert!(named.contains("TCP  [2001:db8::100]:http wlc"), "{named}");
        assert!(named.contains("  -> 198.18.1.11:8080 ") || named.contains("  -> 198.18.1.11:http-alt "), "{named}");
    }
    assert_eq!(named.lines().count(), GOLDEN_LIST.lines().count(), "{named}");
}

#[test]
fn every_verb_round_trips() {
    let b = bed("ctl-verbs", "");
    // Services: add, edit, delete (ipvsadm syntax and readable syntax).
    ok(&b, &["-A", "-t", "198.18.0.200:8080", "-s", "rr"]);
    assert!(ok(&b, &["-L", "-n"]).contains("TCP  198.18.0.200:8080 rr\n"));
    ok(&b, &["-E", "-t", "198.18.0.200:8080", "-s", "wlc", "-p", "120"]);
    assert!(ok(&b, &["-L", "-n"]).contains("TCP  198.18.0.200:8080 wlc persistent 120\n"));
    fails(&b, &["-A", "-t", "198.18.0.200:8080"], 1, "already exists");
    // Real servers.
    ok(&b, &["-a", "-t", "198.18.0.200:8080", "-r", "198.18.1.11:80", "-m", "-w", "4"]);
    ok(&b, &["server", "add", "tcp", "198.18.0.200:8080", "198.18.1.12:80", "--weight", "2", "--forwarding", "nat"]);
    let l = ok(&b, &["-L", "-n", "-t", "198.18.0.200:8080"]);
    assert!(l.contains("  -> 198.18.1.11:80               Masq    4      0          0"), "{l}");
    assert!(l.contains("  -> 198.18.1.12:80               Masq    2      0          0"), "{l}");
    ok(&b, &["-e", "-t", "198.18.0.200:8080", "-r", "198.18.1.11:80", "-m", "-w", "0"]);
    assert!(ok(&b, &["-L", "-n"]).contains("  -> 198.18.1.11:80               Masq    0      0          0"));
    ok(&b, &["-d", "-t", "198.18.0.200:8080", "-r", "198.18.1.11:80"]);
    assert!(!ok(&b, &["-L", "-n"]).contains("198.18.1.11:80 "));
    fails(&b, &["-d", "-t", "198.18.0.200:8080", "-r", "198.18.1.11:80"], 1, "is not in");
    fails(&b, &["-a", "-t", "198.18.0.200:8080", "-r", "198.18.1.14:80", "-m", "-w", "70000"], 1, "weight");
    fails(&b, &["-a", "-t", "198.18.0.200:8080", "-r", "203.0.113.1:80", "-m"], 1, "not reachable");
    ok(&b, &["service", "del", "tcp", "198.18.0.200:8080"]);
    fails(&b, &["-D", "-t", "198.18.0.200:8080"], 1, "no service");
    ok(&b, &["service", "add", "udp", "198.18.0.201:53", "--scheduler", "mh", "--sched-flags", "mh-port"]);
    ok(&b, &["-D", "-u", "198.18.0.201:53"]);
    // Timeouts.
    ok(&b, &["--set", "1000", "60", "200"]);
    assert_eq!(ok(&b, &["--timeout"]), "Timeout (tcp tcpfin udp): 1000 60 200\n");
    // --set is also the default of services added later.
    ok(&b, &["-A", "-t", "198.18.0.202:80"]);
    let cfg: serde_json::Value = serde_json::from_str(&ok(&b, &["show", "config"])).unwrap();
    let added = cfg["services"].as_array().unwrap().iter().find(|s| s["vip"] == "198.18.0.202").unwrap().clone();
    let t = &added["timeouts"];
    assert_eq!(
        (&t["tcp_established"], &t["tcp_fin"], &t["udp"], &t["tcp_syn"]),
        (&1000.into(), &60.into(), &200.into(), &120.into()),
        "{t}"
    );
    ok(&b, &["-D", "-t", "198.18.0.202:80"]);
    // Counters, JSON, shows, misc.
    ok(&b, &["-Z"]);
    ok(&b, &["-Z", "-t", "198.18.0.100:80"]);
    fails(&b, &["-Z", "-t", "198.18.0.99:80"], 1, "no service");
    let j: serde_json::Value = serde_json::from_str(&ok(&b, &["--json", "-L", "-n"])).unwrap();
    assert_eq!(j["services"].as_array().unwrap().len(), 4);
    let j: serde_json::Value = serde_json::from_str(&ok(&b, &["--json", "-L", "-n", "-c"])).unwrap();
    assert!(j["sessions"].as_array().unwrap().is_empty());
    assert!(ok(&b, &["show", "drops"]).contains("total"));
    assert!(ok(&b, &["show", "neighbors"]).contains("02:00:00:00:01:11"));
    assert!(ok(&b, &["show", "health"]).contains("no check"));
    let cfg: serde_json::Value = serde_json::from_str(&ok(&b, &["show", "config"])).unwrap();
    assert_eq!(cfg["services"][0]["timeouts"]["tcp_established"], 1000);
    assert!(ok(&b, &["version"]).contains("DPDK"));
    assert!(ok(&b, &["ping"]).contains("pong"));
    // A reload would lose the runtime changes: refused until saved or forced.
    fails(&b, &["reload"], 1, "rvsadm save-config");
    assert_eq!(ok(&b, &["reload", "--force"]), "service changed: TCP 198.18.0.100:80\nservice changed: TCP 198.18.0.101:443\nservice changed: UDP 198.18.0.100:53\nservice changed: TCP [2001:db8::100]:80\n", "reload --force restores the file's timeouts");
    assert_eq!(ok(&b, &["reload"]), "no change\n");
    fails(&b, &["-A", "-t"], 2, "needs a value");
    fails(&b, &["-L", "--frobnicate"], 2, "--frobnicate");
    ok(&b, &["-C"]);
    assert_eq!(ok(&b, &["-L", "-n"]).lines().count(), 3, "no services after -C");
}

/// Every service of a `config.get` reply, field by field, in a stable
/// order: real servers sorted, each with its effective forwarding method
/// and port (ipvsadm's `-a` names both for every server, so a server that
/// inherited the service's comes back naming them: the same behaviour).
fn normalized(v: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let mut s = s.clone();
            let (fwd, port) = (s["forwarding"].clone(), s["port"].clone());
            if let Some(rs) = s["real_servers"].as_array_mut() {
                for r in rs.iter_mut() {
                    if r["forwarding"].is_null() {
                        r["forwarding"] = fwd.clone();
                    }
                    if r["port"] == 0 {
                        r["port"] = port.clone();
                    }
                }
                rs.sort_by_key(|r| r.to_string());
            }
            s
        })
        .collect();
    out.sort_by_key(|s| format!("{}{}{}", s["protocol"], s["vip"], s["port"]));
    out
}

/// What `-S` has no ipvsadm flag for - health checks, a sorry server, a
/// feedback agent, full-NAT local addresses, source lists, names, the
/// service's own forwarding method - rides in `--extra`, and `-S`, `-C`,
/// `-R` gives back exactly the state it started from.
#[test]
fn save_clear_restore_is_lossless_for_every_field() {
    let services = r#"
[[services]]
name = "web frontend"
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "wrr"
forwarding = "nat"
allow_sources = ["198.18.0.0/16", "2001:db8::/32"]
deny_sources = ["198.18.66.0/24"]
feedback = { port = 7777, interval = 5.0, timeout = 1.0 }
fallback = { address = "198.18.1.200", port = 8080 }
[services.health_check]
kind = "http"
interval = 2.0
timeout = 1.0
rise = 2
fall = 3
path = "/health"
expect_status = [200, 204]
expect_body = "OK"
[[services.real_servers]]
address = "198.18.1.11"
port = 8080
weight = 1
[[services.real_servers]]
address = "198.18.1.12"
port = 80
weight = 2
forwarding = "dr"
[[services.real_servers.health_checks]]
kind = "tcp"
port = 22
alpha = true
[[services.real_servers.health_checks]]
kind = "https"
path = "/ready now"

[[services]]
name = "dns"
vip = "198.18.0.100"
port = 53
protocol = "udp"
scheduler = "rr"
forwarding = "fullnat"
local_addresses = ["198.18.1.2", "198.18.1.3"]
[services.health_check]
kind = "send_expect"
send = "PING with spaces\r\n"
expect = "PONG"
[[services.health_checks]]
kind = "udp"
port = 5354
send = "are you there"
[[services.real_servers]]
address = "198.18.1.13"
port = 5353
"#;
    let mut b = Bed::new("ctl-lossless").unwrap();
    let c = b.segment("c").unwrap();
    let s = b.segment("s").unwrap();
    b.rvsd_port("client", c, &["198.18.0.1/24", "2001:db8::1/64"]);
    // Health checks and the agent go out through the kernel interface.
    b.rvsd_port_with_kernel("server", s, &["198.18.1.1/24", "2001:db8:1::1/64"], "rvsk1");
    b.start_rvsd("workers = 1", services).unwrap();
    let before: serde_json::Value = serde_json::from_str(&ok(&b, &["show", "config"])).unwrap();
    let saved = ok(&b, &["-S", "-n"]);
    assert!(saved.contains(" --extra {"), "{saved}");
    assert!(saved.lines().any(|l| l.starts_with("-a ") && l.contains(" --extra {\"health_checks\":[")), "per-server checks: {saved}");
    assert!(saved.lines().all(|l| !l.contains(" --extra ") || !l.split(" --extra ").nth(1).unwrap().contains(' ')), "one word: {saved}");
    ok(&b, &["-C"]);
    let (code, out, err) = rvsadm_as(&b, None, &["-R"], &saved);
    assert_eq!(code, 0, "{out}{err}\n{saved}");
    let after: serde_json::Value = serde_json::from_str(&ok(&b, &["show", "config"])).unwrap();
    assert_eq!(normalized(&after), normalized(&before), "-S, -C, -R lost something:\n{saved}");
    assert_eq!(ok(&b, &["-S", "-n"]), saved, "-S after -R");
    // --extra is checked like the rest: an unknown field, a flagged one.
    let (code, _, err) = rvsadm_as(&b, None, &["-R"], "-A -t 198.18.0.250:80 --extra {\"nmae\":\"x\"}\n");
    assert_eq!(code, 2);
    assert!(err.contains("\"nmae\" is not a service field"), "{err}");
    let (code, _, err) = rvsadm_as(&b, None, &["-R"], "-A -t 198.18.0.250:80 --extra {\"scheduler\":\"rr\"}\n");
    assert_eq!(code, 2);
    assert!(err.contains("has its own flag"), "{err}");
}

/// `rvsadm save-config` writes the running configuration, runtime changes
/// included, over rvsd's own file (the old one kept as `.bak`); rvsd
/// restarted from it runs exactly that state. Until then, a reload (by
/// rvsadm or SIGHUP) is refused rather than silently losing the changes.
#[test]
fn save_config_keeps_runtime_changes_across_a_restart() {
    let mut b = bed("ctl-savecfg", "");
    ok(&b, &["-A", "-t", "198.18.0.200:8080", "-s", "mh", "-b", "mh-port", "-p", "120"]);
    ok(&b, &["-a", "-t", "198.18.0.200:8080", "-r", "198.18.1.11:80", "-m", "-w", "4"]);
    ok(&b, &["-e", "-t", "198.18.0.100:80", "-r", "198.18.1.12:8080", "-m", "-w", "9"]);
    ok(&b, &["sources", "tcp", "198.18.0.100:80", "deny", "add", "198.18.77.0/24"]);
    let running: serde_json::Value = serde_json::from_str(&ok(&b, &["show", "config"])).unwrap();
    fails(&b, &["reload"], 1, "rvsadm save-config");
    // SIGHUP is refused the same way, and says so in the log.
    b.signal_rvsd(nix::sys::signal::Signal::SIGHUP).unwrap();
    let t = Instant::now();
    while !b.rvsd_log().contains("SIGHUP: reload refused") {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", b.rvsd_log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let same: serde_json::Value = serde_json::from_str(&ok(&b, &["show", "config"])).unwrap();
    assert_eq!(same, running, "a refused SIGHUP changed nothing");
    // save-config FILE: written by rvsadm; rvsd's own file still differs.
    let elsewhere = std::env::temp_dir().join(format!("rvs-saved-{}.toml", std::process::id()));
    assert!(ok(&b, &["save-config", elsewhere.to_str().unwrap()]).contains("still lacks"));
    let copy = config::from_file(&elsewhere).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_file(&elsewhere);
    assert_eq!(copy.services.len(), running["services"].as_array().unwrap().len());
    fails(&b, &["reload"], 1, "rvsadm save-config");
    // save-config: rvsd's own file, the old one kept.
    assert!(ok(&b, &["save-config"]).contains("saved to"));
    let file = b.config_path();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# rvs.toml written by `rvsadm save-config` at "), "{text}");
    let bak = std::fs::read_to_string(file.with_extension("toml.bak")).unwrap();
    assert!(bak.contains("scheduler = \"wrr\"") && !bak.contains("198.18.0.200"), "{bak}");
    assert_eq!(ok(&b, &["reload"]), "no change\n", "the saved file is the running state");
    // A restart from the saved file runs exactly the same state.
    b.stop_rvsd().unwrap();
    b.start_rvsd_with(&file).unwrap();
    let after: serde_json::Value = serde_json::from_str(&ok(&b, &["show", "config"])).unwrap();
    assert_eq!(after, running, "the state after a restart from the saved file");
}

#[test]
fn save_clear_restore_restores_the_same_state() {
    let b = bed("ctl-save", "");
    ok(
        &b,
        &[
            "-A",
            "-u",
            "198.18.0.210:53",
            "-s",
            "mh",
            "--sched-flags",
            "fallback,port",
            "--mh-size",
            "251",
            "--on-remove",
            "keep",
            "--timeouts",
            "600,30,60,5,120",
        ],
    );
    ok(&b, &["-a", "-u", "198.18.0.210:53", "-r", "198.18.1.20:5353", "--fullnat", "-w", "7"]);
    let saved = ok(&b, &["-S", "-n"]);
    assert!(
        saved.contains(
            "-A -u 198.18.0.210:53 -s mh --sched-flags mh-fallback,mh-port --mh-size 251 --on-remove keep --timeouts 600,30,60,5,120,3\n"
        ),
        "{saved}"
    );
    assert!(saved.contains("-a -t 198.18.0.100:80 -r 198.18.1.12:8080 -m -w 2\n"), "{saved}");
    let listed = ok(&b, &["-L", "-n"]);
    let config: serde_json::Value = serde_json::from_str(&ok(&b, &["show", "config"])).unwrap();
    ok(&b, &["-C"]);
    assert!(!ok(&b, &["-L", "-n"]).contains("TCP"));
    let (code, out, err) = rvsadm_as(&b, None, &["-R"], &saved);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(ok(&b, &["-S", "-n"]), saved, "-S after -R");
    assert_eq!(ok(&b, &["-L", "-n"]), listed, "-L after -R");
    let after: serde_json::Value = serde_json::from_str(&ok(&b, &["show", "config"])).unwrap();
    assert_eq!(normalized(&after), normalized(&config), "the whole state, field by field, after -S, -C, -R");
    // A bad line refuses the whole restore and changes nothing.
    let (code, _, err) = rvsadm_as(&b, None, &["-R"], "-C\n-A -t 198.18.0.250:80\n-a -t 198.18.0.250:80 -r 198.18.1.11:80 -w nope\n");
    assert_eq!(code, 2);
    assert!(err.contains("line 3"), "{err}");
    assert_eq!(ok(&b, &["-S", "-n"]), saved, "a refused restore changed nothing");
}

#[test]
fn an_invalid_file_is_refused_and_the_running_configuration_stays() {
    let b = bed("ctl-badfile", "");
    let before = b.call("config.get", serde_json::Value::Null).unwrap();
    let gen = b.stats().unwrap().generation;
    // A real server address that does not parse, and the same file with an
    // unknown field: both refused, naming file, line and field.
    let broken = SERVICES.replacen("address = \"198.18.1.12\"", "address = \"198.18.1.300\"", 1);
    let path = b.write_config(&broken).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().position(|l| l.contains("198.18.1.300")).unwrap() + 1;
    let want = format!("{}:{line}:", path.display());
    fails(&b, &["reload"], 1, &want);
    fails(&b, &["reload"], 1, "services[0].real_servers[1].address");
    b.write_config(&SERVICES.replacen("scheduler = \"wrr\"", "scheduler = \"wrr\"\nschedular = \"rr\"", 1)).unwrap();
    fails(&b, &["reload"], 1, "schedular");
    // SIGHUP with the broken file: refused in the log, nothing changes.
    b.write_config(&broken).unwrap();
    b.signal_rvsd(nix::sys::signal::Signal::SIGHUP).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.rvsd_log().contains("reload refused") {
        assert!(Instant::now() < deadline, "no refusal logged after SIGHUP:\n{}", b.rvsd_log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = b.rvsd_log();
    let refusal = log.lines().find(|l| l.contains("reload refused")).unwrap();
    assert!(refusal.contains(&want) && refusal.contains("services[0].real_servers[1].address"), "{refusal}");
    assert_eq!(b.call("config.get", serde_json::Value::Null).unwrap(), before, "the running configuration changed");
    assert_eq!(b.stats().unwrap().generation, gen, "something was published");
    assert_eq!(ok(&b, &["-L", "-n"]), GOLDEN_LIST);
    println!("refused: {refusal}");
}

#[test]
fn socket_refuses_users_not_allowed() {
    // Mode 0666 lets anyone connect; peer credentials decide.
    let b = bed("ctl-sec", "socket_mode = \"0666\"\nallowed_uids = [65533]");
    let (code, _, err) = rvsadm_as(&b, Some(65534), &["ping"], "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("uid 65534") && err.contains("may not use this socket"), "{err}");
    let (code, out, err) = rvsadm_as(&b, Some(65533), &["ping"], "");
    assert_eq!(code, 0, "an allowed uid is served: {err}");
    assert!(out.contains("pong"));
    drop(b);
    // The default mode 0600 keeps other users from even connecting.
    let b = bed("ctl-sec2", "");
    let (code, _, err) = rvsadm_as(&b, Some(65534), &["ping"], "");
    assert_eq!(code, 1);
    assert!(err.contains("Permission denied"), "{err}");
}

fn reply(s: &mut UnixStream) -> serde_json::Value {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    let deadline = Instant::now() + Duration::from_secs(10);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while Instant::now() < deadline {
        if s.read(&mut byte).unwrap() == 0 {
            break;
        }
        if byte[0] == b'\n' {
            break;
        }
        buf.push(byte[0]);
    }
    serde_json::from_slice(&buf).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&buf)))
}

#[test]
fn malformed_requests_get_errors_and_others_keep_being_served() {
    let b = bed("ctl-bad", "");
    let sock = b.socket();
    // A client that starts a request and goes silent.
    let mut stalled = UnixStream::connect(&sock).unwrap();
    stalled.write_all(br#"{"v":1,"cmd":"st"#).unwrap();
    // Meanwhile everyone else is served at once.
    let mut c = UnixStream::connect(&sock).unwrap();
    for _ in 0..5 {
        let t = Instant::now();
        c.write_all(b"{\"v\":1,\"cmd\":\"ping\"}\n").unwrap();
        assert_eq!(reply(&mut c)["result"], "pong");
        assert!(t.elapsed() < Duration::from_millis(500), "a stalled client held others up");
    }
    // A 1 MiB line: an error reply, and the connection keeps working.
    let mut big = vec![b'x'; 1 << 20];
    big.push(b'\n');
    c.write_all(&big).unwrap();
    let r = reply(&mut c);
    assert_eq!((r["ok"].as_bool(), r["error"]["code"].as_str()), (Some(false), Some("too_large")), "{r}");
    c.write_all(b"{\"v\":1,\"cmd\":\"ping\",\"id\":9}\n").unwrap();
    let r = reply(&mut c);
    assert_eq!((r["result"].as_str(), r["id"].as_u64()), (Some("pong"), Some(9)));
    // Invalid JSON, a wrong version, an unknown verb, bad arguments.
    for (line, code) in [
        ("this is not json", "bad_json"),
        (r#"{"v":2,"cmd":"ping"}"#, "unsupported_version"),
        (r#"{"v":1,"cmd":"frobnicate"}"#, "unknown_command"),
        (r#"{"v":1,"cmd":"server.add","args":{"key":"nope"}}"#, "bad_request"),
        (r#"{"v":1,"cmd":"ping","bogus":true}"#, "bad_request"),
        (r#"{"v":1,"cmd":"service.del","args":{"key":{"protocol":"tcp","vip":"198.18.0.99","port":1}}}"#, "not_found"),
    ] {
        c.write_all(format!("{line}\n").as_bytes()).unwrap();
        let r = reply(&mut c);
        assert_eq!(r["error"]["code"].as_str(), Some(code), "{line}: {r}");
    }
    // A change that would make the configuration invalid is refused with
    // the field named, and the running configuration stays.
    c.write_all(br#"{"v":1,"cmd":"server.edit","args":{"key":{"protocol":"tcp","vip":"198.18.0.100","port":80},"server":{"address":"198.18.1.11","port":8080,"weight":99999}}}"#).unwrap();
    c.write_all(b"\n").unwrap();
    let r = reply(&mut c);
    assert_eq!(r["error"]["code"], "invalid", "{r}");
    assert!(r["error"]["field"].as_str().unwrap().ends_with("weight"), "{r}");
    assert_eq!(ok(&b, &["-L", "-n"]), GOLDEN_LIST, "running configuration unchanged");
    // The stalled client finally finishes its request and is answered.
    stalled.write_all(b"ats\"}\n").unwrap();
    assert_eq!(reply(&mut stalled)["ok"], true);
}
