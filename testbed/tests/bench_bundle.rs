//! The benchmark bundle (`scripts/bench-bundle.sh`) runs where no DPDK is
//! installed: built here, then run in a mount namespace where the system's
//! PMD folder is hidden (an empty tmpfs over it), with a bare environment,
//! so every driver must come from the bundle's own `lib/`. The harness
//! runs its smallest established-flows workload at one and two workers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
use std::process::Command;

#[test]
fn the_bundle_runs_without_the_system_dpdk() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    // EAL refuses to load plugins from a folder with a world-writable
    // parent (/tmp): the checkout's target/ when no parent of it is, else
    // /run (root's).
    let safe = |d: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        d.ancestors().skip(1).all(|a| std::fs::metadata(a).map_or(true, |m| m.permissions().mode() & 0o002 == 0))
    };
    let mut dir = root.canonicalize().unwrap().join(format!("target/bundle-test-{}", std::process::id()));
    if !safe(&dir) {
        dir = std::path::PathBuf::from(format!("/run/rvs-bundle-test-{}", std::process::id()));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new("bash").arg(root.join("scripts/bench-bundle.sh")).arg(&dir).env("BIN_DIR", testbed::bin_dir()).output().unwrap();
    assert!(out.status.success(), "bench-bundle.sh: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let lib = dir.join("lib");
    for d in ["net_pcap", "net_null", "net_memif", "bus_vdev", "mempool_ring"] {
        assert!(lib.join(format!("librte_{d}.so")).exists(), "{d} missing from the bundle");
    }
    // Each driver is one file (two copies of bus_vdev break every vdev).
    let copies = std::fs::read_dir(&lib)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("librte_bus_vdev.so."))
        .count();
    assert_eq!(copies, 1);
    let pmds = std::fs::read_dir("/usr/lib/x86_64-linux-gnu/dpdk").unwrap().next().unwrap().unwrap().path();
    let script = format!(
        "mount -t tmpfs none {pmds} && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin RVS_HUGEPAGES=0 timeout 300 {run} --quick --flows 5000 --modes nat --workloads est --workers {{}} --dir {dir}/w{{}}",
        pmds = pmds.display(),
        run = dir.join("run.sh").display(),
        dir = dir.display()
    );
    for workers in [1, 2] {
        let s = script.replace("{}", &workers.to_string());
        let o = Command::new("unshare").args(["--mount", "--propagation", "private", "bash", "-c", &s]).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "workers {workers}: {}\n{text}\n{}", o.status, String::from_utf8_lossy(&o.stderr));
        let row = text.lines().find(|l| l.starts_with("| est 5k flows")).unwrap_or_else(|| panic!("no est row:\n{text}"));
        let cols: Vec<&str> = row.split('|').map(str::trim).collect();
        assert!(cols[3].parse::<f64>().unwrap() > 0.0 && cols[4].parse::<f64>().unwrap() > 0.0, "{row}");
        assert_eq!(cols[9], "0", "hand-overs: {row}");
        println!("bundle, {workers} worker(s): {row}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
