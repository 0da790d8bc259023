/* The DPDK headers rvs binds. Keep this list short: every header here costs
 * bindgen time, and rvs only calls DPDK once per burst. */
#include <rte_common.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_malloc.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_thash.h>
#include <rte_bus_vdev.h>
#include <rte_dev.h>
#include <rte_version.h>
#include <rte_prefetch.h>

/* rte_errno is a per-lcore thread-local macro: bindgen cannot see it. */
int rvs_rte_errno(void);

/* Bit values DPDK defines with function-like macros (RTE_BIT64), which
 * bindgen cannot evaluate: exported under rvs names with the headers' own
 * values, so Rust never hard-codes them. */
static const uint64_t RVS_ETH_RSS_IPV4 = RTE_ETH_RSS_IPV4;
static const uint64_t RVS_ETH_RSS_FRAG_IPV4 = RTE_ETH_RSS_FRAG_IPV4;
static const uint64_t RVS_ETH_RSS_NONFRAG_IPV4_TCP = RTE_ETH_RSS_NONFRAG_IPV4_TCP;
static const uint64_t RVS_ETH_RSS_NONFRAG_IPV4_UDP = RTE_ETH_RSS_NONFRAG_IPV4_UDP;
static const uint64_t RVS_ETH_RSS_IPV6 = RTE_ETH_RSS_IPV6;
static const uint64_t RVS_ETH_RSS_FRAG_IPV6 = RTE_ETH_RSS_FRAG_IPV6;
static const uint64_t RVS_ETH_RSS_NONFRAG_IPV6_TCP = RTE_ETH_RSS_NONFRAG_IPV6_TCP;
static const uint64_t RVS_ETH_RSS_NONFRAG_IPV6_UDP = RTE_ETH_RSS_NONFRAG_IPV6_UDP;
static const uint64_t RVS_ETH_RX_OFFLOAD_CHECKSUM = RTE_ETH_RX_OFFLOAD_CHECKSUM;
static const uint64_t RVS_ETH_TX_OFFLOAD_MBUF_FAST_FREE = RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
static const uint64_t RVS_MBUF_F_RX_IP_CKSUM_MASK = RTE_MBUF_F_RX_IP_CKSUM_MASK;
static const uint64_t RVS_MBUF_F_RX_IP_CKSUM_GOOD = RTE_MBUF_F_RX_IP_CKSUM_GOOD;
static const uint64_t RVS_MBUF_F_RX_L4_CKSUM_MASK = RTE_MBUF_F_RX_L4_CKSUM_MASK;
static const uint64_t RVS_MBUF_F_RX_L4_CKSUM_BAD = RTE_MBUF_F_RX_L4_CKSUM_BAD;
static const uint64_t RVS_MBUF_F_RX_L4_CKSUM_GOOD = RTE_MBUF_F_RX_L4_CKSUM_GOOD;
static const unsigned int RVS_RING_F_SP_ENQ = RING_F_SP_ENQ;
static const unsigned int RVS_RING_F_SC_DEQ = RING_F_SC_DEQ;
