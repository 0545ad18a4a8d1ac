"""Type stubs for the compiled constants module."""

PAGE_SIZE: int
ADVICE: dict[str, int]
PROT: dict[str, int]
