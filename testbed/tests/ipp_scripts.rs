//! The instruction counts BENCHMARKS.md quotes come from two scripts,
//! `scripts/ipp.sh` (instructions per packet of the forwarding loop, by
//! mode, under callgrind) and `scripts/ipp-lines.py` (the same by line or
//! file of rvs's source). This runs both on the test build of the
//! `fwdloop` example, so that they cannot rot unnoticed (the second once
//! counted nothing when valgrind began naming the binary on a `cob=` line).
//! No figure is asserted beyond what any build must show: a count of a few
//! hundred instructions or more, a SYN dearer than an established packet,
//! a NIC's checksum verdict saving work, and the fast path's own file among
//! the costs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The `fwdloop` example of this build (test.sh builds it).
fn fwdloop() -> PathBuf {
    let p = testbed::process::bin_dir().join("examples").join("fwdloop");
    assert!(p.exists(), "{} not found: cargo build -p rvs-core --example fwdloop", p.display());
    p
}

/// Runs `cmd` in its own process group, bounded (`limit`), its standard
/// output going to `out`; on timeout the whole group (the script and the
/// valgrind it started) is ended. Returns what it printed.
fn bounded(cmd: &mut Command, out: &Path, limit: Duration) -> String {
    let (status, text) = testbed::process::run_grouped(cmd, out, limit).unwrap();
    println!("{text}");
    let status = status.unwrap_or_else(|| panic!("{cmd:?} did not finish in {limit:?}:\n{text}"));
    assert!(status.success(), "{cmd:?} failed ({status}):\n{text}");
    text
}

/// A scratch folder of this test, removed when dropped (also on failure).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(tag: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("rvs-ipp-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

#[test]
fn instructions_per_packet_script_counts() {
    let dir = scratch("ipp");
    let text = bounded(
        Command::new("bash").arg(root().join("scripts/ipp.sh")).arg(fwdloop()).arg("dr"),
        &dir.0.join("out.txt"),
        Duration::from_secs(240),
    );
    let row = text.lines().find(|l| l.starts_with("| dr |")).unwrap_or_else(|| panic!("no DR row in:\n{text}"));
    let n: Vec<u64> = row.split('|').map(str::trim).filter(|c| !c.is_empty()).skip(1).map(|c| c.parse().unwrap()).collect();
    let [est, syn, est_nic, syn_nic] = n[..] else { panic!("four counts expected: {row}") };
    assert!(est > 200, "an established packet cannot cost {est} instructions: {row}");
    assert!(syn > est, "a SYN (a new session) must cost more than an established packet: {row}");
    assert!(est_nic < est && syn_nic < syn, "the NIC's checksum verdict must save the sums: {row}");
}

#[test]
fn instructions_by_line_script_counts() {
    let dir = scratch("lines");
    let cg = dir.0.join("callgrind.out");
    let bin = fwdloop();
    bounded(
        Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg("--dump-instr=yes")
            .arg(format!("--callgrind-out-file={}", cg.display()))
            .arg(&bin)
            .args(["dr", "1024", "2000"]),
        &dir.0.join("valgrind.txt"),
        Duration::from_secs(120),
    );
    let text = bounded(
        Command::new("python3").arg(root().join("scripts/ipp-lines.py")).arg(&cg).arg(&bin).args(["64000", "--files", "40"]),
        &dir.0.join("out.txt"),
        Duration::from_secs(120),
    );
    let cost = |name: &str| -> f64 {
        let line = text.lines().find(|l| l.split_whitespace().nth(1) == Some(name)).unwrap_or_else(|| panic!("no {name} row in:\n{text}"));
        line.split_whitespace().next().unwrap().parse().unwrap()
    };
    assert!(cost("total") > 200.0, "the loop's instructions per packet were not counted:\n{text}");
    assert!(cost("dataplane/core/src/fwd/fast.rs") > 10.0, "the fast path's own file must be among the costs:\n{text}");
}
