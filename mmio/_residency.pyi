"""Type stubs for the compiled file-residency module."""

import os
from collections.abc import Callable

from .pagecache import CacheStat, Residency

_Path = str | bytes | os.PathLike[str] | os.PathLike[bytes]

def file_residency(path: _Path, offset: int = 0, length: int | None = None) -> Residency: ...
def cache_stat(path: _Path, offset: int = 0, length: int | None = None) -> CacheStat: ...
def touch(
    path: _Path, offset: int = 0, length: int | None = None, *, method: str = "willneed",
    chunk: int = ..., progress: Callable[[int, int], object] | None = None,
) -> int | None: ...
def evict(path: _Path, *, sync: bool = False) -> int | None: ...
