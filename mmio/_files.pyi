"""Type stubs for the compiled file-opening module (its Python-visible part)."""

import os

def open_regular(path: str | bytes | os.PathLike[str] | os.PathLike[bytes], mode: str, verb: str) -> tuple[int, int]: ...
