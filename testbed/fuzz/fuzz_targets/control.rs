//! The control protocol's request handling against a live management
//! state (no DPDK: the workers' shared state without workers): each input
//! is split into lines, each line a request to `control::handle_line`, in
//! one connection (so transactions span lines). Refusals are fine;
//! panics are not, and after any request the running configuration is
//! still one that validates. Requests that wait for workers that do not
//! exist here (`sessions`), read files (`reload`) or inject faults on
//! purpose (`debug.fault`) are skipped.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mgmt::control::{handle_line, ConnState};
use mgmt::manager::Manager;
use rvs_core::stats::CoreStats;
use rvs_core::table::{Compiler, Health};
use rvs_wire::MacAddr;
use std::sync::{Arc, Mutex};

const SKIP: [&str; 3] = ["sessions", "reload", "debug.fault"];

fn manager() -> Mutex<Manager> {
    let text = format!("{}{}", config::fixtures::two_port_nat(), config::fixtures::server_neighbours(3));
    let cfg = config::from_str(&text, "fuzz.toml").expect("the fixture is valid");
    let macs = vec![MacAddr([2, 0, 0, 0, 0, 0xa0]), MacAddr([2, 0, 0, 0, 0, 0xa1])];
    let mut compiler = Compiler::new(&cfg);
    let snap = compiler.compile(&cfg, &macs, &Health::new()).expect("compiles");
    let cores = vec![Arc::new(CoreStats::new(snap.backends.len(), snap.services.len()))];
    let shared = Arc::new(dataplane::worker::Shared::new(snap, 1));
    Mutex::new(Manager::new(cfg, None, compiler, macs, shared, cores))
}

fuzz_target!(|d: &[u8]| {
    let m = manager();
    let mut st = ConnState::new(0);
    for line in d.split(|&b| b == b'\n').take(16) {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) {
            if v["cmd"].as_str().is_some_and(|c| SKIP.contains(&c)) {
                continue;
            }
        }
        let _ = handle_line(line, &m, &mut st);
        let cfg = m.lock().map(|g| g.config().clone()).expect("not poisoned");
        assert!(cfg.validate(config::Strictness::Live).is_ok(), "the running configuration stays valid");
    }
});
