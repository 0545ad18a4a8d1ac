# Opening files and checking what they are: one wording for every entry point (open, load, residency, ...).

cimport mmio._posix as _posix

cdef int open_path(object path, str mode, bint regular_only, str verb, long long* size=*) except -1
cdef object file_size(int fd, object path, bint regular_only, str verb, bint sized_by_caller,
                      _posix.stat* seen=*)
cdef int truncate(int fd, Py_ssize_t size, object path) except -1
