"""File formats mmio reads arrays from: each module turns a header into (dtype, shape, offset).

Parsers here never evaluate text: they tokenize it, in time linear in its size,
and turn every malformed or hostile header into a ``ValueError`` naming the file.
"""

from __future__ import annotations

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"


def detect(head: bytes, path: str = "") -> str | None:
    """The format of a file from its first bytes: ``"npy"``, ``"npz"``, ``"safetensors"`` or ``None``.

    The content decides; the extension only breaks ties (there are none among these formats).
    """
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(ZIP_MAGIC) or head.startswith(EMPTY_ZIP_MAGIC):
        return "npz"
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 32):
        return "safetensors"
    return None


def bad(path, what: str) -> ValueError:
    """The error for a malformed file: names the file and what is wrong."""
    return ValueError(f"{path}: {what}")
