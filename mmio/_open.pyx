"""Creating mappings: ``open`` (files, descriptors, file objects) and ``anonymous`` memory.

Everything about targets, descriptors, modes and sizes lives here; the
:class:`~mmio.Mapping` type itself (``_mapping``) only maps what it is given.
"""

import os

cdef extern from "Python.h":
    Py_ssize_t PY_SSIZE_T_MAX

cimport mmio._posix as _posix
from mmio._errors cimport raise_errno, raise_oserror
from mmio._files cimport open_path, file_size, truncate
from mmio._mapping cimport Mapping
from mmio._pages cimport integer
from ._flags import Advice

_MODE_ALIASES = {"readonly": "r", "readwrite": "r+", "write": "w+", "copyonwrite": "c"}
_MODES = ("r", "r+", "c", "w+")


def open(target, mode="r", *, offset=0, length=None, size=None,
         populate=False, huge=False, advice=None):
    """Map a file into memory.

    Parameters
    ----------
    target : str, os.PathLike, file object or int
        A path, an open file object, or a file descriptor.  For file objects
        and descriptors mmio keeps its own duplicate, so the caller may close
        theirs.
    mode : {"r", "r+", "c", "w+"}
        ``"r"`` read-only; ``"r+"`` read-write, writes reach the file (which is
        never grown); ``"c"`` copy-on-write, writes stay private; ``"w+"``
        create or truncate the file to ``size`` bytes, then read-write.
    offset : int
        Byte offset in the file where the mapping starts (need not be aligned).
    length : int, optional
        Bytes to map; default to the end of the file.  Zero gives an empty mapping.
    size : int, optional
        The file size for mode ``"w+"`` (required there, refused elsewhere).
    populate : bool
        Fault every page in now (``MAP_POPULATE``).
    huge : bool
        Ask for transparent huge pages (``MADV_HUGEPAGE``).
    advice : Advice or str, optional
        ``madvise`` advice applied to the whole mapping right away.

    Returns
    -------
    Mapping

    Raises
    ------
    FileNotFoundError, PermissionError, IsADirectoryError, OSError
        The file cannot be opened or mapped; ``filename`` names it.
    ValueError
        A bad mode, range or size.

    Examples
    --------
    >>> import mmio, numpy as np
    >>> np.arange(4, dtype="f8").tofile("/tmp/mmio-doc.f8")
    >>> with mmio.open("/tmp/mmio-doc.f8") as m:
    ...     m.array("f8").sum()
    np.float64(6.0)
    """
    mode = _MODE_ALIASES.get(mode.lower(), mode.lower()) if isinstance(mode, str) else mode
    if mode not in _MODES:
        raise ValueError(f"mode must be one of 'r', 'r+', 'c', 'w+', not {mode!r}")
    offset = integer(offset, "offset")
    if offset < 0:
        raise ValueError(f"offset must not be negative, got {offset}")
    length = None if length is None else integer(length, "length")
    size = None if size is None else integer(size, "size")
    if length is not None and length < 0:
        raise ValueError(f"length must not be negative, got {length}")
    if mode == "w+":
        if size is None:
            raise ValueError("mode 'w+' creates the file and needs its size: pass size=")
        if size < 0:
            raise ValueError(f"size must not be negative, got {size}")
    elif size is not None:
        raise ValueError(f"size= is only for mode 'w+' (mode {mode!r} never resizes the file); "
                         "use length= to map part of a file")
    for name, value in (("offset", offset), ("length", length), ("size", size)):
        if value is not None and value > PY_SSIZE_T_MAX:
            raise ValueError(f"{name} {value} is larger than any file can be")
    advice = _open_advice(advice, mode)

    cdef Mapping m = Mapping.__new__(Mapping)
    m._mode = mode
    m._shared = mode != "c"
    m._prot = _posix.PROT_READ if mode == "r" else _posix.PROT_READ | _posix.PROT_WRITE
    if mode == "w+":  # check the range before the file is created or truncated
        length = _range_in_file(offset, length, size, mode)
    _take_target(m, target, mode)
    if mode == "w+":
        file_size(m._fd, m._path, False, "map", length is not None)  # refuses directories and pipes
        truncate(m._fd, size, m._path)
    else:
        size = file_size(m._fd, m._path, False, "map", length is not None)
        if size is not None:
            length = _range_in_file(offset, length, size, mode)
    m._file_offset = offset
    # MAP_POPULATE on a private writable mapping would copy every page: prefault reading instead.
    m.map_fd(m._fd, length, offset, populate and m._shared and not huge)
    _apply_open_options(m, populate and not (m._shared and not huge), huge, advice, False)
    return m


def _map_open_file(int fd, path, str mode, Py_ssize_t offset, Py_ssize_t length,
                   populate=False, huge=False, advice=None):
    """Map ``[offset, offset+length)`` of a file the caller opened and already checked.

    For mmio's loaders, which read the header through ``fd`` and must not pay
    for opening the file twice.  The caller keeps (and closes) ``fd``; the
    mapping keeps a duplicate.  ``mode`` is one of ``"r"``, ``"r+"``, ``"c"``;
    the range must lie inside the file.
    """
    advice = _open_advice(advice, mode)
    cdef Mapping m = Mapping.__new__(Mapping)
    m._mode = mode
    m._shared = mode != "c"
    m._prot = _posix.PROT_READ if mode == "r" else _posix.PROT_READ | _posix.PROT_WRITE
    m._path = path
    m._file_offset = offset
    m._fd = _dup_checked(fd, mode, path)
    m.map_fd(fd, length, offset, populate and m._shared and not huge)
    _apply_open_options(m, populate and not (m._shared and not huge), huge, advice, False)
    return m


def anonymous(length, *, shared=True, populate=False, huge=False):
    """Map anonymous, zero-filled memory.

    Parameters
    ----------
    length : int
        Bytes to map; zero gives an empty mapping.
    shared : bool
        ``True`` (``MAP_SHARED``): children created by ``fork`` see the same
        memory, so it can carry data between processes.  ``False``: private.
    populate : bool
        Allocate every page now.
    huge : bool
        Ask for transparent huge pages (``MADV_HUGEPAGE``).

    Returns
    -------
    Mapping
        Mode ``"r+"`` when shared, ``"c"`` when private.

    Examples
    --------
    >>> import mmio
    >>> with mmio.anonymous(4096) as m:
    ...     m[:5] = b"hello"
    ...     m[:5]
    b'hello'
    """
    length = integer(length, "length")
    if length < 0:
        raise ValueError(f"length must not be negative, got {length}")
    if length > PY_SSIZE_T_MAX:
        raise ValueError(f"length {length} is larger than the address space")
    cdef Py_ssize_t n = length
    cdef Mapping m = Mapping.__new__(Mapping)
    m._anonymous = True
    m._shared = bool(shared)
    m._mode = "r+" if shared else "c"
    m._prot = _posix.PROT_READ | _posix.PROT_WRITE
    m.map_fd(-1, n, 0, populate and not huge)
    _apply_open_options(m, populate and huge, huge, None, True)
    return m


cdef object _open_advice(object advice, str mode):
    """The advice to apply at open, refusing advice that would throw data away."""
    if advice is None:
        return None
    advice = Advice.parse(advice)
    if advice.throws_away(private=mode == "c"):
        raise ValueError(f"advice {advice.name} at open would throw data away; "
                         "call advise(..., discard=True) on the mapping if that is what you want")
    return advice


cdef object _range_in_file(object offset, object length, object file_size, str mode):
    """The length of ``[offset, offset+length)`` (None = to the end) after checking it fits the file."""
    if offset > file_size:
        raise ValueError(f"offset {offset} is past the end of the file ({file_size} bytes)")
    if length is None:
        return file_size - offset
    if offset + length > file_size:
        hint = "" if mode == "w+" else f"; mode {mode!r} never grows the file"
        raise ValueError(f"range [{offset}, {offset + length}) is outside the file "
                         f"of {file_size} bytes{hint}")
    return length


cdef int _take_target(Mapping m, object target, str mode) except -1:
    """Open or duplicate the file behind ``target`` into ``m._fd``, which the mapping keeps
    (like the stdlib's mmap): resize() must reach this file, not whatever the path names later."""
    if isinstance(target, (str, bytes, os.PathLike)):
        m._path = os.fspath(target)
        m._fd = open_path(m._path, mode, False, "map")
        return 0
    if isinstance(target, bool) or not (isinstance(target, int) or hasattr(target, "fileno")):
        raise TypeError(f"target must be a path, a file object or a file descriptor, "
                        f"not {type(target).__name__}")
    if not isinstance(target, int):
        name = getattr(target, "name", None)
        if isinstance(name, (str, bytes)):
            m._path = name
        if hasattr(target, "flush") and not getattr(target, "closed", False):
            target.flush()  # data still in Python's buffer would be missing from the mapping
        target = target.fileno()
    m._fd = _dup_checked(target, mode, m._path)
    return 0


cdef int _dup_checked(int fd, str mode, object path) except -1:
    cdef int access = _posix.fcntl(fd, _posix.F_GETFL)
    if access < 0:
        raise_errno(f"could not use file descriptor {fd}", path)
    access &= _posix.O_ACCMODE
    if access == _posix.O_WRONLY:
        raise_oserror(_posix.EACCES, f"cannot map file descriptor {fd}: it is open write-only "
                      "and a mapping must be readable", path)
    if mode in ("r+", "w+") and access != _posix.O_RDWR:
        raise_oserror(_posix.EACCES, f"cannot map file descriptor {fd} in mode {mode!r}: "
                      "it is open read-only", path)
    cdef int own = _posix.fcntl(fd, _posix.F_DUPFD_CLOEXEC, 0)
    if own < 0:
        raise_errno(f"could not duplicate file descriptor {fd}", path)
    return own


cdef int _apply_open_options(Mapping m, bint populate, bint huge, object advice,
                             bint anonymous) except -1:
    if m.length == 0:
        return 0
    if huge:
        m.madvise(Advice.HUGEPAGE, 0, m.length)
    if populate:  # after HUGEPAGE, so the first faults can take huge pages
        m.populate_range(0, m.length, anonymous, 1)
    if advice is not None:
        m.madvise(advice, 0, m.length)
    return 0
