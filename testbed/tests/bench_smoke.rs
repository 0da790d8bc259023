//! A short run of the benchmark harness (`rvs-bench --quick`), so it cannot
//! rot: pcap input against testpmd and rvsd, a SYN flood, SYN-cookie
//! answers from a SYN-proxied service, and the memif
//! two-process harness, for NAT and DR. No threshold: the figures of a
//! shared CI machine mean nothing; the run must complete and print them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
use std::process::Command;
use std::time::Duration;

/// Runs rvs-bench with `args` (and `--dir`), bounded; its output.
fn run(tag: &str, args: &[&str]) -> String {
    let bench = testbed::bin("rvs-bench").unwrap();
    run_program(tag, Command::new(&bench).args(args))
}

/// Runs `cmd` with `--dir` and a fresh folder added, bounded (100 s); its
/// output.
fn run_program(tag: &str, cmd: &mut Command) -> String {
    let dir = std::env::temp_dir().join(format!("rvs-bench-smoke-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (status, text) = testbed::process::run_grouped(cmd.arg("--dir").arg(&dir), &dir.join("out.txt"), Duration::from_secs(100)).unwrap();
    println!("{text}");
    let _ = std::fs::remove_dir_all(&dir);
    let status = status.unwrap_or_else(|| panic!("{cmd:?} did not finish in 100 s:\n{text}"));
    assert!(status.success(), "{cmd:?} failed ({status}):\n{text}");
    text
}

#[test]
fn benchmark_harness_runs() {
    let text = run("one", &["--quick", "--flows", "5000", "--modes", "nat,dr", "--workloads", "est,syn,syn6,spx,memif-est"]);
    // One row per workload and mode, each with figures and a ratio.
    for want in ["| est 5k flows", "| SYN flood 1M sources", "| SYN flood IPv6 1M sources", "| SYN proxy 1M sources", "memif"] {
        assert!(text.lines().any(|l| l.starts_with(want) || l.contains(want)), "no {want:?} row:\n{text}");
    }
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| ") && l.contains('%') && !l.contains("workload")).collect();
    assert!(rows.len() >= 6, "{rows:?}");
}

/// The scaling harness at two workers (what this machine has; SYNs at two
/// workers are left to the benchmark runs: on two CPUs one worker often
/// finishes its pass before the first sample, and the harness then refuses
/// the figure), the IPv6 workloads and the latency histogram: with the flows split by rvs's RSS
/// rule no frame is handed between the cores; with every flow on every
/// queue (no RSS) the cores hand them over; the latency rows have
/// percentiles.
#[test]
fn scaling_ipv6_and_latency_harness_runs() {
    let text = run("two", &["--quick", "--flows", "5000", "--modes", "nat", "--workers", "2", "--workloads", "est,est6,est-all"]);
    let cols = |prefix: &str| -> Vec<String> {
        let l = text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix:?} row:\n{text}"));
        l.split('|').map(|c| c.trim().to_string()).collect()
    };
    // | workload | mode | rvs | testpmd | ratio | range | new | per core | hand-overs | drops |
    for row in ["| est 5k flows x2", "| est IPv6 5k flows x2"] {
        let c = cols(row);
        assert_eq!(c[9], "0", "{row}: frames handed between cores with RSS:\n{text}");
        assert_eq!(c[8].split(" + ").count(), 2, "{row}: per-core rates:\n{text}");
        assert!(c[8].split(" + ").all(|x| x.parse::<f64>().unwrap() > 0.0), "{row}: a core idle:\n{text}");
    }
    let c = cols("| est 5k no RSS x2");
    assert!(c[9].parse::<u64>().unwrap() > 0, "no hand-over without RSS:\n{text}");
    let text = run("lat", &["--quick", "--flows", "5000", "--modes", "nat", "--workloads", "lat"]);
    let rows: Vec<Vec<&str>> =
        text.lines().filter(|l| l.starts_with("| ") && l.contains("| nat ")).map(|l| l.split('|').map(str::trim).collect()).collect();
    assert_eq!(rows.len(), 2, "{text}");
    for r in rows {
        // | | mode | offered | forwarded | packets | p50 | p99 | p99.9 | max |
        let n = |i: usize| r[i].parse::<f64>().unwrap();
        assert!(n(5) > 0.0 && n(6) > 0.0 && n(6) <= n(7) && n(7) <= n(8) && n(8) <= n(9), "{r:?}\n{text}");
    }
}

/// The before/after script (`scripts/bench-ab.sh`, the command behind the
/// before/after tables of BENCHMARKS.md) alternates two builds and prints
/// each one's medians: here the same build as both, one run each.
#[test]
fn before_after_script_runs() {
    let bins = testbed::bin_dir();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench-ab.sh");
    let text = run_program(
        "ab",
        Command::new("bash")
            .arg(&script)
            .arg(&bins)
            .arg(&bins)
            .args(["2", "--quick", "--flows", "5000", "--modes", "dr", "--workloads", "est"])
            .env("RVS_BENCH", bins.join("rvs-bench")),
    );
    let medians: Vec<&str> = text.lines().filter(|l| l.starts_with("est 5k flows") && l.contains("median")).collect();
    assert_eq!(medians.len(), 1, "one folder given twice: one median row:\n{text}");
    let runs = medians[0].rsplit("(runs: ").next().unwrap().trim_end_matches(')');
    assert_eq!(runs.split(' ').count(), 4, "two runs of each of the two (same) folders:\n{text}");
    assert!(runs.split(' ').all(|x| x.parse::<f64>().unwrap() > 0.0), "{text}");
}
