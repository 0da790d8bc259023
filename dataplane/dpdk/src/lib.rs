//! The one safe wrapper over DPDK. Every `unsafe` block of rvs outside
//! `dpdk-sys` is in this module, each with a `// SAFETY:` comment.
//!
//! What it offers, and the rules it enforces:
//! * [`Eal`]: `rte_eal_init` once per process; dropping it cleans up.
//! * [`Mempool`] and [`Mbuf`]: an mbuf owns its buffer and frees it on drop;
//!   handing it to a TX queue transfers ownership ([`Mbuf::into_raw`]).
//!   `Mbuf` is `Send` but not `Sync`. It implements
//!   [`PacketBuf`](rvs_wire::PacketBuf) with plain field reads, so the
//!   per-packet path never calls into C.
//! * [`port`]: probing a device, configuring queues and RSS, starting,
//!   statistics. [`RxQueue`]/[`TxQueue`] are owned by exactly one worker.
//! * [`MbufRing`]: a single-producer single-consumer ring of mbufs between
//!   two worker cores (reply hand-over).
//! * [`launch`]: runs a closure on an EAL worker lcore.
//!
//! DPDK is called once per burst (rx, tx, free, ring), never per packet.
mod eal;
mod mbuf;
pub mod port;
mod ring;

pub use eal::{launch, lcore_id, thread_register, wait_lcore, Eal, EalError};
pub use mbuf::{Burst, Mbuf, Mempool, BURST};
pub use port::{PortError, PortStats, RxQueue, TxQueue};
pub use ring::MbufRing;
