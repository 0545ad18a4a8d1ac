/*
 * SIGBUS-guarded loops over mapped memory.
 *
 * A file truncated under a mapping makes any access past its new end raise
 * SIGBUS, which kills the process.  mmio's own loops run "guarded": one SIGBUS
 * handler checks whether the faulting address lies in the range the current
 * thread has armed; if so it jumps back out of the loop
 * (siglongjmp) and the loop reports the offset that faulted.  Any other SIGBUS
 * is passed on to the handler that was installed before mmio's (or to the
 * default action), so genuine crashes still crash and faulthandler still works.
 * A handler that replaced mmio's (faulthandler.disable(), signal.signal()) is
 * noticed by a later check (see _guard.install), which installs mmio's again and
 * chains to it.
 *
 * The handler runs with SA_NODEFER, so jumping out of it leaves SIGBUS
 * unblocked without sigsetjmp having to save the signal mask (no syscall per
 * guarded call).  The handler disarms the guard before it jumps, so a second
 * fault can never jump twice.
 */
#ifndef MMIO_SIGBUS_H
#define MMIO_SIGBUS_H

#include <stddef.h>
#include <sys/types.h>

/* Install the handler, or install it again if another handler replaced it since (one sigaction(2) call to
 * check; _guard decides when to call).  Returns 0, or -1 with errno set. */
int mmio_guard_install(void);

/* Copy n bytes, dst[i*dst_step] = src[i*src_step], with [lo, hi) and [lo2, hi2) guarded
 * (the second range may be empty).  Returns 0, or -1 after a SIGBUS in either range,
 * storing the faulting address (not necessarily the lowest: memmove may copy backwards). */
int mmio_guarded_copy(char *dst, ptrdiff_t dst_step, const char *src, ptrdiff_t src_step,
                      size_t n, const char *lo, const char *hi, const char *lo2, const char *hi2,
                      const char **fault);

/* Read (and with write=1, rewrite in place) one byte of every page of [start, start+n). */
int mmio_guarded_touch(char *start, size_t n, size_t page, int write, const char **fault);

/* Fault in [start, start+n) with MADV_POPULATE_READ/WRITE split across threads; with
 * touch_fallback (a kernel older than 5.14, whose EINVAL means "unknown advice"), touch the
 * pages instead.  Returns 0, or an errno (EFAULT with *fault set when the range runs past the
 * end of the file). */
int mmio_populate(char *start, size_t n, size_t page, int write, int touch_fallback, int threads,
                  const char **fault);

/* Copy n bytes src -> dst with `threads` native threads (one when the ranges overlap), each guarding
 * [lo, hi) (the mapped side).  Returns 0, or -1 with *fault set to the first faulting address any thread saw. */
int mmio_parallel_copy(char *dst, const char *src, size_t n, int threads,
                       const char *lo, const char *hi, const char *lo2, const char *hi2,
                       const char **fault);

/* Read n bytes of the file open as fd, from offset on, into dst with `threads` native threads, each reading
 * its own part with pread(2) (no mapping of the file: the page cache is copied straight into dst, and a file
 * that shrinks gives a short count, never a SIGBUS).  *done receives the bytes read from offset on before the
 * first gap (end of file, or an error).  Returns 0, or the errno of the first failing part. */
int mmio_parallel_pread(int fd, char *dst, size_t n, long long offset, int threads, size_t *done);

#endif
