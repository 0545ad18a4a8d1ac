"""Opening files and checking what they are, with one wording for every entry point.

``mmio.open`` maps regular files and devices; ``load``, ``residency``,
``cache_stat``, ``touch`` and ``evict`` work on regular files only. Either way
a missing file says "could not open the file for reading: No such file or
directory", a directory is an ``IsADirectoryError`` ("cannot <verb> a
directory") and a pipe or socket an ``OSError(ENODEV)``, with the file name.
"""

import errno
import os

cimport mmio._posix as _posix
from mmio._errors cimport raise_errno, raise_oserror


cdef int open_path(object path, str mode, bint regular_only, str verb, long long* size=NULL) except -1:
    """Open ``path`` for ``mode`` ("r"/"c" read-only, "r+" read-write, "w+" create or truncate).

    With ``regular_only`` the type is checked before opening (opening some devices has side
    effects) and again after (the name may have changed hands in between). The open is
    non-blocking, so a FIFO is refused rather than waited on; regular files ignore the flag.
    With ``regular_only``, ``size`` (if given) receives the file's size.
    """
    cdef bytes encoded = os.fsencode(path)
    if b"\0" in encoded:
        raise ValueError(f"embedded null byte in path {path!r}")
    cdef _posix.stat st
    if regular_only and _posix.c_stat(encoded, &st) == 0:  # a failure is reported by open() below
        _refuse_kind(path, st.st_mode, verb, True)
    cdef int flags = _posix.O_CLOEXEC | _posix.O_NONBLOCK
    if mode == "w+":
        flags |= _posix.O_RDWR | _posix.O_CREAT | _posix.O_TRUNC
    elif mode == "r+":
        flags |= _posix.O_RDWR
    else:
        flags |= _posix.O_RDONLY
    cdef int fd = _posix.open(encoded, flags, 0o666)
    if fd < 0:
        raise_errno(f"could not open the file for {'read-write' if mode in ('r+', 'w+') else 'reading'}", path)
    if regular_only:
        try:
            found = file_size(fd, path, True, verb, False)
        except BaseException:
            _posix.close(fd)
            raise
        if size != NULL:
            size[0] = found
    return fd


cdef object file_size(int fd, object path, bint regular_only, str verb, bint sized_by_caller,
                      _posix.stat* seen=NULL):
    """The size of the open file ``fd`` (and, in ``seen``, all ``fstat`` said of it).

    Regular files give their size and block devices theirs; a character device has
    none (``None`` when the caller gives the length, ``ValueError`` otherwise).
    Directories, pipes and sockets (and devices, with ``regular_only``) are refused.
    """
    cdef _posix.stat st
    if _posix.fstat(fd, &st) != 0:
        raise_errno("could not stat the file", path)
    if seen != NULL:
        seen[0] = st
    if _posix.S_ISREG(st.st_mode):
        return st.st_size
    _refuse_kind(path, st.st_mode, verb, regular_only)
    if _posix.S_ISBLK(st.st_mode):
        end = _posix.lseek(fd, 0, _posix.SEEK_END)
        if end < 0:
            raise_errno("could not find the size of the block device", path)
        return end
    if not sized_by_caller:
        raise ValueError(f"{os.fsdecode(path) if path is not None else 'the file'}: "
                         "a character device has no size: pass length=")
    return None


cdef int _refuse_kind(object path, unsigned int st_mode, str verb, bint regular_only) except -1:
    """Raise for a file mmio cannot ``verb``: a directory, a pipe or socket, or (with
    ``regular_only``) anything but a regular file."""
    if _posix.S_ISREG(st_mode):
        return 0
    if _posix.S_ISDIR(st_mode):
        raise_oserror(_posix.EISDIR, f"cannot {verb} a directory", path)
    if regular_only:
        raise_oserror(_posix.ENODEV, f"cannot {verb} this file: it is not a regular file", path)
    if not (_posix.S_ISBLK(st_mode) or _posix.S_ISCHR(st_mode)):
        raise_oserror(_posix.ENODEV, f"cannot {verb} this kind of file (pipe or socket)", path)
    return 0


cdef int truncate(int fd, Py_ssize_t size, object path) except -1:
    """Set the file's size (``ftruncate(2)``)."""
    if _posix.ftruncate(fd, size) != 0:
        raise_errno(f"could not set the file size to {size} bytes", path)
    return 0


def open_regular(path, mode, verb):
    """Open a regular file for ``mode`` ("r", "r+" or "c"); return ``(fd, size)``.

    For mmio's Python layers (``load``); the caller closes ``fd``.
    """
    cdef long long size = 0
    path = os.fspath(path)
    fd = open_path(path, mode, True, verb, &size)
    return fd, size


_HIDDEN = ("the kernel hides the page cache of files you neither own nor may write (Linux >= 5.2, "
           "a side-channel defence: mincore would report made-up residency and cachestat refuses); "
           "run as the file's owner, with write access, or as root")


def hidden_cache_error(path):
    """The PermissionError for a file whose page cache the kernel hides from the caller."""
    message = f"cannot see which pages are cached: {_HIDDEN}"
    if path is None:
        return PermissionError(errno.EPERM, message)
    return PermissionError(errno.EPERM, message, os.fspath(path))


def cache_hidden(fd):
    """Whether the kernel hides the page cache of the file open as ``fd`` from this process (see
    :func:`hides_cache`)."""
    return hides_cache(os.fstat(fd).st_uid, f"/proc/self/fd/{fd}")


def hides_cache(owner, path):
    """Whether the kernel hides the page cache of the file at ``path``, owned by uid ``owner``.

    The kernel's rule for ``mincore(2)`` on a file mapping and for ``cachestat(2)`` (since Linux 5.2):
    the caller must own the file or be allowed to write it (root may do both). ``mincore`` then
    reports every page resident, so mmio must refuse rather than pass the figure on.
    """
    euid = os.geteuid()
    return not (euid == 0 or owner == euid or os.access(path, os.W_OK, effective_ids=True))
