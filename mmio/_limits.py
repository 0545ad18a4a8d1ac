"""What the process may lock in memory, for error messages and ``memlock_limit()``."""

from __future__ import annotations

import errno
import resource

from ._units import human_bytes


def memlock_limit() -> int | None:
    """The soft ``RLIMIT_MEMLOCK`` in bytes, or ``None`` when unlimited.

    Processes with ``CAP_IPC_LOCK`` (such as root) may lock more than this.

    Examples
    --------
    >>> import mmio
    >>> limit = mmio.memlock_limit()
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    return None if soft == resource.RLIM_INFINITY else soft


def locked_bytes() -> int:
    """Bytes this process has locked now (``VmLck`` of ``/proc/self/status``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmLck:"):
                return int(line.split()[1]) * 1024
    return 0


def memlock_hint(requested: int) -> str:
    """Explain an mlock refusal: the limit, what is locked already, and how to raise it."""
    limit = memlock_limit()
    limit_text = "unlimited" if limit is None else human_bytes(limit)
    return (f"asked to lock {human_bytes(requested)}; RLIMIT_MEMLOCK is {limit_text} and this process "
            f"has {human_bytes(locked_bytes())} locked already (VmLck); raise the limit with "
            "`ulimit -l`, LimitMEMLOCK= in a systemd unit or /etc/security/limits.conf, "
            "or grant CAP_IPC_LOCK")


def limit_refused(err: int, requested: int) -> bool:
    """Whether an mlock failure with ``err`` for ``requested`` bytes is RLIMIT_MEMLOCK's refusal (which the
    kernel makes before it locks anything)."""
    limit = memlock_limit()
    over_limit = limit is not None and locked_bytes() + requested > limit
    return err in (errno.EPERM, errno.EAGAIN) or (err == errno.ENOMEM and over_limit)


def lock_failure_hint(err: int, requested: int) -> str:
    """Text to add to an mlock failure: the memlock limit when it is the cause, else what is."""
    if limit_refused(err, requested):
        return f" ({memlock_hint(requested)})"
    if err == errno.ENOMEM:
        return (" (the range is within RLIMIT_MEMLOCK, so part of it cannot be backed: past the "
                "end of a truncated file, or the system is out of memory)")
    return ""
