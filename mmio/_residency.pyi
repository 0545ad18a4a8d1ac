"""Type stubs for the compiled residency module."""

import os
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

_Path = str | bytes | os.PathLike[str] | os.PathLike[bytes]

class CacheStat(NamedTuple):
    """Page-cache figures of a file range, in pages (``cachestat(2)``)."""
    cached: int
    dirty: int | None
    writeback: int | None
    evicted: int | None
    recently_evicted: int | None

def file_residency(path: _Path, offset: int = 0, length: int | None = None) -> Residency: ...
def cache_stat(path: _Path, offset: int = 0, length: int | None = None) -> CacheStat: ...
def touch(
    path: _Path, offset: int = 0, length: int | None = None, *, method: str = "willneed",
    chunk: int = ..., progress: Callable[[int, int], object] | None = None,
) -> int | None: ...
def evict(path: _Path, *, sync: bool = False) -> int | None: ...

class Residency:
    """Which pages of a byte range are in RAM."""
    pages: npt.NDArray[np.bool_]
    page_size: int
    offset: int
    length: int
    def __init__(
        self,
        pages: npt.NDArray[np.bool_],
        page_size: int,
        offset: int,
        length: int,
        page_origin: int | None = None,
    ) -> None: ...
    @property
    def total(self) -> int: ...
    @property
    def resident(self) -> int: ...
    @property
    def fraction(self) -> float: ...
    @property
    def resident_bytes(self) -> int: ...
    def runs(self) -> list[tuple[int, int]]: ...
    def to_string(self, width: int = 64, max_lines: int | None = None) -> str: ...
    def _repr_html_(self) -> str: ...
    def plot(self, ax: object = None) -> object: ...
