"""Type stubs for the compiled error module."""

class MappingFaultError(OSError):
    """A read or write through mmio hit a page the kernel could not supply (errno EFAULT)."""
    offset: int | None
    def __init__(self, *args: object, offset: int | None = None) -> None: ...

def oserror(err: int, attempted: str, filename: object = None) -> OSError: ...
