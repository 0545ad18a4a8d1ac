"""Type stubs for the compiled constants module."""

ADVICE: dict[str, int]
PROT: dict[str, int]
