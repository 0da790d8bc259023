//! The rvs forwarding core: everything a worker decides, with no DPDK.
//!
//! * [`session`]: the per-core session table.
//! * [`conn`]: TCP state tracking and timeouts.
//! * [`sched`]: schedulers (rr, wrr, lc, wlc, sed, nq, sh, dh, mh/Maglev).
//! * [`table`]: the compiled, immutable configuration workers forward with.
//! * [`neigh`]: next-hop MAC resolution shared by workers.
//! * [`hold`]: frames waiting for their next hop.
//! * [`fwd`]: the forwarding engine (one packet in, one verdict out).
//! * [`stats`]: per-core counters read by management without locks.
//! * [`drop`]: why packets are dropped, one counter per reason.
//! * [`memory`]: what a configuration will cost, checked against a budget.
//! * [`steer`]: which worker core owns a flow (multi-core reply steering).
//! * [`acl`]: source allow and deny lists (longest-prefix match).
//!
//! Packets come in as any [`rvs_wire::PacketBuf`] and time as an argument:
//! the crate does no I/O, has no clock and no `unsafe` (the prefetch and
//! huge-page hints it uses come from `rvs-arch`), so `cargo test -p
//! rvs-core` runs anywhere, without DPDK.
#![forbid(unsafe_code)]
pub mod acl;
pub mod conn;
pub mod drop;
pub mod fwd;
pub mod hold;
pub mod memory;
pub mod neigh;
pub mod sched;
pub mod session;
pub mod stats;
pub mod steer;
pub mod synproxy;
pub mod table;

pub use drop::DropReason;
