# The range engine: which pages a byte range covers, the range syscalls (madvise, mlock/mlock2, munlock, msync,
# mincore) behind one GIL-free dispatcher, the one argument checker for offsets, lengths and thread counts, and
# the one error builder for range calls. Mapping, the any-buffer functions and file residency all go through it.

cdef size_t page_size() noexcept nogil

cdef enum:
    # Long GIL-free work (copies, prefaulting, reading files in) runs in pieces this large, 2 MiB aligned,
    # and runs Python's signal handlers between them: Ctrl-C stops it within one piece.
    INTERRUPTIBLE_PIECE = 64 << 20
    HUGE_PAGE = 2 << 20

cdef enum RangeCall:
    MADVISE
    MLOCK
    MLOCK_ONFAULT
    MUNLOCK
    MSYNC

cdef struct Span:
    size_t first  # page aligned
    size_t end    # page aligned, exclusive; equal to first when the span is empty

cdef Span covering(size_t address, size_t length) noexcept nogil
cdef Span inside(size_t address, size_t length, bint own_head=*, bint own_tail=*) noexcept nogil
cdef int range_call(int call, Span span, int arg, str attempted, object filename) except -1
cdef int range_call_chunked(int call, Span span, int arg, size_t chunk, str attempted,
                            object filename) except -1
cdef int advise_ranges(object starts, object ends, int advice, size_t gap, size_t chunk, str attempted,
                       object filename) except -1
cdef object mincore_pages(Span span, object filename)
cdef object integer(object value, str name)
cdef int check_range(object offset, object length, Py_ssize_t size, str where,
                     Py_ssize_t* start, Py_ssize_t* count) except -1
cdef int check_threads(object threads) except -1
cdef object plain_key(object key)
cdef int byte_value(object value) except -1
cdef Py_ssize_t checked_index(object key, Py_ssize_t length) except -1
cdef tuple plain_shape(object shape)
