#include <rte_errno.h>

/* rte_errno is a per-thread variable reached through a macro; Rust calls
 * this getter instead. */
int rvs_rte_errno(void) { return rte_errno; }
