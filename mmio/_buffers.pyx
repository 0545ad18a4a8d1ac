"""Advice, residency and locking for the pages under any buffer: a stdlib ``mmap.mmap``, a ``numpy.memmap``,
an ndarray view of one, or a :class:`~mmio.Mapping`.

This module only turns a buffer into the byte range it covers (and, for residency, checks that the kernel
shows the page cache of the files mapped there); the range engine (``_pages``) does the rest. The buffer is
held while a call runs, so its memory cannot be unmapped meanwhile.
"""

import errno
import os

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_STRIDES

from mmio cimport _posix
from mmio._guard cimport populate_span
from mmio._mapping cimport Mapping
from mmio._pages cimport (Span, covering, inside, range_call, mincore_pages, integer, check_range, page_size,
                          MADVISE, MLOCK, MLOCK_ONFAULT, MUNLOCK)
from ._files import hidden_cache_error, hides_cache
from ._flags import Advice
from . import procmaps
from .pagecache import Residency

cdef size_t ADDRESS_LIMIT = (<size_t>1) << 57  # above any user address, even with 5-level page tables


cdef int _hold(object obj, object offset, object length, Py_buffer* view,
               size_t* start, size_t* count) except -1:
    """Get ``obj``'s buffer into ``view``; ``[start, start+count)`` is ``[offset, offset+length)`` of the
    bytes it covers (a strided buffer covers everything from its lowest to its highest byte)."""
    offset = integer(offset, "offset")
    length = None if length is None else integer(length, "length")
    PyObject_GetBuffer(obj, view, PyBUF_STRIDES)  # no format: any dtype (bfloat16 too)
    cdef Py_ssize_t first, n
    try:
        if view.suboffsets != NULL:
            raise TypeError("buffers with suboffsets (indirect arrays) are not supported")
        lo, hi = _extent(view)
        check_range(offset, length, hi - lo, "the buffer", &first, &n)
    except BaseException:
        PyBuffer_Release(view)
        raise
    start[0] = <size_t>lo + <size_t>first
    count[0] = <size_t>n
    return 0


cdef tuple _extent(Py_buffer* view):
    """The addresses ``(lo, hi)`` of the lowest and one past the highest byte of the buffer, computed
    with Python ints, so that no stride or shape can wrap them around."""
    lo = hi = <size_t>view.buf
    cdef int i
    for i in range(view.ndim):
        extent, stride = view.shape[i], view.strides[i]  # Python ints from here on
        if extent == 0:
            return lo, lo
        reach = (extent - 1) * stride
        if reach >= 0:
            hi += reach
        else:
            lo += reach
    hi += view.itemsize
    if lo < 0 or hi > ADDRESS_LIMIT:
        raise ValueError(f"the buffer claims memory from {lo:#x} to {hi:#x}, outside any address space "
                         "(are its strides right?)")
    return lo, hi


cdef int _call(object obj, object offset, object length, int call, int arg, bint discarding,
               str attempted) except -1:
    cdef Py_buffer view
    cdef size_t start, count
    _hold(obj, offset, length, &view, &start, &count)
    try:
        # Advice that throws data away reaches only pages wholly inside the buffer: the rest of a page
        # may be someone else's memory (the interpreter's heap, for a small array).
        span = inside(start, count) if discarding else covering(start, count)
        range_call(call, span, arg, attempted, None)
    finally:
        PyBuffer_Release(&view)
    return 0


def advise(obj, advice, offset=0, length=None, *, discard=False):
    """Give ``madvise(2)`` advice about the pages under a mapping or buffer.

    Parameters
    ----------
    obj : Mapping or buffer
        A :class:`Mapping`, or any buffer whose memory is mapped (``mmap.mmap``,
        ``numpy.memmap``, an ndarray over one).
    advice : Advice or str
    offset, length : int
        Byte range within ``obj``, widened to the pages it touches; advice that
        throws data away is narrowed instead, to the pages wholly inside it.
    discard : bool
        Required for ``DONTNEED``, ``FREE`` and ``REMOVE`` on a plain buffer:
        mmio cannot tell whether its memory is private, where they lose data.

    Examples
    --------
    >>> import mmap, mmio
    >>> mm = mmap.mmap(-1, 1 << 20)
    >>> mmio.advise(mm, "sequential")
    """
    if isinstance(obj, Mapping):
        return obj.advise(advice, offset, length, discard=discard)
    advice = Advice.parse(advice)
    if advice.discards and not discard:
        raise ValueError(f"advice {advice.name} can throw away the data of this buffer; "
                         "pass discard=True if that is what you want")
    _call(obj, offset, length, MADVISE, advice, advice.discards is not None,
          f"could not apply advice {advice.name}")


def prefault_private(obj, int threads, object huge):
    """Fault in now, writable and by ``threads``, the pages wholly inside a fresh private buffer (an
    ``np.empty`` result), with transparent huge pages or (numpy asks for them on its own for large arrays)
    without, as ``huge`` says (``None``: as the memory is).

    ``load``'s copies fill their destination this way: one ``MADV_POPULATE_WRITE`` call per thread costs
    less than a page fault per page inside the copy loop, and the threads zero the pages in parallel. Pages
    already present (memory the allocator recycled) cost next to nothing. The pages at the ends, shared
    with whatever the allocator put next to the buffer, are left to the copy.
    """
    cdef Py_buffer view
    cdef size_t start, count
    _hold(obj, 0, None, &view, &start, &count)
    try:
        if view.readonly:
            raise ValueError("prefault_private needs writable memory")
        span = inside(start, count)
        if span.end > span.first:
            if not _looks_faulted_in(span):  # else: memory the allocator recycled, faulted in already
                if huge is not None:
                    range_call(MADVISE, span, _posix.MADV_HUGEPAGE if huge else _posix.MADV_NOHUGEPAGE,
                               "could not set the huge page advice", None)
                populate_span(span, True, threads, <const char*>span.first, span.end - span.first, None)
    finally:
        PyBuffer_Release(&view)


cdef bint _looks_faulted_in(Span span) noexcept:
    """Whether the first, middle and last pages of ``span`` are all present: memory the allocator recycled
    (a fresh mapping has none, and an allocator's own bookkeeping touches at most its first page)."""
    cdef unsigned char present = 0
    cdef size_t page = page_size()
    cdef size_t probes[3]
    probes[0] = span.first
    probes[1] = span.first + ((span.end - span.first) // page // 2) * page
    probes[2] = span.end - page
    for i in range(3):
        if _posix.mincore(<void*>probes[i], page, &present) != 0 or not (present & 1):
            return False
    return True


def lock(obj, offset=0, length=None, *, on_fault=False):
    """Lock the pages under a mapping or buffer in RAM (``mlock(2)`` / ``mlock2``).

    Examples
    --------
    >>> import numpy as np, mmio
    >>> a = np.zeros(4096, np.uint8)
    >>> mmio.lock(a); mmio.unlock(a)
    """
    if isinstance(obj, Mapping):
        return obj.lock(offset, length, on_fault=on_fault)
    _call(obj, offset, length, MLOCK_ONFAULT if on_fault else MLOCK, 0, False,
          "could not lock the buffer in memory")


def unlock(obj, offset=0, length=None):
    """Unlock the pages under a mapping or buffer (``munlock(2)``).

    Examples
    --------
    >>> import mmap, mmio
    >>> mm = mmap.mmap(-1, 4096)
    >>> mmio.lock(mm); mmio.unlock(mm)
    """
    if isinstance(obj, Mapping):
        return obj.unlock(offset, length)
    _call(obj, offset, length, MUNLOCK, 0, False, "could not unlock the buffer")


def buffer_residency(obj, offset=0, length=None):
    """Which pages under a buffer are in RAM (see :func:`mmio.residency`)."""
    cdef Py_buffer view
    cdef size_t start, count
    _hold(obj, offset, length, &view, &start, &count)
    cdef Span span = covering(start, count)
    try:
        _require_visible_cache(span)
        pages = mincore_pages(span, None)
    finally:
        PyBuffer_Release(&view)
    first = integer(offset, "offset")
    return Residency(pages, page_size(), first, count, first - <Py_ssize_t>(start - span.first))


cdef int _require_visible_cache(Span span) except -1:
    """Raise PermissionError where the kernel hides the page cache of a file mapped under ``span`` (see
    ``_files.cache_hidden``): ``mincore`` would say every page is resident."""
    if os.geteuid() == 0 or span.end == span.first:
        return 0  # root sees every cache: no walk of /proc/self/maps
    for region in procmaps.maps("self", start=span.first, end=span.end, figures=False):
        if region.inode == 0:
            continue  # anonymous memory: always visible
        try:
            st = os.stat(region.path)
        except (OSError, TypeError, ValueError):
            st = None
        if st is None or st.st_ino != region.inode:
            raise PermissionError(errno.EPERM, "cannot see which pages are cached: the file mapped under the buffer "
                                  f"({region.path}) cannot be found by name to check whether the kernel hides "
                                  "its page cache")
        if hides_cache(st.st_uid, region.path):
            raise hidden_cache_error(region.path)
    return 0
