"""Arrays from files: ``load`` (.npy, .npz, .safetensors), ``open_array`` (raw) and ``create`` (.npy).

Data flows one way: the file's first bytes pick a format, the format's parser
turns the header into (dtype, shape, offset), and a :class:`~mmio.Mapping`
hands out the array — zero-copy, or copied into private memory with
``copy=True``.
"""

from __future__ import annotations

import collections.abc
import operator
import os

import numpy as np

from . import _open
from ._files import open_regular
from ._flags import Advice
from .formats import bad, detect, npy, npz, safetensors

SMALL_FILE = 1 << 20
"""Below this many bytes, ``copy=True`` reads the file instead of mapping it (mapping costs more)."""

_HEAD = 4096  # bytes read up front: the whole header of almost every .npy / safetensors file
_LOAD_MODES = ("r", "r+", "c")


def load(path, mode="r", *, copy=False, out=None, threads=1, populate=False, advice=None, huge=False,
         prefetch=False):
    """Load the array(s) of a .npy, .npz or .safetensors file, zero-copy by default.

    The format is found from the file's content (magic bytes), not its name.

    Parameters
    ----------
    path : str or os.PathLike
    mode : {"r", "r+", "c"}
        As in :func:`mmio.open`: read-only, read-write to the file, or copy-on-write.
    copy : bool
        Return private in-memory arrays instead of views of the file (copied with
        the GIL released across ``threads``; small files are simply read).
    out : numpy.ndarray, optional
        For a .npy: fill this array (same dtype and shape, contiguous in the file's
        order) and return it.  Implies ``copy=True``.
    threads : int
        Native threads (1-64) for the copy, or for ``populate`` on a zero-copy load.
    populate, advice, huge
        Mapping policies, as in :func:`mmio.open`: prefault now, ``madvise``
        advice (``"sequential"`` for scans, ``"random"`` for gathers), or ask for
        transparent huge pages.
    prefetch : bool
        Start reading the data into the page cache in the background and return
        at once (chunked ``WILLNEED``, see :meth:`Mapping.prefetch`).  Zero-copy
        loads only.

    Returns
    -------
    numpy.ndarray
        For a .npy file.
    NpzArrays
        For a .npz: a read-only mapping of member name to array.
    SafetensorsArrays
        For a .safetensors file: a dict of tensor name to array, with ``metadata``.

    Raises
    ------
    ValueError
        The file is none of these formats, or its header is malformed (the message
        names the file and what is wrong), or a member is compressed.
    OSError
        The file cannot be opened or mapped.

    Examples
    --------
    >>> import numpy as np, mmio
    >>> np.save("/tmp/mmio-doc.npy", np.arange(6.0).reshape(2, 3))
    >>> mmio.load("/tmp/mmio-doc.npy")[1]
    array([3., 4., 5.])
    """
    if mode not in _LOAD_MODES:
        raise ValueError(f"mode must be 'r', 'r+' or 'c' for load, not {mode!r} "
                         "(use mmio.create to make a new .npy)")
    threads = operator.index(threads)
    if not 1 <= threads <= 64:
        raise ValueError(f"threads must be between 1 and 64, got {threads}")
    if advice is not None:
        advice = Advice.parse(advice)
    if out is not None:
        copy = True
    # With threads, prefault after mapping, in parallel (MADV_POPULATE_READ per thread).
    parallel_populate = populate and threads > 1 and not copy
    policy = dict(populate=populate and not parallel_populate, advice=advice, huge=huge)
    fd, size = open_regular(path, mode, "load")
    try:
        head = os.pread(fd, _HEAD, 0)
        kind = detect(head, os.fspath(path))
        if kind == "npy":
            header = _npy_header(fd, head, path, size)
            if copy:
                return _copied(fd, path, header.dtype, header.shape, header.fortran_order,
                               header.data_offset, out, threads)
            mapping = _open._map_open_file(fd, os.fspath(path), mode, header.data_offset,
                                              header.nbytes, **policy)
            if parallel_populate:
                mapping.populate(threads=threads)
            if prefetch:
                mapping.prefetch()
            return mapping.array(header.dtype, header.shape, 0, "F" if header.fortran_order else "C")
        if out is not None:
            raise ValueError("out= is for a single .npy array")
        if kind == "safetensors":
            return _load_safetensors(fd, head, path, size, mode, copy, threads, policy, prefetch)
        if kind == "npz":
            return NpzArrays(path, mode, copy=copy, threads=threads, prefetch=prefetch, **policy)
        raise bad(path, "not a .npy, .npz or .safetensors file (unrecognised first bytes); "
                        "use mmio.open_array for raw binary")
    finally:
        os.close(fd)


def _npy_header(fd: int, head: bytes, path, size: int) -> npy.NpyHeader:
    if len(head) == _HEAD:  # the header may be longer than what was read
        _, end, _ = npy.header_span(head, path)
        if end > len(head) and end <= size:
            head = os.pread(fd, end, 0)
    return npy.parse_header(head, path, size)


def _mapped(path, mode, dtype, shape, fortran, offset, policy, mapping=None):
    """A zero-copy array: map exactly the data (or view it in ``mapping``)."""
    nbytes = _nbytes(dtype, shape)
    if mapping is None:
        mapping = _open.open(path, mode, offset=offset, length=nbytes, **policy)
        offset = 0
    return mapping.array(dtype, shape, offset, "F" if fortran else "C")


def _copied(fd, path, dtype, shape, fortran, offset, out, threads, mapping=None):
    """A private array filled from the file: read for small data, a parallel copy otherwise."""
    order = "F" if fortran else "C"
    dest = _destination(dtype, shape, order, out, path)
    nbytes = _nbytes(dtype, shape)
    if nbytes == 0:
        return dest
    if out is not None and fd is not None and _maps_file(out, fd):
        # out is a mapping of this very file: copy through private memory, or the copy would
        # read bytes it has already overwritten.
        np.copyto(out, _copied(fd, path, dtype, shape, fortran, offset, None, threads, mapping))
        return out
    raw = dest.reshape(-1, order="A").view(np.uint8) if dest.ndim else dest.reshape(1).view(np.uint8)
    if mapping is not None:
        got = mapping.readinto(raw, offset, threads=threads)
    elif nbytes < SMALL_FILE:
        got = _pread_into(fd, raw, offset)
    else:
        with _open._map_open_file(fd, os.fspath(path), "r", offset, nbytes) as source:
            got = source.readinto(raw, threads=threads)
    if got != nbytes:
        raise bad(path, f"file ended after {got} of {nbytes} bytes of array data")
    return dest


def _destination(dtype, shape, order, out, path):
    if out is None:
        return _fresh_array(dtype, shape, order)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, not {type(out).__name__}")
    if out.dtype != dtype or out.shape != tuple(shape):
        raise ValueError(f"out has dtype {out.dtype} and shape {out.shape}; {path} holds "
                         f"dtype {dtype} and shape {tuple(shape)}")
    contiguous = out.flags.f_contiguous if order == "F" else out.flags.c_contiguous
    if not contiguous or not out.flags.writeable:
        raise ValueError(f"out must be writable and {order}-contiguous")
    return out


def _maps_file(array: np.ndarray, fd: int) -> bool:
    """Whether ``array``'s memory is a mapping of the file open as ``fd`` (cheap for owned arrays)."""
    if array.flags.owndata:
        return False
    st = os.fstat(fd)
    lo = array.ctypes.data
    hi = lo + max(array.nbytes, 1)
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(None, 5)
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start < hi and end > lo and int(fields[4]) == st.st_ino and fields[4] != "0":
                major, minor = (int(x, 16) for x in fields[3].split(":"))
                if os.makedev(major, minor) == st.st_dev:
                    return True
    return False


def _fresh_array(dtype, shape, order):
    """New private memory for a copy: huge-page-backed anonymous memory when large."""
    nbytes = _nbytes(dtype, shape)
    if nbytes < SMALL_FILE:
        return np.empty(shape, dtype, order=order)
    memory = _open.anonymous(nbytes, shared=False, huge=True)
    return memory.array(dtype, shape, 0, order)


def _pread_into(fd: int, raw: np.ndarray, offset: int) -> int:
    view = raw.data  # a memoryview of the array
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            break
        done += n
    return done


def _nbytes(dtype, shape) -> int:
    n = dtype.itemsize
    for d in shape:
        n *= d
    return n


# ---- safetensors ------------------------------------------------------------------------------

class SafetensorsArrays(dict):
    """The tensors of a safetensors file (name -> ndarray), with its ``metadata`` dict."""

    metadata: dict


def _load_safetensors(fd, head, path, size, mode, copy, threads, policy, prefetch):
    n = safetensors.header_length(head, path, size)
    if 8 + n > len(head):
        head = os.pread(fd, 8 + n, 0)
    tensors, metadata = safetensors.parse_header(head, path, size)
    result = SafetensorsArrays()
    result.metadata = metadata
    if not tensors:
        return result
    data_start = min(t.data_offset for t in tensors.values())
    data_end = max(t.data_offset + _nbytes(t.dtype, t.shape) for t in tensors.values())
    mapping = _open._map_open_file(fd, os.fspath(path), "r" if copy else mode, data_start,
                                      data_end - data_start, **({} if copy else policy))
    if prefetch and not copy:
        mapping.prefetch()
    with _closing_if(mapping, copy):
        for t in tensors.values():
            offset = t.data_offset - data_start
            if copy:
                result[t.name] = _copied(fd, path, t.dtype, t.shape, False, offset, None, threads, mapping)
            else:
                result[t.name] = _mapped(path, mode, t.dtype, t.shape, False, offset, policy, mapping)
    return result


class _closing_if:
    def __init__(self, mapping, close):
        self.mapping, self.close = mapping, close

    def __enter__(self):
        return self.mapping

    def __exit__(self, *exc):
        if self.close:
            self.mapping.close()


# ---- npz ---------------------------------------------------------------------------------------

class NpzArrays(collections.abc.Mapping):
    """The arrays of an .npz file, by name (``"x"`` for member ``x.npy``).

    Stored members are mapped zero-copy (or copied with ``copy=True``) the first
    time they are read; compressed members raise ``ValueError`` naming the member.
    The whole file is mapped once; arrays keep that mapping alive.

    Examples
    --------
    >>> import numpy as np, mmio
    >>> np.savez("/tmp/mmio-doc.npz", a=np.arange(3), b=np.ones(2))
    >>> arrays = mmio.load("/tmp/mmio-doc.npz")
    >>> sorted(arrays), arrays["a"]
    (['a', 'b'], array([0, 1, 2]))
    """

    def __init__(self, path, mode="r", *, copy=False, threads=1, populate=False, advice=None,
                 huge=False, prefetch=False) -> None:
        self.path = os.fspath(path)
        self._copy, self._threads = copy, threads
        self._mapping = _open.open(path, "r" if copy else mode, populate=populate,
                                      advice=advice, huge=huge)
        if prefetch and not copy:
            self._mapping.prefetch()
        self._members = npz.members(self.path, self._read_at)
        self._arrays: dict[str, np.ndarray] = {}

    def _read_at(self, offset: int, n: int) -> bytes:
        return self._mapping[offset:offset + n]

    @property
    def files(self) -> list[str]:
        """Member names, as ``numpy.lib.npyio.NpzFile.files`` gives them."""
        return list(self._members)

    def __getitem__(self, name: str) -> np.ndarray:
        if not isinstance(name, str):
            raise KeyError(name)
        member = self._members.get(name) or self._members.get(name.removesuffix(".npy"))
        if member is None:
            raise KeyError(f"{name!r} is not a member of {self.path}")
        array = self._arrays.get(member.name)
        if array is None:
            array = self._arrays[member.name] = self._open_member(member)
        return array

    def _open_member(self, member: npz.Member) -> np.ndarray:
        if member.compressed:
            raise ValueError(f"{self.path}: member {member.filename!r} is compressed and cannot be "
                             "mapped; save with numpy.savez (not savez_compressed), or use numpy.load")
        if member.data_offset + member.size > len(self._mapping):
            raise bad(self.path, f"member {member.filename!r} runs past the end of the file")
        head = self._mapping[member.data_offset:member.data_offset + min(member.size, _HEAD)]
        label = f"{self.path}[{member.filename}]"
        _, end, _ = npy.header_span(head, label)
        if end > len(head) and end <= member.size:
            head = self._mapping[member.data_offset:member.data_offset + end]
        header = npy.parse_header(head, label, member.size)
        offset = member.data_offset + header.data_offset
        if self._copy:
            return _copied(None, label, header.dtype, header.shape, header.fortran_order, offset,
                           None, self._threads, self._mapping)
        return _mapped(label, None, header.dtype, header.shape, header.fortran_order, offset, None,
                       self._mapping)

    def __iter__(self):
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def close(self) -> None:
        """Drop the arrays handed out so far and unmap the file if none of them is still in use."""
        self._arrays.clear()
        try:
            self._mapping.close()
        except BufferError:
            pass  # arrays still alive keep the mapping; it goes when they do

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<mmio.NpzArrays {self.path!r} members={list(self._members)}>"


# ---- raw files and new .npy files ------------------------------------------------------------------

def open_array(path, dtype, shape=None, offset=0, mode="r", order="C"):
    """Map raw binary data as an array, like ``numpy.memmap`` but returning a plain ndarray.

    Parameters
    ----------
    path : str or os.PathLike
    dtype : data-type
    shape : int or tuple of int, optional
        Default: 1-D over every whole item from ``offset`` to the end of the file.
        Required for mode ``"w+"``.
    offset : int
        Byte offset of the first item.
    mode : {"r", "r+", "c", "w+"}
        As in :func:`mmio.open`; ``"w+"`` creates (or truncates) the file to
        ``offset`` plus the array's size.  Unlike ``numpy.memmap``, ``"r+"``
        never grows the file: a shape that does not fit is a ``ValueError``.
    order : {"C", "F"}

    Examples
    --------
    >>> import mmio
    >>> a = mmio.open_array("/tmp/mmio-doc.raw", "u2", shape=(2, 2), mode="w+")
    >>> a[:] = 7
    >>> mmio.open_array("/tmp/mmio-doc.raw", "u2").tolist()
    [7, 7, 7, 7]
    """
    dtype = _array_dtype(dtype)
    if order not in ("C", "F"):
        raise ValueError(f"order must be 'C' or 'F', not {order!r}")
    if shape is None:
        if mode == "w+":
            raise ValueError("mode 'w+' creates the file and needs shape=")
        mapping = _open.open(path, mode, offset=offset)
        return mapping.array(dtype, None, 0, order)
    shape = _shape(shape)
    nbytes = _nbytes(dtype, shape)
    size = offset + nbytes if mode == "w+" else None
    mapping = _open.open(path, mode, offset=offset, length=nbytes, size=size)
    return mapping.array(dtype, shape, 0, order)


def create(path, shape, dtype, *, fortran_order=False):
    """Create a .npy file of the given shape and dtype and map it read-write.

    The returned array's writes reach the file; ``numpy.load`` reads it back.

    Examples
    --------
    >>> import numpy as np, mmio
    >>> a = mmio.create("/tmp/mmio-new.npy", (2, 3), "f4")
    >>> a[:] = 1.5
    >>> del a
    >>> np.load("/tmp/mmio-new.npy").sum()
    np.float32(9.0)
    """
    dtype = _array_dtype(dtype)
    shape = _shape(shape)
    header = npy.build_header(dtype, shape, bool(fortran_order))
    mapping = _open.open(path, "w+", size=len(header) + _nbytes(dtype, shape))
    mapping[:len(header)] = header
    return mapping.array(dtype, shape, len(header), "F" if fortran_order else "C")


def _array_dtype(dtype) -> np.dtype:
    """A dtype that can live in a file: no Python objects, items of non-zero size."""
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise ValueError(f"dtype {dtype} holds Python objects, which cannot live in a file")
    if dtype.itemsize == 0:
        raise ValueError(f"dtype {dtype!r} has items of size 0")
    return dtype


def _shape(shape) -> tuple[int, ...]:
    """A shape as a tuple of non-negative ints (numpy integers welcome), at most 64 dimensions."""
    try:
        dims = (operator.index(shape),) if not hasattr(shape, "__iter__") else tuple(
            operator.index(d) for d in shape)
    except TypeError:
        raise TypeError(f"shape must be an int or a sequence of ints, not {shape!r}") from None
    if any(d < 0 for d in dims):
        raise ValueError(f"shape {dims} has a negative dimension")
    if len(dims) > npy.MAX_DIMS:
        raise ValueError(f"shape has {len(dims)} dimensions; numpy allows {npy.MAX_DIMS}")
    return dims
