//! Source allow and deny lists, end to end: rvsd in NAT over real kernel
//! clients in both families; lists from the configuration, then changed at
//! run time with `rvsadm sources`; refused flows counted by list.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
mod common;
use common::{http_service, kit, nat_bed, vip_url};
use testbed::{bin, tally, Bed};

/// HTTP requests from client `host` over `v6`: (answered, failed).
fn requests(bed: &Bed, host: usize, v6: bool, n: u32) -> (u64, u64) {
    let n = n.to_string();
    let out = kit(bed, host, &["http", "--url", &vip_url(v6, "/"), "--count", &n, "--timeout-ms", "300"], 60);
    let (ok, failed, _) = tally(&out);
    (ok, failed)
}

fn rvsadm(bed: &Bed, args: &[&str]) {
    let out = std::process::Command::new(bin("rvsadm").unwrap()).arg("--socket").arg(bed.socket()).args(args).output().unwrap();
    assert!(out.status.success(), "rvsadm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn drops(bed: &Bed, reason: &str) -> u64 {
    bed.stats().unwrap().drops.get(reason).copied().unwrap_or(0)
}

#[test]
fn deny_and_allow_lists_refuse_new_flows_and_change_at_run_time() {
    // Client c0 (198.18.0.10, 2001:db8::10) and c1 (198.18.0.11,
    // 2001:db8::11); c1 is denied in both families by the configuration.
    let deny = "deny_sources = [\"198.18.0.11/32\", \"2001:db8::11/128\"]\n";
    let services = format!("{}{}", http_service(false, "nat", "rr"), http_service(true, "nat", "rr"))
        .replace("forwarding = \"nat\"\n", &format!("forwarding = \"nat\"\n{deny}"));
    let (bed, cl, _) = nat_bed("src-lists", 2, 3, "workers = 1", &services);
    for v6 in [false, true] {
        assert_eq!(requests(&bed, cl[0], v6, 20), (20, 0), "c0 is not listed (v6: {v6})");
        assert_eq!(requests(&bed, cl[1], v6, 5), (0, 5), "c1 is denied (v6: {v6})");
    }
    let denied = drops(&bed, "source_denied");
    assert!(denied >= 10, "each refused connection attempt counted: {denied}");
    // At run time: c1 off the IPv4 deny list; an allow list that lets only
    // 198.18.0.10 in (a /24 denied, the host allowed: the most specific
    // prefix decides).
    rvsadm(&bed, &["sources", "tcp", "198.18.0.100:80", "deny", "del", "198.18.0.11/32"]);
    assert_eq!(requests(&bed, cl[1], false, 10), (10, 0), "c1 no longer denied");
    rvsadm(&bed, &["sources", "tcp", "198.18.0.100:80", "deny", "add", "198.18.0.0/24"]);
    rvsadm(&bed, &["sources", "tcp", "198.18.0.100:80", "allow", "add", "198.18.0.10"]);
    assert_eq!(requests(&bed, cl[0], false, 10), (10, 0), "c0's host prefix is allowed inside the denied /24");
    assert_eq!(requests(&bed, cl[1], false, 5), (0, 5), "c1 falls under the /24");
    // Only an allow list: c1 is not on it.
    rvsadm(&bed, &["sources", "tcp", "198.18.0.100:80", "deny", "del", "198.18.0.0/24"]);
    let before = drops(&bed, "source_not_allowed");
    assert_eq!(requests(&bed, cl[1], false, 5), (0, 5), "c1 is not on the allow list");
    assert_eq!(requests(&bed, cl[0], false, 10), (10, 0));
    assert!(drops(&bed, "source_not_allowed") >= before + 5, "counted as not allowed");
    // The running configuration holds the lists; a bad prefix is refused
    // with its field.
    let cfg = bed.call("config.get", serde_json::Value::Null).unwrap();
    let s = cfg["services"].as_array().unwrap().iter().find(|s| s["vip"] == "198.18.0.100").unwrap();
    assert_eq!(s["allow_sources"], serde_json::json!(["198.18.0.10/32"]), "{s}");
    assert_eq!(s["deny_sources"], serde_json::json!(["2001:db8::11/128"]), "the IPv6 prefix of the same list stays: {s}");
    let out = std::process::Command::new(bin("rvsadm").unwrap())
        .arg("--socket")
        .arg(bed.socket())
        .args(["sources", "tcp", "198.18.0.100:80", "deny", "add", "198.18.0.7/24"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("deny_sources[1]") && err.contains("host bits"), "{err}");
    // IPv6 kept its configured list.
    assert_eq!(requests(&bed, cl[1], true, 3), (0, 3));
}
