"""Arrays from files: ``load`` (.npy, .npz, .safetensors), ``open_array`` (raw) and ``create`` (.npy).

Data flows one way: ``load`` opens the file once, a format (``mmio.formats``) describes its arrays as
:class:`~mmio.formats.ArraySpec` records, the data they cover is mapped once, and the arrays are handed out
from the specs: zero-copy views of the mapping, or private copies (``copy=True``, ``out=``).
"""

from __future__ import annotations

import collections.abc
import functools
import operator
import os
import zipfile
from typing import NamedTuple

import numpy as np

from . import _buffers, _guard, _open, _torch, formats, procmaps
from ._files import open_regular
from ._flags import Advice
from ._pages import threads_argument
from .formats import ArraySpec, Layout, bad, nbytes, npy, shards
from . import sharing
from .sharing import SharedArray

SMALL_FILE = 1 << 20
"""From this many bytes on, a copy's destination is faulted in before the copy (:func:`_fresh_array`)."""

_LOAD_MODES = ("r", "r+", "c")


def load(path, mode=None, *, copy=False, out=None, threads=1, populate=False, advice=None, huge=False,
         prefetch=False, framework="numpy", share=False):
    """Load the array(s) of a .npy, .npz or .safetensors file, zero-copy by default.

    The format is found from the file's content (magic bytes), not its name.

    Parameters
    ----------
    path : str or os.PathLike
        The file; a sharded checkpoint's ``model.safetensors.index.json`` loads every shard it names.
    mode : {"r", "r+", "c"}, optional
        As in :func:`mmio.open`: read-only, read-write to the file, or copy-on-write.
        Default ``"r"``, or ``"c"`` with ``framework="torch"``.
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
    framework : {"numpy", "torch"}
        ``"torch"`` gives ``torch.Tensor`` objects over the same memory (torch is
        imported only then), with torch's dtypes (``torch.bfloat16``, ...). Their
        memory stays mapped as long as any of them lives.
    share : bool
        Return :class:`mmio.SharedArray` s, which pickle by reference to the file
        (a few hundred bytes, whatever their size) wherever they go: pickle,
        multiprocessing, concurrent.futures, joblib, dask. Zero-copy loads in
        mode ``"r"`` or ``"r+"`` with ``framework="numpy"`` only.

    Returns
    -------
    numpy.ndarray
        For a .npy file.
    NpzArrays
        For a .npz: a read-only mapping of member name to array.
    SafetensorsArrays
        For a .safetensors file: a dict of tensor name to array, with ``metadata``.
    ShardedArrays
        For a checkpoint index: a read-only mapping of tensor name to array over every
        shard (each mapped once, when first needed), with the index's ``metadata``.

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
    if framework not in ("numpy", "torch"):
        raise ValueError(f"framework must be 'numpy' or 'torch', not {framework!r}")
    if mode is None:
        mode = "c" if framework == "torch" else "r"
    if mode not in _LOAD_MODES:
        raise ValueError(f"mode must be 'r', 'r+' or 'c' for load, not {mode!r} "
                         "(use mmio.create to make a new .npy)")
    if framework == "torch" and mode == "r" and not copy and out is None:
        raise ValueError("torch tensors are always writable, and a write to a read-only mapping would crash: "
                         "use mode 'c' (the default for torch: writes stay private) or 'r+'")
    if share and (mode == "c" or copy or out is not None or framework != "numpy"):
        raise ValueError("share=True is for zero-copy numpy arrays of a shared mapping (mode 'r' or 'r+'): "
                         "copies and copy-on-write ('c') memory are this process's own and travel by value")
    if share:
        sharing.register_dask()  # if dask is here already, it tokenizes SharedArrays by reference
    threads = threads_argument(threads)
    if advice is not None:
        advice = Advice.parse(advice)
    copy = copy or out is not None
    options = _Options(mode, copy, threads, populate, advice, huge, prefetch, share)
    result = _load(path, out, options)
    return result if framework == "numpy" else _torch.tensors(result)


class _Options(NamedTuple):
    """What ``load`` was asked to do, besides which file."""

    mode: str
    copy: bool
    threads: int
    populate: bool
    advice: Advice | None
    huge: bool
    prefetch: bool
    share: bool = False


def _load(path, out, options: _Options, described: tuple[int, Layout] | None = None):
    """``load`` after its arguments are checked; ``described``: the file's (size, layout), read already (a
    shard's), used while the file still has that size."""
    fd, size = open_regular(path, options.mode, "load")
    try:
        label = os.fspath(path)
        if described is not None and described[0] == size:
            layout = described[1]
        else:
            read_at = _pread_at(fd, size)
            if shards.sniff(read_at(0, formats.HEAD)):
                if out is not None:
                    raise ValueError("out= is for a single .npy array")
                result = _sharded(label, shards.read_index(read_at, size, label), options)
                result._reload = sharing.reload_reference(fd, label, options._asdict(), tuple(result.files))
                return result
            layout = formats.describe(read_at, size, label)
        if out is not None and layout.container != "array":
            raise ValueError("out= is for a single .npy array")
        if options.copy:
            result = _copies(fd, label, layout, out, options.threads)
        else:
            result = _views(fd, label, layout, options)
        if isinstance(result, NpzArrays):
            result._reload = sharing.reload_reference(fd, label, options._asdict())
        return result
    finally:
        os.close(fd)


def _sharded(path: str, index: shards.ShardIndex, options: _Options) -> ShardedArrays:
    """The tensors of every shard an index names, checked against the shards' headers now, mapped lazily (or
    now, in file order, when a policy asks to read them in)."""
    directory = os.path.dirname(path)
    files = {shard: os.path.join(directory, shard) for shard in sorted(set(index.weight_map.values()))}
    home: dict[str, str] = {}  # tensor name -> the shard whose header has it
    described: dict[str, tuple[int, Layout]] = {}  # file -> (size, layout): mapping it later reads no header
    for shard, file in files.items():
        try:
            fd, size = open_regular(file, "r", "load")
        except FileNotFoundError:
            raise ValueError(f"{path}: shard {file} is missing") from None
        try:
            layout = formats.describe(_pread_at(fd, size), size, file)
        finally:
            os.close(fd)
        described[file] = (size, layout)
        if layout.format != "safetensors":
            raise ValueError(f"{path}: shard {file} is a {layout.format} file, not safetensors")
        for spec in layout.arrays:
            if spec.name in home:
                raise ValueError(f"{path}: tensor {spec.name!r} is in two shards, {files[home[spec.name]]} "
                                 f"and {file}")
            home[str(spec.name)] = shard
    for name, shard in index.weight_map.items():
        if home.get(name) != shard:
            raise ValueError(f"{path}: tensor {name!r} is not in its shard {files[shard]}"
                             + (f" (it is in {files[home[name]]})" if name in home else ""))
    result = ShardedArrays(path, index, files, lambda file: _load(file, None, options, described[file]))
    if options.populate or options.prefetch:
        result.map_all()
    return result


def _pread_at(fd: int, size: int):
    """``read_at`` over an open file of ``size`` bytes, for the formats; the first bytes are read once.

    Reads past the end give no bytes, whatever the offset a hostile header names.
    """
    first = os.pread(fd, formats.HEAD, 0)

    def read_at(offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or offset >= size:
            return b""
        if offset + n <= len(first):
            return first[offset:offset + n]
        return os.pread(fd, min(n, size - offset), offset)
    return read_at


def _extent(layout: Layout) -> tuple[int, int]:
    """The byte range ``[lo, hi)`` of the file that holds every mappable array of the layout."""
    if layout.container == "array":
        (spec,) = layout.arrays
        return spec.offset, spec.offset + spec.nbytes
    specs = [s for s in layout.arrays if s.refusal is None and s.raw_member is None]
    if not specs:
        return 0, 0
    return min(s.offset for s in specs), max(s.offset + s.nbytes for s in specs)


def _views(fd, path, layout, options: _Options):
    """Zero-copy arrays: map the data once, with the policies, and view every array in it."""
    lo, hi = _extent(layout)
    # With threads, prefault after mapping, in parallel (MADV_POPULATE_READ per thread).
    parallel = options.populate and options.threads > 1
    mapping = _open._map_open_file(fd, path, options.mode, lo, hi - lo, options.populate and not parallel,
                                   options.huge, options.advice)
    if parallel:
        mapping.populate(threads=options.threads)
    if options.prefetch:
        mapping.prefetch()
    kind = SharedArray if options.share else None

    def view(spec):
        array = mapping.array(spec.dtype, spec.shape, spec.offset - lo, spec.order)
        return array if kind is None else array.view(kind)
    if layout.container == "array":  # the common case, without the container's indirection
        return view(layout.arrays[0])
    return _container(path, layout, view, mapping)


def _copies(fd, path, layout, out, threads):
    """Private arrays filled from the file: read in parallel with ``pread`` (an .npz's members: copied from one
    mapping when first read)."""
    if out is not None:
        _destination(layout.arrays[0], out, path)  # check it before reading anything
        if _maps_file(out, fd):
            # out is a mapping of this very file: copy through private memory, or the copy would read bytes
            # it has already overwritten; the second copy is guarded too (out may run past a truncated end).
            spec = layout.arrays[0]
            with _open.anonymous(max(spec.nbytes, 1), shared=False) as staging:
                staged = _copies(fd, path, layout, staging.array(spec.dtype, spec.shape, 0, spec.order), threads)
                del staged
                staging.readinto(_raw_bytes(out), threads=threads)
            return out
    if layout.container != "lazy":
        # Read with pread, in parallel: the page cache is copied straight into the destination, and the
        # source is never mapped, so the process's memory peaks at the copies' size, not twice that.
        def read_of(spec):
            return _filled(spec, out, path, threads, lambda raw: _guard.pread_into(fd, raw, spec.offset, threads,
                                                                                   path))
        return _container(path, layout, read_of)
    # An .npz copies a member when it is first read, long after this descriptor is closed: from a mapping
    # the container keeps.
    lo, hi = _extent(layout)
    source = _open._map_open_file(fd, path, "r", lo, hi - lo)

    def copy_of(spec):
        return _filled(spec, out, path, threads, lambda raw: source.readinto(raw, spec.offset - lo,
                                                                             threads=threads))
    return _container(path, layout, copy_of, source)


def _container(path, layout, array_of, mapping=None):
    """What ``load`` returns for the layout: the array, a dict of arrays, or a lazy mapping of them."""
    if layout.container == "array":
        (spec,) = layout.arrays
        return array_of(spec)
    if layout.container == "lazy":
        return NpzArrays(path, layout, array_of, mapping)
    result = SafetensorsArrays((spec.name, array_of(spec)) for spec in layout.arrays)
    result.metadata = layout.metadata
    return result


def _filled(spec: ArraySpec, out, path, threads: int, fill) -> np.ndarray:
    """A private array for ``spec`` (or ``out``), its bytes written by ``fill(raw_bytes_view)``."""
    dest = _destination(spec, out, path, threads)
    if spec.nbytes:
        got = fill(_raw_bytes(dest))
        if got != spec.nbytes:
            raise bad(path, f"file ended after {got} of {spec.nbytes} bytes of array data")
    return dest


def _raw_bytes(array: np.ndarray) -> np.ndarray:
    """The bytes of a contiguous array, as a flat uint8 view."""
    return array.reshape(-1, order="A").view(np.uint8) if array.ndim else array.reshape(1).view(np.uint8)


def _destination(spec: ArraySpec, out, path, threads: int = 1) -> np.ndarray:
    if out is None:
        return _fresh_array(spec.dtype, spec.shape, spec.order, threads)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, not {type(out).__name__}")
    if out.dtype != spec.dtype or out.shape != tuple(spec.shape):
        raise ValueError(f"out has dtype {out.dtype} and shape {out.shape}; {path} holds "
                         f"dtype {spec.dtype} and shape {tuple(spec.shape)}")
    contiguous = out.flags.f_contiguous if spec.order == "F" else out.flags.c_contiguous
    if not contiguous or not out.flags.writeable:
        raise ValueError(f"out must be writable and {spec.order}-contiguous")
    return out


def _maps_file(array: np.ndarray, fd: int) -> bool:
    """Whether ``array``'s memory is a mapping of the file open as ``fd`` (cheap for owned arrays)."""
    if array.flags.owndata:
        return False
    st = os.fstat(fd)
    lo = array.ctypes.data
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
    return any(r.inode == st.st_ino and r.device == device
               for r in procmaps.maps("self", start=lo, end=lo + max(array.nbytes, 1), figures=False))


def _fresh_array(dtype, shape, order, threads: int):
    """New private memory for a copy: an ordinary ndarray that owns its memory, large ones faulted in now by
    ``threads`` (with huge pages where they pay, :func:`_huge_pages_pay`) so the copy takes no page faults.

    The allocator's memory, not a mapping of mmio's own: it recycles what earlier arrays freed, which costs
    nothing to fault in again (a checkpoint's hundreds of mid-sized tensors), where fresh memory costs a
    zeroed page each, and more in a VM.
    """
    array = np.empty(shape, dtype, order=order)
    if array.nbytes >= SMALL_FILE:
        _buffers.prefault_private(array, threads, _huge_pages_pay())
    return array


@functools.cache
def _huge_pages_pay(devices: str = "/sys/bus/virtio/devices") -> bool:
    """Whether fresh memory for large copies should ask for transparent huge pages.

    Yes, unless this machine is a VM whose memory balloon reports free pages to the host
    (``VIRTIO_BALLOON_F_REPORTING``, feature bit 5): the host then takes back free 2 MiB blocks, and faulting
    them in again costs 20-40 times as much as faulting backed ones. Measured on such a VM (2 GiB, 2
    threads): huge pages 0.1 s when the host still backs them, 2-5 s when the memory was freed a few seconds
    before; 4 KiB pages 0.4 s either way. The free lists reported are the high-order ones huge pages come
    from, so 4 KiB pages are the steady choice there.
    """
    try:
        names = os.listdir(devices)
    except OSError:
        return True
    for name in names:
        try:
            with open(os.path.join(devices, name, "device")) as f:
                kind = int(f.read(), 16)
            with open(os.path.join(devices, name, "features")) as f:
                features = f.read().strip()
        except (OSError, ValueError):
            continue
        if kind == _VIRTIO_BALLOON and features[_BALLOON_F_REPORTING:_BALLOON_F_REPORTING + 1] == "1":
            return False
    return True


_VIRTIO_BALLOON = 5
"""The virtio device id of a memory balloon."""
_BALLOON_F_REPORTING = 5
"""The balloon's free page reporting feature bit (``features`` lists bits as characters, bit 0 first)."""


class SafetensorsArrays(dict):
    """The tensors of a safetensors file (name -> ndarray), with its ``metadata`` dict."""

    metadata: dict


class ShardedArrays(collections.abc.Mapping):
    """The tensors of a sharded safetensors checkpoint, by name, with the index's ``metadata``.

    Every shard's header was checked when the index was loaded; a shard is mapped (or
    copied) the first time one of its tensors is asked for, once.

    Attributes
    ----------
    path : str
        The index file.
    metadata : dict
        The index's ``metadata`` (``{}`` when it has none).
    files : list of str
        The shard files, in file order.
    """

    _reload: sharing.ReloadReference | None = None  # how load made it, for pickling

    def __init__(self, path: str, index: shards.ShardIndex, files: dict[str, str], load_shard) -> None:
        self.path = path
        self.metadata = index.metadata
        self.files = list(files.values())
        self._shard_of = index.weight_map
        self._files = files
        self._load_shard = load_shard
        self._loaded: dict[str, collections.abc.Mapping] = {}

    def _shard(self, shard: str):
        tensors = self._loaded.get(shard)
        if tensors is None:
            tensors = self._loaded[shard] = self._load_shard(self._files[shard])
        return tensors

    def map_all(self) -> None:
        """Map (or copy) every shard now, in file order."""
        for shard in self._files:
            self._shard(shard)

    def __getitem__(self, name: str):
        shard = self._shard_of.get(name) if isinstance(name, str) else None
        if shard is None:
            raise KeyError(f"{name!r} is not a tensor of {self.path}")
        tensors = self._shard(shard)
        if name not in tensors:  # the shard changed since its header was checked
            raise ValueError(f"{self.path}: tensor {name!r} is no longer in its shard {self._files[shard]}")
        return tensors[name]

    def __iter__(self):
        return iter(self._shard_of)

    def __len__(self) -> int:
        return len(self._shard_of)

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in self._shard_of

    def __repr__(self):
        return f"<mmio.ShardedArrays {self.path!r} tensors={len(self)} shards={len(self._files)}>"

    def __reduce__(self):
        """By reference: the index, checked on arrival to be this one, loaded again as ``load`` did."""
        return sharing.reduce_reload(self._reload, "a ShardedArrays")


class NpzArrays(collections.abc.Mapping):
    """The arrays of an .npz file, by name (``"x"`` for member ``x.npy``).

    Stored members are mapped zero-copy (or copied with ``copy=True``) the first
    time they are read; compressed members raise ``ValueError`` naming the member.
    A member that is not an ``.npy`` file gives its bytes, as ``numpy.load`` does.
    The whole file is mapped once; arrays keep that mapping alive.

    Examples
    --------
    >>> import numpy as np, mmio
    >>> np.savez("/tmp/mmio-doc.npz", a=np.arange(3), b=np.ones(2))
    >>> arrays = mmio.load("/tmp/mmio-doc.npz")
    >>> sorted(arrays), arrays["a"]
    (['a', 'b'], array([0, 1, 2]))
    """

    _reload: sharing.ReloadReference | None = None  # how load made it, for pickling

    def __init__(self, path, layout: Layout, array_of, mapping=None) -> None:
        self.path = os.fspath(path)
        self._specs: dict[str, ArraySpec] = {str(spec.name): spec for spec in layout.arrays}
        self._array_of = array_of
        self._mapping = mapping
        self._arrays: dict[str, np.ndarray] = {}
        self._archive: zipfile.ZipFile | None = None  # for members that are not .npy files

    @property
    def files(self) -> list[str]:
        """Member names, as ``numpy.lib.npyio.NpzFile.files`` gives them."""
        return list(self._specs)

    def __getitem__(self, name: str) -> np.ndarray | bytes:
        if not isinstance(name, str):
            raise KeyError(name)
        spec = self._specs.get(name) or self._specs.get(name.removesuffix(".npy"))
        if spec is None:
            raise KeyError(f"{name!r} is not a member of {self.path}")
        if spec.refusal is not None:
            raise ValueError(spec.refusal)
        if spec.raw_member is not None:  # not an .npy file: its bytes, as numpy.load gives them
            return self._raw_bytes(spec.raw_member)
        array = self._arrays.get(str(spec.name))
        if array is None:
            array = self._arrays[str(spec.name)] = self._array_of(spec)
        return array

    def _raw_bytes(self, member: str) -> bytes:
        try:
            if self._archive is None:  # opened once: its directory is read once, however many members are read
                self._archive = zipfile.ZipFile(self.path)
            return self._archive.read(member)
        except OSError:
            raise
        except Exception as exc:  # zipfile raises BadZipFile, zlib.error, NotImplementedError, UnicodeDecodeError...
            raise ValueError(f"{self.path}: member {member!r} cannot be read: {exc}") from None

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and (name in self._specs or name.removesuffix(".npy") in self._specs)

    def __iter__(self):
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def close(self) -> None:
        """Drop the arrays handed out so far and unmap the file if none of them is still in use."""
        self._arrays.clear()
        if self._archive is not None:
            self._archive.close()
            self._archive = None
        if self._mapping is not None:
            try:
                self._mapping.close()
            except BufferError:
                pass  # arrays still alive keep the mapping; it goes when they do

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<mmio.NpzArrays {self.path!r} members={list(self._specs)}>"

    def __reduce__(self):
        """By reference: the file, checked on arrival to be this one, loaded again as ``load`` did."""
        return sharing.reduce_reload(self._reload, "an NpzArrays")


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
    length = nbytes(dtype, shape)
    size = offset + length if mode == "w+" else None
    mapping = _open.open(path, mode, offset=offset, length=length, size=size)
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
    mapping = _open.open(path, "w+", size=len(header) + nbytes(dtype, shape))
    mapping[:len(header)] = header
    return mapping.array(dtype, shape, len(header), "F" if fortran_order else "C")


def _array_dtype(dtype) -> np.dtype:
    """A dtype that can live in a file: no Python objects."""
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise ValueError(f"dtype {dtype} holds Python objects, which cannot live in a file")
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
    if len(dims) > formats.MAX_DIMS:
        raise ValueError(f"shape has {len(dims)} dimensions; numpy allows {formats.MAX_DIMS}")
    return dims
