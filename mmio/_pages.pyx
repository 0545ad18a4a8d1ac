"""The range engine under every page-range operation of mmio.

A byte range ``[address, address + length)`` becomes a :c:type:`Span` of whole
pages: :c:func:`covering` (every page the bytes touch, for advice, locking,
syncing and residency) or :c:func:`inside` (only pages wholly inside, for
advice that throws data away: it must never reach bytes that are not the
caller's). :c:func:`range_call` runs one range syscall with the GIL released
and raises the one ``OSError`` for its failure, with the hint that explains
it (the kernel version an advice needs, what ``RLIMIT_MEMLOCK`` allows).
:c:func:`check_range` and :c:func:`check_threads` are the argument checks
every entry point shares: ``TypeError`` for non-integers, ``ValueError`` with
the range and the size otherwise, never ``OverflowError``.

The caller keeps the memory mapped while a call runs (``Mapping.acquire()``,
or a held ``Py_buffer``).
"""

import operator
import os

cimport cython

from cpython.exc cimport PyErr_CheckSignals
from cpython.number cimport PyNumber_AsSsize_t
cdef extern from "Python.h":
    Py_ssize_t PY_SSIZE_T_MAX

import numpy as np

cimport numpy as cnp
cimport mmio._posix as _posix
from mmio._errors cimport raise_oserror

cnp.import_array()

cdef size_t PAGE = <size_t>_posix.sysconf(_posix._SC_PAGESIZE)

PAGE_SIZE = PAGE
"""The system page size in bytes: the one definition mmio has."""

MAX_THREADS = 64


cdef size_t page_size() noexcept nogil:
    return PAGE


def kernel_older_than(version):
    """Whether the running kernel is older than ``version`` (``"5.14"``)."""
    running = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    return running < tuple(int(x) for x in version.split("."))


cdef Span covering(size_t address, size_t length) noexcept nogil:
    cdef Span span
    span.first = address & ~(PAGE - 1)
    span.end = (address + length + PAGE - 1) & ~(PAGE - 1) if length else span.first
    return span


cdef Span inside(size_t address, size_t length, bint own_head=False, bint own_tail=False) noexcept nogil:
    """The pages wholly inside the range; ``own_head``/``own_tail``: the caller owns the rest of the first/last
    page too (a mapping's own edges), so it is included."""
    cdef Span span
    span.first = address & ~(PAGE - 1) if own_head else (address + PAGE - 1) & ~(PAGE - 1)
    span.end = (address + length + PAGE - 1) & ~(PAGE - 1) if own_tail else (address + length) & ~(PAGE - 1)
    if span.end < span.first:
        span.end = span.first
    return span


cdef int _dispatch(int call, void* start, size_t n, int arg) noexcept nogil:
    if call == MADVISE:
        return _posix.madvise(start, n, arg)
    if call == MLOCK:
        return _posix.mlock(start, n)
    if call == MLOCK_ONFAULT:
        return _posix.mlock2(start, n, _posix.MLOCK_ONFAULT)
    if call == MUNLOCK:
        return _posix.munlock(start, n)
    return _posix.msync(start, n, arg)


cdef int range_call(int call, Span span, int arg, str attempted, object filename) except -1:
    """Run ``call`` over ``span`` with the GIL released; raise the OSError for a failure.

    ``arg`` is the advice for MADVISE and the flags for MSYNC.
    """
    if span.end == span.first:
        return 0
    cdef int rc, err = 0
    cdef size_t n = span.end - span.first
    with nogil:
        rc = _dispatch(call, <void*>span.first, n, arg)
        if rc != 0:
            err = _posix.errno
    if rc != 0:
        hint = _hint(call, err, n, arg)
        if call == MLOCK or call == MLOCK_ONFAULT:
            _undo_partial_lock(span, err)
        raise_oserror(err, attempted + hint, filename)
    return 0


cdef int range_call_chunked(int call, Span span, int arg, size_t chunk, str attempted,
                            object filename) except -1:
    """:c:func:`range_call` over ``span`` in pieces of ``chunk`` bytes (a multiple of the page size), running
    Python's signal handlers in between (Ctrl-C stops it)."""
    cdef Span part
    part.first = span.first
    while part.first < span.end:
        part.end = span.end if span.end - part.first <= chunk else part.first + chunk
        range_call(call, part, arg, attempted, filename)
        part.first = part.end
        if part.first < span.end:
            PyErr_CheckSignals()
    return 0


# Calls made between two checks for Ctrl-C by :c:func:`advise_ranges` (each one is short: at most ``chunk``).
cdef Py_ssize_t RANGE_BATCH = 4096


def coalesced(starts, ends, gap=0):
    """The pages that the byte ranges ``[starts[i], ends[i])`` (addresses, int64 arrays) touch, as sorted,
    disjoint page-aligned ``(firsts, ends)`` int64 arrays: ranges are widened to whole pages, then ranges
    that overlap or lie at most ``gap`` bytes apart are merged. Empty ranges touch nothing."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    keep = ends > starts
    if not keep.all():
        starts, ends = starts[keep], ends[keep]
    if starts.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    cdef cnp.int64_t page = PAGE
    firsts = starts & ~(page - 1)
    lasts = (ends + (page - 1)) & ~(page - 1)
    order = np.argsort(firsts, kind="stable")
    firsts, lasts = firsts[order], np.maximum.accumulate(lasts[order])
    # A new run starts where a range begins past the end of everything before it, plus the gap.
    heads = np.flatnonzero(np.concatenate(([True], firsts[1:] > lasts[:-1] + gap)))
    tails = np.append(heads[1:] - 1, firsts.size - 1)
    return np.ascontiguousarray(firsts[heads]), np.ascontiguousarray(lasts[tails])


@cython.boundscheck(False)
@cython.wraparound(False)
cdef int advise_ranges(object starts, object ends, int advice, size_t gap, size_t chunk, str attempted,
                       object filename) except -1:
    """``madvise(advice)`` over every page the byte ranges ``[starts[i], ends[i])`` (addresses) touch: sorted,
    deduplicated and merged across gaps of at most ``gap`` bytes (:func:`coalesced`), then one call per run
    and per ``chunk`` bytes of it, with the GIL released, ``RANGE_BATCH`` calls at a time (Ctrl-C stops it
    between batches). The caller keeps every range mapped meanwhile."""
    firsts, lasts = coalesced(starts, ends, gap)
    cdef const cnp.int64_t[::1] f = firsts
    cdef const cnp.int64_t[::1] e = lasts
    cdef Py_ssize_t n = f.shape[0], i = 0, stop
    cdef size_t at = 0, piece = 0
    cdef int rc = 0, err = 0
    while i < n and rc == 0:
        stop = min(i + RANGE_BATCH, n)
        with nogil:
            while i < stop:
                at = <size_t>f[i]
                while at < <size_t>e[i]:
                    piece = min(chunk, <size_t>e[i] - at)
                    rc = _posix.madvise(<void*>at, piece, advice)
                    if rc != 0:
                        err = _posix.errno
                        break
                    at += piece
                if rc != 0:
                    break
                i += 1
        if rc == 0 and i < n:
            PyErr_CheckSignals()
    if rc != 0:
        raise_oserror(err, attempted + _hint(MADVISE, err, piece, advice), filename)
    return 0


cdef int _undo_partial_lock(Span span, int err) except -1:
    """A lock that failed after the kernel locked part of the range (a page it could not fault in): unlock
    the range again. A refusal by RLIMIT_MEMLOCK comes before anything is locked, and is left alone."""
    from mmio._limits import limit_refused
    if not limit_refused(err, span.end - span.first):
        _posix.munlock(<void*>span.first, span.end - span.first)
    return 0


cdef str _hint(int call, int err, size_t n, int arg):
    """What explains a failed range call, in parentheses (or nothing)."""
    if call == MADVISE and err == _posix.EINVAL:
        from mmio._flags import Advice
        try:
            advice = Advice(arg)
        except ValueError:
            return ""
        if kernel_older_than(advice.since):
            return f" (MADV_{advice.name} needs Linux {advice.since} or newer)"
        return f" (the kernel does not allow MADV_{advice.name} on this memory)"
    if call in (MLOCK, MLOCK_ONFAULT):
        from mmio._limits import lock_failure_hint
        return lock_failure_hint(err, n)
    return ""


cdef object mincore_pages(Span span, object filename):
    """One bool per page of ``span``, ``True`` where the page is resident (``mincore(2)``)."""
    cdef size_t npages = (span.end - span.first) // PAGE
    cdef cnp.ndarray vec = np.empty(npages, dtype=np.uint8)
    cdef unsigned char* v = <unsigned char*>cnp.PyArray_DATA(vec)
    cdef int rc = 0, err = 0
    cdef size_t i
    if npages:
        with nogil:
            rc = _posix.mincore(<void*>span.first, span.end - span.first, v)
            err = _posix.errno
            for i in range(npages):
                v[i] &= 1
        if rc != 0:
            raise_oserror(err, "could not read page residency (mincore)", filename)
    return vec.view(np.bool_)


cdef object integer(object value, str name):
    """``value`` as a Python int (numpy integers and ``__index__`` welcome); TypeError otherwise."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None


cdef int check_range(object offset, object length, Py_ssize_t size, str where,
                     Py_ssize_t* start, Py_ssize_t* count) except -1:
    """Check ``[offset, offset+length)`` (``length=None``: to the end) against ``size`` bytes of ``where``.

    ``where`` names the target in messages ("the mapping", "the buffer", "the file").
    """
    offset = integer(offset, "offset")
    length = None if length is None else integer(length, "length")
    if offset < 0:
        raise ValueError(f"offset must not be negative, got {offset}")
    if offset > size:
        raise ValueError(f"offset {offset} is outside {where} of {size} bytes")
    if length is None:
        length = size - offset
    elif length < 0:
        raise ValueError(f"length must not be negative, got {length}")
    elif length > size - offset:
        raise ValueError(f"range [{offset}, {offset + length}) is outside {where} of {size} bytes")
    start[0] = offset
    count[0] = length
    return 0


def threads_argument(threads):
    """``threads`` checked as every entry point checks it (for mmio's Python layers)."""
    return check_threads(threads)


cdef int check_threads(object threads) except -1:
    """The number of native threads to use: an int from 1 to 64."""
    threads = integer(threads, "threads")
    if not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"threads must be between 1 and {MAX_THREADS}, got {threads}")
    return threads


# ---- indices and shapes (Mapping's item access and array())

cdef object plain_key(object key):
    """An int or a slice of ints (None kept), with every __index__ already called."""
    if isinstance(key, slice):
        return slice(*[None if x is None else operator.index(x) for x in (key.start, key.stop, key.step)])
    try:
        return operator.index(key)
    except TypeError:
        raise TypeError(f"mapping indices must be integers or slices, not {type(key).__name__}") from None


cdef int byte_value(object value) except -1:
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"a single byte must be an int, not {type(value).__name__}") from None
    if not 0 <= value <= 255:
        raise ValueError(f"a byte must be in range(0, 256), not {value}")
    return value


cdef Py_ssize_t checked_index(object key, Py_ssize_t length) except -1:
    cdef Py_ssize_t i = PyNumber_AsSsize_t(key, IndexError)
    if i < 0:
        i += length
    if i < 0 or i >= length:
        raise IndexError(f"mapping index {key} out of range for {length} bytes")
    return i


cdef tuple plain_shape(object shape):
    """The shape as a tuple of non-negative ints that fit a C array dimension."""
    dims = (shape,) if not hasattr(shape, "__iter__") else tuple(shape)
    try:
        dims = tuple(operator.index(d) for d in dims)
    except TypeError:
        raise TypeError(f"shape entries must be integers, got {shape!r}") from None
    for d in dims:
        if d < 0:
            raise ValueError(f"shape {dims} has a negative dimension")
        if d > PY_SSIZE_T_MAX:
            raise ValueError(f"shape {dims} has a dimension too large to address")
    return dims
