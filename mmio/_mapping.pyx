"""The Mapping type: one ``mmap(2)`` region, its lifetime and its views.

A :class:`Mapping` hands its memory out through the buffer protocol and as
plain ``numpy.ndarray`` objects, counts what it handed out so that ``close()``
can refuse while any view lives, guards its own reads and writes against
SIGBUS, keeps track of page protections, and offers thin range methods over
the range engine (``_pages``). ``_open`` creates mappings.
"""

import operator
import os
import weakref

cimport cython

import numpy as np

cimport numpy as cnp
from cpython.buffer cimport PyBUF_WRITABLE, PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBuffer_IsContiguous
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.ref cimport Py_INCREF

cimport mmio._posix as _posix
cimport mmio._guard as _guard
from mmio._errors cimport raise_errno, raise_oserror
from mmio._pages cimport (Span, covering, inside, range_call, range_call_chunked, advise_ranges, mincore_pages, integer,
                          check_range, check_threads, plain_key, byte_value, checked_index, plain_shape,
                          page_size, MADVISE, MLOCK, MLOCK_ONFAULT, MUNLOCK, MSYNC)
from ._files import cache_hidden, hidden_cache_error
from ._flags import Advice, Prot
from .pagecache import Residency
from ._residency import file_pages
from . import procmaps

cnp.import_array()

cdef extern from "numpy/arrayobject.h":
    # numpy's own .pxd leaves this out; it steals a reference to ``descr``.
    object PyArray_NewFromDescr(type subtype, cnp.dtype descr, int nd, cnp.npy_intp* dims,
                                cnp.npy_intp* strides, void* data, int flags, object obj)

cdef size_t PAGE = page_size()
cdef char EMPTY[1]                       # what an empty mapping points at
cdef Py_ssize_t GIL_FREE_COPY = 1 << 18  # copies this large release the GIL
cdef size_t PREFETCH_CHUNK_MAX = 1 << 40
# prefetch(ranges=): runs of pages at most this far apart are read as one. Every read request costs about as much
# as 14 KiB of transfer on the virtual disk measured (60k small requests/s against 0.9 GB/s), so reading a gap of
# two pages is cheaper than a second request; more gap reads more bytes for little time (benchmarks: gather).
cdef size_t RANGE_GAP = 2 * page_size()
RANGE_GAP_BYTES = RANGE_GAP



# Mappings given MADV_DONTFORK: a child created by fork() does not have (all of) their memory, so they are closed
# there before any code of the child can touch them.
_NOT_INHERITED = weakref.WeakSet()


def _close_the_not_inherited():
    for mapping in list(_NOT_INHERITED):
        (<Mapping>mapping)._leave_behind()
    _NOT_INHERITED.clear()


os.register_at_fork(after_in_child=_close_the_not_inherited)


@cython.no_gc_clear  # __dealloc__ must still see the mapping to give its export back
cdef class MappingExport:
    """The ``.base`` of every array handed out by :meth:`Mapping.array`.

    While it lives, the mapping counts one export and refuses to close, so the
    array can never point at unmapped memory.  ``mapping`` is the owner.
    """

    def __cinit__(self, Mapping mapping not None):
        mapping._exports += 1
        self.mapping = mapping

    def __dealloc__(self):
        if self.mapping is not None:
            self.mapping._exports -= 1

    def __reduce__(self):
        raise TypeError("cannot pickle an mmio array base; pickle a copy of the array instead")

    def __repr__(self):
        return f"<mmio.MappingExport of {self.mapping!r}>"


cdef class Mapping:
    """A memory mapping of a file or of anonymous memory.

    Create one with :func:`mmio.open` or :func:`mmio.anonymous`.  A mapping is
    a context manager, has a length, supports the buffer protocol (1-D bytes)
    and bounds-checked ``m[i]``, ``m[i:j]`` and ``m[i:j] = data``.  Arrays and
    memoryviews taken from it keep it alive; :meth:`close` refuses while any is
    alive.

    Examples
    --------
    >>> import mmio
    >>> with mmio.anonymous(8) as m:
    ...     m[0:3] = b"abc"
    ...     bytes(m[0:3]), len(m)
    (b'abc', 8)
    """

    def __cinit__(self):
        self.data = NULL
        self._base = NULL
        self._fd = -1
        self._mode = "r"

    def __init__(self, *args, **kwargs):
        raise TypeError("create mappings with mmio.open() or mmio.anonymous()")

    def __dealloc__(self):
        # Exports hold a reference, so none can be alive here.
        self._unmap()

    cdef int _unmap(self) except -1:
        if self._base != NULL:
            _posix.munmap(self._base, self._map_length)
            self._base = NULL
        if self._fd >= 0:
            _posix.close(self._fd)
            self._fd = -1
        self.data = NULL
        return 0

    # ---- the C-level API of mapping.pxd -------------------------------------------

    cdef int check_open(self) except -1:
        if self.data == NULL:
            if self._left_behind:
                raise ValueError("mapping is closed in this process: advice DONTFORK kept its memory from the "
                                 "fork that created the process")
            raise ValueError("mapping is closed")
        return 0

    cdef void _leave_behind(self) noexcept:
        """In a forked child: close without unmapping (what the child inherited may back live arrays)."""
        self._base = NULL
        self.data = NULL
        self._left_behind = True
        if self._fd >= 0:
            _posix.close(self._fd)
            self._fd = -1

    cdef int acquire(self) except -1:
        """Count one export: the memory stays mapped until release()."""
        self.check_open()
        self._exports += 1
        return 0

    cdef void release(self) noexcept:
        self._exports -= 1

    cdef int resolve_range(self, object offset, object length,
                           Py_ssize_t* start, Py_ssize_t* count) except -1:
        """Check ``offset``/``length`` (None = to the end) against the mapping."""
        offset = integer(offset, "offset")  # Python ints: no overflow before the checks
        length = None if length is None else integer(length, "length")
        self.check_open()  # after the conversions: __index__ may run code that closes us
        return check_range(offset, length, self.length, "the mapping", start, count)

    cdef int hold(self, void* base, size_t map_length, Py_ssize_t delta, Py_ssize_t length) noexcept:
        """Take the ``map_length`` bytes mapped at ``base`` (NULL: none) as this mapping's memory; its
        first byte lies ``delta`` bytes in."""
        self._base = base
        self._map_length = map_length
        self.data = <char*>base + delta if base != NULL else EMPTY
        self.length = length
        return 0

    # ---- lifetime -----------------------------------------------------------------

    def close(self):
        """Unmap the memory and close mmio's descriptor; calling it again does nothing.

        Raises
        ------
        BufferError
            Arrays or memoryviews of the mapping are still alive.
        """
        if self.data == NULL:
            return
        if self._exports > 0:
            raise BufferError(f"cannot close a mapping with {self._exports} live export(s) "
                              "(arrays or memoryviews); delete them first")
        self._unmap()

    def __enter__(self):
        self.check_open()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        elif self._exports == 0:  # leave a failing block's own exception alone
            self._unmap()

    def __reduce__(self):
        """Pickle by reference: the file's path and identity, the mode and the range (:mod:`mmio.sharing`).
        Anonymous memory and bare descriptors raise ``TypeError``, as do ``"c"`` mappings (their writes are
        private); a closed mapping raises ``ValueError``."""
        from . import sharing  # above this module: pickling is its concern
        return sharing.reduce_mapping(self)

    def __copy__(self):
        """``copy.copy``: a new mapping of the same file range (what unpickling gives), not of the same memory."""
        rebuild, args = self.__reduce__()
        return rebuild(*args)

    def __deepcopy__(self, memo):
        """``copy.deepcopy``: as :meth:`__copy__`; the bytes stay in the file, which both map."""
        return self.__copy__()

    def _file_state(self):
        """``((dev, ino, size, mtime_ns, ctime_ns, mode) when mapped, os.stat_result now, the path its
        descriptor names now)``, or ``None`` for memory that is no file's (for :mod:`mmio.sharing`)."""
        self.acquire()  # the descriptor stays ours meanwhile: close() now raises BufferError
        try:
            if not self._stamped or self._fd < 0:
                return None
            opened = (self._opened.dev, self._opened.ino, self._opened.size, self._opened.mtime_ns,
                      self._opened.ctime_ns, self._opened.mode)
            now = os.fstat(self._fd)
            try:
                named = os.readlink(f"/proc/self/fd/{self._fd}")
            except OSError:
                named = None
            return opened, now, named
        finally:
            self.release()

    # ---- properties ---------------------------------------------------------------

    @property
    def closed(self):
        """``True`` once :meth:`close` has run."""
        return self.data == NULL

    @property
    def size(self):
        """Length of the mapping in bytes."""
        self.check_open()
        return self.length

    @property
    def offset(self):
        """Byte offset of the mapping in its file (0 for anonymous memory)."""
        return self._file_offset

    @property
    def mode(self):
        """``"r"``, ``"r+"``, ``"c"`` or ``"w+"`` (anonymous memory: ``"r+"`` shared, ``"c"`` private)."""
        return self._mode

    @property
    def path(self):
        """The mapped file's path, or ``None`` (anonymous memory, bare descriptors)."""
        return self._path

    @property
    def address(self):
        """Address of the first byte, as an int."""
        self.check_open()
        return <size_t>self.data

    @property
    def readonly(self):
        """``True`` when the memory cannot be written through this mapping."""
        self.check_open()
        return not (self._prot_of(0, self.length) & _posix.PROT_WRITE)

    @property
    def protection(self):
        """The current protection of the whole mapping (:class:`Prot`), as set by :meth:`protect`.

        Where parts of the mapping differ, the permissions every page has.
        """
        self.check_open()
        return Prot(self._prot_of(0, self.length))

    def __len__(self):
        self.check_open()
        return self.length

    def __repr__(self):
        where = f"path={self._path!r}" if self._path is not None else (
            "anonymous" if self._anonymous else "fd")
        state = "closed" if self.data == NULL else f"size={self.length}"
        offset = f" offset={self._file_offset}" if self._file_offset else ""
        return f"<mmio.Mapping {where} mode={self._mode!r} {state}{offset}>"

    # ---- the buffer protocol --------------------------------------------------------

    def __getbuffer__(self, Py_buffer* view, int flags):
        self.check_open()
        cdef int prot = self._prot_of(0, self.length)
        if flags & PyBUF_WRITABLE and not (prot & _posix.PROT_WRITE):
            raise BufferError("mapping is read-only")
        if not (prot & _posix.PROT_READ) and self.length:
            raise BufferError("part of the mapping is not readable (protection PROT_NONE)")
        self._buffer_shape[0] = self.length
        self._buffer_strides[0] = 1
        view.buf = self.data
        view.obj = self
        view.len = self.length
        view.readonly = not (prot & _posix.PROT_WRITE)
        view.itemsize = 1
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = b"B"
        view.ndim = 1
        view.shape = self._buffer_shape if flags & PyBUF_ND else NULL
        view.strides = self._buffer_strides if flags & PyBUF_STRIDES == PyBUF_STRIDES else NULL
        view.suboffsets = NULL
        view.internal = NULL
        self._exports += 1

    def __releasebuffer__(self, Py_buffer* view):
        self._exports -= 1

    # ---- arrays -----------------------------------------------------------------------

    def array(self, dtype="u1", shape=None, offset=0, order="C"):
        """A plain ``numpy.ndarray`` over the mapping, without copying.

        Parameters
        ----------
        dtype : data-type, default ``"u1"``
            Any numpy dtype without Python objects.
        shape : int or tuple of int, optional
            Defaults to 1-D over every whole item from ``offset`` to the end.
        offset : int
            Byte offset of the first item within the mapping (need not be aligned).
        order : {"C", "F"}
            Memory layout of a multi-dimensional shape.

        Returns
        -------
        numpy.ndarray
            Writable iff the mapping is; its ``.base`` keeps the mapping alive.

        Raises
        ------
        ValueError
            The shape does not fit, the offset is outside, the dtype holds objects
            or the mapping is closed.

        Examples
        --------
        >>> m = mmio.anonymous(64)
        >>> a = m.array("f8")
        >>> a.shape, a.base.mapping is m
        ((8,), True)
        >>> del a        # close() refuses while the array is alive
        >>> m.close()
        """
        # Every conversion first (they may run Python code), then the checks against the mapping.
        descr = np.dtype(dtype)
        if descr.hasobject:
            raise ValueError(f"cannot map dtype {descr} : it holds Python objects")
        if order not in ("C", "F"):
            raise ValueError(f"order must be 'C' or 'F', not {order!r}")
        offset = integer(offset, "offset")
        dims = None if shape is None else plain_shape(shape)
        export = MappingExport(self)  # counted from here on: no other thread can resize or close the mapping
        self.check_open()
        if offset < 0 or offset > self.length:
            raise ValueError(f"offset {offset} is outside the mapping of {self.length} bytes")
        available = self.length - offset
        if dims is None:
            if descr.itemsize == 0:
                raise ValueError(f"items of dtype {descr!r} have no size: pass shape=")
            dims = (available // descr.itemsize,)
        nbytes = descr.itemsize
        for d in dims:
            nbytes *= d
        if nbytes > available:
            raise ValueError(f"shape {dims} of {descr} needs {nbytes} bytes but the mapping has "
                             f"{available} bytes from offset {offset}")
        cdef int prot = self._prot_of(offset, nbytes)
        if nbytes and not (prot & _posix.PROT_READ):
            raise PermissionError(_posix.EACCES, f"cannot hand out an array over [{offset}, "
                                  f"{offset + nbytes}): part of it is protected PROT_NONE")
        return self._make_array(descr, dims, offset, order == "F", prot & _posix.PROT_WRITE, export)

    cdef object _make_array(self, object descr, tuple dims, Py_ssize_t offset, bint fortran,
                            bint writable, MappingExport export):
        cdef cnp.npy_intp c_dims[64]
        cdef int nd = len(dims), i
        if nd > 64:
            raise ValueError(f"numpy allows at most 64 dimensions, got {nd}")
        for i in range(nd):
            c_dims[i] = dims[i]
        cdef int flags = cnp.NPY_ARRAY_F_CONTIGUOUS if fortran else cnp.NPY_ARRAY_C_CONTIGUOUS
        if writable:
            flags |= cnp.NPY_ARRAY_WRITEABLE
        cdef cnp.dtype c_descr = descr
        Py_INCREF(c_descr)  # PyArray_NewFromDescr steals it
        arr = PyArray_NewFromDescr(np.ndarray, c_descr, nd, c_dims, NULL,
                                   self.data + offset, flags, None)
        cnp.set_array_base(arr, export)
        return arr

    # ---- indexing ---------------------------------------------------------------------

    def __getitem__(self, key):
        # Convert the key first: __index__ may run Python code (even close() this mapping).
        key = plain_key(key)
        self.check_open()
        cdef Py_ssize_t i, start, stop, step, n
        if isinstance(key, slice):
            start, stop, step = key.indices(self.length)
            n = len(range(start, stop, step))
            self._require(start, step, n, _posix.PROT_READ)
            return self._read(start, step, n)
        i = checked_index(key, self.length)
        self._require(i, 1, 1, _posix.PROT_READ)
        cdef unsigned char byte
        self._copy(<char*>&byte, 1, self.data + i, 1, 1, False)
        return byte

    def __setitem__(self, key, value):
        key = plain_key(key)
        if isinstance(key, slice):
            self._write_slice(key, value)
            return
        value = byte_value(value)
        self._check_writable()
        cdef Py_ssize_t i = checked_index(key, self.length)
        self._require(i, 1, 1, _posix.PROT_WRITE)
        cdef unsigned char byte = value
        self._copy(self.data + i, 1, <char*>&byte, 1, 1, True)

    cdef int _check_writable(self) except -1:
        self.check_open()
        if not (self._prot & _posix.PROT_WRITE) and self._page_prot is None:
            raise TypeError("mapping is read-only")
        return 0

    cdef bytes _read(self, Py_ssize_t start, Py_ssize_t step, Py_ssize_t n):
        out = PyBytes_FromStringAndSize(NULL, n)
        self._copy(PyBytes_AS_STRING(out), 1, self.data + start, step, n, False)
        return out

    cdef int _copy(self, char* dst, Py_ssize_t dst_step, const char* src, Py_ssize_t src_step,
                   Py_ssize_t n, bint writing) except -1:
        """Copy between the mapping and a contiguous buffer (``src`` when writing, ``dst`` when
        reading), SIGBUS guarded on both sides; the GIL is released for large copies."""
        if n == 0:
            return 0
        cdef const char* fault = NULL
        cdef const char* other = src if writing else dst
        cdef const char* mine = dst if writing else src  # the mapping's side
        cdef Py_ssize_t step = dst_step if writing else src_step
        cdef bint big = n >= GIL_FREE_COPY
        cdef int rc
        if big:
            self.acquire()  # another thread's close() must not unmap under the copy
        try:
            rc = _guard.copy(dst, dst_step, src, src_step, n, self.data, self.data + self.length,
                             other, other + n, big, 1, &fault)
        finally:
            if big:
                self.release()
        if rc != 0:
            raise _guard.fault_error(fault, "write" if writing else "read", self.data, self.length,
                                     mine if step > 0 else mine + (n - 1) * step, abs(step), self._path)
        return 0

    cdef int _write_slice(self, slice key, object value) except -1:
        cdef Py_buffer source
        cdef Py_ssize_t start, stop, step, n
        PyObject_GetBuffer(value, &source, 0)  # may run Python code: check the mapping after it
        try:
            self._check_writable()
            start, stop, step = key.indices(self.length)
            n = len(range(start, stop, step))
            if not PyBuffer_IsContiguous(&source, b"A"):
                raise ValueError("the data to assign must be contiguous")
            if source.len != n:
                raise ValueError(f"cannot assign {source.len} bytes to a slice of {n} bytes; "
                                 "a mapping never changes size")
            self._require(start, step, n, _posix.PROT_WRITE)
            if step != 1 and _overlaps(<char*>source.buf, source.len, self.data, self.length):
                snapshot = PyBytes_FromStringAndSize(NULL, n)  # a strided copy cannot handle overlap
                self._copy(PyBytes_AS_STRING(snapshot), 1, <char*>source.buf, 1, n, False)
                self._copy(self.data + start, step, PyBytes_AS_STRING(snapshot), 1, n, True)
            else:
                self._copy(self.data + start, step, <char*>source.buf, 1, n, True)
        finally:
            PyBuffer_Release(&source)
        return 0

    # ---- protection ------------------------------------------------------------------------

    cdef int _prot_of(self, Py_ssize_t start, Py_ssize_t count, bint any_page=False) except -1:
        """The permissions every page under ``[start, start+count)`` has (or, with
        ``any_page``, that some page has)."""
        if self._page_prot is None or count <= 0:
            return self._prot
        cdef const unsigned char[:] pages = self._page_prot
        cdef size_t first = (<size_t>(self.data + start) - <size_t>self._base) // PAGE
        cdef size_t last = (<size_t>(self.data + start + count - 1) - <size_t>self._base) // PAGE
        cdef int every = 0xFF, some = 0
        cdef size_t i
        for i in range(first, last + 1):
            every &= pages[i]
            some |= pages[i]
        return some if any_page else every

    cdef int _require(self, Py_ssize_t start, Py_ssize_t step, Py_ssize_t n, int needed) except -1:
        """Refuse to touch pages whose protection lacks ``needed`` (instead of a SIGSEGV)."""
        if n <= 0 or self._page_prot is None and (self._prot & needed) == needed:
            return 0
        cdef Py_ssize_t lo = start if step > 0 else start + (n - 1) * step
        cdef Py_ssize_t span = (n - 1) * (step if step > 0 else -step) + 1
        if (self._prot_of(lo, span) & needed) == needed:
            return 0
        if needed & _posix.PROT_WRITE:
            raise TypeError(f"cannot write [{lo}, {lo + span}): that part of the mapping is "
                            "protected read-only (see protect())")
        raise PermissionError(_posix.EACCES, f"cannot read [{lo}, {lo + span}): that part of "
                              "the mapping is protected PROT_NONE (see protect())")

    def protect(self, prot, offset=0, length=None, *, unsafe=False):
        """Change the protection of a range (``mprotect(2)``), widened to whole pages.

        Parameters
        ----------
        prot : Prot or str
            ``"none"``, ``"r"``, ``"rw"``, ``"rwx"`` or :class:`Prot` flags.
        offset, length : int
            The range.
        unsafe : bool
            Allow removing a permission while arrays or memoryviews are alive
            (touching them afterwards kills the process with SIGSEGV).

        Raises
        ------
        PermissionError
            The mapping's mode does not allow ``prot`` (writing a ``"r"`` mapping).
        BufferError
            A permission would be removed while buffers are exported.

        Examples
        --------
        >>> with mmio.anonymous(mmio.PAGE_SIZE) as m:
        ...     m.protect("r")
        ...     m.readonly
        True
        """
        cdef int c_prot = Prot.parse(prot)  # every conversion before the range is checked: they run Python code
        cdef bint allow_unsafe = unsafe
        cdef Py_ssize_t start, count
        self.resolve_range(offset, length, &start, &count)
        if c_prot & _posix.PROT_WRITE and self._mode == "r":
            raise_oserror(_posix.EACCES, "cannot make a mode 'r' mapping writable; open it with "
                          "'r+' (writes reach the file) or 'c' (private copy)", self._path)
        if count == 0:
            return
        self.acquire()  # no other thread may resize or close the mapping under the call
        try:
            self._protect(start, count, c_prot, allow_unsafe)
        finally:
            self.release()

    cdef int _protect(self, Py_ssize_t start, Py_ssize_t count, int prot, bint unsafe) except -1:
        cdef Span span = covering(<size_t>(self.data + start), count)
        cdef size_t first = span.first, end = span.end
        # Every page the call touches, not just the bytes asked for.
        cdef Py_ssize_t lo = max(0, <Py_ssize_t>(first - <size_t>self.data))
        cdef Py_ssize_t hi = min(self.length, <Py_ssize_t>(end - <size_t>self.data))
        cdef int removed = self._prot_of(lo, hi - lo, True) & ~prot
        cdef Py_ssize_t others = self._exports - 1  # the caller's own acquire() is one
        if removed & (_posix.PROT_READ | _posix.PROT_WRITE) and others and not unsafe:
            raise BufferError(f"cannot remove {Prot(removed & 3)!r} while {others} "
                              "array(s)/memoryview(s) are alive: touching them would crash; "
                              "delete them or pass unsafe=True")
        # The GIL stays held: no other thread may act on the old protection meanwhile.
        if _posix.mprotect(<void*>first, end - first, prot) != 0:
            raise_errno(f"could not change the protection to {Prot(prot)!r}", self._path)
        self._record_prot((first - <size_t>self._base) // PAGE, (end - <size_t>self._base) // PAGE, prot)
        return 0

    cdef int _record_prot(self, size_t first, size_t end, int prot) except -1:
        cdef size_t npages = self._map_length // PAGE + (1 if self._map_length % PAGE else 0)
        if first == 0 and end >= npages:
            self._page_prot = None
            self._prot = prot
            return 0
        if self._page_prot is None:
            self._page_prot = bytearray([self._prot]) * npages
        self._page_prot[first:end] = bytes([prot]) * (end - first)
        if <size_t>self._page_prot.count(self._page_prot[0]) == npages:
            self._prot = self._page_prot[0]
            self._page_prot = None
        return 0

    # ---- sync and locking ------------------------------------------------------------------

    def sync(self, offset=0, length=None, *, wait=True, invalidate=False):
        """Write changed pages of a range back to the file (``msync(2)``).

        Parameters
        ----------
        offset, length : int
            The range (widened to whole pages).
        wait : bool
            ``True``: MS_SYNC, return once the data is on the device (GIL released
            meanwhile).  ``False``: MS_ASYNC, schedule the write-back and return.
        invalidate : bool
            Also MS_INVALIDATE other mappings of the file.

        Examples
        --------
        >>> with mmio.open("/tmp/mmio-doc.bin", "w+", size=10) as m:
        ...     m[:2] = b"hi"
        ...     m.sync()
        """
        cdef Py_ssize_t start, count
        self.resolve_range(offset, length, &start, &count)
        cdef int flags = (_posix.MS_SYNC if wait else _posix.MS_ASYNC) | (
            _posix.MS_INVALIDATE if invalidate else 0)
        self._range_call(MSYNC, start, count, flags, "could not sync the mapping to its file")

    def lock(self, offset=0, length=None, *, on_fault=False):
        """Keep the pages of a range in RAM (``mlock(2)``; ``mlock2(MLOCK_ONFAULT)`` with ``on_fault``).

        ``on_fault=True`` locks pages as they are first touched instead of
        faulting them all in now.

        A lock that fails leaves the range unlocked (the kernel may have
        locked part of it before it failed).

        Raises
        ------
        PermissionError, OSError
            ``RLIMIT_MEMLOCK`` refused the lock (the message gives the limit, how
            much this process has locked already (VmLck) and how to raise it),
            part of the range is protected ``PROT_NONE``, or lies past the end
            of a truncated file.
        """
        cdef Py_ssize_t start, count
        self.resolve_range(offset, length, &start, &count)
        if not on_fault and count and not (self._prot_of(start, count) & _posix.PROT_READ):
            raise PermissionError(_posix.EACCES, f"cannot lock [{start}, {start + count}) in memory: part of "
                                  "it is protected PROT_NONE (see protect())")
        self._range_call(MLOCK_ONFAULT if on_fault else MLOCK, start, count, 0,
                         "could not lock the mapping in memory")

    def unlock(self, offset=0, length=None):
        """Let the kernel page out a locked range again (``munlock(2)``)."""
        cdef Py_ssize_t start, count
        self.resolve_range(offset, length, &start, &count)
        self._range_call(MUNLOCK, start, count, 0, "could not unlock the mapping")

    cdef int _range_call(self, int call, Py_ssize_t start, Py_ssize_t count, int arg,
                         str attempted) except -1:
        """Run one range syscall over every page of ``[start, start+count)`` (see ``_pages``)."""
        self.acquire()  # another thread's close() must not unmap (and reuse) the range meanwhile
        try:
            range_call(call, covering(<size_t>(self.data + start), count), arg, attempted, self._path)
        finally:
            self.release()
        return 0

    # ---- resizing and regions ---------------------------------------------------------------

    def resize(self, new_size):
        """Change the mapping's length (``mremap(2)``); the address may move.

        For ``"r+"`` and ``"w+"`` mappings the file is grown first when the new
        end lies past it (it is never shrunk).  ``"r"`` and ``"c"`` mappings can
        only cover what the file holds; shared anonymous memory can only shrink.

        Raises
        ------
        BufferError
            Arrays or memoryviews of the mapping are alive (they would dangle).
        ValueError
            The new size does not fit the rules above, or parts of the mapping
            have different protections.

        Examples
        --------
        >>> with mmio.open("/tmp/mmio-doc.bin", "w+", size=10) as m:
        ...     m.resize(20)
        ...     len(m)
        20
        """
        from ._open import resize
        resize(self, new_size)

    def regions(self):
        """This mapping's lines of ``/proc/self/maps``, with their ``smaps`` figures.

        Returns
        -------
        list of Region
            Usually one; more where advice, protection or locking split the range.
            The kernel may merge a mapping with a neighbour that has the same
            flags, and a merged line's figures then cover both.

        Examples
        --------
        >>> with mmio.anonymous(2 * mmio.PAGE_SIZE, populate=True) as m:
        ...     [r.rss for r in m.regions()]
        [8192]
        """
        self.check_open()
        if self.length == 0:
            return []
        cdef Span span = covering(<size_t>self.data, self.length)
        return procmaps.maps("self", start=span.first, end=span.end)

    def readinto(self, buffer, offset=0, *, threads=1):
        """Copy mapped bytes from ``offset`` into a writable buffer; return how many.

        The copy runs with the GIL released, guarded against SIGBUS, split across
        ``threads`` native threads.  It copies ``min(len(buffer), size - offset)`` bytes.

        Raises
        ------
        MappingFaultError
            Part of the range lies past the end of a truncated file.

        Examples
        --------
        >>> import numpy as np
        >>> with mmio.anonymous(16) as m:
        ...     m[:4] = b"abcd"
        ...     out = bytearray(4)
        ...     m.readinto(out), out
        (4, bytearray(b'abcd'))
        """
        cdef Py_buffer dst
        cdef const char* fault = NULL
        cdef int rc
        cdef int nthreads = check_threads(threads)
        cdef Py_ssize_t n, start, available
        offset = integer(offset, "offset")
        PyObject_GetBuffer(buffer, &dst, PyBUF_WRITABLE)
        try:
            self.resolve_range(offset, None, &start, &available)
            n = min(dst.len, available)
            self._require(start, 1, n, _posix.PROT_READ)
            if n == 0:
                return 0
            self.acquire()
            try:
                rc = _guard.copy(<char*>dst.buf, 1, self.data + start, 1, n, self.data, self.data + self.length,
                                 <char*>dst.buf, <char*>dst.buf + n, True, nthreads, &fault)
            finally:
                self.release()
            if rc != 0:
                raise _guard.fault_error(fault, "read", self.data, self.length, self.data + start, 1, self._path)
            return n
        finally:
            PyBuffer_Release(&dst)

    # ---- advice and residency -----------------------------------------------------------

    def advise(self, advice, offset=0, length=None, *, discard=False):
        """Give the kernel ``madvise(2)`` advice about a byte range.

        Parameters
        ----------
        advice : Advice or str
            For example ``"sequential"``, ``"random"``, ``"willneed"``.
        offset, length : int
            The range; it is widened to whole pages.
        discard : bool
            Must be ``True`` for advice that throws data away: ``REMOVE``, and
            ``DONTNEED``/``FREE`` on private or anonymous memory (only pages the
            range holds wholly are discarded).

        After ``DONTFORK`` a child created by ``fork()`` does not have the
        memory, so the mapping is closed there (``DOFORK`` over the whole
        mapping undoes it).

        Raises
        ------
        ValueError
            Discarding advice without ``discard=True``, a bad range or advice.
        OSError
            The kernel refused; the message names the kernel version the advice needs.

        Examples
        --------
        >>> with mmio.anonymous(mmio.PAGE_SIZE) as m:
        ...     m.advise("sequential")
        """
        # Everything that runs Python code first: once the range is checked, nothing may let another thread
        # resize or close the mapping before the call (the range methods acquire() it at once).
        advice = Advice.parse(advice)
        self.check_open()
        cdef bint discarding = advice.throws_away(private=self._anonymous or not self._shared)
        if discarding and not discard:
            what = ("punches a hole in the file" if advice == Advice.REMOVE and not self._anonymous
                    else f"throws away the data of this {'private' if not self._shared else 'anonymous'} memory")
            raise ValueError(f"advice {advice.name} {what}; pass discard=True if that is what you want")
        cdef int c_advice = advice
        cdef str attempted = f"could not apply advice {advice.name}"
        cdef Py_ssize_t start, count
        self.resolve_range(offset, length, &start, &count)
        if discarding:
            self._discard(c_advice, start, count, attempted)
        else:
            self._range_call(MADVISE, start, count, c_advice, attempted)
        if c_advice == _posix.MADV_DONTFORK and count:
            _NOT_INHERITED.add(self)
        elif c_advice == _posix.MADV_DOFORK and count == self.length:
            _NOT_INHERITED.discard(self)

    cdef int _discard(self, int advice, Py_ssize_t start, Py_ssize_t count, str attempted) except -1:
        """Advice that throws data away, on the pages of the range that hold no byte outside it (at the
        mapping's own edges the rest of the page is not the mapping's bytes, so the edge pages go)."""
        self.acquire()
        try:
            range_call(MADVISE, inside(<size_t>(self.data + start), count, start == 0, start + count == self.length),
                       advice, attempted, self._path)
        finally:
            self.release()
        return 0

    cdef int madvise(self, object advice, Py_ssize_t start, Py_ssize_t count) except -1:
        """Apply ``advice`` (already checked) to every page of ``[start, start+count)``."""
        return self._range_call(MADVISE, start, count, advice, f"could not apply advice {advice.name}")

    def prefetch(self, offset=0, length=None, *, ranges=None, chunk=8 << 20):
        """Start reading a range into the page cache and return at once (chunked ``MADV_WILLNEED``).

        One ``MADV_WILLNEED`` call per ``chunk`` bytes (the kernel caps each call
        at its read-ahead window), with the GIL released; see the loading guide
        for when this is the fastest way in and what it costs later scans.

        ``ranges``, instead of ``offset``/``length``: many ``(offset, length)``
        byte ranges (a sequence of pairs or an ``(n, 2)`` integer array), in any
        order, overlapping or not. Exactly the pages they touch are read: sorted,
        deduplicated, runs at most two pages apart merged, then one call
        per run in a single GIL-free pass (many reads in flight at once: what a
        random gather from a cold file needs, see :func:`mmio.take`).

        Raises
        ------
        TypeError
            ``ranges`` is not integer pairs, or is given with ``offset``/``length``.
        ValueError
            A range lies outside the mapping, or the mapping is closed.

        Examples
        --------
        >>> with mmio.anonymous(1 << 20) as m:
        ...     m.prefetch()
        ...     m.prefetch(ranges=[(0, 100), (65536, 4096)])
        """
        cdef Py_ssize_t start, count
        chunk = integer(chunk, "chunk")
        if ranges is not None:
            if offset != 0 or length is not None:
                raise TypeError("prefetch() takes ranges= or offset/length, not both")
            starts, ends = self._byte_ranges(ranges)
        else:
            self.resolve_range(offset, length, &start, &count)
        if not PAGE <= chunk <= PREFETCH_CHUNK_MAX:
            raise ValueError(f"chunk must be between one page ({PAGE} bytes) and 1 TiB, got {chunk}")
        self.acquire()
        try:
            if ranges is not None:
                # MADV_WILLNEED rather than posix_fadvise(WILLNEED) or readahead(2) on the descriptor: all three
                # end in the kernel's force_page_cache_ra() (madvise through vfs_fadvise, dropping mmap_lock for
                # the I/O), and on 9,000 single-page runs of a cold 256 MiB file they issued in 113, 120 and
                # 117 ms (noise: +-10 ms), the gather after them then reading 43 MiB in 15 ms. madvise needs no
                # descriptor or file offset, so it serves every mapping, and the range engine already owns it.
                advise_ranges(starts + <size_t>self.data, ends + <size_t>self.data, _posix.MADV_WILLNEED,
                              RANGE_GAP, (<size_t>chunk + PAGE - 1) & ~(PAGE - 1),
                              "could not prefetch the mapping (MADV_WILLNEED)", self._path)
            else:
                range_call_chunked(MADVISE, covering(<size_t>(self.data + start), count), _posix.MADV_WILLNEED,
                                   (<size_t>chunk + PAGE - 1) & ~(PAGE - 1),  # madvise takes page-aligned starts
                                   "could not prefetch the mapping (MADV_WILLNEED)", self._path)
        finally:
            self.release()

    cdef tuple _byte_ranges(self, object ranges):
        """``(starts, ends)`` int64 arrays of the ``(offset, length)`` pairs, checked against the mapping."""
        pairs = np.asarray(ranges)
        if pairs.size == 0:
            pairs = pairs.reshape(0, 2).astype(np.int64)
        if pairs.dtype.kind not in "iu" or pairs.ndim != 2 or pairs.shape[1] != 2:
            raise TypeError(f"ranges must be (offset, length) integer pairs, got an array of {pairs.dtype} "
                            f"with shape {pairs.shape}")
        if pairs.dtype.kind == "u" and pairs.size and pairs.max() > np.iinfo(np.int64).max:
            raise ValueError("a range lies outside the mapping")
        pairs = pairs.astype(np.int64)
        starts, lengths = pairs[:, 0], pairs[:, 1]
        self.check_open()
        bad = (starts < 0) | (lengths < 0) | (starts > self.length) | (lengths > self.length - starts)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(f"range {k} (offset {starts[k]}, length {lengths[k]}) is not inside the mapping "
                             f"of {self.length} bytes")
        return starts, starts + lengths

    def residency(self, offset=0, length=None):
        """Which pages of a byte range are in RAM.

        A shared mapping of a file is answered as :func:`mmio.residency` answers for the file
        (``cachestat`` first, ``mincore`` where the cache is mixed); other mappings by ``mincore(2)``.

        Returns
        -------
        Residency
            One entry per page the range touches.

        Raises
        ------
        PermissionError
            The kernel hides the page cache of the file from the caller.

        Examples
        --------
        >>> with mmio.anonymous(2 * mmio.PAGE_SIZE) as m:
        ...     m[0] = 1
        ...     m.residency().to_string()
        '*.'
        """
        cdef Py_ssize_t start, count
        cdef Span span
        self.resolve_range(offset, length, &start, &count)
        self.acquire()  # held from here: no other thread may close the descriptor or move the memory
        try:
            if self._fd >= 0 and cache_hidden(self._fd):  # mincore would say every page is resident
                raise hidden_cache_error(self._path)
            span = covering(<size_t>(self.data + start), count)
            pages = None
            if self._shared and self._stamped:  # the file's page cache is the answer: cachestat first
                pages = file_pages(self._fd, self._path, self._file_offset + start, count)
            if pages is None:
                pages = mincore_pages(span, self._path)
        finally:
            self.release()
        origin = start - <Py_ssize_t>(<size_t>(self.data + start) - span.first)
        return Residency(pages, PAGE, start, count, origin)

    def populate(self, offset=0, length=None, *, write=False, threads=1):
        """Fault the pages of a range in now, so later accesses do not stop for I/O.

        Uses ``MADV_POPULATE_READ`` (or ``_WRITE``) where the kernel has it
        (Linux >= 5.14), else reads one byte per page under mmio's SIGBUS guard.
        The GIL is released; ``threads > 1`` splits the range across native
        threads.  A range past the end of a truncated file raises
        :class:`MappingFaultError` instead of killing the process, so
        ``populate()`` is also how to check a mapping before handing out raw
        numpy views of it.

        Parameters
        ----------
        offset, length : int
            The range (widened to whole pages).
        write : bool
            Fault pages in writable (allocates private copies on a ``"c"``
            mapping and marks shared file pages dirty); needs a writable mapping.
        threads : int
            Native threads to use (1-64).

        Raises
        ------
        MappingFaultError
            Part of the range lies past the end of the file.

        Examples
        --------
        >>> with mmio.anonymous(1 << 20) as m:
        ...     m.populate(write=True)
        ...     m.residency().fraction
        1.0
        """
        cdef Py_ssize_t start, count
        cdef int nthreads = check_threads(threads)
        self.resolve_range(offset, length, &start, &count)
        if write and not (self._prot & _posix.PROT_WRITE) and self._page_prot is None:
            raise TypeError("populate(write=True) needs a writable mapping")
        self._require(start, 1, count, _posix.PROT_WRITE if write else _posix.PROT_READ)
        self.populate_range(start, count, write, nthreads)

    cdef int populate_range(self, Py_ssize_t start, Py_ssize_t count, bint write, int threads) except -1:
        """Fault in every page of ``[start, start+count)`` (arguments already checked)."""
        if count == 0:
            return 0
        self.acquire()
        try:
            _guard.populate_span(covering(<size_t>(self.data + start), count), write, threads,
                                 self.data, self.length, self._path)
        finally:
            self.release()
        return 0

cdef bint _overlaps(const char* a, Py_ssize_t a_len, const char* b, Py_ssize_t b_len) noexcept:
    return a < b + b_len and b < a + a_len
