//! End-to-end: persistence, draining and removing real servers with live
//! connections, through real kernel TCP, changed live by reloading the
//! configuration file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
mod common;
use common::*;
use std::time::Duration;
use testbed::{bin, tally};

fn service(weights: [u32; 3], extra: &str, present: [bool; 3]) -> String {
    let mut s = format!("[[services]]\nvip = \"{VIP}\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"wrr\"\nforwarding = \"nat\"\n{extra}");
    for i in 0..3 {
        if present[i] {
            s.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{}\"\nport = 8080\nweight = {}\n", 11 + i, weights[i]));
        }
    }
    s
}

#[test]
fn persistence_keeps_a_client_on_one_server_across_50_connections() {
    let svc = service([1, 1, 1], "persistence = { timeout = 300 }\n", [true; 3]);
    let (bed, cl, _) = nat_bed("persist", 2, 3, "workers = 1", &svc);
    for &c in &cl {
        let r = kit(&bed, c, &["http", "--url", &format!("http://{VIP}/"), "--count", "50"], 60);
        let (ok, failed, by) = tally(&r);
        assert_eq!((ok, failed), (50, 0), "{r}");
        assert_eq!(by.len(), 1, "50 connections from one client spread over {by:?}");
    }
    let st = bed.stats().unwrap();
    print_drops("persist", &st);
    assert_eq!(st.services[0].totals.conns, 100);
}

/// 50 long-lived connections to rs1 (the only server with weight), each
/// sending a request every 200 ms for 8 s. Two seconds in, the
/// configuration changes; new connections made then show where new flows go.
fn long_lived(tag: &str, extra: &str, change: &str) -> (serde_json::Value, serde_json::Value, mgmt::report::Report) {
    let (mut bed, cl, _) = nat_bed(tag, 2, 3, "workers = 1", &service([1, 0, 0], extra, [true; 3]));
    let kit_path = bin("rvs-testkit").unwrap();
    let hold = bed
        .spawn(cl[0], &[kit_path.to_str().unwrap(), "hold", "--url", &format!("http://{VIP}/"), "--conns", "50", "--seconds", "8"])
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let st = bed.stats().unwrap();
    assert_eq!(st.services[0].real_servers[0].active, 50, "all 50 on rs1 before the change");
    bed.reload_with(change).unwrap();
    let fresh = kit(&bed, cl[1], &["http", "--url", &format!("http://{VIP}/"), "--count", "30"], 60);
    let out = bed.wait(hold, Duration::from_secs(30)).unwrap();
    let held: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap();
    let st = bed.stats().unwrap();
    print_drops(tag, &st);
    (held, fresh, st)
}

#[test]
fn draining_keeps_50_long_lived_connections_and_avoids_the_server() {
    let (held, fresh, st) = long_lived("drain", "", &service([0, 1, 1], "", [true; 3]));
    assert_eq!(held["ok"], 50, "every long-lived connection survived the drain: {held}");
    for c in held["conns"].as_array().unwrap() {
        assert_eq!(c["servers"], serde_json::json!(["rs1"]), "{c}");
        assert!(c["requests"].as_u64().unwrap() >= 30, "{c}");
    }
    let (ok, failed, by) = tally(&fresh);
    assert_eq!((ok, failed), (30, 0));
    assert!(!by.contains_key("rs1"), "a new connection reached the drained server: {by:?}");
    let rs1 = &st.services[0].real_servers[0];
    assert_eq!((rs1.weight, rs1.active), (0, 0), "after the connections closed: {rs1:?}");
}

#[test]
fn removing_a_server_resets_its_connections() {
    let (held, fresh, st) =
        long_lived("rm-reset", "on_remove = \"reset\"\n", &service([0, 1, 1], "on_remove = \"reset\"\n", [false, true, true]));
    assert_eq!(held["ok"], 0, "every connection to the removed server was reset: {held}");
    for c in held["conns"].as_array().unwrap() {
        let e = c["error"].as_str().unwrap_or("");
        assert!(e.contains("reset") || e.contains("os error 104"), "ended by a reset, not a timeout: {c}");
    }
    assert_eq!(st.drops["no_backend"], 50, "one reset per connection");
    let (ok, failed, by) = tally(&fresh);
    assert_eq!((ok, failed), (30, 0));
    assert!(!by.contains_key("rs1"));
}

#[test]
fn removing_a_server_can_keep_its_connections() {
    let (held, fresh, _) =
        long_lived("rm-keep", "on_remove = \"keep\"\n", &service([0, 1, 1], "on_remove = \"keep\"\n", [false, true, true]));
    assert_eq!(held["ok"], 50, "connections to the removed server continued: {held}");
    for c in held["conns"].as_array().unwrap() {
        assert_eq!(c["servers"], serde_json::json!(["rs1"]), "{c}");
    }
    let (ok, failed, by) = tally(&fresh);
    assert_eq!((ok, failed), (30, 0));
    assert!(!by.contains_key("rs1"));
}
