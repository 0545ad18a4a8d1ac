"""Page-cache residency of files: ``mincore(2)``, ``cachestat(2)`` and ``posix_fadvise(2)``.

``file_residency`` maps the file without touching a page and asks ``mincore``;
``cache_stat`` asks ``cachestat`` (Linux >= 6.5), which counts without mapping;
``touch`` and ``evict`` move a file into and out of the page cache.

The kernel hides the page cache of files the caller neither owns nor may write
(Linux >= 5.2; ``mincore`` then reports made-up residency and ``cachestat``
answers EPERM): every function here raises ``PermissionError`` for such files
rather than report a wrong number.
"""

import errno
import os

import numpy as np

cimport numpy as cnp
from cpython.exc cimport PyErr_CheckSignals
from libc.string cimport memset

cimport mmio._posix as _posix
from mmio._errors cimport raise_errno, raise_oserror
from mmio._files cimport open_path, file_size
from mmio._pages cimport Span, covering, mincore_pages, integer, check_range, page_size, INTERRUPTIBLE_PIECE
from ._files import cache_hidden, hidden_cache_error
from .pagecache import CacheStat, Residency

cnp.import_array()

cdef size_t PAGE = page_size()
cdef long long CHUNK_MAX = 1 << 40
cdef long long LEAF = 512  # LEAF_PAGES, for nogil code


cdef int _open_file(object path, str verb) except -1:
    """Open a regular file read-only (see ``_files``)."""
    return open_path(path, "r", True, verb)


cdef long long _file_size(int fd, object path) except -1:
    return file_size(fd, path, True, "read the residency of", False)


cdef int _cachestat(int fd, unsigned long long off, unsigned long long length,
                    _posix.mmio_cachestat* out) noexcept nogil:
    """0, or the errno of cachestat(2) (ENOSYS before Linux 6.5)."""
    cdef _posix.mmio_cachestat_range r
    r.off = off
    r.len = length
    if _posix.syscall(_posix.SYS_cachestat, fd, &r, out, 0) != 0:
        return _posix.errno
    return 0


cdef bint _on_overlayfs(int fd) noexcept nogil:
    cdef _posix.statfs sf
    return _posix.fstatfs(fd, &sf) == 0 and sf.f_type == _posix.MMIO_OVERLAYFS_SUPER_MAGIC


cdef bint _cachestat_usable(int fd, object path) except -1:
    """Raise PermissionError if the kernel hides this file's cache; else whether cachestat counts it."""
    cdef _posix.mmio_cachestat cs
    cdef int err = _cachestat(fd, 0, PAGE, &cs)
    if err == 0:
        return not _on_overlayfs(fd)
    if err == _posix.EPERM:
        raise hidden_cache_error(path)
    # No cachestat (Linux < 6.5): apply the kernel's rule ourselves.
    if cache_hidden(fd):
        raise hidden_cache_error(path)
    return False


cdef tuple _file_range(object offset, object length, long long size, object path):
    cdef Py_ssize_t start, count
    check_range(offset, length, size, f"the file {os.fsdecode(path)!r}", &start, &count)
    return start, count


cdef object _mincore_file(int fd, object path, long long offset, long long length):
    """Residency of ``[offset, offset+length)`` of the open file: map it untouched, ask mincore."""
    cdef long long first = offset - offset % PAGE
    cdef size_t extent = <size_t>(offset + length - first)
    cdef void* base
    if length == 0:
        return Residency(mincore_pages(covering(0, 0), path), PAGE, offset, 0, first)
    with nogil:
        base = _posix.mmap(NULL, extent, _posix.PROT_READ, _posix.MAP_SHARED, fd, first)
    if base == _posix.MAP_FAILED:
        raise_errno("could not map the file to read its residency", path)
    try:
        pages = mincore_pages(covering(<size_t>base, extent), path)
    finally:
        _posix.munmap(base, extent)
    return Residency(pages, PAGE, offset, length, first)


def file_residency(path, offset=0, length=None):
    """Which pages of a file are in the page cache (see :func:`mmio.residency`).

    Where ``cachestat`` works, it is asked first, about the whole range: a range it finds wholly cached or
    wholly absent is answered without looking at a page; a mixed one is halved and asked again, down to
    ranges of ``LEAF_PAGES`` pages, which ``mincore`` answers page by page. The cost follows the shape of
    the answer (one call for a file wholly cached), not the file's size. On settled pages the map is
    exactly ``mincore``'s; a page whose read is still in flight counts as resident inside a range
    ``cachestat`` answers whole (it counts pages in the cache, read or being read) and as not resident
    where ``mincore`` looks (it counts pages whose data is there).
    """
    path = os.fspath(path)  # errors name the file as a str (or bytes), never as a Path object
    cdef int fd = _open_file(path, "read the residency of")
    try:
        counts = _cachestat_usable(fd, path)
        start, count = _file_range(offset, length, _file_size(fd, path), path)
        if not counts:
            return _mincore_file(fd, path, start, count)
        return _subdivided(fd, path, start, count)
    finally:
        _posix.close(fd)


def file_pages(int fd, path, long long offset, long long length):
    """One bool per page of ``[offset, offset+length)`` of the file open as ``fd``, from the engine of
    :func:`file_residency`; ``None`` where ``cachestat`` does not count this file (ask ``mincore``)."""
    if not _cachestat_usable(fd, path):
        return None
    return _subdivided(fd, path, offset, length).pages


LEAF_PAGES = 512
"""Pages (2 MiB) below which a mixed range is answered by ``mincore``, page by page."""

_probes = [0, 0]  # cachestat calls, pages given to mincore: by the last file_residency, for the tests


cdef object _subdivided(int fd, object path, long long offset, long long length):
    """``file_residency`` of an open file whose cache ``cachestat`` counts."""
    cdef long long first = offset - offset % PAGE
    cdef long long npages = (offset + length - first + PAGE - 1) // PAGE if length else 0  # empty: no page
    cdef cnp.ndarray pages = np.zeros(npages, dtype=np.uint8)
    cdef unsigned char* out = <unsigned char*>cnp.PyArray_DATA(pages)
    cdef long long calls = 0, probed = 0
    cdef int err = 0
    if npages:
        with nogil:
            err = _answer(fd, first, npages, out, &calls, &probed)
        if err:
            raise_oserror(err, "could not read the page-cache residency (cachestat, mincore)", path)
    _probes[0], _probes[1] = calls, probed
    return Residency(pages.view(np.bool_), PAGE, offset, length, first)


cdef int _answer(int fd, long long first, long long npages, unsigned char* out, long long* calls,
                 long long* probed) noexcept nogil:
    """Fill ``out`` (zeroed, one byte per page from byte ``first`` of the file): whole ranges from
    cachestat, mixed ranges halved, the smallest by mincore through a mapping of just that leaf (unmapped
    before the next). Returns 0 or an errno."""
    cdef long long stack_first[128]
    cdef long long stack_n[128]
    cdef int depth = 1, err
    cdef long long f, n, half, i
    cdef _posix.mmio_cachestat cs
    cdef void* leaf
    stack_first[0], stack_n[0] = 0, npages
    while depth:
        depth -= 1
        f, n = stack_first[depth], stack_n[depth]
        err = _cachestat(fd, <unsigned long long>(first + f * PAGE), <unsigned long long>(n * PAGE), &cs)
        calls[0] += 1
        if err:
            return err
        if cs.nr_cache == 0:
            continue
        if <long long>cs.nr_cache >= n:
            memset(out + f, 1, <size_t>n)
            continue
        if n <= LEAF:  # a mapping of just this leaf: a range of any size needs no address space of its size
            leaf = _posix.mmap(NULL, <size_t>(n * PAGE), _posix.PROT_READ, _posix.MAP_SHARED, fd,
                               first + f * PAGE)
            if leaf == _posix.MAP_FAILED:
                return _posix.errno
            err = _posix.errno if _posix.mincore(leaf, <size_t>(n * PAGE), out + f) != 0 else 0
            _posix.munmap(leaf, <size_t>(n * PAGE))
            if err:
                return err
            for i in range(f, f + n):
                out[i] &= 1
            probed[0] += n
            continue
        half = n // 2 - (n // 2) % LEAF if n // 2 >= LEAF else n // 2  # leaves start on 2 MiB boundaries
        stack_first[depth], stack_n[depth] = f + half, n - half  # the second half, asked after the first
        stack_first[depth + 1], stack_n[depth + 1] = f, half
        depth += 2
    return 0


def cache_stat(path, offset=0, length=None):
    """Page-cache figures of a file, from ``cachestat(2)`` (Linux >= 6.5): fast, no mapping.

    Parameters
    ----------
    path : str or os.PathLike
    offset, length : int
        Byte range (widened to whole pages); default the whole file.

    Returns
    -------
    CacheStat
        ``cached``, ``dirty``, ``writeback``, ``evicted``, ``recently_evicted`` (pages).

    Raises
    ------
    OSError
        ``ENOSYS`` on kernels before 6.5 (use :func:`mmio.residency`).
    PermissionError
        The kernel hides this file's page cache from the caller.

    Examples
    --------
    >>> import mmio
    >>> open("/tmp/mmio-doc.bin", "wb").write(b"x" * 8192)
    8192
    >>> mmio.cache_stat("/tmp/mmio-doc.bin").cached
    2
    """
    path = os.fspath(path)  # errors name the file as a str (or bytes), never as a Path object
    cdef int fd = _open_file(path, "read the page-cache figures of")
    cdef _posix.mmio_cachestat cs
    cdef int err
    cdef long long start, count
    try:
        start, count = _file_range(offset, length, _file_size(fd, path), path)
        if count == 0:
            return CacheStat(0, 0, 0, 0, 0)
        with nogil:
            err = _cachestat(fd, start, count, &cs)
        if err == _posix.ENOSYS:
            raise_oserror(err, "cachestat needs Linux 6.5 or newer; use mmio.residency(path) instead", path)
        if err == _posix.EPERM:
            raise hidden_cache_error(path)
        if err:
            raise_oserror(err, "cachestat failed", path)
        if _on_overlayfs(fd):  # cachestat reports zeros there: count with mincore instead
            return CacheStat(_mincore_file(fd, path, start, count).resident, None, None, None, None)
        return CacheStat(cs.nr_cache, cs.nr_dirty, cs.nr_writeback, cs.nr_evicted, cs.nr_recently_evicted)
    finally:
        _posix.close(fd)


cdef long long _resident_pages(int fd, object path, long long start, long long count) except -2:
    """Pages of the range whose data is in the cache now (mincore: cachestat also counts pages
    whose read is still in flight)."""
    _cachestat_usable(fd, path)  # PermissionError where the kernel hides the answer
    return _mincore_file(fd, path, start, count).resident if count else 0


def touch(path, offset=0, length=None, *, method="willneed", chunk=8 << 20, progress=None):
    """Bring a file (or a byte range of it) into the page cache; return the pages cached afterwards.

    Parameters
    ----------
    path : str or os.PathLike
    offset, length : int
        Byte range; default the whole file.
    method : {"willneed", "populate"}
        ``"willneed"`` (fastest from a cold disk): ``POSIX_FADV_WILLNEED`` one
        ``chunk`` at a time — the kernel caps each call at its read-ahead window,
        so one call over a large file would fetch only its start — then waits for
        the reads with ``MADV_POPULATE_READ``.  It can leave the cache in 4 KiB
        folios, which makes later mmap scans slower.  ``"populate"``:
        ``MADV_HUGEPAGE`` then ``MADV_POPULATE_READ`` on a mapping, which leaves
        2 MiB folios where the filesystem supports them (slower to load, faster
        to scan afterwards).
    chunk : int
        Bytes per call (default 8 MiB).
    progress : callable, optional
        Called as ``progress(done_bytes, total_bytes)`` after each chunk.

    Returns
    -------
    int or None
        Pages of the range in the page cache afterwards; ``None`` when the kernel
        hides this file's page cache from the caller (the file is read all the same).

    Examples
    --------
    >>> import mmio
    >>> open("/tmp/mmio-doc.bin", "wb").write(b"x" * 8192)
    8192
    >>> mmio.touch("/tmp/mmio-doc.bin")
    2
    """
    if method not in ("willneed", "populate"):
        raise ValueError(f"method must be 'willneed' or 'populate', not {method!r}")
    path = os.fspath(path)
    chunk = integer(chunk, "chunk")
    if not PAGE <= chunk <= CHUNK_MAX:
        raise ValueError(f"chunk must be between one page ({PAGE} bytes) and 1 TiB, got {chunk}")
    cdef long long step = chunk
    cdef int fd = _open_file(path, "touch")
    cdef long long start, count, pos, n
    cdef int err = 0
    try:
        start, count = _file_range(offset, length, _file_size(fd, path), path)
        pos = start
        while pos < start + count:
            n = min(step, start + count - pos)
            if method == "willneed":
                with nogil:
                    err = _posix.posix_fadvise(fd, pos, n, _posix.POSIX_FADV_WILLNEED)
                if err:
                    raise_oserror(err, "could not prefetch the file (POSIX_FADV_WILLNEED)", path)
            else:
                _populate_file(fd, path, pos, n)
            pos += n
            if progress is not None:
                progress(pos - start, count)
            PyErr_CheckSignals()  # Ctrl-C stops a long touch between chunks
        if method == "willneed" and count:
            # Wait for the reads: cachestat counts a page as soon as its read is queued, but
            # MADV_POPULATE_READ returns only once every page holds its data (and reads any
            # page that read-ahead dropped under memory pressure).
            _populate_file(fd, path, start, count)
        try:
            return _resident_pages(fd, path, start, count)
        except PermissionError:
            return None  # done, but the kernel hides how much of it is cached
    finally:
        _posix.close(fd)


cdef int _populate_file(int fd, object path, long long offset, long long length) except -1:
    """Read ``[offset, offset+length)`` into the page cache through a temporary mapping, in interruptible
    pieces (Ctrl-C stops it)."""
    cdef long long first = offset - offset % PAGE
    cdef size_t span = <size_t>(offset + length - first), done = 0, part
    cdef char* base
    cdef int rc = 0
    if length == 0:
        return 0
    with nogil:
        base = <char*>_posix.mmap(NULL, span, _posix.PROT_READ, _posix.MAP_SHARED, fd, first)
    if base == <char*>_posix.MAP_FAILED:
        raise_errno("could not read the file into the page cache", path)
    try:
        _posix.madvise(base, span, _posix.MADV_HUGEPAGE)  # a hint: 2 MiB folios where possible
        while done < span:
            part = min(<size_t>INTERRUPTIBLE_PIECE, span - done)
            with nogil:
                rc = _posix.madvise(base + done, part, _posix.MADV_POPULATE_READ)
            if rc != 0:
                raise_errno("could not read the file into the page cache", path)
            done += part
            if done < span:
                PyErr_CheckSignals()
    finally:
        _posix.munmap(base, span)
    return 0


def evict(path, *, sync=False):
    """Drop a file's clean pages from the page cache; return how many pages stayed cached.

    ``posix_fadvise(POSIX_FADV_DONTNEED)``, after ``fdatasync`` when ``sync=True``
    (so dirty pages are written and can go too).  The kernel keeps pages that are
    mapped by some process or locked.  For dirty pages it starts writeback without
    waiting and keeps those still dirty or being written when it reaches them, so
    whether a just-written page stays is a race the caller cannot see; the count
    says what is true afterwards, not what was asked.  ``None`` when the kernel
    hides this file's page cache from the caller (the eviction is still done).

    Examples
    --------
    >>> import mmio
    >>> open("/tmp/mmio-doc.bin", "wb").write(b"x" * 8192)
    8192
    >>> mmio.evict("/tmp/mmio-doc.bin", sync=True)
    0
    """
    path = os.fspath(path)  # errors name the file as a str (or bytes), never as a Path object
    cdef int fd = _open_file(path, "evict")
    cdef int err = 0
    try:
        if sync:
            with nogil:
                err = _posix.fdatasync(fd)
                if err != 0:
                    err = _posix.errno
            if err:
                raise_oserror(err, "could not write the file's dirty pages (fdatasync)", path)
        with nogil:
            err = _posix.posix_fadvise(fd, 0, 0, _posix.POSIX_FADV_DONTNEED)
        if err:
            raise_oserror(err, "could not evict the file (POSIX_FADV_DONTNEED)", path)
        try:
            return _resident_pages(fd, path, 0, _file_size(fd, path))
        except PermissionError:
            return None
    finally:
        _posix.close(fd)
