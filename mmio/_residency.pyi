"""Type stubs for the compiled file-residency module."""

import os
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from .pagecache import CacheStat, Residency

_Path = str | bytes | os.PathLike[str] | os.PathLike[bytes]

def file_residency(path: _Path, offset: int = 0, length: int | None = None) -> Residency: ...
def file_pages(fd: int, path: _Path | None, offset: int, length: int) -> npt.NDArray[np.bool_] | None: ...

LEAF_PAGES: int
_probes: list[int]

def cache_stat(path: _Path, offset: int = 0, length: int | None = None) -> CacheStat: ...
def touch(
    path: _Path, offset: int = 0, length: int | None = None, *, method: str = "willneed",
    chunk: int = ..., progress: Callable[[int, int], object] | None = None,
) -> int | None: ...
def evict(path: _Path, *, sync: bool = False) -> int | None: ...
