//! The rvs worker: the poll loop that joins the DPDK wrapper to the
//! forwarding core.
//!
//! * [`worker`]: one loop per worker lcore: DPDK queues in, a
//!   [`rvs_core::fwd::Forwarder`] in the middle, DPDK queues out; what
//!   every worker shares with management ([`worker::Shared`]).
//!
//! The layers below it, each its own crate:
//! * `rvs-wire`: packet formats and checksums (views over byte buffers);
//! * `rvs-core`: sessions, schedulers, the compiled snapshot, the
//!   forwarder; no DPDK, no I/O, no `unsafe`;
//! * `rvs-dpdk`: the safe wrapper over DPDK (EAL, mempools, mbufs, ports,
//!   rings, lcores);
//! * `rvs-arch`: prefetch, TSC clock, huge-page hints.
#![forbid(unsafe_code)]
pub mod worker;
