"""Residency of many files: directory walks and a table of results (used by the CLI and notebooks)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Iterator

from ._residency import Residency, file_residency


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
        residency = file_residency(path)
    except (OSError, ValueError) as exc:
        return FileResidency(path, _size(path), None, str(exc))
    return FileResidency(path, residency.length, residency)


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


class ResidencyTable:
    """The residency of several files: ``rows`` (FileResidency), totals, and a notebook table.

    Examples
    --------
    >>> import mmio
    >>> table = mmio.residency(["/etc/hostname"])     # doctest: +SKIP
    >>> table.rows[0].residency.fraction             # doctest: +SKIP
    1.0
    """

    def __init__(self, rows: list[FileResidency]):
        self.rows = rows

    @classmethod
    def of(cls, targets: Iterable, recursive: bool = False, progress=None) -> "ResidencyTable":
        """Measure every file named (and, with ``recursive``, under the directories named).

        ``progress(path)`` is called after each file.  Each row holds the file's
        :class:`~mmio.Residency` or the error that kept mmio from knowing it.
        """
        rows = []
        for path, error in walk(targets, recursive):
            rows.append(FileResidency(path, None, None, error) if error else measure(path))
            if progress is not None:
                progress(path)
        return cls(rows)

    @property
    def resident_pages(self) -> int:
        """Resident pages over the files whose residency is known."""
        return sum(r.residency.resident for r in self.rows if r.residency is not None)

    @property
    def total_pages(self) -> int:
        """Pages over the files whose residency is known."""
        return sum(r.residency.total for r in self.rows if r.residency is not None)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def _repr_html_(self) -> str:
        from .display import table_html
        return table_html(self)

    def __repr__(self) -> str:
        return f"<mmio.ResidencyTable {len(self.rows)} files, {self.resident_pages}/{self.total_pages} pages resident>"
