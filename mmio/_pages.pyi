"""Type stubs for the compiled range engine (its Python-visible part)."""

PAGE_SIZE: int
MAX_THREADS: int

def kernel_older_than(version: str) -> bool: ...
def threads_argument(threads: int) -> int: ...
