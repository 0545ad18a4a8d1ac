"""The .npz format: a zip archive of .npy members.

Stored (uncompressed) members are mapped in place; the member's data begins
after its *local* file header, whose extra field may differ from the central
directory's, so the local header is read to find it.
"""

from __future__ import annotations

import os
import struct
import zipfile
from dataclasses import dataclass

from . import bad

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True, slots=True)
class Member:
    """One array in an .npz: its name (without ``.npy``), where its bytes are, and how they are stored."""

    name: str
    filename: str
    data_offset: int
    size: int
    compressed: bool


def members(path, read_at) -> dict[str, Member]:
    """The .npy members of the archive at ``path``; ``read_at(offset, n)`` reads raw bytes.

    Raises
    ------
    ValueError
        Naming ``path``: not a zip file, a member whose local header is broken, or
        a member that lies outside the file.
    """
    try:
        with zipfile.ZipFile(os.fsdecode(path)) as archive:  # a bytes path is not a file object
            infos = archive.infolist()
    except Exception as exc:  # zipfile raises BadZipFile, NotImplementedError, UnicodeDecodeError, ...
        raise bad(path, f"not a valid .npz (zip) file: {exc}") from None
    found = {}
    for info in infos:
        if info.is_dir():
            continue
        name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        found[name] = _member(path, info, name, read_at)
    return found


def _member(path, info: zipfile.ZipInfo, name: str, read_at) -> Member:
    if info.header_offset < 0:
        raise bad(path, f"member {info.filename!r}: negative local header offset")
    local = read_at(info.header_offset, _LOCAL_HEADER.size)
    if len(local) < _LOCAL_HEADER.size or not local.startswith(_LOCAL_MAGIC):
        raise bad(path, f"member {info.filename!r}: broken local zip header")
    fields = _LOCAL_HEADER.unpack(local)
    name_len, extra_len = fields[9], fields[10]
    data_offset = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
    compressed = info.compress_type != zipfile.ZIP_STORED
    if info.flag_bits & 0x1:
        raise bad(path, f"member {info.filename!r} is encrypted")
    return Member(name, info.filename, data_offset, info.compress_size, compressed)
