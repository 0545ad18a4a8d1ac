# C declarations of the POSIX and Linux calls mmio makes.  Declarations only:
# no code lives here.  Constants that old headers may lack come from src/compat.h.

from posix.types cimport off_t, mode_t

cdef extern from "compat.h" nogil:
    cdef struct mmio_cachestat_range:
        unsigned long long off
        unsigned long long len
    cdef struct mmio_cachestat:
        unsigned long long nr_cache
        unsigned long long nr_dirty
        unsigned long long nr_writeback
        unsigned long long nr_evicted
        unsigned long long nr_recently_evicted
    long MMIO_OVERLAYFS_SUPER_MAGIC

cdef extern from "<sys/mman.h>" nogil:
    void* MAP_FAILED
    int PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC
    int MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED, MAP_POPULATE, MAP_NORESERVE
    int MS_ASYNC, MS_SYNC, MS_INVALIDATE
    int MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT
    unsigned int MLOCK_ONFAULT
    int MREMAP_MAYMOVE

    int MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED
    int MADV_FREE, MADV_REMOVE, MADV_DONTFORK, MADV_DOFORK
    int MADV_MERGEABLE, MADV_UNMERGEABLE, MADV_HUGEPAGE, MADV_NOHUGEPAGE
    int MADV_DONTDUMP, MADV_DODUMP, MADV_COLD, MADV_PAGEOUT
    int MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_COLLAPSE

    void* mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset)
    int munmap(void* addr, size_t length)
    void* mremap(void* old_address, size_t old_size, size_t new_size, int flags, ...)
    int msync(void* addr, size_t length, int flags)
    int mprotect(void* addr, size_t length, int prot)
    int madvise(void* addr, size_t length, int advice)
    int mincore(void* addr, size_t length, unsigned char* vec)
    int mlock(const void* addr, size_t length)
    int mlock2(const void* addr, size_t length, unsigned int flags)
    int munlock(const void* addr, size_t length)
    int mlockall(int flags)
    int munlockall()

cdef extern from "<fcntl.h>" nogil:
    int O_RDONLY, O_WRONLY, O_RDWR, O_ACCMODE, O_CREAT, O_TRUNC, O_CLOEXEC, O_NONBLOCK
    int F_GETFL, F_DUPFD_CLOEXEC
    int POSIX_FADV_NORMAL, POSIX_FADV_SEQUENTIAL, POSIX_FADV_RANDOM
    int POSIX_FADV_WILLNEED, POSIX_FADV_DONTNEED, POSIX_FADV_NOREUSE
    int open(const char* path, int flags, ...)
    int fcntl(int fd, int cmd, ...)
    int posix_fadvise(int fd, off_t offset, off_t length, int advice)

cdef extern from "<unistd.h>" nogil:
    int SEEK_END
    int _SC_PAGESIZE
    long sysconf(int name)
    int close(int fd)
    int ftruncate(int fd, off_t length)
    int fdatasync(int fd)
    off_t lseek(int fd, off_t offset, int whence)
    long syscall(long number, ...)
    long SYS_mlock2, SYS_cachestat

cdef extern from "<sys/stat.h>" nogil:
    cdef struct c_timespec "timespec":
        long tv_sec
        long tv_nsec
    cdef struct stat:
        unsigned long long st_dev
        unsigned long long st_ino
        mode_t st_mode
        off_t st_size
        c_timespec st_mtim
        c_timespec st_ctim
    int fstat(int fd, stat* buf)
    int c_stat "stat"(const char* path, stat* buf)
    bint S_ISREG(mode_t mode)
    bint S_ISDIR(mode_t mode)
    bint S_ISBLK(mode_t mode)
    bint S_ISCHR(mode_t mode)

cdef extern from "<sys/vfs.h>" nogil:
    cdef struct statfs:
        long f_type
    int fstatfs(int fd, statfs* buf)

cdef extern from "<errno.h>" nogil:
    int errno
    int EBADF, EINVAL, EINTR, ENOMEM, EACCES, EISDIR, ENODEV, EFAULT, ENOSYS, EPERM, EAGAIN, EOPNOTSUPP

cdef extern from "<string.h>" nogil:
    void* memcpy(void* dest, const void* src, size_t n)
    void* memmove(void* dest, const void* src, size_t n)
