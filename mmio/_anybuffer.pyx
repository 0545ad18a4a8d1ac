"""Advice, residency and locking for any mapped memory: mmio mappings, buffers and files.

``mmio.advise``, ``mmio.residency``, ``mmio.lock`` and ``mmio.unlock`` take a
:class:`Mapping`, or any object with the buffer protocol (a stdlib
``mmap.mmap``, a ``numpy.memmap``, an ndarray view of one), and work on the
pages under it; ``residency`` also takes a file path.  The buffer is held for
the duration of the system call, so its memory cannot be unmapped meanwhile.
"""

import operator
import os

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_RECORDS_RO

from . cimport _posix
from ._errors cimport raise_oserror
from ._mapping cimport Mapping
from ._residency cimport mincore_pages
from ._flags import Advice
from ._residency import Residency, file_residency

cdef size_t PAGE = <size_t>_posix.sysconf(_posix._SC_PAGESIZE)


cdef int _span(Py_buffer* view, size_t* lo, size_t* hi) except -1:
    """The byte range ``[lo, hi)`` a (possibly strided) buffer covers."""
    if view.suboffsets != NULL:
        raise TypeError("buffers with suboffsets (indirect arrays) are not supported")
    lo[0] = hi[0] = <size_t>view.buf
    cdef int i
    for i in range(view.ndim):
        if view.shape[i] == 0:
            hi[0] = lo[0]
            return 0
        if view.strides[i] >= 0:
            hi[0] += <size_t>((view.shape[i] - 1) * view.strides[i])
        else:
            lo[0] += <size_t>((view.shape[i] - 1) * view.strides[i])
    hi[0] += <size_t>view.itemsize
    return 0


cdef int _pages(object obj, object offset, object length, Py_buffer* view,
                size_t* first, size_t* end, size_t* start, size_t* count) except -1:
    """Get ``obj``'s buffer into ``view`` and the page span of ``[offset, offset+length)`` in it."""
    PyObject_GetBuffer(obj, view, PyBUF_RECORDS_RO)
    cdef size_t lo, hi
    try:
        _span(view, &lo, &hi)
        offset = operator.index(offset)
        size = hi - lo
        if offset < 0 or offset > size:
            raise ValueError(f"offset {offset} is outside the buffer of {size} bytes")
        length = size - offset if length is None else operator.index(length)
        if length < 0 or offset + length > size:
            raise ValueError(f"range [{offset}, {offset + length}) is outside the buffer of {size} bytes")
    except BaseException:
        PyBuffer_Release(view)
        raise
    start[0] = lo + <size_t>offset
    count[0] = <size_t>length
    first[0] = start[0] & ~(PAGE - 1)
    end[0] = (start[0] + <size_t>length + PAGE - 1) & ~(PAGE - 1) if length else first[0]
    return 0


cdef int _call(object obj, object offset, object length, int call, int arg, str attempted) except -1:
    cdef Py_buffer view
    cdef size_t first, end, start, count
    cdef int rc = 0, err = 0
    _pages(obj, offset, length, &view, &first, &end, &start, &count)
    try:
        if end > first:
            with nogil:
                if call == 0:
                    rc = _posix.madvise(<void*>first, end - first, arg)
                elif call == 1:
                    rc = _posix.mlock(<void*>first, end - first)
                elif call == 2:
                    rc = _posix.mlock2(<void*>first, end - first, arg)
                else:
                    rc = _posix.munlock(<void*>first, end - first)
                if rc != 0:
                    err = _posix.errno
    finally:
        PyBuffer_Release(&view)
    if rc != 0:
        if call in (1, 2):
            from ._limits import lock_failure_hint
            attempted += lock_failure_hint(err, end - first)
        raise_oserror(err, attempted)
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
        Byte range within ``obj`` (widened to whole pages, which may reach
        past the buffer's own bytes).
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
    if advice in (Advice.DONTNEED, Advice.FREE, Advice.REMOVE) and not discard:
        raise ValueError(f"advice {advice.name} can throw away the data of this buffer; "
                         "pass discard=True if that is what you want")
    _call(obj, offset, length, 0, advice, f"could not apply advice {advice.name}")


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
    _call(obj, offset, length, 2 if on_fault else 1, _posix.MLOCK_ONFAULT,
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
    _call(obj, offset, length, 3, 0, "could not unlock the buffer")


def residency(target, offset=0, length=None):
    """Which pages of a file, mapping or buffer are in RAM.

    Parameters
    ----------
    target : str, os.PathLike, Mapping, buffer, directory or list of paths
        A path is mapped without touching its pages and probed with
        ``mincore(2)``; offsets are then file offsets.  A directory or a list
        of paths gives a :class:`~mmio.files.ResidencyTable` (one row per file,
        errors included, a table of strips in notebooks).
    offset, length : int
        Byte range within the target.

    Returns
    -------
    Residency

    Raises
    ------
    PermissionError
        ``target`` is a file the caller neither owns nor may write: since
        Linux 5.2 the kernel hides the page cache of such files from
        ``mincore``, and mmio will not report a made-up figure.

    Examples
    --------
    >>> import mmio, numpy as np
    >>> np.zeros(4096, "u1").tofile("/tmp/mmio-doc.bin")
    >>> mmio.residency("/tmp/mmio-doc.bin").total
    1
    """
    if isinstance(target, Mapping):
        return target.residency(offset, length)
    if isinstance(target, (list, tuple)) or (
            isinstance(target, (str, bytes, os.PathLike)) and os.path.isdir(target)):
        from .files import ResidencyTable
        return ResidencyTable.of(target if isinstance(target, (list, tuple)) else [target])
    if isinstance(target, (str, bytes, os.PathLike)):
        return file_residency(target, offset, length)
    cdef Py_buffer view
    cdef size_t first, end, start, count
    _pages(target, offset, length, &view, &first, &end, &start, &count)
    try:
        pages = mincore_pages(<char*>start, count, None)
    finally:
        PyBuffer_Release(&view)
    offset = operator.index(offset)
    return Residency(pages, PAGE, offset, count, offset - <Py_ssize_t>(start - first))
