"""Exceptions raised by mmio, and the single helper that builds every OSError.

Every failing system call in mmio goes through :func:`raise_oserror`, so each
error carries the errno (which selects the right ``OSError`` subclass, e.g.
``FileNotFoundError``), the file name where there is one, and a message saying
what was attempted.
"""

import os

cimport mmio._posix as _posix


class MappingFaultError(OSError):
    """A read or write through mmio hit a page the kernel could not supply.

    This happens when the file under a mapping was truncated by someone else:
    touching a page past the new end of the file raises ``SIGBUS``, which mmio's
    own loops turn into this exception (errno ``EFAULT``).  ``offset`` is the
    byte offset in the mapping that faulted, when known.

    Examples
    --------
    >>> try:
    ...     data = m[0:4096]            # doctest: +SKIP
    ... except mmio.MappingFaultError as e:
    ...     print("file shrank under us at", e.offset)
    """

    def __init__(self, *args, offset=None):
        super().__init__(*args)
        self.offset = offset


def oserror(int err, str attempted, filename=None):
    """Build (not raise) the ``OSError`` subclass for ``err``.

    The message reads ``"<attempted>: <strerror>"``; ``OSError`` picks the
    subclass (``PermissionError``, ``FileNotFoundError``, ...) from the errno.
    """
    message = f"{attempted}: {os.strerror(err)}"
    if filename is None:
        return OSError(err, message)
    return OSError(err, message, filename)


cdef int raise_oserror(int err, str attempted, object filename=None) except -1:
    raise oserror(err, attempted, filename)


cdef int raise_errno(str attempted, object filename=None) except -1:
    raise oserror(_posix.errno, attempted, filename)
