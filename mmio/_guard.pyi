"""Type stubs for the compiled SIGBUS-guard module (its Python-visible name is the parallel read)."""

import os

from typing_extensions import Buffer

def pread_into(fd: int, buffer: Buffer, offset: int, threads: int,
               path: str | bytes | os.PathLike[str] | None = None) -> int: ...
