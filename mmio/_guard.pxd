# SIGBUS-guarded loops (C in src/sigbus.c); see src/sigbus.h for how the guard works.

from mmio._pages cimport Span

cdef int install(bint always_check=*) except -1
cdef const char* first_fault(char* start, size_t n, size_t page) noexcept nogil
cdef int populate_span(Span span, bint write, int threads, const char* data, Py_ssize_t length,
                       object path) except -1
cdef int copy(char* dst, Py_ssize_t dst_step, const char* src, Py_ssize_t src_step, size_t n,
              const char* lo, const char* hi, const char* lo2, const char* hi2, bint release_gil, int threads,
              const char** fault) except -1
cdef object fault_error(const char* fault, str what, const char* data, Py_ssize_t length, const char* lo,
                        Py_ssize_t step, object path)
