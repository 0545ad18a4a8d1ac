"""Type stubs for the compiled any-buffer module."""

import os
from typing_extensions import Buffer

from ._flags import Advice
from ._mapping import Mapping
from ._residency import Residency
from .files import ResidencyTable

def advise(
    obj: Mapping | Buffer, advice: Advice | str | int, offset: int = 0, length: int | None = None,
    *, discard: bool = False,
) -> None: ...
def lock(obj: Mapping | Buffer, offset: int = 0, length: int | None = None, *, on_fault: bool = False) -> None: ...
def unlock(obj: Mapping | Buffer, offset: int = 0, length: int | None = None) -> None: ...
def residency(
    target: str | bytes | os.PathLike[str] | os.PathLike[bytes] | Mapping | Buffer | list | tuple,
    offset: int = 0,
    length: int | None = None,
) -> Residency | ResidencyTable: ...
