"""The safetensors format: an 8-byte little-endian header length, a JSON header, then the data.

The header maps tensor names to ``{"dtype", "shape", "data_offsets": [begin, end]}``
(offsets relative to the start of the data) plus an optional ``"__metadata__"``
dict of strings.  JSON is parsed by the standard library (no evaluation).
"""

from __future__ import annotations

import functools
import json
import numpy as np

from . import HEAD, MAX_DIMS, ArraySpec, Layout, ReadAt, bad, check_shape, collector_paused, nbytes

NAME = "safetensors"

MAX_HEADER = 100_000_000
"""Header size limit in bytes, as in the reference implementation."""

JSON_WHITESPACE = b" \t\r\n"

DTYPES = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"), "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8"),
    "C64": np.dtype("<c8"),
}
"""safetensors dtype names numpy itself can represent."""

ML_DTYPES = {"BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu"}
"""safetensors dtype names whose numpy dtype comes from ``ml_dtypes`` (the optional ``pymmio[ml]`` extra)."""

PACKED = {"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}
"""safetensors dtypes of fewer bits than a byte, packed: no numpy dtype has items that small."""



def sniff(head: bytes) -> bool:
    """Whether a file starting with ``head`` looks like safetensors: a plausible length, then ``{`` (after
    JSON whitespace, which the reference reader accepts too)."""
    return (len(head) >= 9 and int.from_bytes(head[:8], "little") < (1 << 32)
            and head[8:].lstrip(JSON_WHITESPACE)[:1] == b"{")


def describe(read_at: ReadAt, size: int, path) -> Layout:
    """The tensors of a safetensors file of ``size`` bytes, in the header's order, and its metadata."""
    head = read_at(0, min(size, HEAD))
    n = header_length(head, path, size)
    text = head[8:8 + n] if 8 + n <= len(head) else read_at(8, n)
    specs, metadata = parse_header(text, path, 8 + n, size)
    return Layout(NAME, specs, "dict", metadata)


def parse_header(text: bytes, path, base: int, file_size: int) -> tuple[tuple[ArraySpec, ...], dict[str, str]]:
    """``(tensors, metadata)`` from the JSON header ``text`` of a safetensors file whose data starts at ``base``.

    Raises
    ------
    ValueError
        Naming ``path`` and what is wrong: bad JSON, dtype, shape or offsets, overlapping
        tensors, or data past the end of the file.
    """
    with collector_paused():
        return _parse(text, path, base, file_size)


def _parse(text: bytes, path, base: int, file_size: int) -> tuple[tuple[ArraySpec, ...], dict[str, str]]:
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        raise bad(path, f"safetensors header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise bad(path, "safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is None:  # null or absent: no metadata, as the reference reader has it
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad(path, "safetensors __metadata__ must be an object of strings")
    specs = tuple(_spec(path, name, entry, base) for name, entry in header.items())
    _check_layout(path, specs, base, file_size)
    return specs, metadata


def _no_duplicates(pairs):
    found = dict(pairs)
    if len(found) != len(pairs):
        keys = [k for k, _ in pairs]
        raise ValueError(f"duplicate keys {sorted({k for k in keys if keys.count(k) > 1})[:10]}")
    return found


def header_length(head: bytes, path, file_size: int) -> int:
    """The JSON header's length, checked against the file."""
    if len(head) < 8:
        raise bad(path, "too short for a safetensors file")
    n = int.from_bytes(head[:8], "little")
    if n > MAX_HEADER:
        raise bad(path, f"safetensors header of {n} bytes is larger than the limit ({MAX_HEADER})")
    if 8 + n > file_size:
        raise bad(path, f"safetensors header claims {n} bytes but the file has {file_size}")
    return n


def _spec(path, name: str, entry, base: int) -> ArraySpec:
    """The tensor ``name`` as an ArraySpec (offset absolute); a header may hold a million, so the common case
    is checked in few steps and a refusal is worked out by :func:`_refuse`."""
    try:
        code = entry["dtype"]
        dtype = DTYPES.get(code)
        shape = entry["shape"]
        begin, end = entry["data_offsets"]
    except (TypeError, KeyError, ValueError):
        raise _refuse(path, name, entry) from None
    if dtype is None:
        dtype = _ml_dtype(path, name, entry)
    if (type(shape) is not list or len(shape) > MAX_DIMS or type(begin) is not int or type(end) is not int
            or not 0 <= begin <= end or not all(type(d) is int and d >= 0 for d in shape)):
        raise _refuse(path, name, entry)
    shape = tuple(shape)
    if len(shape) > 1:  # one dimension always fits (the data offsets bound it)
        check_shape(shape, dtype, f"{path}: tensor {name!r}")
    size = nbytes(dtype, shape)
    if end - begin != size:
        raise bad(path, f"tensor {name!r}: {entry['dtype']} {list(shape)} needs {size} bytes, "
                        f"data_offsets span {end - begin}")
    return ArraySpec(name, dtype, shape, "C", base + begin)


def _ml_dtype(path, name: str, entry: dict) -> np.dtype:
    """The ``ml_dtypes`` dtype for a safetensors dtype numpy lacks."""
    code = entry["dtype"]
    if code not in ML_DTYPES and code not in PACKED:
        raise _refuse(path, name, entry)
    if code in PACKED:
        raise bad(path, f"tensor {name!r}: dtype {code} packs {PACKED[code]}-bit items, smaller than any numpy "
                        "dtype's (a byte): mmio cannot map it")
    try:
        return _ml_dtype_of(code)
    except ImportError:
        raise bad(path, f"tensor {name!r} has dtype {code}, which numpy has only through ml_dtypes: "
                        "pip install ml_dtypes (or pymmio[ml])") from None


@functools.cache
def _ml_dtype_of(code: str) -> np.dtype:
    import ml_dtypes
    return np.dtype(getattr(ml_dtypes, ML_DTYPES[code]))


def _refuse(path, name: str, entry) -> ValueError:
    """What is wrong with a tensor entry that the fast check refused."""
    if not isinstance(entry, dict):
        return bad(path, f"tensor {name!r}: entry is not an object")
    code = entry.get("dtype")
    if not isinstance(code, str) or code not in DTYPES and code not in ML_DTYPES:
        return bad(path, f"tensor {name!r}: unsupported dtype {code!r}")
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        return bad(path, f"tensor {name!r}: shape {shape!r} is not a list of non-negative ints")
    if len(shape) > MAX_DIMS:
        return bad(path, f"tensor {name!r}: shape has {len(shape)} dimensions; numpy allows {MAX_DIMS}")
    return bad(path, f"tensor {name!r}: data_offsets {entry.get('data_offsets')!r} is not [begin, end]")


def _check_layout(path, specs: tuple[ArraySpec, ...], base: int, file_size: int) -> None:
    # As the reference implementation requires: tensors tile the data exactly, no gaps, no overlaps.
    spans = sorted((spec.offset, spec.offset + spec.nbytes, spec.name) for spec in specs)
    end = base
    for begin, stop, name in spans:
        if begin < end:
            raise bad(path, f"tensor {name!r} overlaps another tensor")
        if begin > end:
            raise bad(path, f"a gap of {begin - end} bytes before tensor {name!r}")
        end = stop
    if end != file_size:
        raise bad(path, f"tensor data ends at byte {end} but the file has {file_size}")
