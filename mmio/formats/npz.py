"""The .npz format: a zip archive of .npy members.

Stored (uncompressed) members are mapped in place; the member's data begins after its *local* file header,
whose extra field may differ from the central directory's, so the local header is read to find it. Each member
is described by the .npy describer at its offset. The archive is read through ``read_at``, never reopened.
"""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np

from . import ArraySpec, Layout, ReadAt, bad, npy, shifted

NAME = "npz"
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")


def sniff(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a zip archive (an empty one included)."""
    return head.startswith(ZIP_MAGIC) or head.startswith(EMPTY_ZIP_MAGIC)


def describe(read_at: ReadAt, size: int, path) -> Layout:
    """The members of an .npz of ``size`` bytes, named as numpy names them (``"x"`` for ``x.npy``).

    A member that cannot be mapped (compressed, encrypted, not a valid .npy) is described with a
    ``refusal`` that names it; the archive as a whole is refused only when it is not a valid zip file.
    """
    try:
        archive = zipfile.ZipFile(_Reader(read_at, size))
        infos = archive.infolist()
    except Exception as exc:  # zipfile raises BadZipFile, NotImplementedError, UnicodeDecodeError, ...
        raise bad(path, f"not a valid .npz (zip) file: {exc}") from None
    specs: dict[str, ArraySpec] = {}
    headers: dict[int, ArraySpec | str] = {}  # member header parsed once per offset, however many entries name it
    with archive:
        for info in infos:
            if not info.filename.endswith("/"):  # a directory (not is_dir(): an empty name is a member, as in numpy)
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                specs[name] = _member(read_at, size, path, archive, info, name, headers)
    return Layout(NAME, tuple(specs.values()), "lazy")


def _member(read_at: ReadAt, size: int, path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str,
            headers: dict) -> ArraySpec:
    try:
        if info.flag_bits & 0x1:
            raise bad(path, f"member {info.filename!r} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED:
            if not _starts_like_npy(archive, info):
                return ArraySpec(name, np.dtype("u1"), (info.file_size,), "C", 0, raw_member=info.filename)
            raise ValueError(f"{path}: member {info.filename!r} is compressed and cannot be mapped; save with "
                             "numpy.savez (not savez_compressed), or use numpy.load")
        start = _data_offset(read_at, size, path, info)
        if start + info.compress_size > size:
            raise bad(path, f"member {info.filename!r} runs past the end of the file")
        if read_at(start, len(npy.NPY_MAGIC)) != npy.NPY_MAGIC:  # not an .npy file: numpy hands out its bytes
            return ArraySpec(name, np.dtype("u1"), (info.file_size,), "C", 0, raw_member=info.filename)
        spec = _header_at(read_at, size, path, info, start, headers)
        if spec.offset + spec.nbytes > info.compress_size:
            raise bad(f"{path}[{info.filename}]", f"array data of {spec.nbytes} bytes does not fit the member's "
                                                  f"{info.compress_size - spec.offset} bytes after its header")
    except ValueError as exc:
        return ArraySpec(name, np.dtype("u1"), (0,), "C", 0, refusal=str(exc))
    return spec._replace(name=name, offset=start + spec.offset)


def _header_at(read_at: ReadAt, size: int, path, info: zipfile.ZipInfo, start: int, headers: dict) -> ArraySpec:
    """The .npy header of the member whose bytes start at ``start``, parsed once per offset: a hostile directory
    may name the same bytes many times (work must stay linear in the file's size). Raises its refusal."""
    known = headers.get(start)
    if known is None:
        try:
            (known,) = npy.describe(shifted(read_at, start), size - start, f"{path}[{info.filename}]").arrays
        except ValueError as exc:
            known = str(exc)
        headers[start] = known
    if isinstance(known, str):
        raise ValueError(known)
    return known


def _starts_like_npy(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    """Whether the member's bytes start with the .npy magic (numpy's test: a member that does not is handed
    out as bytes). Reads, or decompresses, only its first bytes; a member that cannot be read even that far is
    left to the .npy describer to refuse by name."""
    try:
        with archive.open(info) as member:
            return member.read(len(npy.NPY_MAGIC)) == npy.NPY_MAGIC
    except Exception:  # zipfile raises BadZipFile, zlib.error, NotImplementedError, EOFError, ...
        return True


def _data_offset(read_at: ReadAt, size: int, path, info: zipfile.ZipInfo) -> int:
    """Where the member's bytes start: after its local header, whose lengths are read from the file."""
    if not 0 <= info.header_offset <= size - _LOCAL_HEADER.size:
        raise bad(path, f"member {info.filename!r}: local header offset {info.header_offset} is outside the file")
    local = read_at(info.header_offset, _LOCAL_HEADER.size)
    if len(local) < _LOCAL_HEADER.size or not local.startswith(ZIP_MAGIC):
        raise bad(path, f"member {info.filename!r}: broken local zip header")
    fields = _LOCAL_HEADER.unpack(local)
    name_len, extra_len = fields[9], fields[10]
    return info.header_offset + _LOCAL_HEADER.size + name_len + extra_len


class _Reader(io.RawIOBase):
    """A read-only, seekable file over ``read_at``, for :class:`zipfile.ZipFile`."""

    def __init__(self, read_at: ReadAt, size: int):
        self._read_at, self._size, self._pos = read_at, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError("seek before the start of the file")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        data = self._read_at(self._pos, min(len(buffer), max(0, self._size - self._pos)))
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)
