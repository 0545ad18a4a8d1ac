"""Type stubs for the compiled any-buffer module."""

import numpy as np
from typing_extensions import Buffer

from ._flags import Advice
from ._mapping import Mapping
from .pagecache import Residency

def advise(
    obj: Mapping | Buffer, advice: Advice | str | int, offset: int = 0, length: int | None = None,
    *, discard: bool = False,
) -> None: ...
def prefault_private(obj: Buffer | np.ndarray, threads: int, huge: bool | None) -> None: ...
def lock(obj: Mapping | Buffer, offset: int = 0, length: int | None = None, *, on_fault: bool = False) -> None: ...
def unlock(obj: Mapping | Buffer, offset: int = 0, length: int | None = None) -> None: ...
def buffer_residency(obj: Buffer, offset: int = 0, length: int | None = None) -> Residency: ...
