"""Type stubs for the compiled residency module."""

import numpy as np
import numpy.typing as npt

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
