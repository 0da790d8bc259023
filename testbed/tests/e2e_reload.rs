//! End-to-end live reconfiguration: 2,000 requests while the configuration
//! file is reloaded 20 times (alternately by `rvsadm reload` and SIGHUP)
//! with alternating weights and a real server added and removed; then the
//! Prometheus endpoint, parsed by the reference Python parser, agrees with
//! the control socket's statistics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
mod common;
use common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use testbed::{bin, tally, Bed};

const RELOADS: usize = 20;

/// Weights of rs1..rs4 in phase `k` (0 = the initial file); rs4 is part of
/// the service in phases 7..=13 only.
fn weights(k: usize) -> [u32; 4] {
    let rs4 = if (7..=13).contains(&k) { 2 } else { 0 };
    match k {
        0 => [1, 1, 1, 0],
        k if k % 2 == 1 => [3, 2, 1, rs4],
        _ => [1, 2, 3, rs4],
    }
}

fn config(k: usize) -> String {
    let w = weights(k);
    let mut s = format!(
        "[[services]]\nvip = \"{VIP}\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"wrr\"\nforwarding = \"nat\"\non_remove = \"keep\"\n"
    );
    for (i, w) in w.iter().enumerate() {
        if i < 3 || *w > 0 {
            s.push_str(&format!("[[services.real_servers]]\naddress = \"198.18.1.{}\"\nport = 8080\nweight = {w}\n", 11 + i));
        }
    }
    s
}

/// Connections per real server address so far, from rvsd's counters.
fn conns(bed: &Bed) -> BTreeMap<String, u64> {
    let st = bed.stats().unwrap();
    st.services[0].real_servers.iter().map(|r| (rs_name(&r.address), r.totals.conns)).collect()
}

#[test]
fn reload_under_load_loses_nothing_and_the_spread_follows_the_weights() {
    let (mut bed, cl, _) = nat_bed("reload", 2, 4, "workers = 1", &config(0));
    let kit_path = bin("rvs-testkit").unwrap();
    let url = format!("http://{VIP}/");
    // 20 keep-alive connections through every reload: none may break.
    let hold = bed.spawn(cl[1], &[kit_path.to_str().unwrap(), "hold", "--url", &url, "--conns", "20", "--seconds", "10"]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let client = bed
        .spawn(cl[0], &[kit_path.to_str().unwrap(), "http", "--url", &url, "--count", "2000", "--concurrency", "2", "--gap-ms", "6"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let rvsadm = bin("rvsadm").unwrap();
    // Phase k runs from just after reload k (`starts[k]`) to just before
    // reload k + 1 (`ends[k]`); connections made while a reload is in
    // progress belong to neither.
    let mut starts = vec![conns(&bed)];
    let mut ends = Vec::new();
    let t = Instant::now();
    for k in 1..=RELOADS {
        ends.push(conns(&bed));
        if k % 2 == 1 {
            // `rvsadm reload`, as an operator types it.
            bed.write_config(&config(k)).unwrap();
            let out = std::process::Command::new(&rvsadm).args(["--socket", bed.socket().to_str().unwrap(), "reload"]).output().unwrap();
            assert!(out.status.success(), "rvsadm reload {k}: {}", String::from_utf8_lossy(&out.stderr));
        } else {
            bed.sighup_with(&config(k)).unwrap_or_else(|e| panic!("SIGHUP {k}: {e}"));
        }
        starts.push(conns(&bed));
        std::thread::sleep(Duration::from_millis(300));
    }
    let reload_secs = t.elapsed().as_secs_f64();
    let out = bed.wait(client, Duration::from_secs(90)).unwrap();
    ends.push(conns(&bed));
    let r: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap();
    let (ok, failed, by) = tally(&r);
    let held = bed.wait(hold, Duration::from_secs(30)).unwrap();
    let held: serde_json::Value = serde_json::from_str(held.lines().last().unwrap_or("{}")).unwrap();

    // Per phase: the connections each server took against its weight share.
    let names = ["rs1", "rs2", "rs3", "rs4"];
    let mut expected_total = [0f64; 4];
    let mut got_total = [0u64; 4];
    let mut worst = 0f64;
    for k in 0..=RELOADS {
        let w = weights(k);
        let sum: u32 = w.iter().sum();
        let delta: Vec<u64> =
            names.iter().map(|n| ends[k].get(*n).copied().unwrap_or(0).saturating_sub(starts[k].get(*n).copied().unwrap_or(0))).collect();
        let n: u64 = delta.iter().sum();
        let line: Vec<String> = (0..4).map(|i| format!("{}={}", names[i], delta[i])).collect();
        println!("phase {k:2} weights {w:?}: {}", line.join(" "));
        for i in 0..4 {
            let exp = n as f64 * f64::from(w[i]) / f64::from(sum);
            expected_total[i] += exp;
            got_total[i] += delta[i];
            // Smooth wrr is exact over each cycle; allow the partial cycles
            // at either end of a phase.
            let err = (delta[i] as f64 - exp).abs();
            worst = worst.max(err);
            assert!(err <= 3.0 + 0.1 * exp, "phase {k}: {} took {} of {n}, weight share {exp:.1}", names[i], delta[i]);
            if w[i] == 0 {
                assert!(delta[i] <= 2, "phase {k}: {} has weight 0 (or is absent) but took {}", names[i], delta[i]);
            }
        }
    }
    println!(
        "reload: {RELOADS} reloads in {reload_secs:.1} s; client ok={ok} failed={failed} in {:.1} s by_server={by:?}; \
         held connections ok={} of 20; expected (rvsd counters, by weight) {:?}, got {got_total:?}; worst phase error {worst:.1}",
        r["seconds"].as_f64().unwrap_or(0.0),
        held["ok"],
        expected_total.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>(),
    );
    assert_eq!((ok, failed), (2000, 0), "{r}");
    assert_eq!(held["ok"], 20, "an established connection broke during the reloads: {held}");
    for c in held["conns"].as_array().unwrap() {
        assert_eq!(c["servers"].as_array().map(Vec::len), Some(1), "a kept-alive connection changed server: {c}");
    }
    assert!(got_total[3] > 0, "rs4 took connections while it was in the service");
    // rvsd counted what the clients made: 2,000 plus the 20 held.
    let st = bed.stats().unwrap();
    assert_eq!(st.services[0].totals.conns, 2000 + 20, "rvsd's connection count");
    print_drops("reload", &st);
    println!("reload: {} frames held for a neighbour to resolve (rs4's first SYNs)", st.neigh_held);
    prometheus_agrees_with_stats(&bed);
}

/// Scrapes `/metrics` inside rvsd's namespace, parses it with the
/// `prometheus_client` package's parser, and compares it with `stats`.
fn prometheus_agrees_with_stats(bed: &Bed) {
    let script = bed.dir.join("scrape.py");
    std::fs::write(
        &script,
        r#"
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen("http://127.0.0.1:9580/metrics", timeout=5).read().decode()
out = []
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        out.append({"name": s.name, "type": fam.type, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#,
    )
    .unwrap();
    let before = bed.stats().unwrap();
    let raw = bed.lb().sh_timeout(&["/usr/bin/python3", script.to_str().unwrap()], Duration::from_secs(20)).unwrap();
    let after = bed.stats().unwrap();
    let samples: Vec<serde_json::Value> = serde_json::from_str(raw.trim()).unwrap();
    let find = |name: &str, labels: &[(&str, &str)]| -> f64 {
        samples
            .iter()
            .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
            .and_then(|s| s["value"].as_f64())
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in the scrape"))
    };
    let between = |what: &str, got: f64, lo: u64, hi: u64| {
        assert!(got >= lo as f64 && got <= hi as f64, "{what}: scraped {got}, stats said {lo} before and {hi} after");
    };
    let mut checked = 0;
    for (sb, sa) in before.services.iter().zip(&after.services) {
        let vip = sb.vip.to_string();
        let port = sb.port.to_string();
        let l = [("protocol", "tcp"), ("vip", vip.as_str()), ("port", port.as_str())];
        for (name, b, a) in [
            ("rvs_service_connections_total", sb.totals.conns, sa.totals.conns),
            ("rvs_service_packets_in_total", sb.totals.pkts_in, sa.totals.pkts_in),
            ("rvs_service_packets_out_total", sb.totals.pkts_out, sa.totals.pkts_out),
            ("rvs_service_bytes_in_total", sb.totals.bytes_in, sa.totals.bytes_in),
            ("rvs_service_bytes_out_total", sb.totals.bytes_out, sa.totals.bytes_out),
        ] {
            between(name, find(name, &l), b, a);
            checked += 1;
        }
        for (rb, ra) in sb.real_servers.iter().zip(&sa.real_servers) {
            let server = format!("{}:{}", rb.address, rb.port);
            let mut l = l.to_vec();
            l.push(("server", server.as_str()));
            for (name, b, a) in [
                ("rvs_real_server_connections_total", rb.totals.conns, ra.totals.conns),
                ("rvs_real_server_packets_in_total", rb.totals.pkts_in, ra.totals.pkts_in),
                ("rvs_real_server_packets_out_total", rb.totals.pkts_out, ra.totals.pkts_out),
                ("rvs_real_server_bytes_in_total", rb.totals.bytes_in, ra.totals.bytes_in),
                ("rvs_real_server_bytes_out_total", rb.totals.bytes_out, ra.totals.bytes_out),
                ("rvs_real_server_weight", u64::from(rb.weight), u64::from(ra.weight)),
            ] {
                between(&format!("{name} {server}"), find(name, &l), b, a);
                checked += 1;
            }
        }
    }
    for (reason, b) in &before.drops {
        let a = after.drops.get(reason).copied().unwrap_or(*b);
        between(&format!("drops {reason}"), find("rvs_drops_total", &[("reason", reason)]), *b, a);
        checked += 1;
    }
    for (pb, pa) in before.ports.iter().zip(&after.ports) {
        between("rx packets", find("rvs_port_rx_packets_total", &[("port", &pb.name)]), pb.rx_packets, pa.rx_packets);
        between("tx packets", find("rvs_port_tx_packets_total", &[("port", &pb.name)]), pb.tx_packets, pa.tx_packets);
        checked += 2;
    }
    between("sessions created", find("rvs_sessions_created_total", &[]), before.sessions.created, after.sessions.created);
    println!("prometheus: {} samples parsed by prometheus_client; {checked} values agree with stats", samples.len());
}
