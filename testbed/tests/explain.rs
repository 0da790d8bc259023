//! `rvsadm explain`: for 200 real connections, the explanation given
//! before each opens names the server it then reaches, and the one given
//! after finds its session there. Two workers (each flow's owner answers
//! from its own round-robin cursor), a round-robin service with a server in
//! maintenance and a Maglev service with a drained server (both skipped,
//! with the reason).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
mod common;
use common::*;
use serde_json::{json, Value};

const CLIENT: &str = "198.18.0.10";

fn services() -> String {
    let mut s =
        format!("[[services]]\nname = \"web\"\nvip = \"{VIP}\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"nat\"\n");
    for i in 0..3 {
        s.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{}\"\nport = 8080\n", 11 + i));
    }
    s.push_str(&format!("\n[[services]]\nvip = \"{VIP}\"\nport = 81\nprotocol = \"tcp\"\nscheduler = \"mh\"\nforwarding = \"nat\"\n"));
    for (i, w) in [1, 0, 1].iter().enumerate() {
        s.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{}\"\nport = 8080\nweight = {w}\n", 11 + i));
    }
    s
}

fn explain(bed: &testbed::Bed, sport: u16, vport: u16) -> Value {
    bed.call("explain", json!({ "protocol": "tcp", "client": format!("{CLIENT}:{sport}"), "vip": format!("{VIP}:{vport}") })).unwrap()
}

#[test]
fn explain_agrees_with_where_200_connections_went() {
    let (bed, cl, _sv) = nat_bed_opts("explain", 1, 3, "workers = 2", &services(), false, &|_| Vec::new());
    let rvsadm = |args: &[&str]| rvsadm_ok(&bed, args);
    rvsadm(&["server", "maint", "tcp", &format!("{VIP}:80"), "198.18.1.12:8080"]);
    let mut owners = std::collections::BTreeMap::new();
    let mut by = std::collections::BTreeMap::new();
    for (vport, base) in [(80u16, 20_000u16), (81, 30_000)] {
        for i in 0..100u16 {
            let sport = base + i;
            let before = explain(&bed, sport, vport);
            assert!(before["session"].is_null(), "a new flow: {before:#}");
            let predicted = before["choice"].as_str().unwrap_or_else(|| panic!("no choice: {}", before["text"])).to_string();
            *owners.entry(before["owner"].as_u64().unwrap_or(0)).or_insert(0) += 1;
            let v = kit(
                &bed,
                cl[0],
                &["http", "--url", &format!("http://{VIP}:{vport}/"), "--count", "1", "--source-port", &sport.to_string()],
                20,
            );
            let (ok, _, got) = testbed::tally(&v);
            assert_eq!(ok, 1, "{v}");
            let name = got.keys().next().unwrap().clone();
            let n: u8 = name.trim_start_matches("rs").parse().unwrap();
            let went = format!("198.18.1.{}:8080", 10 + n);
            assert_eq!(predicted, went, "flow {CLIENT}:{sport} -> :{vport}: explained before\n{}", before["text"].as_str().unwrap());
            let after = explain(&bed, sport, vport);
            assert_eq!(after["session"]["server"], json!(went), "after:\n{}", after["text"].as_str().unwrap());
            *by.entry((vport, went)).or_insert(0) += 1;
        }
    }
    // The skipped servers, with their reasons; nothing went to them.
    let x = explain(&bed, 40_000, 80);
    let c = x["candidates"].as_array().unwrap();
    assert_eq!(c[1]["skipped"], json!("in maintenance (rvsadm server maint)"), "{x:#}");
    assert!(c[0]["skipped"].is_null() && c[2]["skipped"].is_null(), "{x:#}");
    let x = explain(&bed, 40_000, 81);
    assert_eq!(x["candidates"][1]["skipped"], json!("drained (weight 0)"), "{x:#}");
    assert_eq!(x["hash"]["table"], json!("maglev"), "{x:#}");
    assert!(!by.contains_key(&(80, "198.18.1.12:8080".to_string())) && !by.contains_key(&(81, "198.18.1.12:8080".to_string())), "{by:?}");
    // rr over the two in service, each worker with its own cursor.
    for rs in ["198.18.1.11:8080", "198.18.1.13:8080"] {
        assert!(by.get(&(80, rs.to_string())).is_some_and(|n| (45..=55).contains(n)), "rr over the two in service: {by:?}");
    }
    // mh hashes the source address alone here: one client, one server.
    assert_eq!(by.iter().filter(|((p, _), _)| *p == 81).count(), 1, "{by:?}");
    assert!(owners.len() == 2, "both workers own flows: {owners:?}");
    // What an operator reads, before and after a flow.
    let text = rvsadm(&["explain", "tcp", &format!("{CLIENT}:40001"), &format!("{VIP}:81")]);
    assert!(text.contains("scheduler mh") && text.contains("maglev entry") && text.contains("verdict: a new session to"), "{text}");
    let text_after = rvsadm(&["explain", "tcp", &format!("{CLIENT}:20000"), &format!("{VIP}:80")]);
    assert!(text_after.contains("existing session on worker"), "{text_after}");
    println!("explain: 200 connections, each where explained; owners {owners:?}; spread {by:?}\n{text}\n{text_after}");
}
