//! rvs management: everything around the dataplane.
//!
//! * [`daemon`]: start-up and shutdown of rvsd (EAL, ports, workers).
//! * [`manager`]: the running configuration, compiled and published to the
//!   workers atomically.
//! * [`control`] and [`proto`]: the Unix control socket and its JSON-lines
//!   protocol; [`commands`]: what it can do.
//! * [`report`]: statistics summed from the per-core counters.
//! * [`ipvsadm`]: ipvsadm-compatible text output.
//! * [`health`] and [`remote`]: health checks, and the byte-level parsers
//!   of what real servers answer (no input can panic them).
//! * [`ops`]: one configuration change (add, edit, delete...) applied to a
//!   configuration, all or nothing per batch.
//! * [`cli`]: rvsadm's command line (ipvsadm's syntax and readable forms).
//! * [`metrics`]: the Prometheus exposition of the report.
//! * [`logging`]: the log (levels, timestamps, journald priorities) and
//!   the audit trail of control-socket changes.
//! * [`notify`]: systemd's notify protocol (READY, RELOADING, STOPPING, and
//!   watchdog keep-alives only while every worker makes progress).
//! * [`ha`]: the active/backup pair: VRRP election and session sync.
//! * [`announce`]: scale-out behind ECMP: the VIPs a routing daemon (BIRD)
//!   announces, as routes in a kernel table; drain and withdraw on stop.
//! * [`fault`]: containment of faults in management tasks (a panic costs
//!   one request or one check, never forwarding) and debug-only injection.
//!
//! The binaries are `src/bin/rvsd.rs` (the daemon's stages: load, start,
//! serve, manage, stop) and `src/bin/rvsadm.rs` (the client).
#![forbid(unsafe_code)]
pub mod announce;
pub mod cli;
pub mod commands;
pub mod control;
pub mod daemon;
pub mod docs;
pub mod explain;
pub mod fault;
pub mod ha;
pub mod health;
pub mod ipvsadm;
pub mod logging;
pub mod manager;
pub mod metrics;
pub mod names;
pub mod notify;
pub mod ops;
pub mod pcap;
pub mod proto;
pub mod remote;
pub mod replay;
pub mod report;
pub mod status;
