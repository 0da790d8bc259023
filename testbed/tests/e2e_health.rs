//! End-to-end health checks: rvsd's checkers probe real servers in their
//! namespaces through the server port's kernel interface; a failing server
//! leaves scheduling within interval x fall, comes back after rise
//! successes, a sorry server takes over when all are down, and a feedback
//! agent sets weights.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
mod common;
use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use testbed::{bin, tally, Bed};

const INTERVAL: f64 = 0.3;
const FALL: u32 = 3;
const RISE: u32 = 2;

/// How a real server is made to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// Its process is killed (and later started again).
    Kill,
    /// It keeps running but reports itself unhealthy: `/health` answers
    /// 503, the TCP responder `DOWN`, and the command check sees a file.
    Unhealthy,
}

fn service(check: &str, extra: &str) -> String {
    let mut s = format!(
        "[[services]]\nvip = \"{VIP}\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"nat\"\n{extra}\
         [services.health_check]\ninterval = {INTERVAL}\ntimeout = 0.5\nrise = {RISE}\nfall = {FALL}\n{check}\n"
    );
    for i in 0..3 {
        s.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{}\"\nport = 8080\n", 11 + i));
    }
    s
}

fn rs2(bed: &Bed) -> mgmt::report::RealServerReport {
    bed.stats().unwrap().services[0].real_servers[1].clone()
}

/// Polls until rs2's health state is `up`; returns how long it took.
fn wait_state(bed: &Bed, up: bool, limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let r = rs2(bed);
        if r.up == up {
            return t.elapsed();
        }
        assert!(t.elapsed() < limit, "rs2 not {} after {limit:?}: {:?}\n{}", if up { "up" } else { "down" }, r.health, bed.rvsd_log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// 500 requests while rs2 fails and recovers. Every request succeeds (a
/// connection refused by the dead server before it is marked down is
/// retried, as a browser would; the count is printed), rs2 is marked down
/// within interval x fall, gets no connection while down, and is back
/// after rise checks.
fn fail_and_recover(tag: &str, check: &str, how: Failure) {
    let tmp = std::env::temp_dir();
    let (mut bed, cl, sv) = nat_bed_opts(tag, 1, 3, "workers = 1", &service(check, ""), true, &|i| {
        // The bed's directory is not known yet: the files live under a
        // name unique to this process and test.
        vec!["--down-file".into(), tmp.join(format!("rvs-{}-{tag}-down-rs{}", std::process::id(), i + 1)).display().to_string()]
    });
    let down = tmp.join(format!("rvs-{}-{tag}-down-rs2", std::process::id()));
    let _cleanup = Remove(down.clone());
    // Every server up (the first checks may have run before the servers
    // started and marked some down).
    let t = Instant::now();
    while !bed.stats().unwrap().services[0].real_servers.iter().all(|r| r.up) {
        assert!(t.elapsed() < Duration::from_secs(5), "servers not up: {:?}", bed.stats().unwrap().services[0].real_servers);
        std::thread::sleep(Duration::from_millis(50));
    }
    let kit_path = bin("rvs-testkit").unwrap();
    let client = bed
        .spawn(
            cl[0],
            &[kit_path.to_str().unwrap(), "http", "--url", &format!("http://{VIP}/"), "--count", "500", "--gap-ms", "15", "--retries", "5"],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let before = rs2(&bed).totals.conns;
    assert!(before > 0, "rs2 took connections before it failed");
    match how {
        Failure::Kill => {
            // Servers were spawned first: rs2 is process 1.
            bed.proc(1).stop(Duration::from_secs(1));
        }
        Failure::Unhealthy => std::fs::write(&down, "down").unwrap(),
    }
    let bound = Duration::from_secs_f64(INTERVAL * f64::from(FALL));
    let took_down = wait_state(&bed, false, bound * 3);
    let at_down = rs2(&bed);
    println!("{tag}: rs2 history when marked down: {}", history(&at_down));
    assert_eq!(at_down.effective_weight, 0, "quiesced: {at_down:?}");
    // No new connection reaches rs2 while it is down.
    std::thread::sleep(Duration::from_millis(1500));
    let still = rs2(&bed);
    assert_eq!(still.totals.conns, at_down.totals.conns, "connections scheduled to a server marked down");
    match how {
        Failure::Kill => {
            // Recovery counts from the moment the new process listens.
            let p = start_server(&mut bed, sv[1], "rs2", &[]);
            let t = Instant::now();
            while !bed.proc(p).log().contains("rs2 serving") {
                assert!(t.elapsed() < Duration::from_secs(5), "rs2 did not start: {}", bed.proc(p).log());
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Failure::Unhealthy => std::fs::remove_file(&down).unwrap(),
    }
    let took_up = wait_state(&bed, true, Duration::from_secs(5));
    let out = bed.wait(client, Duration::from_secs(60)).unwrap();
    let r: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap();
    let (ok, failed, by) = tally(&r);
    let end = rs2(&bed);
    let h = end.health.clone().unwrap();
    println!("{tag}: rs2 history at the end: {}", history(&end));
    println!(
        "{tag}: down after {took_down:?} (bound {bound:?}), up after {took_up:?} (rise {RISE} x {INTERVAL} s); \
         requests ok={ok} failed={failed} retried={} by_server={by:?}; rs2 conns {before} before, {} while down, {} at end; \
         checks={} failures={}",
        r["retried"],
        still.totals.conns - at_down.totals.conns,
        end.totals.conns,
        h.checks,
        h.failures
    );
    let st = bed.stats().unwrap();
    print_drops(tag, &st);
    assert_eq!((ok, failed), (500, 0), "{r}");
    // The first failing check runs at most one interval after the failure,
    // the fall-th one (fall - 1) intervals later; allow the management
    // loop's 50 ms and the 20 ms between readings.
    assert!(took_down <= bound + Duration::from_millis(150), "marked down after {took_down:?}");
    assert!(took_up <= Duration::from_secs_f64(INTERVAL * f64::from(RISE)) + Duration::from_millis(150), "back up after {took_up:?}");
    assert!(end.totals.conns > still.totals.conns, "rs2 took connections again after recovering");
    if how == Failure::Unhealthy {
        // rs2 was never dead: the retries are not needed.
        assert_eq!(r["retried"], 0, "{r}");
    }
    assert_eq!(h.history.first().map(|e| e.ok), Some(true), "latest check: {:?}", h.history);
    assert!(h.failures >= u64::from(FALL));
}

/// Health events, latest first: "ok 12ms" or "FAIL (message) 3ms", with
/// the seconds since.
fn history(r: &mgmt::report::RealServerReport) -> String {
    let h = r.health.as_ref().map(|h| h.history.clone()).unwrap_or_default();
    let e: Vec<String> = h
        .iter()
        .map(|e| if e.ok { format!("-{:.2}s ok", e.ago_s) } else { format!("-{:.2}s FAIL ({}, {:.0} ms)", e.ago_s, e.message, e.took_ms) })
        .collect();
    e.join("; ")
}

/// Deletes a file on drop (even when the test fails).
struct Remove(PathBuf);
impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn tcp_check_takes_a_killed_server_out_and_back() {
    fail_and_recover("hc-tcp", "kind = \"tcp\"", Failure::Kill);
}

#[test]
fn http_check_takes_a_killed_server_out_and_back() {
    fail_and_recover("hc-http-kill", "kind = \"http\"\npath = \"/health\"\nexpect_status = [200]\nexpect_body = \"rs\"", Failure::Kill);
}

#[test]
fn http_check_follows_the_status_code() {
    fail_and_recover("hc-http-503", "kind = \"http\"\npath = \"/health\"\nexpect_status = [200]", Failure::Unhealthy);
}

#[test]
fn send_expect_check_takes_a_killed_server_out_and_back() {
    fail_and_recover("hc-se-kill", "kind = \"send_expect\"\nport = 7000\nsend = \"PING\\n\"\nexpect = \"PONG\"", Failure::Kill);
}

#[test]
fn send_expect_check_follows_the_answer() {
    fail_and_recover("hc-se-down", "kind = \"send_expect\"\nport = 7000\nsend = \"PING\\n\"\nexpect = \"PONG\"", Failure::Unhealthy);
}

#[test]
fn command_check_follows_the_exit_status() {
    // keepalived's MISC_CHECK: the command runs in rvsd's namespace.
    let check = format!(
        "kind = \"command\"\ncommand = [\"sh\", \"-c\", \"f={}/rvs-{}-hc-cmd-down-rs$(echo {{address}} | cut -d. -f4 | sed 's/^1//'); test ! -e $f\"]",
        std::env::temp_dir().display(),
        std::process::id()
    );
    fail_and_recover("hc-cmd", &check, Failure::Unhealthy);
}

/// When every real server is down the sorry server takes new connections;
/// the first real server back takes them again.
#[test]
fn sorry_server_takes_over_while_every_real_server_is_down() {
    let svc = service("kind = \"tcp\"", "fallback = { address = \"198.18.1.14\", port = 8080 }\n");
    let (mut bed, cl, sv) = nat_bed_opts("hc-sorry", 1, 4, "workers = 1", &svc, true, &|_| Vec::new());
    // Host 4 (198.18.1.14, process 3) is the sorry server: name it so.
    bed.proc(3).stop(Duration::from_secs(1));
    let sorry = start_server(&mut bed, sv[3], "sorry", &[]);
    wait_serving(&mut bed, sorry, "sorry");
    let url = format!("http://{VIP}/");
    let t = Instant::now();
    while !bed.stats().unwrap().services[0].real_servers.iter().all(|r| r.up) {
        assert!(t.elapsed() < Duration::from_secs(5), "servers not up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = kit(&bed, cl[0], &["http", "--url", &url, "--count", "30"], 60);
    let (ok, _, by) = tally(&r);
    assert_eq!(ok, 30);
    assert!(!by.contains_key("sorry"), "the sorry server serves only while all are down: {by:?}");
    for p in 0..3 {
        bed.proc(p).stop(Duration::from_secs(1));
    }
    let t = Instant::now();
    while bed.stats().unwrap().services[0].real_servers.iter().any(|r| r.up) {
        assert!(t.elapsed() < Duration::from_secs(5), "servers still up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = kit(&bed, cl[0], &["http", "--url", &url, "--count", "60"], 60);
    let (ok, failed, by) = tally(&r);
    assert_eq!((ok, failed), (60, 0), "{r}");
    assert_eq!(by.get("sorry"), Some(&60), "{by:?}");
    let st = bed.stats().unwrap();
    assert_eq!(st.services[0].fallback_conns, 60, "counted as fallback connections");
    // rs1 comes back: new connections leave the sorry server.
    let p = start_server(&mut bed, sv[0], "rs1", &[]);
    wait_serving(&mut bed, p, "rs1");
    let t = Instant::now();
    while !bed.stats().unwrap().services[0].real_servers[0].up {
        assert!(t.elapsed() < Duration::from_secs(5), "rs1 not back");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = kit(&bed, cl[0], &["http", "--url", &url, "--count", "30"], 60);
    let (ok, failed, by) = tally(&r);
    assert_eq!((ok, failed), (30, 0), "{r}");
    assert_eq!(by.get("rs1"), Some(&30), "{by:?}");
    let st = bed.stats().unwrap();
    assert_eq!(st.services[0].fallback_conns, 60);
    print_drops("hc-sorry", &st);
}

/// The feedback agent's answers set the weights: 100% keeps the weight,
/// 50% halves it, `drain` makes it 0, and the spread follows.
#[test]
fn feedback_agent_sets_the_weights() {
    let dir = std::env::temp_dir();
    let file = move |i: usize| dir.join(format!("rvs-{}-hc-agent-rs{}", std::process::id(), i + 1));
    let _cleanup: Vec<Remove> = (0..3).map(|i| Remove(file(i))).collect();
    for (i, says) in ["100%", "up 50%", "drain"].iter().enumerate() {
        std::fs::write(file(i), says).unwrap();
    }
    let mut svc = format!(
        "[[services]]\nvip = \"{VIP}\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"wrr\"\nforwarding = \"nat\"\n\
         feedback = {{ port = 7777, interval = 0.3 }}\n"
    );
    for i in 0..3 {
        svc.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{}\"\nport = 8080\nweight = 4\n", 11 + i));
    }
    let (bed, cl, _) = nat_bed_opts("hc-agent", 1, 3, "workers = 1", &svc, true, &|i| {
        vec!["--agent".into(), "[::]:7777".into(), "--agent-file".into(), file(i).display().to_string()]
    });
    let wait_weights = |want: [u32; 3]| {
        let t = Instant::now();
        loop {
            let st = bed.stats().unwrap();
            let w: Vec<u32> = st.services[0].real_servers.iter().map(|r| r.effective_weight).collect();
            if w == want {
                return;
            }
            assert!(t.elapsed() < Duration::from_secs(5), "effective weights {w:?}, want {want:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_weights([4, 2, 0]);
    let url = format!("http://{VIP}/");
    let r = kit(&bed, cl[0], &["http", "--url", &url, "--count", "300"], 60);
    let (ok, failed, by) = tally(&r);
    assert_eq!((ok, failed), (300, 0), "{r}");
    assert_eq!((by.get("rs1"), by.get("rs2"), by.get("rs3")), (Some(&200), Some(&100), None), "wrr 4:2:0 over 300");
    std::fs::write(file(2), "ready 100%").unwrap();
    wait_weights([4, 2, 4]);
    let r = kit(&bed, cl[0], &["http", "--url", &url, "--count", "300"], 60);
    let (ok, failed, by) = tally(&r);
    assert_eq!((ok, failed), (300, 0), "{r}");
    assert_eq!((by.get("rs1"), by.get("rs2"), by.get("rs3")), (Some(&120), Some(&60), Some(&120)), "wrr 4:2:4 over 300");
    let st = bed.stats().unwrap();
    let agents: Vec<String> = st.services[0]
        .real_servers
        .iter()
        .map(|r| r.health.as_ref().and_then(|h| h.agent.as_ref()).map(|a| a.message.clone()).unwrap_or_default())
        .collect();
    println!("hc-agent: agents say {agents:?}");
    print_drops("hc-agent", &st);
}

/// Waits until a testkit server printed that it listens.
fn wait_serving(bed: &mut Bed, p: usize, name: &str) {
    let t = Instant::now();
    while !bed.proc(p).log().contains(&format!("{name} serving")) {
        assert!(t.elapsed() < Duration::from_secs(5), "{name} did not start: {}", bed.proc(p).log());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `rvsadm server maint` (HAProxy's `disable server`): rs2 is drained at
/// once - new connections go to rs1 and rs3 while its health checks keep
/// passing and cannot bring it back - until `rvsadm server ready`; the
/// state shows as `maint` in `show health`.
#[test]
fn maintenance_by_hand_survives_health_checks_until_ready() {
    let (bed, cl, _sv) = nat_bed_opts("hc-maint", 1, 3, "workers = 1", &service("kind = \"tcp\"", ""), true, &|_| Vec::new());
    let t = Instant::now();
    while !bed.stats().unwrap().services[0].real_servers.iter().all(|r| r.up) {
        assert!(t.elapsed() < Duration::from_secs(5), "servers not up: {:?}", bed.stats().unwrap().services[0].real_servers);
        std::thread::sleep(Duration::from_millis(50));
    }
    let rvsadm = |args: &[&str]| rvsadm_ok(&bed, args);
    rvsadm(&["server", "maint", "tcp", &format!("{VIP}:80"), "198.18.1.12:8080"]);
    // Several check intervals pass, every check of rs2 succeeds.
    let checks_before = rs2(&bed).health.map(|h| h.history.len()).unwrap_or(0);
    std::thread::sleep(Duration::from_secs_f64(INTERVAL * f64::from(RISE + 2)));
    let r = rs2(&bed);
    assert!(r.maint && r.up && r.effective_weight == 0, "{r:?}");
    assert!(r.health.as_ref().map(|h| h.history.len()).unwrap_or(0) >= checks_before, "{r:?}");
    assert!(rvsadm(&["show", "health"]).lines().any(|l| l.contains("198.18.1.12:8080") && l.contains("maint")));
    let v = kit(&bed, cl[0], &["http", "--url", &format!("http://{VIP}/"), "--count", "60"], 60);
    let (ok, failed, by) = tally(&v);
    assert_eq!((ok, failed), (60, 0), "{v}");
    assert!(!by.contains_key("rs2") && by.len() == 2, "rs2 in maintenance got connections: {by:?}");
    // Ready: back in the rotation at once (its checks already pass).
    rvsadm(&["server", "ready", "tcp", &format!("{VIP}:80"), "198.18.1.12:8080"]);
    let r = rs2(&bed);
    assert!(!r.maint && r.up && r.effective_weight > 0, "{r:?}");
    let v = kit(&bed, cl[0], &["http", "--url", &format!("http://{VIP}/"), "--count", "60"], 60);
    let (ok, _, by) = tally(&v);
    assert_eq!(ok, 60, "{v}");
    assert_eq!(by.get("rs2").copied().unwrap_or(0), 20, "rr over three again: {by:?}");
    println!("maint: 60 requests to rs1/rs3 only while rs2 was in maintenance with passing checks; {by:?} after ready");
}

/// keepalived's `alpha`, `notify_up`/`notify_down` and `quorum` with its
/// hooks, against real servers: with `alpha` every server starts down (so
/// the service starts without its quorum of 2 and `quorum_down` runs),
/// each first good check brings one up (`notify_up` with its address and
/// port, `quorum_up` once two are up); killing two of the three runs
/// `notify_down` for each and `quorum_down` again; with `omega`, rvsd
/// stopping runs `notify_down` for the one still up.
#[test]
fn alpha_notify_hooks_and_quorum_run_as_keepalived_does() {
    let log = std::env::temp_dir().join(format!("rvs-{}-hooks.log", std::process::id()));
    let _cleanup = Remove(log.clone());
    let hook =
        |what: &str| format!("[\"/bin/sh\", \"-c\", \"echo {what} $RVS_STATE {{address}}:{{port}} {{service}} >> {}\"]", log.display());
    let check = format!("kind = \"tcp\"\nalpha = true\nomega = true\nnotify_up = {}\nnotify_down = {}", hook("server"), hook("server"));
    let extra = format!("quorum = 2\nhysteresis = 0\nquorum_up = {}\nquorum_down = {}\n", hook("quorum"), hook("quorum"));
    let (mut bed, _cl, _sv) = nat_bed_opts("hc-hooks", 1, 3, "workers = 1", &service(&check, &extra), true, &|_| Vec::new());
    let lines = || std::fs::read_to_string(&log).unwrap_or_default();
    let wait_for = |bed: &Bed, what: &str, n: usize| {
        let t = Instant::now();
        while lines().lines().filter(|l| l.starts_with(what)).count() < n {
            assert!(t.elapsed() < Duration::from_secs(10), "{n} x {what:?} not seen:\n{}\nrvsd:\n{}", lines(), bed.rvsd_log());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // Up one by one after their first good check; the quorum comes back.
    wait_for(&bed, "server up", 3);
    wait_for(&bed, "quorum up", 1);
    let text = lines();
    for i in 1..=3 {
        assert!(text.contains(&format!("server up 198.18.1.1{i}:8080 TCP {VIP}:80")), "{text}");
    }
    // Alpha: the service started without its quorum.
    let first_quorum = text.lines().find(|l| l.starts_with("quorum")).unwrap();
    assert_eq!(first_quorum, format!("quorum down {{address}}:{{port}} TCP {VIP}:80"), "{text}");
    // Two of three die: notify_down for each, and the quorum is lost.
    bed.proc(1).stop(Duration::from_secs(1));
    bed.proc(2).stop(Duration::from_secs(1));
    wait_for(&bed, "server down", 2);
    wait_for(&bed, "quorum down", 2);
    let text = lines();
    assert!(text.contains("server down 198.18.1.12:8080") && text.contains("server down 198.18.1.13:8080"), "{text}");
    let r = bed.stats().unwrap();
    assert!(r.services[0].real_servers[0].up && !r.services[0].real_servers[1].up, "{:?}", r.services[0].real_servers);
    // omega: rvsd stopping runs notify_down for the server still up.
    bed.stop_rvsd().unwrap();
    wait_for(&bed, "server down", 3);
    let text = lines();
    assert!(text.contains("server down 198.18.1.11:8080"), "{text}");
    println!("hooks:\n{text}");
}

/// keepalived's DNS_CHECK and a UDP check against real servers: dnsmasq
/// (Debian's) answers `rs.test` in each real server's namespace; a UDP
/// DNS service is checked with queries for it, a UDP echo service with a
/// datagram. Killing one server's dnsmasq takes it down within interval x
/// fall; the UDP echo service's servers all stay up, and a stopped echo
/// server goes down.
#[test]
fn dns_and_udp_checks_against_real_servers() {
    let dns_check = "[services.health_check]\nalpha = true\nkind = \"dns\"\ndns_name = \"rs.test\"\ndns_type = \"A\"\ninterval = 0.3\ntimeout = 0.5\nrise = 2\nfall = 3\n";
    let udp_check =
        "[services.health_check]\nalpha = true\nkind = \"udp\"\nsend = \"PING\"\ninterval = 0.3\ntimeout = 0.5\nrise = 2\nfall = 3\n";
    let mut services =
        format!("[[services]]\nvip = \"{VIP}\"\nport = 53\nprotocol = \"udp\"\nscheduler = \"rr\"\nforwarding = \"nat\"\n{dns_check}");
    for i in 0..2 {
        services.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{}\"\nport = 5353\n", 11 + i));
    }
    services.push_str(&format!(
        "\n[[services]]\nvip = \"{VIP}\"\nport = 9000\nprotocol = \"udp\"\nscheduler = \"rr\"\nforwarding = \"nat\"\n{udp_check}"
    ));
    for i in 0..2 {
        services.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{}\"\nport = 9000\n", 11 + i));
    }
    let (mut bed, _cl, sv) = nat_bed_opts("hc-dns", 1, 2, "workers = 1", &services, true, &|_| Vec::new());
    let pid_file = |i: usize| std::env::temp_dir().join(format!("rvs-{}-dnsmasq{i}.pid", std::process::id()));
    let _cleanup: Vec<Remove> = (0..2).map(|i| Remove(pid_file(i))).collect();
    let dnsmasq: Vec<usize> = (0..2)
        .map(|i| {
            let addr = format!("198.18.1.{}", 11 + i);
            bed.spawn(
                sv[i],
                &[
                    "dnsmasq",
                    "--keep-in-foreground",
                    "--no-daemon",
                    "--port=5353",
                    &format!("--listen-address={addr}"),
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    "--conf-file=/dev/null",
                    "--user=root",
                    &format!("--pid-file={}", pid_file(i).display()),
                    &format!("--address=/rs.test/{addr}"),
                ],
            )
            .unwrap()
        })
        .collect();
    let ups = |bed: &Bed, svc: usize| bed.stats().unwrap().services[svc].real_servers.iter().map(|r| r.up).collect::<Vec<_>>();
    let wait = |bed: &Bed, svc: usize, want: &[bool], what: &str| {
        let t = Instant::now();
        while ups(bed, svc) != want {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{what}: {:?}\n{}",
                bed.stats().unwrap().services[svc].real_servers,
                bed.rvsd_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        t.elapsed()
    };
    // alpha: up only once a check passed.
    wait(&bed, 0, &[true, true], "both DNS servers answer");
    wait(&bed, 1, &[true, true], "both UDP echo servers answer");
    let msg = bed.stats().unwrap().services[0].real_servers[0].health.clone().unwrap();
    assert!(msg.history.iter().any(|e| e.ok && e.message.contains("DNS answer")), "{msg:?}");
    // rs2's DNS server dies: down within interval x fall (+ a margin).
    bed.proc(dnsmasq[1]).stop(Duration::from_secs(1));
    let took = wait(&bed, 0, &[true, false], "rs2's DNS server stopped");
    assert!(took < Duration::from_secs_f64(0.3 * 3.0 + 1.5), "{took:?}");
    // The echo servers (rvs-testkit, spawned first) still answer; stop rs1's.
    assert_eq!(ups(&bed, 1), [true, true]);
    bed.proc(0).stop(Duration::from_secs(1));
    wait(&bed, 1, &[false, true], "rs1's UDP echo server stopped");
    let down = bed.stats().unwrap().services[0].real_servers[1].health.clone().unwrap();
    println!("dns: rs2 down {took:?} after its dnsmasq stopped: {:?}", down.history.last());
}

/// Per-real-server checks and several checks per server (keepalived's
/// checkers inside a `real_server` block): the service checks TCP :8080;
/// rs2 runs two checks of its own instead (HTTP GET on :8080 and a TCP
/// connect to :7100, served by a second process in its namespace), and rs3
/// one of its own against a port nothing listens on. rs3 is down from the
/// start though the service's check would pass (its own replaces it); rs2
/// is up while both its checks pass, goes down when only its second fails
/// (the HTTP check still passing) and comes back when that one passes
/// again; rs1 stays up all along; `show health` names each check.
#[test]
fn per_server_and_multiple_checks_all_must_pass() {
    let check = |kind: &str, port: Option<u16>| {
        let port = port.map_or(String::new(), |p| format!("port = {p}\n"));
        format!("kind = \"{kind}\"\n{port}interval = {INTERVAL}\ntimeout = 0.5\nrise = {RISE}\nfall = {FALL}\n")
    };
    let mut services = format!(
        "[[services]]\nvip = \"{VIP}\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"nat\"\n\
         [services.health_check]\n{}",
        check("tcp", None)
    );
    services.push_str("[[services.real_servers]]\naddress = \"198.18.1.11\"\nport = 8080\n");
    services.push_str("[[services.real_servers]]\naddress = \"198.18.1.12\"\nport = 8080\n");
    services.push_str(&format!("[[services.real_servers.health_checks]]\n{}", check("http", None)));
    services.push_str(&format!("[[services.real_servers.health_checks]]\n{}", check("tcp", Some(7100))));
    services.push_str("[[services.real_servers]]\naddress = \"198.18.1.13\"\nport = 8080\n");
    services.push_str(&format!("[[services.real_servers.health_checks]]\n{}", check("tcp", Some(7999))));
    let (mut bed, cl, sv) = nat_bed_opts("hc-multi", 1, 3, "workers = 1", &services, true, &|_| Vec::new());
    let kit_path = bin("rvs-testkit").unwrap();
    let second = bed.spawn(sv[1], &[kit_path.to_str().unwrap(), "serve", "--name", "rs2b", "--tcp-echo", "[::]:7100"]).unwrap();
    let ups = |bed: &Bed| bed.stats().unwrap().services[0].real_servers.iter().map(|r| r.up).collect::<Vec<_>>();
    let wait = |bed: &Bed, want: [bool; 3], what: &str| {
        let t = Instant::now();
        while ups(bed) != want {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{what}: {:?}\n{}",
                bed.stats().unwrap().services[0].real_servers,
                bed.rvsd_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        t.elapsed()
    };
    wait(&bed, [true, true, false], "rs1 and rs2 up, rs3 down by its own check");
    // Stable: several intervals later still so.
    std::thread::sleep(Duration::from_secs_f64(INTERVAL * f64::from(FALL + 1)));
    assert_eq!(ups(&bed), [true, true, false]);
    let rs = bed.stats().unwrap().services[0].real_servers.clone();
    let h2 = rs[1].health.clone().unwrap();
    assert_eq!(h2.check.as_deref(), Some("http+tcp"), "{h2:?}");
    assert_eq!(h2.each.iter().map(|c| (c.kind.as_str(), c.port, c.up)).collect::<Vec<_>>(), [("http", 8080, true), ("tcp", 7100, true)]);
    let h3 = rs[2].health.clone().unwrap();
    assert_eq!(h3.check.as_deref(), Some("tcp"), "{h3:?}");
    assert_eq!(h3.each.iter().map(|c| (c.port, c.up)).collect::<Vec<_>>(), [(7999, false)]);
    assert_eq!(rs[0].health.clone().unwrap().each.iter().map(|c| c.port).collect::<Vec<_>>(), [8080]);
    // Traffic: rs3 gets none.
    let v = kit(&bed, cl[0], &["http", "--url", &format!("http://{VIP}/"), "--count", "40"], 60);
    let (ok, _, by) = tally(&v);
    assert_eq!(ok, 40, "{v}");
    assert!(!by.contains_key("rs3") && by.len() == 2, "{by:?}");
    // rs2's second check fails (its HTTP check keeps passing): rs2 down.
    bed.proc(second).stop(Duration::from_secs(1));
    let took = wait(&bed, [true, false, false], "rs2 down by its second check");
    let h2 = bed.stats().unwrap().services[0].real_servers[1].health.clone().unwrap();
    assert_eq!(h2.each.iter().map(|c| c.up).collect::<Vec<_>>(), [true, false], "{h2:?}");
    assert!(h2.history.iter().any(|e| e.ok && e.message.starts_with("http: ")), "{h2:?}");
    let out = std::process::Command::new(bin("rvsadm").unwrap())
        .args(["--socket", bed.socket().to_str().unwrap(), "show", "health"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.contains("198.18.1.12:8080") && l.contains("http:8080 up, tcp:7100 DOWN")), "{text}");
    // It passes again: rs2 back after rise checks.
    bed.spawn(sv[1], &[kit_path.to_str().unwrap(), "serve", "--name", "rs2b", "--tcp-echo", "[::]:7100"]).unwrap();
    let back = wait(&bed, [true, true, false], "rs2 back");
    println!(
        "multi-check: rs2 down {:.2} s after its second check's server stopped, back {:.2} s after it restarted",
        took.as_secs_f64(),
        back.as_secs_f64()
    );
}
