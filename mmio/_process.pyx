"""Process-wide memory locking: ``mlockall(2)`` / ``munlockall(2)``."""

cimport mmio._posix as _posix
from mmio._errors cimport raise_oserror


def lock_all(current=True, future=False, on_fault=False):
    """Lock the process's memory in RAM (``mlockall(2)``).

    Parameters
    ----------
    current : bool
        Lock every page mapped now (MCL_CURRENT).
    future : bool
        Lock every page mapped from now on (MCL_FUTURE).
    on_fault : bool
        Lock pages as they are first touched instead of faulting them in (MCL_ONFAULT).

    Raises
    ------
    ValueError
        Neither ``current`` nor ``future``.
    OSError
        The kernel refused; the message says what ``RLIMIT_MEMLOCK`` allows.

    Examples
    --------
    >>> import mmio
    >>> mmio.lock_all(current=False, future=True)    # doctest: +SKIP
    >>> mmio.unlock_all()
    """
    cdef int flags = (_posix.MCL_CURRENT if current else 0) | (_posix.MCL_FUTURE if future else 0)
    if not flags:
        raise ValueError("lock_all needs current=True, future=True or both")
    if on_fault:
        flags |= _posix.MCL_ONFAULT
    cdef int rc, err = 0
    with nogil:
        rc = _posix.mlockall(flags)
        if rc != 0:
            err = _posix.errno
    if rc != 0:
        from ._limits import lock_failure_hint
        raise_oserror(err, "could not lock the process's memory" + lock_failure_hint(err, 0))


def unlock_all():
    """Undo :func:`lock_all` and every :meth:`Mapping.lock` (``munlockall(2)``).

    Examples
    --------
    >>> import mmio
    >>> mmio.unlock_all()
    """
    if _posix.munlockall() != 0:
        raise_oserror(_posix.errno, "could not unlock the process's memory")
