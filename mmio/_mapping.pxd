# The Mapping type, for Cython code that wants the memory without Python overhead:
#
#     from mmio cimport Mapping          # or: cimport mmio; mmio.Mapping
#
#     cdef double total(Mapping m) except? -1:
#         m.acquire()                    # raises if closed; close() now raises BufferError
#         try:
#             with nogil:
#                 ... read m.data[0 : m.length] ...
#         finally:
#             m.release()
#
# ``data`` and ``length`` are valid only while the mapping is open; hold an
# acquire()/release() pair around any use that may outlive a Python-level check.

cdef class Mapping

cdef struct FileStamp:  # who a mapped file was when it was mapped (fstat of mmio's descriptor), for sharing
    unsigned long long dev
    unsigned long long ino
    long long size
    long long mtime_ns
    long long ctime_ns
    unsigned int mode

cdef class MappingExport:
    cdef readonly Mapping mapping   # the owner, which counts this export

cdef class Mapping:
    cdef char* data              # first byte of the range (NULL once closed)
    cdef Py_ssize_t length       # bytes in the range
    cdef void* _base             # what mmap returned: page aligned, NULL when nothing is mapped
    cdef size_t _map_length      # bytes given to mmap, from _base
    cdef Py_ssize_t _file_offset
    cdef int _fd                 # mmio's own descriptor, or -1
    cdef FileStamp _opened        # the file as it was mapped, when _stamped
    cdef bint _stamped            # a file by path (not anonymous memory, not a bare descriptor)
    cdef object _path
    cdef str _mode
    cdef bint _shared
    cdef bint _anonymous
    cdef int _prot                # protection of every page, unless _page_prot says otherwise
    cdef bytearray _page_prot     # one protection per page once protect() made them differ
    cdef Py_ssize_t _exports
    cdef Py_ssize_t _buffer_shape[1]
    cdef Py_ssize_t _buffer_strides[1]
    cdef bint _left_behind          # closed in a forked child, which MADV_DONTFORK kept from the memory
    cdef object __weakref__

    cdef int acquire(self) except -1
    cdef void release(self) noexcept
    cdef int check_open(self) except -1
    cdef void _leave_behind(self) noexcept
    cdef int resolve_range(self, object offset, object length,
                           Py_ssize_t* start, Py_ssize_t* count) except -1

    # for _open (the constructors) and the methods themselves
    cdef int hold(self, void* base, size_t map_length, Py_ssize_t delta, Py_ssize_t length) noexcept
    cdef int madvise(self, object advice, Py_ssize_t start, Py_ssize_t count) except -1
    cdef int _discard(self, int advice, Py_ssize_t start, Py_ssize_t count, str attempted) except -1
    cdef int populate_range(self, Py_ssize_t start, Py_ssize_t count, bint write, int threads) except -1
    cdef tuple _byte_ranges(self, object ranges)

    # internal
    cdef int _unmap(self) except -1
    cdef object _make_array(self, object descr, tuple dims, Py_ssize_t offset, bint fortran,
                            bint writable, MappingExport export)
    cdef int _prot_of(self, Py_ssize_t start, Py_ssize_t count, bint any_page=*) except -1
    cdef int _require(self, Py_ssize_t start, Py_ssize_t step, Py_ssize_t n, int needed) except -1
    cdef int _protect(self, Py_ssize_t start, Py_ssize_t count, int prot, bint unsafe) except -1
    cdef int _record_prot(self, size_t first, size_t end, int prot) except -1
    cdef int _range_call(self, int call, Py_ssize_t start, Py_ssize_t count, int arg,
                         str attempted) except -1
    cdef bytes _read(self, Py_ssize_t start, Py_ssize_t step, Py_ssize_t n)
    cdef int _write_slice(self, slice key, object value) except -1
    cdef int _check_writable(self) except -1
    cdef int _copy(self, char* dst, Py_ssize_t dst_step, const char* src, Py_ssize_t src_step,
                   Py_ssize_t n, bint writing) except -1
