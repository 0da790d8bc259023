//! The rvs dataplane: everything a worker core runs.
//!
//! * [`net`]: packet formats and checksums (plain Rust over byte buffers).
//! * [`session`]: the per-core session table.
//! * [`conn`]: TCP state tracking and timeouts.
//! * [`sched`]: schedulers (rr, wrr, lc, wlc, sed, nq, sh, dh, mh/Maglev).
//! * [`table`]: the compiled, immutable configuration workers forward with.
//! * [`neigh`]: next-hop MAC resolution shared by workers.
//! * [`fwd`]: the forwarding engine (one packet in, one verdict out).
//! * [`stats`]: per-core counters read by management without locks.
//! * [`memory`]: what a configuration will cost, checked against a budget.
//! * [`steer`]: which worker core owns a flow (multi-core reply steering).
//! * [`dpdk`]: the one safe wrapper over DPDK (the only module with raw-pointer code).
//! * [`worker`]: the poll loop that ties DPDK queues to a [`fwd::Forwarder`].
pub mod conn;
pub mod dpdk;
pub mod drop;
pub mod fwd;
pub mod hold;
pub mod memory;
pub mod neigh;
pub mod net;
pub mod sched;
pub mod session;
pub mod stats;
pub mod steer;
pub mod table;
pub mod testpkt;
pub mod worker;

pub use drop::DropReason;
