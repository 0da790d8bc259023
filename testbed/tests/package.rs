//! The Debian package (issue 15): `scripts/package.sh` builds it from the
//! workspace's binaries; installed with `dpkg -i` on this machine it puts
//! every file in place, the installed configuration passes `rvsd --check`,
//! `systemd-analyze verify` accepts both units, the man pages render with
//! `man -l` without a warning, the completions parse, the installed
//! binaries resolve every library, Depends names exactly the packages of
//! the libraries they link plus the DPDK drivers rvsd loads, and the
//! hugepage reservation script reserves what /etc/default/rvs asks. The package is purged at the
//! end, also when a step fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test: a failed step fails the test with its message")]
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use testbed::process::run;

fn sh(cmd: &[&str], secs: u64) -> (bool, String, String) {
    let o = run(cmd, Duration::from_secs(secs)).unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn ok(cmd: &[&str], secs: u64) -> String {
    let (good, out, err) = sh(cmd, secs);
    assert!(good, "{cmd:?} failed:\n{out}\n{err}");
    out
}

/// Purges the package when dropped (the test installed it).
struct Installed;
impl Drop for Installed {
    fn drop(&mut self) {
        let _ = run(&["dpkg", "--purge", "rvs"], Duration::from_secs(60));
    }
}

/// Packages owning the libraries a binary links directly (its NEEDED).
fn linked_packages(bin: &str) -> BTreeSet<String> {
    let dump = ok(&["objdump", "-p", bin], 30);
    let ldd = ok(&["ldd", bin], 30);
    let mut pkgs = BTreeSet::new();
    for lib in dump.lines().filter_map(|l| l.trim().strip_prefix("NEEDED")).map(str::trim) {
        let path = ldd
            .lines()
            .find_map(|l| {
                let l = l.trim();
                // "libx.so => /path (addr)", or the loader: "/lib64/ld-linux-x86-64.so.2 (addr)".
                match l.strip_prefix(lib).and_then(|r| r.trim().strip_prefix("=> ")) {
                    Some(p) => Some(p.split(' ').next().unwrap_or("").to_string()),
                    None => l.split(' ').next().filter(|p| p.starts_with('/') && p.ends_with(lib)).map(str::to_string),
                }
            })
            .unwrap_or_else(|| panic!("{lib} not resolved by ldd:\n{ldd}"));
        // With merged /usr, dpkg may know a library by /lib/... or /usr/lib/...
        let real = std::fs::canonicalize(&path).unwrap().to_str().unwrap().to_string();
        let candidates =
            [path.clone(), real.clone(), real.trim_start_matches("/usr").to_string(), path.trim_start_matches("/usr").to_string()];
        let owner = candidates
            .iter()
            .find_map(|c| run(&["dpkg", "-S", c], Duration::from_secs(30)).ok().filter(|o| o.status.success()))
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|| panic!("no package owns {lib} ({candidates:?})"));
        pkgs.insert(owner.split(':').next().unwrap().trim().to_string());
    }
    pkgs
}

#[test]
fn the_debian_package_installs_and_everything_in_it_works() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rvsd = testbed::bin("rvsd").unwrap();
    let bins = rvsd.parent().unwrap();
    let out = std::env::temp_dir().join(format!("rvs-deb-{}", std::process::id()));
    let script = repo.join("scripts/package.sh");
    let built = ok(&["bash", script.to_str().unwrap(), "--bins", bins.to_str().unwrap(), "--out", out.to_str().unwrap()], 240);
    let deb = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).find(|p| p.extension().is_some_and(|x| x == "deb")).unwrap();
    println!("{}", built.trim());
    let info = ok(&["dpkg-deb", "-f", deb.to_str().unwrap(), "Depends"], 30);
    let _ = run(&["dpkg", "--purge", "rvs"], Duration::from_secs(60));
    let _guard = Installed;
    ok(&["dpkg", "--force-confnew", "-i", deb.to_str().unwrap()], 120);
    let _ = std::fs::remove_dir_all(&out);

    // Every file in place.
    for f in [
        "/usr/sbin/rvsd",
        "/usr/sbin/rvsadm",
        "/lib/systemd/system/rvsd.service",
        "/lib/systemd/system/rvs-hugepages.service",
        "/usr/lib/rvs/rvs-hugepages",
        "/etc/rvs/rvs.toml",
        "/etc/default/rvs",
        "/usr/share/man/man8/rvsd.8.gz",
        "/usr/share/man/man8/rvsadm.8.gz",
        "/usr/share/man/man5/rvs.toml.5.gz",
        "/usr/share/bash-completion/completions/rvsd",
        "/usr/share/bash-completion/completions/rvsadm",
        "/usr/share/zsh/vendor-completions/_rvsd",
        "/usr/share/zsh/vendor-completions/_rvsadm",
        "/usr/share/doc/rvs/rvs.example.toml",
        "/usr/share/doc/rvs/copyright",
    ] {
        assert!(Path::new(f).exists(), "{f} not installed");
    }
    let conffiles = ok(&["dpkg-query", "-W", "-f", "${Conffiles}", "rvs"], 30);
    assert!(conffiles.contains("/etc/rvs/rvs.toml") && conffiles.contains("/etc/default/rvs"), "{conffiles}");

    // The installed configuration and binaries work.
    let check = ok(&["/usr/sbin/rvsd", "-c", "/etc/rvs/rvs.toml", "--check"], 30);
    assert!(check.contains("configuration OK"), "{check}");
    assert!(ok(&["/usr/sbin/rvsadm", "--help"], 30).contains("ipvsadm"));
    for b in ["/usr/sbin/rvsd", "/usr/sbin/rvsadm"] {
        let ldd = ok(&["ldd", b], 30);
        assert!(!ldd.contains("not found"), "{b}: {ldd}");
    }

    // Both units verify, with no complaint.
    let (good, _, err) =
        sh(&["systemd-analyze", "verify", "/lib/systemd/system/rvsd.service", "/lib/systemd/system/rvs-hugepages.service"], 60);
    assert!(good && err.trim().is_empty(), "systemd-analyze verify: {err}");

    // The man pages render without a warning, and say what they should.
    for (page, needle) in [
        ("/usr/share/man/man8/rvsd.8.gz", "--check"),
        ("/usr/share/man/man8/rvsadm.8.gz", "--sched-flags"),
        ("/usr/share/man/man5/rvs.toml.5.gz", "sessions_per_worker"),
    ] {
        let o = run(&["env", "MANWIDTH=100", "MAN_KEEP_FORMATTING=0", "man", "-l", page], Duration::from_secs(60)).unwrap();
        let (text, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success() && err.trim().is_empty(), "man -l {page}: {err}");
        // man's plain output overstrikes bold ("c\x08c"): keep the last.
        let mut plain = String::new();
        for ch in text.chars() {
            if ch == '\u{8}' {
                plain.pop();
            } else {
                plain.push(ch);
            }
        }
        let plain = plain.replace(['\u{2010}', '\u{2212}'], "-");
        assert!(plain.contains(needle), "{page} lacks {needle:?}:\n{plain}");
    }
    for c in ["/usr/share/bash-completion/completions/rvsd", "/usr/share/bash-completion/completions/rvsadm"] {
        ok(&["bash", "-n", c], 30);
        ok(&["bash", "-c", &format!(". {c} && complete -p {}", Path::new(c).file_name().unwrap().to_str().unwrap())], 30);
    }

    // Depends: exactly the packages of the linked libraries, plus the
    // drivers rvsd loads as plugins; each of those is installed.
    let depends: BTreeSet<String> = info.split(',').map(|d| d.split_whitespace().next().unwrap().to_string()).collect();
    let mut linked = linked_packages("/usr/sbin/rvsd");
    linked.extend(linked_packages("/usr/sbin/rvsadm"));
    let pmds: BTreeSet<String> = depends.iter().filter(|d| !linked.contains(*d)).cloned().collect();
    assert!(linked.is_subset(&depends), "linked {linked:?} not all in Depends {depends:?}");
    let want_pmds: BTreeSet<String> = ["bus-vdev", "bus-pci", "mempool-ring", "net-tap", "net-pcap", "net-null", "net-memif", "net-virtio"]
        .iter()
        .map(|p| format!("librte-{p}23"))
        .collect();
    assert_eq!(pmds, want_pmds, "Depends beyond the linked libraries");
    for p in &depends {
        ok(&["dpkg-query", "-W", p], 30);
    }
    // Each plugin driver named is one Debian's EAL loads from its PMD
    // directory (so rvsd finds it at run time).
    let pmd_dir = "/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0";
    if Path::new(pmd_dir).exists() {
        for p in &want_pmds {
            let files = ok(&["dpkg", "-L", p], 30);
            assert!(files.lines().any(|l| l.starts_with(pmd_dir)), "{p} puts nothing in {pmd_dir}");
        }
    }

    // The hugepage script: asked for what is reserved now it changes
    // nothing and says so; asked for two pages more it reserves them (the
    // test then gives them back).
    let nr = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
    let have: u64 = std::fs::read_to_string(nr).unwrap().trim().parse().unwrap();
    let defaults = std::env::temp_dir().join(format!("rvs-defaults-{}", std::process::id()));
    std::fs::write(&defaults, format!("RVS_HUGEPAGES={have}\n")).unwrap();
    let said = ok(&["env", &format!("RVS_DEFAULTS={}", defaults.display()), "/usr/lib/rvs/rvs-hugepages"], 60);
    assert!(said.contains(&format!("{have} 2 MiB hugepages reserved")), "{said}");
    std::fs::write(&defaults, format!("RVS_HUGEPAGES={}\n", have + 2)).unwrap();
    let raised = sh(&["env", &format!("RVS_DEFAULTS={}", defaults.display()), "/usr/lib/rvs/rvs-hugepages"], 60);
    let after: u64 = std::fs::read_to_string(nr).unwrap().trim().parse().unwrap();
    std::fs::write(nr, format!("{have}\n")).unwrap();
    let _ = std::fs::remove_file(&defaults);
    assert!(raised.0 && after == have + 2, "asked for {} pages, have {after}: {} {}", have + 2, raised.1, raised.2);
    println!("package: installed, checked and purged; Depends: {}", info.trim());
}
