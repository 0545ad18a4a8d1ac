"""File formats mmio reads arrays from, behind one protocol.

Each format module has a ``NAME``, ``sniff(head) -> bool`` (does a file starting with these bytes look like
mine?) and ``describe(read_at, size, path) -> Layout``: where every array of the file lies and what it is, as
:class:`ArraySpec` records, read through ``read_at(offset, n) -> bytes``. A format never opens or maps the file;
``mmio.load`` does that once, from the specs. Adding a format is one module and one line in ``FORMATS``.

Parsers here never evaluate text: they tokenize it, in time linear in its size, and turn every malformed or
hostile header into a ``ValueError`` naming the file.
"""

from __future__ import annotations

import contextlib
import gc

from typing import Callable, NamedTuple

import numpy as np

ReadAt = Callable[[int, int], bytes]
"""``read_at(offset, n)``: up to ``n`` bytes of the file from ``offset`` (fewer at its end)."""

HEAD = 4096
"""Bytes a format may expect ``read_at(0, HEAD)`` to be cheap for: the whole header of most files."""


class ArraySpec(NamedTuple):
    """One array of a file: its name, dtype, shape, memory order and the byte offset of its first element.

    ``refusal`` is set instead when the array cannot be mapped (a compressed ``.npz`` member, a broken member
    header): asking for the array raises ``ValueError(refusal)``, the other arrays of the file still load.
    ``raw_member`` names an ``.npz`` member that is not an ``.npy`` file at all: like ``numpy.load``, ``load``
    hands out its bytes.

    Examples
    --------
    >>> import numpy as np
    >>> from mmio.formats import ArraySpec
    >>> ArraySpec("w", np.dtype("<f4"), (2, 3), "C", 128).nbytes
    24
    """

    name: str | None
    dtype: np.dtype
    shape: tuple[int, ...]
    order: str
    offset: int
    refusal: str | None = None
    raw_member: str | None = None

    @property
    def nbytes(self) -> int:
        """Bytes of array data."""
        return nbytes(self.dtype, self.shape)


class Layout(NamedTuple):
    """What a format found in a file: its arrays, how ``load`` hands them out, and the file's metadata.

    ``container`` is ``"array"`` (the file's one array), ``"lazy"`` (a mapping of name to array that builds each
    array when it is first asked for, as ``numpy.load`` does for ``.npz``) or ``"dict"`` (every array at once).
    """

    format: str
    arrays: tuple[ArraySpec, ...]
    container: str
    metadata: dict = {}  # never mutated: a format with metadata passes its own dict


MAX_DIMS = 64
"""numpy's limit on dimensions."""

_INTP_MAX = (1 << 63) - 1


def check_shape(shape: tuple[int, ...], dtype: np.dtype, path) -> None:
    """Refuse, naming ``path``, a shape numpy cannot make an array of (zero-element ones included): more than
    64 dimensions, a dimension or a size (zeros left out, as numpy counts) past what an address can hold."""
    if len(shape) > MAX_DIMS:
        raise bad(path, f"shape has {len(shape)} dimensions; numpy allows {MAX_DIMS}")
    items = 1
    for d in shape:
        if d > _INTP_MAX:
            raise bad(path, f"shape {shape} has a dimension too large to address")
        items *= max(d, 1)
    if items * dtype.itemsize > _INTP_MAX:
        raise bad(path, f"shape {shape} of {dtype} is larger than any array can be")


def nbytes(dtype: np.dtype, shape: tuple[int, ...]) -> int:
    """Bytes of an array of ``dtype`` and ``shape`` (Python ints: no overflow)."""
    n = dtype.itemsize
    for d in shape:
        n *= d
    return n


@contextlib.contextmanager
def collector_paused():
    """Pause the cyclic garbage collector while a header becomes millions of small containers: none of them
    is garbage yet, and the collections that their allocation triggers would cost 3-4x the parse."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


MESSAGE_LIMIT = 400  # characters of what is wrong: a hostile header is not echoed in full


def bad(path, what: str) -> ValueError:
    """The error for a malformed file: names the file and what is wrong (cut to a sane length)."""
    if len(what) > MESSAGE_LIMIT:
        what = f"{what[:MESSAGE_LIMIT]}... ({len(what) - MESSAGE_LIMIT} more characters)"
    return ValueError(f"{path}: {what}")


def shifted(read_at: ReadAt, base: int) -> ReadAt:
    """A ``read_at`` whose offset 0 is ``base`` of ``read_at`` (for a file inside a file)."""
    return lambda offset, n: read_at(base + offset, n)


def describe(read_at: ReadAt, size: int, path) -> Layout:
    """The layout of a file of ``size`` bytes, by the first format whose ``sniff`` accepts its first bytes.

    Raises
    ------
    ValueError
        Naming ``path``: no format knows the file, or its format finds it malformed.
    """
    head = read_at(0, HEAD)
    for module in FORMATS:
        if module.sniff(head):
            return module.describe(read_at, size, path)
    raise bad(path, "not a .npy, .npz or .safetensors file (unrecognised first bytes); "
                    "use mmio.open_array for raw binary")


from . import npy, npz, safetensors, shards  # noqa: E402  (the formats use the names above)

FORMATS = (npy, npz, safetensors)
"""The formats, in the order their ``sniff`` is tried."""
