"""Mapped arrays across processes and machines by reference: the file travels, never the bytes.

A reference is what a receiver needs to map the same bytes again: the file's path and identity (inode, size,
modification and change times, captured by ``fstat`` of mmio's own descriptor), the byte offset of the array's
first element, its dtype, shape and signed strides, and the mode. It pickles to a few hundred bytes whatever the
array's size. The receiver checks the file is still the one the sender mapped (:class:`StaleFileError` if not),
maps the whole file once per process (a bounded cache, cleared in a forked child) and returns a bounds-checked
view of it with the sender's exact geometry.

Three ways in:

- :func:`share` wraps one array explicitly: a :class:`SharedRef` that unpickles as a plain ndarray;
- ``load(..., share=True)`` returns :class:`SharedArray` s, which pickle by reference wherever they go
  (pickle, multiprocessing, concurrent.futures, joblib, dask) and fall back to bytes when they hold a copy;
- a :class:`~mmio.Mapping` pickles by reference (path, identity, mode, range).
"""

from __future__ import annotations

import collections
import errno
import functools
import os
import pickle
import stat
import sys
import threading
from typing import Literal, NamedTuple, TypeAlias

import numpy as np

from ._mapping import Mapping, MappingExport

FORMAT = 1
"""Version of the reference layout; a receiver refuses versions it does not know."""

CACHE_FILES = 64
"""Files a process keeps mapped for the references it receives (the least recently used one goes first)."""

VALIDATIONS = ("strict", "inode", "none")

_Mode: TypeAlias = Literal["r", "r+"]
"""The modes a reference travels in: a receiver never truncates ("w+") and never gets private memory ("c")."""


class StaleFileError(OSError):
    """The file a reference names is no longer the file the sender mapped (rewritten, replaced, truncated or
    deleted): the bytes the receiver would see are not the sender's. ``errno`` is ``ESTALE``; the message
    shows both identities.

    Examples
    --------
    >>> import os, pickle, mmio, numpy as np
    >>> np.save("/tmp/mmio-doc-stale.npy", np.zeros(10))
    >>> payload = pickle.dumps(mmio.share(mmio.load("/tmp/mmio-doc-stale.npy")))
    >>> np.save("/tmp/mmio-doc-stale.npy", np.ones(11))   # rewritten since
    >>> try:
    ...     pickle.loads(payload)
    ... except mmio.StaleFileError as exc:
    ...     print("stale:", exc.filename)
    stale: /tmp/mmio-doc-stale.npy
    """


class FileIdentity(NamedTuple):
    """Who a file is: what ``fstat`` says of it, and of which boot of which machine (device numbers mean
    something only there)."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    boot_id: str

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, _boot_id())

    @classmethod
    def stamped(cls, stamp: tuple[int, ...]) -> FileIdentity:
        """From the ``(dev, ino, size, mtime_ns, ctime_ns, mode)`` a Mapping recorded when it was made."""
        device, inode, size, mtime_ns, ctime_ns = stamp[:5]
        return cls(device, inode, size, mtime_ns, ctime_ns, _boot_id())

    def differs(self, other: FileIdentity, validate: str) -> list[str]:
        """The fields in which ``other`` (the file now) is not this file, under ``validate``."""
        if validate == "none":
            return []
        fields = ["inode", "size", "mtime_ns", "ctime_ns"] if validate == "strict" else ["inode"]
        if self.boot_id == other.boot_id:  # the same machine, booted once: device numbers compare
            fields.insert(0, "device")
        return [name for name in fields if getattr(self, name) != getattr(other, name)]

    def __str__(self) -> str:
        return (f"inode {self.inode} on device {self.device:#x}, {self.size} bytes, "
                f"mtime_ns {self.mtime_ns}, ctime_ns {self.ctime_ns}")


class Reference(NamedTuple):
    """What travels instead of the bytes of an array."""

    format: int
    path: str
    identity: FileIdentity
    mode: _Mode
    validate: str
    offset: int  # of the first element (index 0, ..., 0) in the file
    dtype: np.dtype
    shape: tuple[int, ...]
    strides: tuple[int, ...]


class MappingReference(NamedTuple):
    """What travels instead of a Mapping."""

    format: int
    path: str
    identity: FileIdentity
    mode: _Mode
    validate: str
    offset: int
    length: int


class ReloadReference(NamedTuple):
    """What travels instead of a lazy container ``load`` returned (an ``.npz``, a sharded checkpoint): its
    file, and how it was loaded."""

    format: int
    path: str
    identity: FileIdentity
    options: dict
    validate: str
    parts: tuple[tuple[str, FileIdentity], ...] = ()


# ---- the sender's side ---------------------------------------------------------------------------------


def share(array, *, validate: str | None = None) -> SharedRef:
    """Wrap a zero-copy array of a file mapping so that it pickles by reference.

    Parameters
    ----------
    array : numpy.ndarray
        A view of a shared (``"r"``, ``"r+"`` or ``"w+"``) mapping of a regular file, as ``mmio.load``,
        ``mmio.open_array`` or ``Mapping.array`` return, sliced, transposed or reversed as you like.
    validate : {"strict", "inode", "none"}, optional
        How a receiver checks the file is still the sender's: ``"strict"`` (inode, size, mtime and ctime;
        the default for read-only arrays), ``"inode"`` (the default for writable ones, whose own writes move
        mtime) or ``"none"``.

    Returns
    -------
    SharedRef
        Pickles to a few hundred bytes; unpickles as a plain ``numpy.ndarray`` over the same file bytes.

    Raises
    ------
    ValueError
        The array is not a view of a shared file mapping (a copy, anonymous memory, mode ``"c"``, whose
        writes are private to this process), or its mapping is closed.
    StaleFileError
        The file changed size since it was mapped, or was deleted.

    Examples
    --------
    >>> import pickle, mmio, numpy as np
    >>> np.save("/tmp/mmio-doc-share.npy", np.arange(1_000_000.0))
    >>> a = mmio.load("/tmp/mmio-doc-share.npy")
    >>> payload = pickle.dumps(mmio.share(a[::-2]))
    >>> len(payload) < 1024
    True
    >>> pickle.loads(payload)[:3]
    array([999999., 999997., 999995.])
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"share() takes a numpy.ndarray, not {type(array).__name__}")
    return SharedRef(reference(array, validate))


def reference(array: np.ndarray, validate: str | None = None) -> Reference:
    """The :class:`Reference` of a view of a shared file mapping (see :func:`share` for what is refused)."""
    mapping = _mapping_under(array)
    if mapping is None:
        raise ValueError("the array is not a view of an mmio file mapping (a copy, or memory of its own): "
                         "it can only travel by value")
    path, identity, mode = _file_of(mapping, "the array", ValueError)
    first = array.__array_interface__["data"][0]
    if array.size:
        low, high = _extent(first, array)
        if low < mapping.address or high > mapping.address + len(mapping):
            raise ValueError("the array reaches outside its mapping")
    offset = mapping.offset + (first - mapping.address) if array.size else 0
    return Reference(FORMAT, path, identity, mode, _validation(validate, mode), offset, array.dtype,
                     array.shape, array.strides)


def reduce_mapping(mapping: Mapping):
    """``Mapping.__reduce__``: the mapping as a reference to its file and range."""
    if mapping.closed:
        raise ValueError("cannot pickle a closed mapping")
    path, identity, mode = _file_of(mapping, "a Mapping", TypeError)
    ref = MappingReference(FORMAT, path, identity, mode, _validation(None, mode), mapping.offset, len(mapping))
    return _rebuild_mapping, (ref,)


def reload_reference(fd: int, path: str, options: dict, parts: tuple[str, ...] = ()) -> ReloadReference:
    """The reference of a container ``load`` is making from the file open as ``fd``, with ``options``;
    ``parts``: the files it reads too (a checkpoint's shards), checked on arrival as well.

    The path is kept as the caller named it (made absolute), not resolved: a checkpoint's index may be a
    symbolic link (the Hugging Face cache's layout) whose shards lie beside the link, not beside its target.
    """
    advice = options.get("advice")
    options = {**options, "advice": None if advice is None else advice.name.lower()}
    checked = tuple((part, FileIdentity.of(os.stat(part))) for part in parts)
    validate = "strict" if options.get("mode", "r") == "r" else "inode"  # "r+": its own writes move mtime
    return ReloadReference(FORMAT, os.path.abspath(path), FileIdentity.of(os.fstat(fd)), options, validate,
                           checked)


def reduce_reload(ref: ReloadReference | None, what: str):
    """``__reduce__`` of a lazy container: the file, loaded again on arrival."""
    if ref is None:
        raise TypeError(f"cannot pickle {what} that mmio.load did not make")
    if ref.options.get("mode") == "c" or ref.options.get("copy"):
        raise TypeError(f"{what} loaded with mode 'c' or copy=True holds this process's private memory (and "
                        "whatever was written to it); a reference to the file cannot carry it")
    return _reload, (ref,)


def _reload(ref: ReloadReference):
    from .arrays import load
    _check_now(ref.path, ref.identity, ref.validate)
    for part, identity in ref.parts:
        _check_now(part, identity, ref.validate)
    options = dict(ref.options)
    return load(ref.path, **{name: options[name] for name in _LOAD_OPTIONS if name in options})


_LOAD_OPTIONS = ("mode", "copy", "threads", "populate", "advice", "huge", "prefetch", "share")


def _mapping_under(array: np.ndarray) -> Mapping | None:
    """The mmio mapping whose memory ``array`` views, if any (following ``.base``)."""
    base: object = array
    while base is not None:
        if isinstance(base, MappingExport):
            return base.mapping
        if isinstance(base, Mapping):
            return base
        # an ndarray's .base; as_strided's DummyArray has .base too; a memoryview has .obj
        base = getattr(base, "base", None) if hasattr(base, "base") else getattr(base, "obj", None)
    return None


def _file_of(mapping: Mapping, what: str, refusal: type[Exception]) -> tuple[str, FileIdentity, _Mode]:
    """``(absolute path, identity, mode to travel in)`` of a shared mapping of a regular file, or the refusal
    saying why it cannot travel by reference."""
    if mapping.mode == "c":
        raise refusal(f"{what} is a copy-on-write ('c') mapping: its writes are private to this process and "
                      "a reference cannot carry them; pickle a copy, or map the file with mode 'r' or 'r+'")
    state = mapping._file_state()
    if state is None:
        raise refusal(f"{what} is anonymous memory or a bare descriptor: there is no file to refer to")
    opened, now, named = state
    opened_mode, opened_size = opened[5], opened[2]
    if not stat.S_ISREG(opened_mode):
        raise refusal(f"{what} maps {mapping.path!s}, which is not a regular file: only regular files "
                      "are reopened")
    if named is None or named.endswith(" (deleted)"):
        raise StaleFileError(errno.ESTALE, f"{mapping.path!s} was deleted since it was mapped: no "
                                             "receiver could open it", mapping.path)
    if now.st_size != opened_size:
        raise StaleFileError(errno.ESTALE, f"{named} changed size under this process ({opened_size} -> "
                                             f"{now.st_size} bytes) since it was mapped", named)
    mode: _Mode = "r" if mapping.mode == "r" else "r+"  # "w+" too: never truncate on the receiver
    return named, FileIdentity.of(now), mode


def _extent(first: int, array: np.ndarray) -> tuple[int, int]:
    """The lowest and one-past-highest address of a non-empty array's bytes."""
    low = high = first
    for n, step in zip(array.shape, array.strides):
        if step < 0:
            low += (n - 1) * step
        else:
            high += (n - 1) * step
    return low, high + array.itemsize


def _validation(validate: str | None, mode: str) -> str:
    if validate is None:
        return "strict" if mode == "r" else "inode"
    if validate not in VALIDATIONS:
        raise ValueError(f"validate must be one of {', '.join(VALIDATIONS)}, not {validate!r}")
    return validate


# ---- the receiver's side -------------------------------------------------------------------------------


class _Mapped(NamedTuple):
    mapping: Mapping
    identity: FileIdentity
    whole: np.ndarray  # every byte of the file, as uint8: the base every rebuilt view is cut from


_cache: collections.OrderedDict[tuple[str, _Mode], _Mapped] = collections.OrderedDict()


_cache_lock = threading.Lock()  # receivers may unpickle on several threads (a dask worker's)


def _forget_inherited_mappings() -> None:
    global _cache_lock
    _cache_lock = threading.Lock()  # another thread may have held it at the fork
    _cache.clear()  # a forked child's copies of them are closed (or not there at all)


os.register_at_fork(after_in_child=_forget_inherited_mappings)


def rebuild(ref: Reference) -> np.ndarray:
    """The plain ndarray a :class:`Reference` names, mapped in this process."""
    if not isinstance(ref, Reference) or ref.format != FORMAT:
        raise ValueError(f"not an mmio array reference of format {FORMAT}: {ref!r:.200}")
    if (not isinstance(ref.dtype, np.dtype) or ref.dtype.hasobject or not isinstance(ref.shape, tuple)
            or not isinstance(ref.strides, tuple) or len(ref.shape) != len(ref.strides)
            or not all(type(n) is int and n >= 0 for n in ref.shape)
            or not all(type(n) is int for n in ref.strides)):
        # (object dtypes would read file bytes as pointers)
        raise ValueError(f"a reference to {ref.path} has a bad dtype, shape or strides")
    if 0 in ref.shape:
        _check_now(ref.path, ref.identity, ref.validate)
        # no bytes to map, but the sender's strides and writability (numpy ignores strides without a buffer)
        empty = b"" if ref.mode == "r" else bytearray()
        return np.ndarray(ref.shape, ref.dtype, buffer=empty, strides=ref.strides)
    whole = _whole_file(ref.path, ref.mode, ref.identity, ref.validate).whole
    low = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.strides) if s < 0)
    if low < 0:
        raise ValueError(f"a reference to {ref.path} reaches before the start of the file")
    high = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.strides) if s > 0) + ref.dtype.itemsize
    _check_covers(ref.path, ref.identity, len(whole), high, ref.validate)
    try:  # numpy checks every element lies inside the file's bytes
        return np.ndarray(ref.shape, ref.dtype, buffer=whole, offset=ref.offset, strides=ref.strides)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a reference to {ref.path} does not fit in the file as it is now: {exc}") from None


def _rebuild_array(ref: Reference) -> np.ndarray:
    return rebuild(ref)


def _rebuild_shared(ref: Reference) -> SharedArray:
    register_dask()  # a receiver with dask (a dask worker) tokenizes what it receives by file, too
    return rebuild(ref).view(SharedArray)


def _as_shared(array: np.ndarray) -> SharedArray:
    return array.view(SharedArray)


def _rebuild_mapping(ref: MappingReference) -> Mapping:
    from ._open import open as open_mapping
    now = _check_now(ref.path, ref.identity, ref.validate)
    _check_covers(ref.path, ref.identity, now.size, ref.offset + ref.length, ref.validate)
    mapping = open_mapping(ref.path, ref.mode, offset=ref.offset, length=ref.length)
    _check_mapped(mapping, ref.path, ref.identity, ref.validate)
    return mapping


def _whole_file(path: str, mode: _Mode, identity: FileIdentity, validate: str) -> _Mapped:
    """The cached mapping of every byte of ``path``, checked to be the file ``identity`` names."""
    from ._open import open as open_mapping
    now = _check_now(path, identity, validate)
    key = (path, mode)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and not cached.mapping.closed and cached.identity[:3] == now[:3]:  # same file, size
            _cache.move_to_end(key)
            return cached
    mapping = open_mapping(path, mode)  # outside the lock: two threads may both map it, and one mapping stays
    mapped_identity = _check_mapped(mapping, path, identity, validate)
    entry = _Mapped(mapping, mapped_identity, mapping.array(np.uint8, (len(mapping),)))
    with _cache_lock:
        _cache[key] = entry
        _cache.move_to_end(key)
        while len(_cache) > CACHE_FILES:
            _cache.popitem(last=False)  # arrays still using it keep it mapped
    return entry


def _check_now(path: str, identity: FileIdentity, validate: str) -> FileIdentity:
    """The identity of ``path`` now, if it is the sender's file."""
    try:
        now = FileIdentity.of(os.stat(path))
    except FileNotFoundError:
        raise StaleFileError(errno.ESTALE, f"{path} is gone (the sender's file was {identity})", path) from None
    _compare(path, identity, now, validate)
    return now


def _check_mapped(mapping: Mapping, path: str, identity: FileIdentity, validate: str) -> FileIdentity:
    """The identity of the file ``mapping`` maps (its own descriptor's), if it is the sender's."""
    state = mapping._file_state()
    assert state is not None  # a mapping of a path
    opened = FileIdentity.stamped(state[0])
    try:
        _compare(path, identity, opened, validate)
    except StaleFileError:
        mapping.close()
        raise
    return opened


def _check_covers(path: str, sent: FileIdentity, size: int, end: int, validate: str) -> None:
    """Refuse, as stale, a range that lay inside the sender's file but is past the end of the file now (what
    ``"inode"`` and ``"none"`` let through); a range past the end of the sender's file too is malformed, and
    left to the caller."""
    if size < end <= sent.size:
        raise StaleFileError(errno.ESTALE, f"{path} is now {size} bytes, too short for the sender's range, "
                                             f"which ends at byte {end} (validate={validate!r}): the sender's "
                                             f"was {sent}", path)


def _compare(path: str, sent: FileIdentity, now: FileIdentity, validate: str) -> None:
    differs = sent.differs(now, validate)
    if differs:
        raise StaleFileError(errno.ESTALE, f"{path} is not the file the sender mapped ({', '.join(differs)} "
                                             f"differ; validate={validate!r}): the sender's was {sent}; this "
                                             f"one is {now}", path)


@functools.cache
def _boot_id() -> str:
    """This boot of this machine (device numbers mean something only within it); "" where unknown."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


# ---- the wrappers ----------------------------------------------------------------------------------------


class SharedRef:
    """An array's reference (:func:`share`): pickles to a few hundred bytes, unpickles as a plain
    ``numpy.ndarray`` mapped from the same file.

    Attributes
    ----------
    path : str
        The file, as its descriptor named it when the reference was made.
    dtype : numpy.dtype
    shape : tuple of int

    Examples
    --------
    >>> import mmio, numpy as np
    >>> np.save("/tmp/mmio-doc-ref.npy", np.arange(12.0).reshape(3, 4))
    >>> ref = mmio.share(mmio.load("/tmp/mmio-doc-ref.npy").T)
    >>> ref.shape, ref.path
    ((4, 3), '/tmp/mmio-doc-ref.npy')
    """

    __slots__ = ("_ref",)

    def __init__(self, ref: Reference) -> None:
        self._ref = ref

    @property
    def path(self) -> str:
        return self._ref.path

    @property
    def dtype(self) -> np.dtype:
        return self._ref.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self._ref.shape

    def __reduce__(self):
        return _rebuild_array, (self._ref,)

    def __repr__(self) -> str:
        return f"<mmio.SharedRef {self._ref.dtype} {self._ref.shape} of {self._ref.path!r} mode={self._ref.mode!r}>"


class SharedArray(np.ndarray):
    """An ndarray over a file mapping that pickles by reference (``load(..., share=True)``).

    Views of it (slices, transposes, reversed views) are SharedArrays and travel by reference too; results
    of computations (new memory) are plain ndarrays; a copy travels by value. A receiver gets a SharedArray,
    so it can send it on.

    Examples
    --------
    >>> import pickle, mmio, numpy as np
    >>> np.save("/tmp/mmio-doc-shared.npy", np.arange(1_000_000.0))
    >>> a = mmio.load("/tmp/mmio-doc-shared.npy", share=True)
    >>> len(pickle.dumps(a[::-1])) < 1024, type(a * 2).__name__
    (True, 'ndarray')
    """

    def __reduce_ex__(self, protocol):
        try:
            ref = reference(self)
        except ValueError:  # a copy, or memory of its own (a received empty view): its bytes are all there is,
            return _as_shared, (self.view(np.ndarray),)  # pickled as numpy does (out-of-band with protocol 5)
        return _rebuild_shared, (ref,)

    def __reduce__(self):
        return self.__reduce_ex__(2)

    def __array_wrap__(self, array, context=None, return_scalar=False):
        if array is not self and isinstance(array, SharedArray):
            array = array.view(np.ndarray)  # new memory: nothing of the file's about it
        if return_scalar and array.ndim == 0:
            return array[()]
        return array

    def __dask_tokenize__(self):
        return _token(self)


def _token(array: SharedArray):
    """What names a SharedArray's contents for dask without reading them: the file's identity and the view;
    ``None`` (hash the bytes) for writable arrays, whose contents change with no change to the file's identity
    (a write to a page already dirty moves no mtime)."""
    try:
        ref = reference(array)
    except ValueError:
        return None
    if ref.mode != "r":
        return None
    # dtype.str alone names every structured dtype of one size, and ml_dtypes' types, alike ("|V8", "<V2")
    return ("mmio.SharedArray", ref.path, ref.identity[:5], ref.offset, ref.dtype.str, str(ref.dtype), ref.shape,
            ref.strides)


def register_dask() -> None:
    """Teach dask and distributed SharedArrays, where they are imported already (a no-op otherwise):

    - dask's tokenizer dispatches ndarray subclasses to numpy's, which hashes the bytes, before it looks at
      ``__dask_tokenize__``: SharedArrays are named by their file and view instead;
    - distributed's serialization (``client.scatter``, results, transfers between workers) would send their
      bytes as an ndarray's: they travel as references, copies as bytes.

    Runs when mmio.sharing is imported (a dask worker has both loaded), on ``load(..., share=True)``, on
    unpickling a SharedArray and on importing ``mmio.dask``.
    """
    tokenize = sys.modules.get("dask.base")
    if tokenize is not None and SharedArray not in _REGISTERED:
        _REGISTERED.add(SharedArray)

        def normalize(array):
            token = _token(array)
            return token if token is not None else tokenize.normalize_token(array.view(np.ndarray))
        tokenize.normalize_token.register(SharedArray)(normalize)
    if "distributed.protocol" in sys.modules and "distributed" not in _REGISTERED:
        _REGISTERED.add("distributed")
        _register_distributed()


_REGISTERED: set = set()


def _register_distributed() -> None:
    from distributed.protocol import dask_deserialize, dask_serialize
    from distributed.protocol.numpy import deserialize_numpy_ndarray, serialize_numpy_ndarray

    @dask_serialize.register(SharedArray)
    def _serialize(array: SharedArray) -> tuple[dict, list]:
        try:
            return {"mmio": "reference"}, [pickle.dumps(reference(array))]
        except ValueError:  # a copy: its bytes are all there is
            return serialize_numpy_ndarray(array.view(np.ndarray))

    @dask_deserialize.register(SharedArray)
    def _deserialize(header: dict, frames: list) -> np.ndarray:
        if header.get("mmio") == "reference":
            return _rebuild_shared(pickle.loads(frames[0]))
        return deserialize_numpy_ndarray(header, frames)


register_dask()
