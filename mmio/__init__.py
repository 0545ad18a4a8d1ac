"""mmio: memory-mapped file I/O for Python on Linux.

Map files and anonymous memory (:func:`open`, :func:`anonymous`), hand the
memory out as zero-copy numpy arrays, and see and steer what the kernel does
with it (advice, residency).  See the README for a tour.
"""

from ._errors import MappingFaultError
from ._flags import PAGE_SIZE, Advice, Prot
from ._mapping import Mapping, anonymous, open
from ._residency import Residency

__version__ = "0.1.0"

__all__ = [
    "PAGE_SIZE",
    "Advice",
    "Mapping",
    "MappingFaultError",
    "Prot",
    "Residency",
    "anonymous",
    "open",
]
