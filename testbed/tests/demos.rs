//! The README's demo commands, run as an operator would (the binaries the
//! scripts run): the single-balancer demo and the failover demo, each to
//! its end, with the summary lines the README quotes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
use std::time::Duration;
use testbed::{bin, run};

fn demo(args: &[&str]) -> String {
    let d = bin("rvs-demo").unwrap();
    let mut cmd = vec![d.to_str().unwrap()];
    cmd.extend_from_slice(args);
    let out = run(&cmd, Duration::from_secs(180)).unwrap_or_else(|e| panic!("rvs-demo {args:?}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_demo_runs_to_its_summary() {
    let out = demo(&[]);
    assert!(out.contains("client view vs rvsd:") && out.contains(": agree"), "{out}");
    assert!(out.contains("rvsd stopped cleanly; namespaces removed."), "{out}");
}

#[test]
fn the_failover_demo_keeps_every_established_connection() {
    let out = demo(&["ha"]);
    assert!(out.contains("established connections kept: 500 of 500; UDP flows kept: 50 of 50"), "{out}");
    assert!(out.contains("(all inside the gap: true)"), "{out}");
    assert!(out.contains("state     MASTER"), "{out}");
}
