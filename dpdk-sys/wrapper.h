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
