"""Page-cache residency: ``mincore(2)``, ``cachestat(2)`` and ``posix_fadvise(2)``, and the Residency type.

Memory residency (of a mapping or buffer) comes from ``mincore``.  For files,
``residency`` maps the file without touching a page and asks ``mincore``;
``cache_stat`` asks ``cachestat`` (Linux >= 6.5), which counts without mapping;
``touch`` and ``evict`` move a file into and out of the page cache.

The kernel hides the page cache of files the caller neither owns nor may write
(Linux >= 5.2; ``mincore`` then reports made-up residency and ``cachestat``
answers EPERM): every function here raises ``PermissionError`` for such files
rather than report a wrong number.
"""

import collections
import errno
import os

import numpy as np

cimport numpy as cnp
from . cimport _posix
from ._errors cimport raise_errno, raise_oserror

cnp.import_array()

cdef size_t PAGE = <size_t>_posix.sysconf(_posix._SC_PAGESIZE)


cdef object mincore_pages(char* start, size_t length, object filename):
    """One bool per page of ``[start, start+length)``; ``start`` need not be aligned."""
    cdef size_t first = <size_t>start & ~(PAGE - 1)
    cdef size_t end = (<size_t>start + length + PAGE - 1) & ~(PAGE - 1)
    cdef size_t npages = (end - first) // PAGE if length else 0
    cdef cnp.ndarray vec = np.empty(npages, dtype=np.uint8)
    cdef unsigned char* v = <unsigned char*>cnp.PyArray_DATA(vec)
    cdef int rc = 0, err = 0
    cdef size_t i
    if npages:
        with nogil:
            rc = _posix.mincore(<void*>first, end - first, v)
            err = _posix.errno
            for i in range(npages):
                v[i] &= 1
        if rc != 0:
            raise_oserror(err, "could not read page residency (mincore)", filename)
    return vec.view(np.bool_)


class Residency:
    """Which pages of a byte range are in RAM.

    Attributes
    ----------
    pages : numpy.ndarray
        One ``bool`` per page the range touches, ``True`` where resident.
    page_size : int
        Bytes per page.
    offset, length : int
        The byte range asked about, in the target's coordinates.

    Examples
    --------
    >>> import mmio
    >>> with mmio.anonymous(4 * mmio.PAGE_SIZE) as m:
    ...     m[0] = 1                      # fault in the first page
    ...     r = m.residency()
    >>> r.resident, r.total, r.to_string()
    (1, 4, '*...')
    """

    def __init__(self, pages, page_size, offset, length, page_origin=None):
        self.pages = pages
        self.page_size = int(page_size)
        self.offset = int(offset)
        self.length = int(length)
        # Byte offset of the start of pages[0]; below ``offset`` when the range is unaligned.
        self._origin = self.offset - self.offset % self.page_size if page_origin is None else int(page_origin)

    @property
    def total(self):
        """Number of pages the range touches."""
        return int(self.pages.size)

    @property
    def resident(self):
        """Number of resident pages."""
        return int(np.count_nonzero(self.pages))

    @property
    def fraction(self):
        """Resident pages over total pages (``0.0`` for an empty range)."""
        return self.resident / self.total if self.total else 0.0

    @property
    def resident_bytes(self):
        """Bytes of the range (not whole pages) that lie on resident pages."""
        return sum(end - begin for begin, end in self.runs())

    def runs(self):
        """The resident parts of the range as ``(begin, end)`` byte offsets, end exclusive.

        Examples
        --------
        >>> r = mmio.Residency(np.array([True, True, False, True]), 4096, 0, 16384)
        >>> r.runs()
        [(0, 8192), (12288, 16384)]
        """
        edges = np.flatnonzero(np.diff(np.concatenate(([0], self.pages.view(np.int8), [0]))))
        lo, hi = self.offset, self.offset + self.length
        runs = []
        for first, last in zip(edges[0::2].tolist(), edges[1::2].tolist()):
            begin = max(lo, self._origin + first * self.page_size)
            end = min(hi, self._origin + last * self.page_size)
            if end > begin:
                runs.append((begin, end))
        return runs

    def to_string(self, width=64, max_lines=None):
        """A text map of the pages: ``*`` resident, ``.`` not, ``width`` pages per line.

        With ``max_lines``, pages are grouped so the map fits in ``width`` x
        ``max_lines`` characters; a group that is partly resident prints ``+``.
        """
        if width < 1 or (max_lines is not None and max_lines < 1):
            raise ValueError("width and max_lines must be at least 1")
        cells = self._cells(width * max_lines if max_lines else self.total)
        return "\n".join(cells[i:i + width] for i in range(0, len(cells), width))

    def _cells(self, limit):
        n = self.total
        if n <= limit:
            return "".join(np.where(self.pages, "*", ".").tolist())
        bounds = np.linspace(0, n, limit + 1).astype(np.int64)
        counts = np.add.reduceat(self.pages.astype(np.int64), bounds[:-1])
        sizes = np.diff(bounds)
        return "".join("*" if c == s else "." if c == 0 else "+" for c, s in zip(counts.tolist(), sizes.tolist()))

    def _repr_html_(self):
        """The notebook picture: an inline SVG strip of the pages with a caption."""
        from .display import residency_html
        return residency_html(self)

    def plot(self, ax=None):
        """Draw the pages with matplotlib (optional dependency); return the Axes."""
        from .display import plot
        return plot(self, ax)

    def __repr__(self):
        return (f"<mmio.Residency {self.resident}/{self.total} pages resident "
                f"({self.fraction:.1%}) of {self.length} bytes at offset {self.offset}>")


# ---- files ------------------------------------------------------------------------------------

CacheStat = collections.namedtuple("CacheStat", "cached dirty writeback evicted recently_evicted")
CacheStat.__doc__ = """Page-cache figures of a file range, in pages (``cachestat(2)``).

``cached`` pages are in the page cache, ``dirty`` and ``writeback`` of them not yet
on disk; ``evicted`` pages were in the cache and were dropped, ``recently_evicted``
recently enough to count as thrashing.  On overlayfs, where ``cachestat`` reports
zeros, ``cached`` comes from ``mincore`` and the other fields are ``None``.

Examples
--------
>>> import mmio
>>> stat = mmio.CacheStat(cached=2, dirty=0, writeback=0, evicted=5, recently_evicted=1)
>>> stat.cached * mmio.PAGE_SIZE
8192
"""

_HIDDEN = ("the kernel hides the page cache of files you neither own nor may write (Linux >= 5.2, "
           "a side-channel defence: mincore would report made-up residency and cachestat refuses); "
           "run as the file's owner, with write access, or as root")


def _hidden(path):
    """The PermissionError for a file whose page cache the kernel hides from the caller."""
    return PermissionError(errno.EPERM, f"cannot see which pages are cached: {_HIDDEN}", os.fspath(path))


cdef int _not_a_file(object path, unsigned int mode) except -1:
    if _posix.S_ISDIR(mode):
        raise_oserror(_posix.EISDIR, "this is a directory", path)
    raise_oserror(_posix.ENODEV, "not a regular file", path)


cdef int _open_file(object path) except -1:
    """Open a regular file read-only.  The type is checked before opening (opening some devices
    has side effects) and again after (the name may have changed hands in between); the open
    is non-blocking, so a FIFO is refused rather than waited on."""
    cdef bytes encoded = os.fsencode(path)
    if b"\0" in encoded:
        raise ValueError(f"embedded null byte in path {path!r}")
    mode = os.stat(path).st_mode
    if not _posix.S_ISREG(mode):
        _not_a_file(path, mode)
    cdef int fd = _posix.open(encoded, _posix.O_RDONLY | _posix.O_CLOEXEC | _posix.O_NONBLOCK)
    if fd < 0:
        raise_errno("could not open the file", path)
    cdef _posix.stat st
    if _posix.fstat(fd, &st) != 0 or not _posix.S_ISREG(st.st_mode):
        _posix.close(fd)
        _not_a_file(path, st.st_mode)
    return fd


cdef long long _file_size(int fd, object path) except -1:
    cdef _posix.stat st
    if _posix.fstat(fd, &st) != 0:
        raise_errno("could not stat the file", path)
    return st.st_size


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
        raise _hidden(path)
    # No cachestat (Linux < 6.5): apply the kernel's rule ourselves.
    if os.geteuid() == 0 or os.fstat(fd).st_uid == os.geteuid() or os.access(path, os.W_OK, effective_ids=True):
        return False
    raise _hidden(path)


cdef tuple _file_range(object offset, object length, long long size):
    import operator
    offset = operator.index(offset)
    length = size - offset if length is None else operator.index(length)
    if offset < 0 or length < 0:
        raise ValueError(f"offset and length must not be negative, got {offset} and {length}")
    if offset + length > size:
        raise ValueError(f"range [{offset}, {offset + length}) is outside the file of {size} bytes")
    return offset, length


cdef object _mincore_file(int fd, object path, long long offset, long long length):
    """Residency of ``[offset, offset+length)`` of the open file: map it untouched, ask mincore."""
    cdef long long first = offset - offset % PAGE
    cdef size_t span = <size_t>(offset + length - first)
    cdef void* base
    if length == 0:
        return Residency(np.zeros(0, np.bool_), PAGE, offset, 0, first)
    with nogil:
        base = _posix.mmap(NULL, span, _posix.PROT_READ, _posix.MAP_SHARED, fd, first)
    if base == _posix.MAP_FAILED:
        raise_errno("could not map the file to read its residency", path)
    try:
        pages = mincore_pages(<char*>base, span, path)
    finally:
        _posix.munmap(base, span)
    return Residency(pages, PAGE, offset, length, first)


def file_residency(path, offset=0, length=None):
    """Which pages of a file are in the page cache (see :func:`mmio.residency`)."""
    cdef int fd = _open_file(path)
    try:
        _cachestat_usable(fd, path)
        start, count = _file_range(offset, length, _file_size(fd, path))
        return _mincore_file(fd, path, start, count)
    finally:
        _posix.close(fd)


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
    cdef int fd = _open_file(path)
    cdef _posix.mmio_cachestat cs
    cdef int err
    cdef long long start, count
    try:
        start, count = _file_range(offset, length, _file_size(fd, path))
        if count == 0:
            return CacheStat(0, 0, 0, 0, 0)
        with nogil:
            err = _cachestat(fd, start, count, &cs)
        if err == _posix.ENOSYS:
            raise_oserror(err, "cachestat needs Linux 6.5 or newer; use mmio.residency(path) instead", path)
        if err == _posix.EPERM:
            raise _hidden(path)
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
    import operator
    chunk = operator.index(chunk)
    if not PAGE <= chunk <= 1 << 40:
        raise ValueError(f"chunk must be between one page ({PAGE} bytes) and 1 TiB, got {chunk}")
    cdef long long step = chunk
    cdef int fd = _open_file(path)
    cdef long long start, count, pos, n
    cdef int err = 0
    try:
        start, count = _file_range(offset, length, _file_size(fd, path))
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
    """Read ``[offset, offset+length)`` into the page cache through a temporary mapping."""
    cdef long long first = offset - offset % PAGE
    cdef size_t span = <size_t>(offset + length - first)
    cdef void* base
    cdef int rc = 0, err = 0
    if length == 0:
        return 0
    with nogil:
        base = _posix.mmap(NULL, span, _posix.PROT_READ, _posix.MAP_SHARED, fd, first)
        if base != _posix.MAP_FAILED:
            _posix.madvise(base, span, _posix.MADV_HUGEPAGE)  # a hint: 2 MiB folios where possible
            rc = _posix.madvise(base, span, _posix.MADV_POPULATE_READ)
            if rc != 0:
                err = _posix.errno
            _posix.munmap(base, span)
        else:
            err = _posix.errno
            rc = -1
    if rc != 0:
        raise_oserror(err, "could not read the file into the page cache", path)
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
    cdef int fd = _open_file(path)
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
