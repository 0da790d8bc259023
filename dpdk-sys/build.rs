//! Generates the DPDK bindings at build time from the system headers.
//!
//! * Flags come from `pkg-config libdpdk` (>= 22.11); nothing is hard-coded.
//! * `-D_GNU_SOURCE` keeps `rte_cpuset_t` and the affinity calls visible.
//! * DPDK's fast-path functions (`rte_eth_rx_burst`, `rte_pktmbuf_alloc`, ...)
//!   are `static inline`: bindgen's `wrap_static_fns` emits a C shim for each,
//!   which we compile with `cc` and link beside the shared DPDK libraries.
//! * Four packed-in-packed header structs are made opaque: rustc rejects them
//!   and rvs parses headers in Rust anyway.
//! * `-march` from pkg-config is dropped: the binary must not depend on the
//!   build machine's CPU beyond what DPDK itself requires.
#![allow(clippy::panic, clippy::expect_used, reason = "a build script fails by panicking with a message")]
use std::env;
use std::path::PathBuf;
use std::process::Command;

fn pkg_config(args: &[&str]) -> String {
    let out = Command::new("pkg-config")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("pkg-config not runnable ({e}); install pkg-config and libdpdk-dev"));
    if !out.status.success() {
        panic!(
            "pkg-config {:?} failed: {}\nInstall DPDK >= 22.11: apt-get install libdpdk-dev",
            args,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=src/errno.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    pkg_config(&["--atleast-version=22.11", "libdpdk"]);
    let version = pkg_config(&["--modversion", "libdpdk"]);
    println!("cargo:rustc-env=RVS_DPDK_VERSION={version}");

    let cflags: Vec<String> = pkg_config(&["--cflags", "libdpdk"])
        .split_whitespace()
        .filter(|f| !f.starts_with("-march") && !f.starts_with("-mtune"))
        .map(str::to_string)
        .collect();
    // `-include rte_config.h` is two tokens; keep them together for clang and cc.
    let mut clang_args: Vec<String> = vec!["-D_GNU_SOURCE".into(), "-mssse3".into(), "-msse4.2".into()];
    clang_args.extend(cflags.iter().cloned());

    for tok in pkg_config(&["--libs", "libdpdk"]).split_whitespace() {
        if let Some(dir) = tok.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = tok.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
    }

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let shim = out.join("static_fns");
    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&clang_args)
        .allowlist_function("rte_.*")
        .allowlist_function("rvs_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        .allowlist_var("rte_.*")
        .allowlist_var("RVS_.*")
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .blocklist_function("rte_.*_trace.*")
        .derive_default(true)
        .derive_debug(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .wrap_static_fns(true)
        .wrap_static_fns_path(&shim)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed to generate DPDK bindings");
    bindings.write_to_file(out.join("bindings.rs")).expect("writing bindings.rs");

    let mut build = cc::Build::new();
    build
        .file(shim.with_extension("c"))
        .file("src/errno.c")
        .include(env::current_dir().expect("cwd"))
        .define("_GNU_SOURCE", None)
        .flag("-mssse3")
        .flag("-msse4.2")
        .flag("-Wno-deprecated-declarations")
        .warnings(false);
    let mut it = cflags.iter();
    while let Some(f) = it.next() {
        if f == "-include" {
            if let Some(h) = it.next() {
                build.flag("-include").flag(h);
            }
        } else {
            build.flag(f);
        }
    }
    build.compile("rvs_dpdk_static_fns");
}
