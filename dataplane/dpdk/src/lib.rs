//! The safe wrapper over DPDK: with `dpdk-sys` and `rvs-arch`, the only
//! code of rvs with `unsafe`, each block with a `// SAFETY:` comment.
//!
//! The rules it enforces, by construction rather than by comment:
//! * [`Eal`]: `rte_eal_init` once per process; everything that needs EAL
//!   takes `&Eal`; it stays on the main lcore's thread (not `Send`), where
//!   [`Eal::launch`] starts jobs on worker lcores and [`Lcore::wait`] joins
//!   them. Other threads register through an [`EalHandle`].
//! * [`Mempool`] and [`Mbuf`]: pools live for the whole process
//!   (`&'static Mempool`), so no mbuf can outlive its pool; an mbuf owns
//!   its buffer and frees it on drop; handing it to a TX queue or a ring
//!   transfers ownership. `Mbuf` is `Send` but not `Sync`. It implements
//!   [`rvs_wire::PacketBuf`] with plain field reads, so the per-packet path
//!   never calls into C. A [`Burst`] frees what a [`Drain`] left.
//! * [`Port`]: opens, configures and starts one device; only it makes the
//!   device's queues, each once; [`RxQueue`]/[`TxQueue`] keep the device
//!   open, which is stopped and closed when the port and all its queues
//!   are gone.
//! * [`ring`]: a single-producer single-consumer ring of mbufs between two
//!   worker cores (reply hand-over), as its two ends, each `Send`, neither
//!   `Sync`.
//! * DPDK's bit values (RSS types, offload flags, ring flags) come from
//!   its headers through `dpdk-sys`.
//!
//! DPDK is called once per burst (rx, tx, free, ring), never per packet.
mod eal;
mod mbuf;
pub mod port;
mod ring;

pub use eal::{lcore_id, Eal, EalError, EalHandle, Lcore};
pub use mbuf::{Burst, Drain, Mbuf, Mempool, MempoolError, BURST};
pub use port::{Port, PortError, PortInfo, PortSetup, PortStats, RxQueue, TxQueue};
pub use ring::{ring, RingConsumer, RingError, RingProducer};
