"""Dask arrays over files whose chunks are mapped on the workers: the graph carries references, never bytes.

:func:`from_file` (an ``.npy``, an ``.npz`` member, a safetensors tensor) and :func:`from_raw` read a file's
header once, in the client, and build a graph whose every task is ``(function, blocks, block number)``: the
``blocks`` description (path, file identity, byte offset, dtype, shape, strides, where the chunks start) is one
object shared by all the tasks, so it pickles once, and each task adds a block number. A worker turns the block
into a :class:`mmio.sharing.Reference` and maps it through the per-process cache of :mod:`mmio.sharing`: each
worker process maps each file once, checks it is still the file the client described
(:class:`mmio.StaleFileError` if not) and hands the task a view of the chunk's bytes.

:func:`store` writes a dask array to a new ``.npy`` the same way round, and :func:`residency` asks every machine
of a cluster how much of some files its page cache holds.

Importing this module imports dask (the ``pymmio[dask]`` extra; ``import mmio`` does not) and teaches dask's
tokenizer and, when it is installed, distributed's serialization to handle :class:`mmio.SharedArray` s by
reference: ``client.scatter`` and task results would otherwise send their bytes.
"""

from __future__ import annotations

import errno
import itertools
import math
import os
import socket
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import dask
import dask.array as da
import numpy as np
from dask.array.core import normalize_chunks
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
from dask.utils import parse_bytes

from . import arrays, formats, sharing
from ._files import open_regular
from ._pages import PAGE_SIZE
from ._units import human_bytes
from .formats import ArraySpec, shards

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["ClusterResidency", "HostFileResidency", "auto_chunks", "from_file", "from_raw", "residency", "store"]

_Chunks = tuple[tuple[int, ...], ...]
_MODES = ("r", "r+")


# ---- what every chunk task carries: one object per graph -------------------------------------------------


class _Blocks:
    """An array in a file and where its chunks start: all a chunk task needs besides its block number.

    One instance is shared by every task of a graph, so a pickled graph holds it once. Not a tuple: dask looks
    inside the tuples of a task for keys and subtasks.
    """

    __slots__ = ("path", "identity", "mode", "validate", "offset", "dtype", "shape", "strides", "starts")

    def __init__(self, path: str, identity: sharing.FileIdentity, mode: sharing._Mode, validate: str,
                 offset: int, dtype: np.dtype, shape: tuple[int, ...], strides: tuple[int, ...],
                 starts: tuple[range | tuple[int, ...], ...]) -> None:
        self.path = path
        self.identity = identity
        self.mode: sharing._Mode = mode
        self.validate = validate
        self.offset = offset  # of the array's first element in the file
        self.dtype = dtype
        self.shape = shape
        self.strides = strides
        self.starts = starts  # per axis: where the blocks after the first begin (see _later_starts)

    def __reduce__(self):
        return _Blocks, (self.path, self.identity, self.mode, self.validate, self.offset, self.dtype,
                         self.shape, self.strides, self.starts)

    def reference(self, block: int) -> sharing.Reference:
        """The reference of block number ``block`` (blocks numbered in C order of their indices)."""
        shape: list[int] = []
        offset = self.offset
        for axis in reversed(range(len(self.shape))):
            later = self.starts[axis]
            block, index = divmod(block, len(later) + 1)
            start = later[index - 1] if index else 0
            stop = later[index] if index < len(later) else self.shape[axis]
            shape.append(stop - start)
            offset += start * self.strides[axis]
        return sharing.Reference(sharing.FORMAT, self.path, self.identity, self.mode, self.validate, offset,
                                 self.dtype, tuple(reversed(shape)), self.strides)


def _later_starts(sizes: tuple[int, ...]) -> range | tuple[int, ...]:
    """Where the blocks after the first begin along one axis of ``sizes``: a ``range`` (a few bytes pickled,
    however many blocks) when all but the first and the last are the same size, as "auto" cuts them."""
    if len(sizes) >= 3 and all(size == sizes[1] for size in sizes[2:-1]) and sizes[1] > 0:
        return range(sizes[0], sizes[0] + (len(sizes) - 1) * sizes[1], sizes[1])
    return tuple(itertools.accumulate(sizes[:-1]))


def _chunk(blocks: _Blocks, block: int) -> np.ndarray:
    """The task: block ``block`` of the array, a view of this process's mapping of the file."""
    return sharing.rebuild(blocks.reference(block))


# ---- reading ---------------------------------------------------------------------------------------------


def from_file(path, key: str | None = None, *, chunks: Any = "auto", mode: str = "r") -> da.Array:
    """A dask array over an array of a ``.npy``, ``.npz`` or safetensors file, its chunks mapped on the workers.

    Only the header is read, here; the graph carries a reference to the file (a few hundred bytes once, and a
    block number per chunk), and each worker process maps the file once and hands its tasks views of it.

    Parameters
    ----------
    path : str or os.PathLike
        The file, as every worker can open it (a shared file system, mounted at the same place). A sharded
        checkpoint's ``model.safetensors.index.json`` names the shard that holds ``key``.
    key : str, optional
        The ``.npz`` member or safetensors tensor; may be left out when the file holds one array.
    chunks : "auto" or a dask chunk specification
        ``"auto"``: blocks of about dask's ``array.chunk-size`` (128 MiB unless configured) along the slowest
        axis (the first for C order, the last for Fortran order), each one contiguous in the file and
        starting on a page boundary where the array's offset and row size allow. Anything
        ``dask.array.from_array`` accepts otherwise.
    mode : {"r", "r+"}
        ``"r"``: chunks are read-only views. ``"r+"``: writable views whose writes reach the file.

    Returns
    -------
    dask.array.Array
        Named by a token of the file's path, inode, size and modification time, the array's place and the
        chunks: the same whenever and wherever it is built, until the file changes.

    Raises
    ------
    ValueError
        The file is none of these formats, the member is compressed or not an array, or ``key`` is needed.
    KeyError
        The file has no array ``key``.
    mmio.StaleFileError
        When computed: the file changed since the graph was built.

    Examples
    --------
    >>> import numpy as np, mmio.dask
    >>> np.save("/tmp/mmio-doc-dask.npy", np.arange(12.0).reshape(4, 3))
    >>> x = mmio.dask.from_file("/tmp/mmio-doc-dask.npy", chunks=(2, 3))
    >>> x.numblocks, float(x.sum().compute())
    ((2, 1), 66.0)
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be 'r' or 'r+', not {mode!r}: chunks are views of a shared mapping")
    label = os.fspath(path)
    fd, size = open_regular(path, mode, "load")
    try:
        identity = sharing.FileIdentity.of(os.fstat(fd))
        read_at = arrays._pread_at(fd, size)
        if shards.sniff(read_at(0, formats.HEAD)):
            index = shards.read_index(read_at, size, label)
            return from_file(_shard_of(index, key, label), key, chunks=chunks, mode=mode)
        layout = formats.describe(read_at, size, label)
    finally:
        os.close(fd)
    spec = _pick(layout, key, label)
    return _file_array(_real(path), identity, mode, spec, chunks, ("key", spec.name))


def from_raw(path, dtype, shape, *, offset: int = 0, order: str = "C", chunks: Any = "auto") -> da.Array:
    """A dask array over raw binary data in a file (no header), its chunks mapped on the workers.

    Parameters
    ----------
    path : str or os.PathLike
    dtype : data-type
    shape : int or tuple of int
    offset : int
        Byte offset of the first item in the file.
    order : {"C", "F"}
    chunks : "auto" or a dask chunk specification
        As in :func:`from_file`.

    Returns
    -------
    dask.array.Array
        Read-only chunks; named as :func:`from_file` names its arrays.

    Raises
    ------
    ValueError
        The array does not fit in the file.

    Examples
    --------
    >>> import numpy as np, mmio.dask
    >>> np.arange(10, dtype="<u2").tofile("/tmp/mmio-doc-dask.raw")
    >>> mmio.dask.from_raw("/tmp/mmio-doc-dask.raw", "<u2", (2, 4), offset=4).compute()
    array([[2, 3, 4, 5],
           [6, 7, 8, 9]], dtype=uint16)
    """
    if order not in ("C", "F"):
        raise ValueError(f"order must be 'C' or 'F', not {order!r}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, not {offset}")
    spec = ArraySpec(None, arrays._array_dtype(dtype), arrays._shape(shape), order, int(offset))
    fd, size = open_regular(path, "r", "map")
    try:
        identity = sharing.FileIdentity.of(os.fstat(fd))
    finally:
        os.close(fd)
    if spec.offset + spec.nbytes > size:
        raise ValueError(f"{os.fspath(path)!s}: {spec.nbytes} bytes of {spec.dtype} {spec.shape} at offset "
                         f"{spec.offset} do not fit in its {size} bytes")
    return _file_array(_real(path), identity, "r", spec, chunks, ("offset", spec.offset))


def _real(path) -> str:
    return os.fsdecode(os.path.realpath(os.fspath(path)))


def _shard_of(index: shards.ShardIndex, key: str | None, label: str) -> str:
    """The shard file of a checkpoint index that holds tensor ``key``."""
    if key is None:
        raise ValueError(f"{label} is a checkpoint index: name a tensor with key=")
    shard = index.weight_map.get(key)
    if shard is None:
        raise KeyError(f"{key!r} is not a tensor of {label}")
    return os.path.join(os.path.dirname(label), shard)


def _pick(layout: formats.Layout, key: str | None, label: str) -> ArraySpec:
    """The array of the file that ``key`` names (or its only one)."""
    if layout.container == "array":
        if key is not None:
            raise ValueError(f"{label} is an .npy file, its one array has no name: leave out key={key!r}")
        return layout.arrays[0]
    specs = {str(spec.name): spec for spec in layout.arrays}
    if key is None:
        if len(specs) != 1:
            names = ", ".join(repr(name) for name in itertools.islice(specs, 10))
            raise ValueError(f"{label} holds {len(specs)} arrays: name one with key= ({names}"
                             f"{', ...' if len(specs) > 10 else ''})")
        key = next(iter(specs))
    spec = specs.get(key) or specs.get(key.removesuffix(".npy"))
    if spec is None:
        raise KeyError(f"{key!r} is not an array of {label}")
    if spec.refusal is not None:
        raise ValueError(spec.refusal)
    if spec.raw_member is not None:
        raise ValueError(f"{label}: member {spec.raw_member!r} is not an .npy file, so not an array")
    return spec


def _file_array(path: str, identity: sharing.FileIdentity, mode: str, spec: ArraySpec, chunks: Any,
                where: tuple[str, object]) -> da.Array:
    """The dask array of ``spec`` in the file ``path`` that is ``identity``: one task per block."""
    travel: sharing._Mode = "r" if mode == "r" else "r+"
    cut = _normalized_chunks(chunks, spec)
    strides = _strides(spec.dtype, spec.shape, spec.order)
    blocks = _Blocks(path, identity, travel, sharing._validation(None, travel), spec.offset, spec.dtype,
                     spec.shape, strides, tuple(_later_starts(sizes) for sizes in cut))
    name = "mmio-" + tokenize("mmio.dask", path, identity.inode, identity.size, identity.mtime_ns, where,
                              spec.offset, _dtype_token(spec.dtype), spec.shape, spec.order, cut, travel)
    numblocks = tuple(len(sizes) for sizes in cut)
    graph = {(name, *index): (_chunk, blocks, block) for block, index in enumerate(np.ndindex(*numblocks))}
    return da.Array(graph, name, cut, dtype=spec.dtype)


def _dtype_token(dtype: np.dtype) -> tuple[str, str]:
    """What tells dtypes apart in a name: ``str`` alone does not (``bfloat16`` and ``V2`` are both ``<V2``)."""
    return dtype.str, repr(dtype)


def _strides(dtype: np.dtype, shape: tuple[int, ...], order: str) -> tuple[int, ...]:
    """The strides of a contiguous array of ``shape`` in ``order``."""
    strides = [0] * len(shape)
    step = dtype.itemsize
    for axis in (range(len(shape)) if order == "F" else reversed(range(len(shape)))):
        strides[axis] = step
        step *= shape[axis]
    return tuple(strides)


# ---- chunks ----------------------------------------------------------------------------------------------


def _normalized_chunks(chunks: Any, spec: ArraySpec) -> _Chunks:
    if isinstance(chunks, str) and chunks == "auto":
        return auto_chunks(spec.shape, spec.dtype, spec.order, spec.offset)
    return normalize_chunks(chunks, spec.shape, dtype=spec.dtype)


def auto_chunks(shape: tuple[int, ...], dtype, order: str = "C", offset: int = 0,
                target: int | None = None) -> _Chunks:
    """Chunks of about ``target`` bytes (dask's ``array.chunk-size``), each contiguous in the file.

    The slowest axis (the first for C order, the last for F order) is cut; when one index of it holds more
    than ``target`` bytes, each of its indices is a chunk row and the next axis is cut, and so on. Cuts fall
    on page boundaries of the file when the array's ``offset`` and row size allow it (the first block is then
    shorter); blocks are whole pages whenever ``target`` holds the few rows that fill whole pages.

    Examples
    --------
    >>> from mmio.dask import auto_chunks
    >>> auto_chunks((1000, 1000), "f8", offset=128, target=1 << 20)   # 1 MiB blocks of 8000-byte rows
    ((86, 128, 128, 128, 128, 128, 128, 128, 18), (1000,))
    """
    dtype = np.dtype(dtype)
    if target is None:
        target = parse_bytes(dask.config.get("array.chunk-size"))
    if order == "F":
        return auto_chunks(shape[::-1], dtype, "C", offset, target)[::-1]
    if not shape or 0 in shape:
        return tuple((n,) for n in shape)
    axis = 0
    while axis < len(shape) - 1 and dtype.itemsize * math.prod(shape[axis + 1:]) > target:
        axis += 1
    row = dtype.itemsize * math.prod(shape[axis + 1:])
    return (tuple((1,) * n for n in shape[:axis]) + (_aligned_cuts(shape[axis], row, offset, target),)
            + tuple((n,) for n in shape[axis + 1:]))


def _aligned_cuts(n: int, row: int, offset: int, target: int) -> tuple[int, ...]:
    """Block sizes cutting ``n`` rows of ``row`` bytes from file ``offset`` into blocks of about ``target``
    bytes: whole pages, the first cut on a page boundary, when the rows allow (else as near ``target`` as
    whole rows go)."""
    rows = max(1, target // row) if row else n  # (a dtype of no bytes: nothing to cut)
    if rows >= n:
        return (n,)
    period = PAGE_SIZE // math.gcd(row, PAGE_SIZE)  # the fewest rows that fill whole pages
    step, first = rows, rows
    if period <= rows:
        step = first = rows // period * period
        skew = math.gcd(row, PAGE_SIZE)
        if offset % skew == 0:  # some row starts on a page: the first of them is the first cut's base
            lead = (-(offset // skew) * pow(row // skew, -1, period)) % period
            first = step - period + lead if lead else step
    if first >= n:
        return (n,)
    rest, last = divmod(n - first, step)
    return (first,) + (step,) * rest + ((last,) if last else ())


# ---- writing ---------------------------------------------------------------------------------------------


def store(x: da.Array, path, *, order: str = "C", sync: bool = True, compute: bool = True) -> Delayed | None:
    """Write a dask array to a new ``.npy`` file, each chunk by the worker that computed it.

    The client creates the file (:func:`mmio.create`: header and size, no data written); each write task maps
    it ``"r+"`` through its process's cache, copies its chunk into place and returns nothing. Chunks of any
    shape work; across machines, chunks whose regions start on page boundaries keep two machines' writes from
    sharing a page.

    Parameters
    ----------
    x : dask.array.Array
        Any dtype a file can hold (no Python objects); known chunk sizes.
    path : str or os.PathLike
        The new file (an existing one is truncated and overwritten), at this path on every worker.
    order : {"C", "F"}
        The file's memory order (``fortran_order`` in its header).
    sync : bool
        Each task writes its region back to the file (``msync``) before it returns, so a reader on another
        machine sees it once ``store`` has returned. ``False`` leaves the write-back to the kernel.
    compute : bool
        Write now and return ``None``; ``False`` returns a ``Delayed`` that writes when computed.

    Examples
    --------
    >>> import numpy as np, dask.array as da, mmio.dask
    >>> mmio.dask.store(da.arange(6.0, chunks=4), "/tmp/mmio-doc-store.npy")
    >>> np.load("/tmp/mmio-doc-store.npy")
    array([0., 1., 2., 3., 4., 5.])
    """
    if order not in ("C", "F"):
        raise ValueError(f"order must be 'C' or 'F', not {order!r}")
    if any(math.isnan(n) for n in x.shape):
        raise ValueError("store needs known chunk sizes: call x.compute_chunk_sizes() first")
    created = arrays.create(path, x.shape, x.dtype, fortran_order=order == "F")
    if created.size == 0:
        return None if compute else dask.delayed(None)
    ref = sharing.reference(created)
    del created  # unmapped: the workers map the file themselves
    target = _Blocks(ref.path, ref.identity, "r+", "inode", ref.offset, ref.dtype, ref.shape, ref.strides,
                     tuple(_later_starts(sizes) for sizes in x.chunks))
    name = "mmio-store-" + tokenize(x.name, ref.path, ref.identity.inode, ref.identity.mtime_ns, order, sync)
    layer: dict = {(name, block): (_write, target, block, (x.name, *index), sync)
                   for block, index in enumerate(np.ndindex(*x.numblocks))}
    layer[name] = (_written, list(layer))
    inputs: list[Any] = [x]  # (dask's own annotations do not count an Array as a collection)
    writes = Delayed(name, HighLevelGraph.from_collections(name, layer, dependencies=inputs))
    if not compute:
        return writes
    writes.compute()
    return None


def _write(target: _Blocks, block: int, chunk: np.ndarray, sync: bool) -> None:
    """The task: copy ``chunk`` into its region of the file (and write it back with ``sync``)."""
    region = sharing.rebuild(target.reference(block))
    region[...] = chunk
    if sync and region.size:
        mapping = sharing._mapping_under(region)
        assert mapping is not None  # a view of this process's cached mapping of the file
        low, high = sharing._extent(region.__array_interface__["data"][0], region)
        mapping.sync(low - mapping.address, high - low)


def _written(done: list) -> None:
    return None


# ---- residency across a cluster ----------------------------------------------------------------------------


class HostFileResidency(NamedTuple):
    """How much of one file one machine's page cache holds (or why that is not known): a row of
    :class:`ClusterResidency`.

    Examples
    --------
    >>> from mmio.dask import HostFileResidency
    >>> row = HostFileResidency("node1", "/data/a.npy", cached_bytes=1 << 20, fraction=0.25, size=4 << 20)
    >>> row.cached_bytes / row.size
    0.25
    """

    host: str
    file: str
    cached_bytes: int | None
    fraction: float | None
    size: int | None = None
    error: str | None = None


class ClusterResidency:
    """The page-cache residency of some files on every machine of a cluster (:func:`residency`): ``rows``
    of :class:`HostFileResidency`, printed as a table, drawn with a bar per row in notebooks.

    Examples
    --------
    >>> from mmio.dask import ClusterResidency, HostFileResidency
    >>> print(ClusterResidency([HostFileResidency("node1", "/data/a.npy", 3 << 20, 0.75, 4 << 20),
    ...                         HostFileResidency("node2", "/data/b.npy", None, None, None, "No such file")]))
    host   file          cached     size  fraction
    node1  /data/a.npy  3.0 MiB  4.0 MiB     75.0%
    node2  /data/b.npy  No such file
    """

    def __init__(self, rows: list[HostFileResidency]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, index: int) -> HostFileResidency:
        return self.rows[index]

    def __str__(self) -> str:
        header = ("host", "file", "cached", "size", "fraction")
        known = [(row.host, row.file, human_bytes(row.cached_bytes or 0), human_bytes(row.size or 0),
                  f"{row.fraction:.1%}") for row in self.rows if _known(row)]
        widths = [max(len(line[i]) for line in [header, *known, *((r.host, r.file) for r in self.rows)])
                  for i in range(2)]
        widths += [max(len(line[i]) for line in [header, *known]) for i in range(2, 5)]
        lines = []
        for line in [header, *known]:
            cells = [cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))]
            lines.append("  ".join(cells).rstrip())
        for row in self.rows:
            if not _known(row):
                lines.append(f"{row.host.ljust(widths[0])}  {row.file.ljust(widths[1])}  {row.error or 'unknown'}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        cells = []
        for row in self.rows:
            if _known(row):
                figures = (f"<td>{_bar(row.fraction or 0.0)}</td><td>{human_bytes(row.cached_bytes or 0)} of "
                           f"{human_bytes(row.size or 0)}</td><td>{row.fraction:.1%}</td>")
            else:
                figures = f'<td colspan="3" style="color:#a00">{_escape(row.error or "unknown")}</td>'
            cells.append(f"<tr><td>{_escape(row.host)}</td><td><code>{_escape(row.file)}</code></td>{figures}</tr>")
        return ('<table class="mmio-cluster-residency"><thead><tr><th>host</th><th>file</th><th>cached</th>'
                f"<th>bytes</th><th>fraction</th></tr></thead><tbody>{''.join(cells)}</tbody></table>")


def _known(row: HostFileResidency) -> bool:
    return row.error is None and row.cached_bytes is not None and row.fraction is not None


def _escape(text: str) -> str:
    from .display import _text
    return _text(text)


def _bar(fraction: float, width: int = 160) -> str:
    from .display import ABSENT, RESIDENT
    full = round(width * min(max(fraction, 0.0), 1.0))
    return (f'<div style="width:{width}px;height:12px;background:rgb{ABSENT}">'
            f'<div style="width:{full}px;height:12px;background:rgb{RESIDENT}"></div></div>')


def residency(client: Client, paths: Sequence) -> ClusterResidency:
    """How much of each file the page cache of every worker's machine holds: where the data is warm.

    One worker per machine (told apart by host name and boot) answers, with ``cachestat(2)`` (``mincore`` on
    kernels before 6.5): no file is read or mapped to find out.

    Parameters
    ----------
    client : distributed.Client
    paths : sequence of str or os.PathLike
        Files as the workers see them (relative paths are made absolute here, in the client).

    Returns
    -------
    ClusterResidency
        One row per machine and file: host, file, cached bytes, fraction of the file's pages cached, size, and
        the error when a machine cannot tell (no such file, a page cache the kernel hides).

    Examples
    --------
    >>> from distributed import Client                       # doctest: +SKIP
    >>> client = Client(n_workers=2)                         # doctest: +SKIP
    >>> mmio.dask.residency(client, ["/data/train.npy"])     # doctest: +SKIP
    host   file              cached     size  fraction
    node1  /data/train.npy  1.2 GiB  4.0 GiB     30.0%
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    files = [os.fsdecode(os.path.abspath(os.fspath(path))) for path in paths]
    answers = client.run(_cached_here, files)
    hosts: dict[tuple[str, str], list[HostFileResidency]] = {}
    for worker in sorted(answers):
        host, boot, rows = answers[worker]
        hosts.setdefault((host, boot), rows)
    return ClusterResidency([row for machine in sorted(hosts) for row in hosts[machine]])


def _cached_here(files: list[str]) -> tuple[str, str, list[HostFileResidency]]:
    """Run on a worker: this machine's name and boot, and how much of each file its page cache holds."""
    host = socket.gethostname()
    return host, sharing._boot_id(), [_cached_file(host, file) for file in files]


def _cached_file(host: str, file: str) -> HostFileResidency:
    try:
        size = os.stat(file).st_size
        pages = _cached_pages(file)
    except (OSError, ValueError) as exc:
        return HostFileResidency(host, file, None, None, None, str(exc))
    total = -(-size // PAGE_SIZE)
    return HostFileResidency(host, file, min(pages * PAGE_SIZE, size), pages / total if total else 0.0, size)


def _cached_pages(file: str) -> int:
    from ._residency import cache_stat, file_residency
    try:
        return cache_stat(file).cached
    except OSError as exc:
        if exc.errno != errno.ENOSYS:  # a kernel before 6.5: ask mincore
            raise
    return file_residency(file).resident



sharing.register_dask()  # SharedArrays tokenize and travel through distributed by reference
