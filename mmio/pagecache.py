"""Page-cache residency values: which pages of a range are in RAM (:class:`Residency`), the page-cache
figures of a file (:class:`CacheStat`), and the residency of many files (:class:`ResidencyTable`, from
directory walks).

Plain Python over numpy, named ``pagecache`` so that ``mmio.residency`` stays the function. The compiled
modules measure (``_residency`` for files, ``_buffers`` and ``Mapping.residency`` for memory) and hand their
answers to these types; :func:`residency` is the public entry point that picks the measurement for its target.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np


def residency(target, offset=0, length=None, *, recursive=False, progress=None, sort="resident"):
    """Which pages of a file, mapping or buffer are in RAM.

    Parameters
    ----------
    target : str, os.PathLike, Mapping, buffer, directory or list of paths
        A path is mapped without touching its pages and probed with
        ``mincore(2)``; offsets are then file offsets.  A directory or a list
        of paths gives a :class:`~mmio.pagecache.ResidencyTable` (one row per
        file, errors included, a table of strips in notebooks).
    offset, length : int
        Byte range within the target (not for directories and lists).
    recursive : bool
        For directories: descend into subdirectories too.
    progress : callable, optional
        For directories and lists: called with each file's path once it is measured.
    sort : {"resident", "size", "name", None}
        For directories and lists: the order of the table's rows, most
        resident bytes first (the default), largest first, by name, or as
        walked (``None``).  Files whose residency is unknown come last.

    Returns
    -------
    Residency or ResidencyTable

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
    from ._mapping import Mapping
    if isinstance(target, Mapping):
        return target.residency(offset, length)
    if isinstance(target, (list, tuple)) or (
            isinstance(target, (str, bytes, os.PathLike)) and os.path.isdir(target)):
        table = ResidencyTable.of(target if isinstance(target, (list, tuple)) else [target], recursive, progress)
        return table.sorted(sort) if sort else table
    if isinstance(target, (str, bytes, os.PathLike)):
        from ._residency import file_residency
        return file_residency(target, offset, length)
    from ._buffers import buffer_residency
    return buffer_residency(target, offset, length)


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


@dataclass(frozen=True, slots=True)
class FileResidency:
    """One file's row: its residency, or the error that kept mmio from knowing it."""

    path: str
    size: int | None
    residency: Residency | None
    error: str | None = None


def walk(targets: Iterable, recursive: bool = False) -> Iterator[tuple[str, str | None]]:
    """``(path, error)`` for every file named or (with ``recursive``) under a directory named.

    A directory without ``recursive`` yields its direct files.  Anything that
    cannot be listed or checked (a permission, a symlink loop) yields its error
    instead of stopping the walk; the walk uses a stack, not recursion, so depth
    is unlimited.  Symbolic links to directories are not followed.
    """
    for target in targets:
        path = os.fsdecode(os.fspath(target))
        if not os.path.isdir(path):
            yield path, None
            continue
        stack = [path]
        while stack:
            directory = stack.pop()
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name, reverse=True)
            except OSError as exc:
                yield directory, str(exc)
                continue
            subdirectories = []
            for entry in reversed(entries):
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subdirectories.append(entry.path)
                    elif entry.is_file(follow_symlinks=True):
                        yield entry.path, None
                except OSError as exc:
                    yield entry.path, str(exc)
            if recursive:
                stack.extend(reversed(subdirectories))


def measure(path: str) -> FileResidency:
    """The residency of one file, with OSError and ValueError turned into the row's error."""
    try:
        from ._residency import file_residency
        residency = file_residency(path)
    except (OSError, ValueError) as exc:
        return FileResidency(path, _size(path), None, str(exc))
    return FileResidency(path, residency.length, residency)


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


SORT_KEYS = ("resident", "size", "name")


class ResidencyTable:
    """The residency of several files: ``rows`` (FileResidency), totals, and a table to read.

    In a notebook the table shows each file's name relative to ``root``, its
    size, resident bytes and fraction (right-aligned, never wrapped) and its
    strip, the first ``limit`` rows and then one line for the rest, and a
    totals row over all rows.  ``print(table)`` shows the same as text.

    Attributes
    ----------
    rows : list of FileResidency
        One per file, in the table's order.
    root : str or None
        The directory names are shown relative to (``None``: full paths).
    limit : int or None
        Rows shown before "and M more files" (``None``: all).

    Examples
    --------
    >>> import mmio, os
    >>> os.makedirs("/tmp/mmio-doc-dir", exist_ok=True)
    >>> open("/tmp/mmio-doc-dir/small", "wb").write(b"x" * 100)
    100
    >>> open("/tmp/mmio-doc-dir/big", "wb").write(b"x" * 10000)
    10000
    >>> table = mmio.residency("/tmp/mmio-doc-dir", sort="size")
    >>> [table.name(row) for row in table]
    ['big', 'small']
    >>> table.sorted("name").rows[0].path.endswith("big")
    True
    """

    def __init__(self, rows: list[FileResidency], root: str | None = None, limit: int | None = 50):
        self.rows = list(rows)
        self.root = root
        self.limit = limit

    @classmethod
    def of(cls, targets: Iterable, recursive: bool = False, progress=None) -> "ResidencyTable":
        """Measure every file named (and, with ``recursive``, under the directories named), in walk order.

        ``progress(path)`` is called after each file.  Each row holds the file's
        :class:`~mmio.Residency` or the error that kept mmio from knowing it.
        Names are shown relative to the directory asked about, or to the
        common directory of the files named (full paths when they lie in
        different places).
        """
        targets = [os.fsdecode(os.fspath(t)) for t in targets]
        rows = []
        for path, error in walk(targets, recursive):
            rows.append(FileResidency(path, None, None, error) if error else measure(path))
            if progress is not None:
                progress(path)
        return cls(rows, _root(targets, rows))

    def sorted(self, by: str = "resident") -> "ResidencyTable":
        """A new table with the rows in another order (errors always last).

        ``by``: ``"resident"`` (most resident bytes first), ``"size"`` (largest
        first) or ``"name"``.
        """
        if by not in SORT_KEYS:
            raise ValueError(f"sort by one of {', '.join(SORT_KEYS)}, not {by!r}")
        known = [r for r in self.rows if r.residency is not None]
        failed = [r for r in self.rows if r.residency is None]
        if by == "name":
            known.sort(key=lambda r: r.path)
        else:
            index = 1 if by == "size" else 0
            figures = {id(r): _figures(r) for r in known}
            known.sort(key=lambda r: (-figures[id(r)][index], -figures[id(r)][1 - index], r.path))
        return type(self)(known + sorted(failed, key=lambda r: r.path), self.root, self.limit)

    def name(self, row: FileResidency) -> str:
        """The row's file name as the table shows it: relative to ``root``, else the full path."""
        if self.root is not None:
            relative = os.path.relpath(row.path, self.root)
            if not relative.startswith(".."):
                return relative
        return row.path

    @property
    def resident_pages(self) -> int:
        """Resident pages over the files whose residency is known."""
        return sum(r.residency.resident for r in self.rows if r.residency is not None)

    @property
    def total_pages(self) -> int:
        """Pages over the files whose residency is known."""
        return sum(r.residency.total for r in self.rows if r.residency is not None)

    @property
    def resident_bytes(self) -> int:
        """Bytes of the files that lie on resident pages, over the files whose residency is known."""
        return sum(_figures(r)[0] for r in self.rows if r.residency is not None)

    @property
    def size(self) -> int:
        """Bytes of the files whose residency is known."""
        return sum(_figures(r)[1] for r in self.rows if r.residency is not None)

    @property
    def errors(self) -> int:
        """Number of files whose residency is unknown."""
        return sum(r.residency is None for r in self.rows)

    def summary(self) -> str:
        """One line: where, how many files, how much of them is resident."""
        from ._units import human_bytes
        where = f"{self.root}: " if self.root else ""
        fraction = self.resident_bytes / self.size if self.size else 0.0
        errors = f", {self.errors:,} unknown" if self.errors else ""
        return (f"{where}{len(self.rows):,} files, {human_bytes(self.resident_bytes)} of "
                f"{human_bytes(self.size)} resident ({fraction:.1%}){errors}")

    def to_string(self, limit: int | None = -1, width: int = 20) -> str:
        """The table as text: a summary line, one line per file (the first ``limit``), the rest, the totals.

        ``limit=-1`` (the default) uses the table's :attr:`limit`; ``width`` is the
        number of characters of each file's strip.
        """
        from .display import table_text
        return table_text(self, self.limit if limit == -1 else limit, width)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def _repr_html_(self) -> str:
        from .display import table_html
        return table_html(self, self.limit)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"<mmio.ResidencyTable {self.summary()}>"


def _figures(row: FileResidency) -> tuple[int, int]:
    """(resident bytes, size) of a row whose residency is known."""
    r = row.residency
    assert r is not None
    if r.offset == 0 and r.total:  # a whole file: the resident pages, less the last page's bytes past the end
        slack = r.total * r.page_size - r.length if r.pages[-1] else 0
        return r.resident * r.page_size - slack, r.length
    return r.resident_bytes, r.length


def _root(targets: list[str], rows: list[FileResidency]) -> str | None:
    """The directory the table's names are relative to: the directory asked about, or the one directory
    every file named lies in; ``None`` when they lie in different places."""
    if len(targets) == 1 and os.path.isdir(targets[0]):
        return targets[0]
    parents = {os.path.dirname(os.path.abspath(r.path)) for r in rows}
    if len(parents) == 1 and all(not os.path.isdir(t) for t in targets):
        parent = parents.pop()
        common = os.path.dirname(targets[0]) if targets else parent
        return common or "."
    return None
