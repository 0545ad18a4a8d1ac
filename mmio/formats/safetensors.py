"""The safetensors format: an 8-byte little-endian header length, a JSON header, then the data.

The header maps tensor names to ``{"dtype", "shape", "data_offsets": [begin, end]}``
(offsets relative to the start of the data) plus an optional ``"__metadata__"``
dict of strings.  JSON is parsed by the standard library (no evaluation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from . import HEAD, ArraySpec, Layout, ReadAt, bad, nbytes

NAME = "safetensors"

MAX_HEADER = 100 << 20
"""Header size limit (100 MiB), as in the reference implementation."""

DTYPES = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"), "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8"),
    "C64": np.dtype("<c8"),
}
"""safetensors dtype names numpy can represent (BF16 and the F8 formats have no numpy dtype)."""


@dataclass(frozen=True, slots=True)
class Tensor:
    """One tensor of a safetensors file: dtype, shape and absolute byte offset of its data."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    data_offset: int


def sniff(head: bytes) -> bool:
    """Whether a file starting with ``head`` looks like safetensors: a plausible length, then ``{``."""
    return len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 32)


def describe(read_at: ReadAt, size: int, path) -> Layout:
    """The tensors of a safetensors file of ``size`` bytes, in the header's order, and its metadata."""
    head = read_at(0, min(size, HEAD))
    n = header_length(head, path, size)
    if 8 + n > len(head):
        head = read_at(0, 8 + n)
    tensors, metadata = parse_header(head, path, size)
    specs = tuple(ArraySpec(t.name, t.dtype, t.shape, "C", t.data_offset) for t in tensors.values())
    return Layout(NAME, specs, "dict", metadata)


def parse_header(head: bytes, path, file_size: int) -> tuple[dict[str, Tensor], dict[str, str]]:
    """``(tensors, metadata)`` from the start of a safetensors file.

    ``head`` must hold at least ``8 + header length`` bytes (see :func:`header_length`).

    Raises
    ------
    ValueError
        Naming ``path`` and what is wrong: bad length, JSON, dtype, shape or offsets,
        overlapping tensors, or data past the end of the file.
    """
    n = header_length(head, path, file_size)
    try:
        header = json.loads(head[8:8 + n], object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        raise bad(path, f"safetensors header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise bad(path, "safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is None:  # null or absent: no metadata, as the reference reader has it
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad(path, "safetensors __metadata__ must be an object of strings")
    base = 8 + n
    tensors = {name: _tensor(path, name, entry, base) for name, entry in header.items()}
    _check_layout(path, tensors, header, base, file_size)
    return tensors, metadata


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate keys {sorted({k for k in keys if keys.count(k) > 1})}")
    return dict(pairs)


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


def _tensor(path, name: str, entry, base: int) -> Tensor:
    if not isinstance(entry, dict):
        raise bad(path, f"tensor {name!r}: entry is not an object")
    code = entry.get("dtype")
    if not isinstance(code, str) or code not in DTYPES:
        hint = " (numpy has no such dtype)" if code in ("BF16", "F8_E4M3", "F8_E5M2") else ""
        raise bad(path, f"tensor {name!r}: unsupported dtype {code!r}{hint}")
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise bad(path, f"tensor {name!r}: shape {shape!r} is not a list of non-negative ints")
    offsets = entry.get("data_offsets")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(type(o) is int and o >= 0 for o in offsets) or offsets[0] > offsets[1]):
        raise bad(path, f"tensor {name!r}: data_offsets {offsets!r} is not [begin, end]")
    dtype = DTYPES[code]
    size = nbytes(dtype, tuple(shape))
    if offsets[1] - offsets[0] != size:
        raise bad(path, f"tensor {name!r}: {code} {shape} needs {size} bytes, "
                        f"data_offsets span {offsets[1] - offsets[0]}")
    return Tensor(name, dtype, tuple(shape), base + offsets[0])


def _check_layout(path, tensors: dict, header: dict, base: int, file_size: int) -> None:
    # As the reference implementation requires: tensors tile the data exactly, no gaps, no overlaps.
    spans = sorted((tuple(header[name]["data_offsets"]), name) for name in tensors)
    end = 0
    for (begin, stop), name in spans:
        if begin < end:
            raise bad(path, f"tensor {name!r} overlaps another tensor")
        if begin > end:
            raise bad(path, f"a gap of {begin - end} bytes before tensor {name!r}")
        end = stop
    if base + end != file_size:
        raise bad(path, f"tensor data ends at byte {base + end} but the file has {file_size}")
