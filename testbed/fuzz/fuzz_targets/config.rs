//! The configuration loader on arbitrary text (and bytes): parsing,
//! validation with positions, and, for what it accepts, the memory
//! estimate and the snapshot compiler. A refusal is fine; a panic is not.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_core::table::{Compiler, Health};
use rvs_wire::MacAddr;

fuzz_target!(|d: &[u8]| {
    let Ok(text) = std::str::from_utf8(d) else { return };
    let Ok(cfg) = config::from_str(text, "fuzz.toml") else { return };
    let _ = rvs_core::memory::check(&cfg);
    // Compiling is bounded by validation (slots, Maglev sizes); keep the
    // fuzzer fast on huge Maglev tables all the same.
    if cfg.services.iter().map(|s| u64::from(s.mh_table_size)).sum::<u64>() > 2_000_000 {
        return;
    }
    let macs: Vec<MacAddr> = (0..cfg.ports.len()).map(|i| MacAddr([2, 0, 0, 0, 0, i as u8])).collect();
    let _ = Compiler::new(&cfg).compile(&cfg, &macs, &Health::new());
});
