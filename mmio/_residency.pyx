"""Page-cache residency: ``mincore(2)`` over mapped memory and the Residency type."""

import numpy as np

cimport numpy as cnp
from . cimport _posix
from ._errors cimport raise_oserror

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

    def __repr__(self):
        return (f"<mmio.Residency {self.resident}/{self.total} pages resident "
                f"({self.fraction:.1%}) of {self.length} bytes at offset {self.offset}>")
