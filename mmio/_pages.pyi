"""Type stubs for the compiled range engine (its Python-visible part)."""

import numpy as np
import numpy.typing as npt

PAGE_SIZE: int
MAX_THREADS: int

def coalesced(
    starts: npt.ArrayLike, ends: npt.ArrayLike, gap: int = 0
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
def kernel_older_than(version: str) -> bool: ...
def threads_argument(threads: int) -> int: ...
