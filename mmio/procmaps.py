"""``/proc/PID/maps`` joined with the ``smaps`` figures, as small typed records."""

from __future__ import annotations

import errno
import operator
import re
from dataclasses import dataclass, field
from typing import Any

# smaps keys (kB values) and the Region fields they fill, in bytes.
_FIGURES = {
    "Size": "size",
    "Rss": "rss",
    "Pss": "pss",
    "Shared_Clean": "shared_clean",
    "Shared_Dirty": "shared_dirty",
    "Private_Clean": "private_clean",
    "Private_Dirty": "private_dirty",
    "Referenced": "referenced",
    "Anonymous": "anonymous",
    "AnonHugePages": "anon_huge_pages",
    "ShmemPmdMapped": "shmem_pmd_mapped",
    "FilePmdMapped": "file_pmd_mapped",
    "Swap": "swap",
    "Locked": "locked",
}


@dataclass(frozen=True, slots=True)
class Region:
    """One line of ``/proc/PID/maps`` with its ``smaps`` figures (all sizes in bytes).

    Attributes
    ----------
    start, end : int
        Address range, end exclusive.
    perms : str
        ``"rw-s"``: read, write, execute, and ``s`` shared or ``p`` private.
    offset : int
        Offset in the mapped file.
    device : str
        ``"major:minor"`` of the file's device.
    inode : int
        The file's inode (0 for anonymous memory).
    path : str or None
        The file, a pseudo-name such as ``"[heap]"``, or ``None``.
    size, rss, pss, shared_clean, shared_dirty, private_clean, private_dirty,
    referenced, anonymous, anon_huge_pages, shmem_pmd_mapped, file_pmd_mapped,
    swap, locked : int
        The ``smaps`` figures: ``rss`` resident, ``pss`` proportional share,
        ``anon_huge_pages`` / ``file_pmd_mapped`` memory mapped with 2 MiB pages.
    vm_flags : frozenset of str
        The kernel's two-letter flags: ``"rr"`` random advice, ``"sr"``
        sequential, ``"lo"`` locked, ``"hg"`` huge-page advice, ...

    Examples
    --------
    >>> import mmio
    >>> heap = [r for r in mmio.maps() if r.path == "[heap]"]
    """

    start: int
    end: int
    perms: str
    offset: int
    device: str
    inode: int
    path: str | None
    size: int = 0
    rss: int = 0
    pss: int = 0
    shared_clean: int = 0
    shared_dirty: int = 0
    private_clean: int = 0
    private_dirty: int = 0
    referenced: int = 0
    anonymous: int = 0
    anon_huge_pages: int = 0
    shmem_pmd_mapped: int = 0
    file_pmd_mapped: int = 0
    swap: int = 0
    locked: int = 0
    vm_flags: frozenset = field(default_factory=frozenset)

    @property
    def length(self) -> int:
        """``end - start``."""
        return self.end - self.start

    @property
    def shared(self) -> bool:
        """Whether the region is a shared mapping."""
        return self.perms.endswith("s")

    @property
    def deleted(self) -> bool:
        """Whether the mapped file was deleted (its name ends in ``" (deleted)"`` in maps)."""
        return self.path is not None and self.inode != 0 and self.path.endswith(" (deleted)")

    @property
    def huge_bytes(self) -> int:
        """Bytes mapped with huge pages (anonymous, shmem and file)."""
        return self.anon_huge_pages + self.shmem_pmd_mapped + self.file_pmd_mapped


def maps(pid: int | str = "self", *, start: int = 0, end: int | None = None, figures: bool = True) -> list[Region]:
    """The memory regions of a process: ``/proc/PID/maps`` with ``smaps`` figures.

    Parameters
    ----------
    pid : int or "self"
        The process.
    start, end : int
        Only regions overlapping ``[start, end)`` (addresses); default all.
    figures : bool
        ``False`` reads only ``/proc/PID/maps``: the figures stay 0 and ``vm_flags`` empty, but the kernel
        need not walk every region's page tables (``smaps`` costs milliseconds per GiB of mapped memory).

    Raises
    ------
    ProcessLookupError
        No such process.
    PermissionError
        The process belongs to someone else (reading smaps needs ptrace rights).

    Examples
    --------
    >>> import mmio
    >>> regions = mmio.maps()
    >>> any(r.path == "[stack]" for r in regions)
    True
    """
    if pid != "self":
        number = -1
        if not isinstance(pid, (bool, str)):
            try:
                number = operator.index(pid)
            except TypeError:
                pass
        if number <= 0:
            raise ValueError(f"pid must be a positive int or 'self', not {pid!r}")
        pid = number
    path = f"/proc/{pid}/{'smaps' if figures else 'maps'}"
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        raise ProcessLookupError(errno.ESRCH, f"no process with pid {pid}", path) from None
    return _parse(text, start, end, figures)


def _parse(text: str, start: int, end: int | None, with_figures: bool = True) -> list[Region]:
    regions = []
    header = None
    figures: dict[str, Any] = {}
    for line in text.splitlines():
        if not line:
            continue
        if not with_figures:  # /proc/PID/maps: one line per region
            if (fields := _header(line, start, end)) is not None:
                regions.append(Region(*fields))
            continue
        if line[0].isupper():  # "Rss:   8 kB" or "VmFlags: rd mr"; headers start with hex digits
            key, _, rest = line.partition(":")
            if header is None:
                continue
            if key == "VmFlags":
                figures["vm_flags"] = frozenset(rest.split())
                regions.append(Region(*header, **figures))
                header = None
            elif key in _FIGURES:
                figures[_FIGURES[key]] = int(rest.split()[0]) * 1024
            continue
        header = _header(line, start, end)
        figures = {}
    return regions


def _header(line: str, start: int, end: int | None):
    """The maps fields of a region header line, or None when outside ``[start, end)``."""
    parts = line.split(None, 5)
    lo, hi = (int(x, 16) for x in parts[0].split("-"))
    if hi <= start or (end is not None and lo >= end):
        return None
    path = _unescape(parts[5].rstrip("\n")) if len(parts) > 5 else None
    return lo, hi, parts[1], int(parts[2], 16), parts[3], int(parts[4]), path


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(path: str) -> str:
    """Undo the kernel's octal escapes (a newline in a file name shows as ``\\012``)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), path) if "\\" in path else path
