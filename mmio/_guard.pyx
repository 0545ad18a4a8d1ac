"""SIGBUS-guarded copy and prefault loops over mapped memory.

The C side (``src/sigbus.c``) installs one SIGBUS handler per process, the first
time a guarded loop runs, and recovers only from faults inside the range the
running thread armed.  This module is the one copy of that state: other Cython
modules reach the loops by ``cimport``.
"""

from mmio._errors cimport raise_errno

cdef extern from "sigbus.h" nogil:
    int mmio_guard_install()
    int mmio_guarded_copy(char* dst, Py_ssize_t dst_step, const char* src, Py_ssize_t src_step,
                          size_t n, const char* lo, const char* hi, const char* lo2, const char* hi2,
                          const char** fault)
    int mmio_guarded_touch(char* start, size_t n, size_t page, int write, const char** fault)
    int mmio_populate(char* start, size_t n, size_t page, int write, int touch_fallback, int threads,
                      const char** fault)
    int mmio_parallel_copy(char* dst, const char* src, size_t n, int threads,
                           const char* lo, const char* hi, const char* lo2, const char* hi2,
                           const char** fault)

cdef bint installed = False


cdef int install() except -1:
    global installed
    if not installed:
        if mmio_guard_install() != 0:
            raise_errno("could not install mmio's SIGBUS handler")
        installed = True
    return 0


cdef int guarded_copy(char* dst, Py_ssize_t dst_step, const char* src, Py_ssize_t src_step,
                      size_t n, const char* lo, const char* hi, const char* lo2, const char* hi2,
                      const char** fault) noexcept nogil:
    return mmio_guarded_copy(dst, dst_step, src, src_step, n, lo, hi, lo2, hi2, fault)


cdef const char* first_fault(char* start, size_t n, size_t page) noexcept nogil:
    """The first address in ``[start, start+n)`` whose page cannot be read, or NULL."""
    cdef const char* fault = NULL
    mmio_guarded_touch(start, n, page, 0, &fault)
    return fault


cdef int populate(char* start, size_t n, size_t page, bint write, bint touch_fallback, int threads,
                  const char** fault) noexcept nogil:
    return mmio_populate(start, n, page, write, touch_fallback, threads, fault)


cdef int parallel_copy(char* dst, const char* src, size_t n, int threads,
                       const char* lo, const char* hi, const char* lo2, const char* hi2,
                       const char** fault) noexcept nogil:
    return mmio_parallel_copy(dst, src, n, threads, lo, hi, lo2, hi2, fault)


def handler_installed():
    """Whether mmio's SIGBUS handler is installed in this process (it is, after the first guarded call)."""
    return installed
