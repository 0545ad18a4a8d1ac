"""Creating and resizing mappings: ``open`` (files, descriptors, file objects), ``anonymous`` memory, and
``Mapping.resize``.

Everything about targets, descriptors, modes, sizes and the ``mmap``/``mremap`` calls lives here; the
:class:`~mmio.Mapping` type itself (``_mapping``) only holds what it is given.
"""

import os

cdef extern from "Python.h":
    Py_ssize_t PY_SSIZE_T_MAX
cdef extern from "<limits.h>":
    int INT_MAX

cimport mmio._posix as _posix
from mmio._errors cimport raise_errno, raise_oserror
cimport mmio._guard as _guard
from mmio._files cimport open_path, file_size, truncate
from mmio._mapping cimport Mapping
from mmio._pages cimport integer, page_size
from ._flags import Advice

cdef size_t PAGE = page_size()

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
    cdef _posix.stat st
    if mode == "w+":
        file_size(m._fd, m._path, False, "map", length is not None)  # refuses directories and pipes
        truncate(m._fd, size, m._path)
        if _posix.fstat(m._fd, &st) != 0:
            raise_errno("could not stat the file", m._path)
    else:
        size = file_size(m._fd, m._path, False, "map", length is not None, &st)
        if size is not None:
            length = _range_in_file(offset, length, size, mode)
    m._file_offset = offset
    if m._path is not None:  # who it was, for sharing by reference
        _stamp(m, &st)
    # MAP_POPULATE on a private writable mapping would copy every page: prefault reading instead.
    map_into(m, m._fd, length, offset, populate and m._shared and not huge)
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
    cdef _posix.stat st
    if _posix.fstat(m._fd, &st) != 0:
        raise_errno("could not stat the file", path)
    _stamp(m, &st)
    map_into(m, fd, length, offset, populate and m._shared and not huge)
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
    map_into(m, -1, n, 0, populate and not huge)
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
        target = integer(target.fileno(), "fileno()")
    if not 0 <= target <= INT_MAX:  # no such descriptor can exist: say so as fcntl would for -1
        raise_oserror(_posix.EBADF, f"could not use file descriptor {target}", m._path)
    m._fd = _dup_checked(target, mode, m._path)
    return 0


cdef void _stamp(Mapping m, _posix.stat* st) noexcept:
    """Record who the mapped file is (for :mod:`mmio.sharing`), from an ``fstat`` of mmio's descriptor."""
    m._opened.dev = st.st_dev
    m._opened.ino = st.st_ino
    m._opened.size = st.st_size
    m._opened.mtime_ns = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec
    m._opened.ctime_ns = st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec
    m._opened.mode = st.st_mode
    m._stamped = True


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


cdef int map_into(Mapping m, int fd, Py_ssize_t length, Py_ssize_t offset, bint populate,
                  bint release_gil=True) except -1:
    """mmap ``length`` bytes of ``fd`` at file ``offset`` (any alignment; ``fd`` -1: anonymous memory) into
    ``m``, with its protection and sharing; ``m`` is left as it was if that fails. ``release_gil=False``
    for a mapping other threads can already see."""
    if length == 0:
        m.hold(NULL, 0, 0, 0)
        return 0
    cdef size_t delta = <size_t>offset & (PAGE - 1)
    cdef int flags = (_posix.MAP_SHARED if m._shared else _posix.MAP_PRIVATE)
    if fd < 0:
        flags |= _posix.MAP_ANONYMOUS
    if populate:
        flags |= _posix.MAP_POPULATE
    cdef size_t map_length = delta + <size_t>length
    cdef void* base
    cdef int err = 0
    if release_gil:
        with nogil:
            base = _posix.mmap(NULL, map_length, m._prot, flags, fd, offset - <Py_ssize_t>delta)
    else:
        base = _posix.mmap(NULL, map_length, m._prot, flags, fd, offset - <Py_ssize_t>delta)
    err = _posix.errno
    if base == _posix.MAP_FAILED:
        what = f"{length} bytes at offset {offset}" if fd >= 0 else f"{length} bytes of anonymous memory"
        raise_oserror(err, f"could not map {what}", m._path)
    m.hold(base, map_length, delta, length)
    return 0


def resize(Mapping m, new_size):
    """``Mapping.resize``: see its docstring."""
    new_size = integer(new_size, "new_size")
    m.check_open()
    if new_size < 0:
        raise ValueError(f"new_size must not be negative, got {new_size}")
    if new_size > PY_SSIZE_T_MAX:
        raise ValueError(f"new_size {new_size} is larger than the address space")
    if m._exports:
        raise BufferError(f"cannot resize a mapping with {m._exports} live export(s) "
                          "(arrays or memoryviews): they would point at moved memory")
    if m._page_prot is not None:
        raise ValueError("cannot resize while parts of the mapping have different protections; "
                         "protect() the whole mapping first")
    if new_size == m.length:
        return
    grown_from = _make_room(m, new_size) if new_size > m.length else None
    try:
        if m._base == NULL or new_size == 0:
            _remap_fresh(m, new_size)
        else:
            _mremap(m, new_size)
    except BaseException:
        if grown_from is not None:  # leave the file as it was
            _posix.ftruncate(m._fd, grown_from)
        raise
    cdef _posix.stat st
    if grown_from is not None and m._stamped and _posix.fstat(m._fd, &st) == 0:
        _stamp(m, &st)  # the file it maps now (its own growth is no staleness, for sharing)


cdef object _make_room(Mapping m, Py_ssize_t new_size):
    """Check (or make) the backing for ``new_size`` bytes; return the old file size if the file was grown
    (None otherwise). Only a regular file can back a growing mapping: a device's length cannot be checked."""
    if m._anonymous:
        if m._shared:
            raise ValueError("shared anonymous memory cannot grow (its size is fixed when it is created); "
                             "map a new one")
        return None
    if m._fd < 0:
        raise ValueError("this mapping has no file descriptor to grow it with")
    end = m._file_offset + new_size
    cdef _posix.stat st
    if _posix.fstat(m._fd, &st) != 0:
        raise_errno("could not stat the file", m._path)
    if not _posix.S_ISREG(st.st_mode):
        raise ValueError(f"cannot grow a mapping of a device to [{m._file_offset}, {end}): only a regular "
                         "file's size tells which pages exist")
    size = st.st_size
    if end <= size:
        return None
    if m._mode not in ("r+", "w+"):
        raise ValueError(f"cannot grow a mode {m._mode!r} mapping to [{m._file_offset}, {end}): the file has "
                         f"{size} bytes and this mode never grows it")
    truncate(m._fd, end, m._path)
    return size


cdef int _mremap(Mapping m, Py_ssize_t new_size) except -1:
    cdef Py_ssize_t delta = m.data - <char*>m._base
    cdef size_t new_length = <size_t>delta + <size_t>new_size
    # The GIL stays held: the memory may move, and no other thread may use the old address.
    cdef void* base = _posix.mremap(m._base, m._map_length, new_length, _posix.MREMAP_MAYMOVE)
    if base == _posix.MAP_FAILED:
        raise_errno(f"could not resize the mapping to {new_size} bytes", m._path)
    cdef Py_ssize_t old_size = m.length
    m.hold(base, new_length, delta, new_size)
    if new_size > old_size and not m._shared:
        _forget_private_tail(m, old_size)
    return 0


cdef int _forget_private_tail(Mapping m, Py_ssize_t old_size) except -1:
    """After a private mapping grew from ``old_size``: the bytes it regains in the page that held its old end
    are what it wrote there before it shrank (the kernel kept the page). Give them the file's bytes again
    (zeros for anonymous memory), as a fresh mapping would have."""
    cdef size_t old_end = <size_t>(m.data + old_size)
    cdef size_t page_end = (old_end + PAGE - 1) & ~(PAGE - 1)
    cdef Py_ssize_t n = min(<Py_ssize_t>(page_end - old_end), m.length - old_size)
    if n <= 0:
        return 0
    cdef const char* fault = NULL
    cdef char* source
    cdef void* page = <void*>(page_end - PAGE)
    cdef bint read_only = not (m._prot & _posix.PROT_WRITE)
    fresh = bytearray(n)
    m.acquire()  # pread releases the GIL: no other thread may close the mapping meanwhile
    try:
        if not m._anonymous:
            got = os.pread(m._fd, n, m._file_offset + old_size)
            fresh[:len(got)] = got
        source = fresh
        if read_only and _posix.mprotect(page, PAGE, m._prot | _posix.PROT_READ | _posix.PROT_WRITE) != 0:
            raise_errno("could not resize the mapping", m._path)
        try:
            # A page past a truncated end faults: it was never written, so nothing stale is there.
            _guard.copy(<char*>old_end, 1, source, 1, n, <char*>old_end, <char*>old_end + n, NULL, NULL, False,
                        1, &fault)
        finally:
            if read_only:
                _posix.mprotect(page, PAGE, m._prot)
    finally:
        m.release()
    return 0


cdef int _remap_fresh(Mapping m, Py_ssize_t new_size) except -1:
    """Resize to or from zero bytes, where there is no mapping to mremap. The new memory is mapped before the
    old is unmapped (a failure leaves the mapping as it was), all with the GIL held: no other thread may see
    the mapping half replaced."""
    cdef void* old = m._base
    cdef size_t old_length = m._map_length
    map_into(m, -1 if m._anonymous else m._fd, new_size, m._file_offset, False, False)
    if old != NULL:
        _posix.munmap(old, old_length)
    return 0
