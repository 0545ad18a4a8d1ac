/*
 * Constants that older C library headers may lack.
 *
 * The values are Linux ABI numbers, fixed by the kernel: defining them here
 * lets mmio build against old headers and still *ask* a newer kernel for the
 * feature.  A kernel that lacks the feature answers EINVAL (or ENOSYS), which
 * mmio turns into an OSError naming the kernel version the feature needs.
 */
#ifndef MMIO_COMPAT_H
#define MMIO_COMPAT_H

#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/mman.h>

#ifndef MADV_FREE
#define MADV_FREE 8
#endif
#ifndef MADV_REMOVE
#define MADV_REMOVE 9
#endif
#ifndef MADV_DONTFORK
#define MADV_DONTFORK 10
#endif
#ifndef MADV_DOFORK
#define MADV_DOFORK 11
#endif
#ifndef MADV_MERGEABLE
#define MADV_MERGEABLE 12
#endif
#ifndef MADV_UNMERGEABLE
#define MADV_UNMERGEABLE 13
#endif
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif
#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif
#ifndef MADV_DONTDUMP
#define MADV_DONTDUMP 16
#endif
#ifndef MADV_DODUMP
#define MADV_DODUMP 17
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif
#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

#ifndef MAP_POPULATE
#define MAP_POPULATE 0x08000
#endif
#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0x04000
#endif

#ifndef MREMAP_MAYMOVE
#define MREMAP_MAYMOVE 1
#endif

/* mlock2(2) arrived in glibc 2.27; call the syscall directly so old libcs build. */
#ifndef SYS_mlock2
#define SYS_mlock2 325
#endif
/* cachestat(2), Linux 6.5; glibc has no wrapper. */
#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif

/* cachestat(2)'s structures, declared here: the build machine's headers may lack them. */
#include <stdint.h>
struct mmio_cachestat_range {
    uint64_t off;
    uint64_t len;
};
struct mmio_cachestat {
    uint64_t nr_cache;
    uint64_t nr_dirty;
    uint64_t nr_writeback;
    uint64_t nr_evicted;
    uint64_t nr_recently_evicted;
};

#define MMIO_OVERLAYFS_SUPER_MAGIC 0x794c7630

#endif /* MMIO_COMPAT_H */
