"""Type stubs for the compiled Mapping module."""

import os
from types import TracebackType
from typing import IO, Literal, overload

import numpy as np
import numpy.typing as npt

from ._flags import Advice
from ._residency import Residency

_Target = str | bytes | os.PathLike[str] | os.PathLike[bytes] | int | IO[bytes]
_Mode = Literal["r", "r+", "c", "w+", "readonly", "readwrite", "write", "copyonwrite"]
_AdviceLike = Advice | str | int

class MappingExport:
    """The ``.base`` of arrays from :meth:`Mapping.array`; keeps ``mapping`` open."""
    @property
    def mapping(self) -> Mapping: ...

class Mapping:
    """A memory mapping of a file or of anonymous memory."""
    def __init__(self, *args: object, **kwargs: object) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Mapping: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    @overload
    def __getitem__(self, key: int, /) -> int: ...
    @overload
    def __getitem__(self, key: slice, /) -> bytes: ...
    @overload
    def __setitem__(self, key: int, value: int, /) -> None: ...
    @overload
    def __setitem__(self, key: slice, value: bytes | bytearray | memoryview | npt.NDArray[np.generic], /) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def size(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def mode(self) -> str: ...
    @property
    def path(self) -> str | bytes | None: ...
    @property
    def address(self) -> int: ...
    @property
    def readonly(self) -> bool: ...
    def array(
        self,
        dtype: npt.DTypeLike = "u1",
        shape: int | tuple[int, ...] | None = None,
        offset: int = 0,
        order: Literal["C", "F"] = "C",
    ) -> np.ndarray: ...
    def advise(
        self, advice: _AdviceLike, offset: int = 0, length: int | None = None, *, discard: bool = False
    ) -> None: ...
    def residency(self, offset: int = 0, length: int | None = None) -> Residency: ...
    def populate(
        self, offset: int = 0, length: int | None = None, *, write: bool = False, threads: int = 1
    ) -> None: ...

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
