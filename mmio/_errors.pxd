# One place turns C failures into Python exceptions.

cdef int raise_errno(str attempted, object filename=*) except -1
cdef int raise_oserror(int err, str attempted, object filename=*) except -1
