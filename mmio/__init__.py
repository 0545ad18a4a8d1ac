"""mmio: memory-mapped file I/O for Python on Linux.

Map files and anonymous memory (:func:`open`, :func:`anonymous`), hand the
memory out as zero-copy numpy arrays, and see and steer what the kernel does
with it (advice, residency).  See the README for a tour.
"""

try:
    from ._mapping import Mapping
except ModuleNotFoundError as _missing:
    from ._checkout import source_tree_error as _source_tree_error
    raise _source_tree_error(_missing) from None
from ._buffers import advise, lock, unlock
from ._errors import MappingFaultError
from ._flags import Advice, Prot
from ._limits import memlock_limit
from ._open import anonymous, open
from ._pages import PAGE_SIZE
from ._process import lock_all, unlock_all
from ._residency import cache_stat, evict, touch
from .arrays import create, load, open_array
from .gather import take
from .procmaps import Region, maps
from .pagecache import CacheStat, Residency, residency
from .sharing import SharedArray, SharedRef, StaleFileError, share
from .watching import Watch, watch

__version__ = "0.1.0"

__all__ = [
    "PAGE_SIZE",
    "Advice",
    "CacheStat",
    "Mapping",
    "MappingFaultError",
    "Prot",
    "Region",
    "Residency",
    "SharedArray",
    "SharedRef",
    "StaleFileError",
    "advise",
    "anonymous",
    "cache_stat",
    "create",
    "evict",
    "load",
    "lock",
    "lock_all",
    "maps",
    "memlock_limit",
    "open",
    "open_array",
    "residency",
    "share",
    "take",
    "touch",
    "unlock",
    "unlock_all",
    "watch",
]
