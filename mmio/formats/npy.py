"""The .npy format: reading and writing the header (versions 1.0, 2.0 and 3.0).

Layout: ``\\x93NUMPY``, a major and minor version byte, the header length
(2 bytes little-endian in 1.0, 4 bytes in 2.0 and 3.0), then the header: a
Python dict literal ``{'descr': ..., 'fortran_order': ..., 'shape': ...}``
(latin-1 in 1.0/2.0, utf-8 in 3.0) padded with spaces and a newline so the data
starts on a 64-byte boundary.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from . import HEAD, MAX_DIMS, ArraySpec, Layout, ReadAt, bad, check_shape, nbytes
from ._literal import LiteralError, parse

NAME = "npy"
NPY_MAGIC = b"\x93NUMPY"

MAX_HEADER = 1 << 22
"""Headers longer than this (4 MiB) are refused; numpy itself stops at 10 kB by default."""

ALIGN = 64                  # numpy aligns the data of a .npy file to 64 bytes
GROWTH_AXIS_MAX_DIGITS = 21  # spare header room numpy leaves for the growth axis's length
MAX_TYPESTR = 256  # '<f8', '|S10', '(2,3)<i4', 'M8[ns]': numpy type strings are short

# The header numpy writes for a plain dtype, matched without the general parser.
_DIM = r"(?:0|[1-9][0-9]{0,18})"
_SIMPLE = re.compile(
    r"\{'descr': '([^'\\]{1,64})', 'fortran_order': (True|False), "
    rf"'shape': \((|{_DIM},|(?:{_DIM}, )+{_DIM})\), \}} *\n?")
_SIMPLE_LONGEST = 2048  # 64 dimensions of 19 digits fit; longer text would cost the regex memory per repeat
_dtype_cache: dict[str, np.dtype] = {}
_header_cache: dict[bytes, tuple] = {}  # header bytes -> (dtype, shape, fortran): parsing depends on nothing else
_CACHE_LIMIT = 512
_CACHEABLE = 4096  # only headers this short are cached: the cache stays under 2 MiB


class NpyHeader(NamedTuple):
    """What a .npy header says: the array's dtype, shape, order, and where its data starts."""

    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool
    data_offset: int

    @property
    def nbytes(self) -> int:
        """Bytes of array data."""
        return nbytes(self.dtype, self.shape)


def sniff(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a .npy file (its magic bytes)."""
    return head.startswith(NPY_MAGIC)


def describe(read_at: ReadAt, size: int, path) -> Layout:
    """The one array of a .npy file of ``size`` bytes (see :mod:`mmio.formats`).

    Examples
    --------
    >>> import io, numpy as np
    >>> from mmio.formats import npy
    >>> buf = io.BytesIO(); np.save(buf, np.zeros((2, 3), "<f4")); data = buf.getvalue()
    >>> npy.describe(lambda offset, n: data[offset:offset + n], len(data), "x.npy").arrays[0]
    ArraySpec(name=None, dtype=dtype('float32'), shape=(2, 3), order='C', offset=128, refusal=None, raw_member=None)
    """
    head = read_at(0, min(size, HEAD))
    _, end, _ = header_span(head, path)
    if len(head) < end <= size:  # the header is longer than what was read
        head = read_at(0, end)
    header = parse_header(head, path, size)
    order = "F" if header.fortran_order else "C"
    return Layout(NAME, (ArraySpec(None, header.dtype, header.shape, order, header.data_offset),), "array")


def header_span(head: bytes, path) -> tuple[int, int, str]:
    """``(header_start, header_end, encoding)`` from the first 12 bytes (at least) of a .npy file."""
    if not head.startswith(NPY_MAGIC):
        raise bad(path, "not a .npy file (wrong magic bytes)")
    if len(head) < 10:
        raise bad(path, "truncated .npy header")
    major, minor = head[6], head[7]
    if (major, minor) == (1, 0):
        start, length = 10, int.from_bytes(head[8:10], "little")
    elif (major, minor) in ((2, 0), (3, 0)):
        if len(head) < 12:
            raise bad(path, "truncated .npy header")
        start, length = 12, int.from_bytes(head[8:12], "little")
    else:
        raise bad(path, f"unsupported .npy format version {major}.{minor} (mmio reads 1.0, 2.0 and 3.0)")
    if length > MAX_HEADER:
        raise bad(path, f".npy header of {length} bytes is larger than mmio accepts ({MAX_HEADER})")
    return start, start + length, "utf-8" if major == 3 else "latin-1"


def parse_header(head: bytes, path, file_size: int) -> NpyHeader:
    """Parse a .npy header; ``head`` must hold the whole header (see :func:`header_span`).

    Raises
    ------
    ValueError
        Naming ``path``: bad magic or version, a header past the end of the file or not a
        dict of the three keys, a bad dtype or shape, an object dtype, or data that does
        not fit the file.
    """
    start, end, encoding = header_span(head, path)
    if end > file_size or end > len(head):
        raise bad(path, f".npy header claims {end - start} bytes but the file ends first")
    raw = head[:end]
    parsed = _header_cache.get(raw)
    if parsed is None:
        parsed = _parse_text(raw[start:], encoding, path)
        # Structured dtypes are mutable (their field names can be set): never share one.
        if end <= _CACHEABLE and parsed[0].names is None:
            if len(_header_cache) >= _CACHE_LIMIT:
                _header_cache.clear()
            _header_cache[raw] = parsed
    dtype, shape, fortran = parsed
    header = NpyHeader(dtype, shape, fortran, end)
    if end + header.nbytes > file_size:
        raise bad(path, f"array data of {header.nbytes} bytes ({dtype}, shape {shape}) "
                        f"does not fit the file: {file_size - end} bytes follow the header")
    return header


def _parse_text(body: bytes, encoding: str, path) -> tuple:
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        raise bad(path, f".npy header is not valid {encoding}: {exc}") from None
    m = _SIMPLE.fullmatch(text) if len(text) <= _SIMPLE_LONGEST else None
    if m is None:
        dtype, fortran, shape = _general(text, path)
    else:
        shape = tuple(int(x) for x in m.group(3).split(",") if x.strip())
        dtype, fortran = _simple_dtype(m.group(1), path), m.group(2) == "True"
    check_shape(shape, dtype, path)
    return dtype, shape, fortran


def _simple_dtype(descr: str, path) -> np.dtype:
    dtype = _dtype_cache.get(descr)
    if dtype is None:
        dtype = _checked_dtype(descr, path)
        if len(_dtype_cache) < 256:
            _dtype_cache[descr] = dtype
    return dtype


def _general(text: str, path):
    try:
        header = parse(text)
    except LiteralError as exc:
        raise bad(path, f".npy header is not a literal dict: {exc}") from None
    if not isinstance(header, dict):
        raise bad(path, f".npy header is a {type(header).__name__}, not a dict")
    if set(header) != {"descr", "fortran_order", "shape"}:
        raise bad(path, f".npy header keys are {sorted(map(str, header))}, "
                        "expected ['descr', 'fortran_order', 'shape']")
    fortran = header["fortran_order"]
    if not isinstance(fortran, bool):
        raise bad(path, f"fortran_order is {fortran!r}, not True or False")
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise bad(path, f"shape {shape!r} is not a tuple of ints")
    if any(d < 0 for d in shape):
        raise bad(path, f"shape {shape!r} has a negative dimension")
    return _checked_dtype(header["descr"], path), fortran, shape


def _checked_dtype(descr, path) -> np.dtype:
    if isinstance(descr, str) and len(descr) > MAX_TYPESTR:
        raise bad(path, f"descr is a string of {len(descr)} characters, too long for a numpy type string")
    try:
        dtype = np.lib.format.descr_to_dtype(descr)
    except Exception as exc:  # numpy raises TypeError, ValueError, KeyError... for bad descrs
        raise bad(path, f"descr {descr!r} is not a dtype: {exc}") from None
    if dtype.hasobject:
        raise bad(path, f"dtype {dtype} holds Python objects, which cannot be mapped (or loaded safely)")
    return dtype


def build_header(dtype: np.dtype, shape: tuple[int, ...], fortran_order: bool) -> bytes:
    """The bytes of a .npy header, byte for byte what ``np.save`` and ``open_memmap`` write.

    That is: the dict text, spare spaces so the growth axis can reach 21 digits in place, padding to a
    multiple of 64 bytes with a final newline (a whole 64 bytes of it when already aligned), and the oldest
    version that holds it (1.0; 2.0 past 64 KiB; 3.0 for field names that are not latin-1).

    Examples
    --------
    >>> import io, numpy as np
    >>> buf = io.BytesIO(); np.save(buf, np.zeros((2, 3), "<f4"))
    >>> buf.getvalue()[:128] == build_header(np.dtype("<f4"), (2, 3), False)
    True
    """
    shape = tuple(int(d) for d in shape)
    text = (f"{{'descr': {np.lib.format.dtype_to_descr(dtype)!r}, 'fortran_order': {fortran_order!r}, "
            f"'shape': {shape!r}, }}")
    if shape:
        text += " " * (GROWTH_AXIS_MAX_DIGITS - len(repr(shape[-1 if fortran_order else 0])))
    for major, encoding, size_bytes in ((1, "latin-1", 2), (2, "latin-1", 4), (3, "utf-8", 4)):
        try:
            body = text.encode(encoding)
        except UnicodeEncodeError:
            continue
        used = len(NPY_MAGIC) + 2 + size_bytes + len(body) + 1
        padded = body + b" " * (ALIGN - used % ALIGN) + b"\n"
        if len(padded) < 1 << (8 * size_bytes):
            return NPY_MAGIC + bytes([major, 0]) + len(padded).to_bytes(size_bytes, "little") + padded
    raise ValueError(f"a .npy header for dtype {dtype} and shape {shape} does not fit any format version")
