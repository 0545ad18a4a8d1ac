"""Type stubs for the compiled constructors module."""

import os
from typing import IO, Literal

from ._flags import Advice
from ._mapping import Mapping

_Target = str | bytes | os.PathLike[str] | os.PathLike[bytes] | int | IO[bytes]
_Mode = Literal["r", "r+", "c", "w+", "readonly", "readwrite", "write", "copyonwrite"]
_AdviceLike = Advice | str | int

def open(
    target: _Target,
    mode: _Mode = "r",
    *,
    offset: int = 0,
    length: int | None = None,
    size: int | None = None,
    populate: bool = False,
    huge: bool = False,
    advice: _AdviceLike | None = None,
) -> Mapping: ...
def anonymous(length: int, *, shared: bool = True, populate: bool = False, huge: bool = False) -> Mapping: ...
def _map_open_file(
    fd: int, path: object, mode: str, offset: int, length: int,
    populate: bool = False, huge: bool = False, advice: _AdviceLike | None = None,
) -> Mapping: ...
def resize(m: Mapping, new_size: int) -> None: ...
