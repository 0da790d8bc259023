//! Network-namespace test beds for rvs: the end-to-end tests and the demo.
//!
//! A [`Bed`] is one isolated world: a namespace for rvsd (`lb`), a
//! namespace of Linux bridges (`sw`, one bridge per L2 segment), and one
//! namespace per host (clients, real servers). rvsd creates its TAP PMD
//! interfaces in `lb`; the bed then moves each into `sw` and plugs it into
//! its segment's bridge. Hosts hang off the bridges through veth pairs. No
//! namespace has a route out: hosts get routes to test prefixes only
//! (198.18.0.0/15, 2001:db8::/32).
//!
//! Everything is cleaned up when the bed is dropped, also when a test
//! fails: processes the bed started are stopped by PID (SIGTERM, then
//! SIGKILL), then its namespaces are deleted. Namespace names carry the
//! creating process's PID (`rvt<pid>-<n>-<role>`), so two runs never
//! collide, and a new bed first removes what a killed earlier run left
//! behind. Every command and wait has a deadline.
//!
//! Modules: [`netns`] (namespaces), [`process`] (commands and children),
//! [`bed`] (the world), [`rvsd`] (the daemon's lifecycle on a bed),
//! [`bench`] (benchmark workloads and harness), [`pcap`] (capture files),
//! [`pair`] (two balancers: the HA tests and the failover demo),
//! [`cluster`] (N balancers with BIRD behind an ECMP router: scale-out).
//!
//! Errors are `anyhow`'s: this is a test harness, whose every error ends
//! a test or the demo with a message for a person, as in a binary.
#![forbid(unsafe_code)]
pub mod bed;
pub mod bench;
pub mod cluster;
pub mod netns;
pub mod pair;
pub mod pcap;
pub mod process;
pub mod rvsd;

pub use bed::{Bed, Host};
pub use netns::{sweep_stale, Netns, NS_PREFIX};
pub use process::{bin, bin_dir, ip, pid_of, run, tally, Proc};
