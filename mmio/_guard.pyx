"""SIGBUS-guarded copy and prefault loops over mapped memory, and the parallel read that needs no guard.

The C side (``src/sigbus.c``) installs one SIGBUS handler per process before a
guarded loop runs (again if another handler replaced it), and recovers only from
faults inside the range the running thread armed.  This module is the one copy of
that state: other Cython modules reach the loops by ``cimport``.
"""

import functools

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_WRITABLE, PyBUF_ANY_CONTIGUOUS
from cpython.exc cimport PyErr_CheckSignals

cimport mmio._posix as _posix
from mmio._errors cimport raise_errno, raise_oserror
from mmio._pages cimport Span, page_size, INTERRUPTIBLE_PIECE, HUGE_PAGE
from ._pages import kernel_older_than
from ._errors import MappingFaultError

cdef extern from "sigbus.h" nogil:
    int mmio_guard_install()
    int mmio_guarded_copy(char* dst, Py_ssize_t dst_step, const char* src, Py_ssize_t src_step,
                          size_t n, const char* lo, const char* hi, const char* lo2, const char* hi2,
                          const char** fault)
    int mmio_guarded_touch(char* start, size_t n, size_t page, int write, const char** fault)
    int mmio_populate(char* start, size_t n, size_t page, int write, int touch_fallback, int threads,
                      const char** fault)
    int mmio_parallel_copy(char* dst, const char* src, size_t n, int threads,
                           const char* lo, const char* hi, const char* lo2, const char* hi2,
                           const char** fault)
    int mmio_parallel_pread(int fd, char* dst, size_t n, long long offset, int threads, size_t* done)

# MADV_POPULATE_* arrived in 5.14; before, EINVAL means "unknown advice" and pages are touched instead.
cdef bint TOUCH_TO_POPULATE = kernel_older_than("5.14")


cdef bint verified = False  # mmio's handler was checked to be in place, and nothing has changed handlers since


cdef int install(bint always_check=False) except -1:
    """Make sure mmio's SIGBUS handler is the one installed (see src/sigbus.h).

    Checking costs a sigaction(2) call (about 0.2 us on a virtual machine, four times a one-byte read), so it
    is made when Python code may have replaced the handler since the last check (``faulthandler.enable``/
    ``disable`` and ``signal.signal`` are watched for that) and, with ``always_check``, before long work.
    """
    global verified
    if verified and not always_check:
        return 0
    # C only from here: a caller may have checked page protections just before, and Python code could let
    # another thread change them before the access.
    if mmio_guard_install() != 0:
        raise_errno("could not install mmio's SIGBUS handler")
    verified = True
    return 0


def _watch_handler_changes():
    """Wrap the stdlib functions that replace signal handlers, so the next guarded loop checks again (done
    once, when mmio is imported: never inside a guarded access)."""
    import faulthandler
    import signal
    for module, name in ((faulthandler, "enable"), (faulthandler, "disable"), (signal, "signal")):
        setattr(module, name, _rechecking(getattr(module, name)))


def _rechecking(replace_handler):
    """``replace_handler`` (a stdlib function that may change SIGBUS's handler), then a check by the next
    guarded loop."""
    @functools.wraps(replace_handler)
    def replaces_handler(*args, **kwargs):
        global verified
        try:
            return replace_handler(*args, **kwargs)
        finally:
            verified = False
    return replaces_handler


cdef const char* first_fault(char* start, size_t n, size_t page) noexcept nogil:
    """The first address in ``[start, start+n)`` whose page cannot be read, or NULL."""
    cdef const char* fault = NULL
    mmio_guarded_touch(start, n, page, 0, &fault)
    return fault


cdef int populate_span(Span span, bint write, int threads, const char* data, Py_ssize_t length,
                       object path) except -1:
    """Fault in every page of ``span``, which lies in the mapping ``[data, data+length)`` of ``path``, in
    interruptible pieces; raise the MappingFaultError for pages past the end of the file. The caller keeps
    the span mapped meanwhile."""
    cdef const char* fault = NULL
    cdef size_t first = span.first, end
    cdef int err
    install(True)
    while first < span.end:
        end = min(span.end, (first + INTERRUPTIBLE_PIECE) & ~(<size_t>HUGE_PAGE - 1))
        with nogil:
            err = mmio_populate(<char*>first, end - first, page_size(), write, TOUCH_TO_POPULATE, threads, &fault)
        if err == _posix.EFAULT:
            raise fault_error(fault, "populate", data, length, NULL, 1, path)
        if err:
            raise_oserror(err, "could not prefault the mapping", path)
        first = end
        if first < span.end:
            PyErr_CheckSignals()
    return 0


cdef int copy(char* dst, Py_ssize_t dst_step, const char* src, Py_ssize_t src_step, size_t n,
              const char* lo, const char* hi, const char* lo2, const char* hi2, bint release_gil, int threads,
              const char** fault) except -1:
    """Copy ``n`` items, ``dst[i*dst_step] = src[i*src_step]``, guarding ``[lo, hi)`` and ``[lo2, hi2)``; 0, or 1
    after a SIGBUS (``fault`` set). The caller keeps both ranges mapped meanwhile.

    With ``release_gil`` the copy runs without the GIL, split across ``threads`` native threads when both
    sides are contiguous, in interruptible pieces (Ctrl-C stops it) unless the two sides overlap.
    """
    install(release_gil)  # a long copy can afford the check
    if not release_gil:
        return 0 if mmio_guarded_copy(dst, dst_step, src, src_step, n, lo, hi, lo2, hi2, fault) == 0 else 1
    cdef bint contiguous = dst_step == 1 and src_step == 1
    cdef size_t piece = n if _overlap(dst, dst_step, src, src_step, n) else INTERRUPTIBLE_PIECE
    cdef size_t done = 0, part
    cdef int rc
    while done < n:
        part = min(piece, n - done)
        with nogil:
            if contiguous:
                rc = mmio_parallel_copy(dst + done, src + done, part, threads, lo, hi, lo2, hi2, fault)
            else:
                rc = mmio_guarded_copy(dst + <Py_ssize_t>done * dst_step, dst_step,
                                       src + <Py_ssize_t>done * src_step, src_step, part,
                                       lo, hi, lo2, hi2, fault)
        if rc != 0:
            return 1
        done += part
        if done < n:
            PyErr_CheckSignals()
    return 0


cdef bint _overlap(const char* dst, Py_ssize_t dst_step, const char* src, Py_ssize_t src_step,
                   size_t n) noexcept:
    """Whether the bytes the two sides of a copy span overlap (copied in pieces, they would go in the
    wrong order)."""
    cdef const char* dst_end = dst + <Py_ssize_t>(n - 1) * dst_step
    cdef const char* src_end = src + <Py_ssize_t>(n - 1) * src_step
    return min(dst, dst_end) <= max(src, src_end) and min(src, src_end) <= max(dst, dst_end)


cdef object fault_error(const char* fault, str what, const char* data, Py_ssize_t length, const char* lo,
                        Py_ssize_t step, object path):
    """The MappingFaultError for a SIGBUS at ``fault`` during an access to every ``step``-th byte from ``lo`` on,
    in the mapping ``[data, data+length)`` of ``path``. The offset reported is the first byte of the access that
    faults: the first accessed byte on or after the first page that faults (past a truncated end, every page
    after the first bad one is bad too)."""
    if fault != NULL and not (data <= fault < data + length):
        return MappingFaultError(
            _posix.EFAULT, f"could not {what}: the other buffer's memory could not be accessed "
            "(is it a mapping of a file that was truncated?)", offset=None)
    cdef size_t page = page_size()
    cdef const char* first = NULL
    if fault != NULL and lo != NULL and lo <= fault:
        # A copy may run backwards: find the lowest page that faults, for the report.
        first = first_fault(<char*>lo, <size_t>(fault - lo) + 1, page)
        if first != NULL:
            fault = first
        fault = <const char*>(<size_t>fault & ~(page - 1))  # the page's first byte, then the access's next one
        fault = lo + ((<size_t>(fault - lo) + step - 1) // step) * step if fault > lo else lo
    offset = <Py_ssize_t>(fault - data) if fault != NULL else None
    where = f" at offset {offset}" if offset is not None else ""
    return MappingFaultError(
        _posix.EFAULT,
        f"could not {what} the mapping{where}: the page is past the end of the file (was the file truncated?)",
        *((path,) if path is not None else ()), offset=offset)


_watch_handler_changes()


def pread_into(int fd, buffer, long long offset, int threads, path=None):
    """Fill the writable contiguous ``buffer`` from the file open as ``fd``, starting at ``offset``, with
    ``threads`` native threads and the GIL released (``pread``, in interruptible pieces); return the bytes
    read, fewer than the buffer's length where the file ends first.

    Raises
    ------
    OSError
        A read failed (``EFAULT`` if ``buffer`` lies in a mapping whose file shrank), naming ``path``.
    """
    cdef Py_buffer view
    cdef size_t start = 0, end, done = 0
    cdef int err = 0
    PyObject_GetBuffer(buffer, &view, PyBUF_WRITABLE | PyBUF_ANY_CONTIGUOUS)
    try:
        while start < <size_t>view.len:
            end = min(<size_t>view.len, start + INTERRUPTIBLE_PIECE)
            with nogil:
                err = mmio_parallel_pread(fd, <char*>view.buf + start, end - start, offset + <long long>start,
                                          threads, &done)
            if err:
                raise_oserror(err, "could not read the file", path)
            start += done
            if start < end:  # the end of the file
                break
            PyErr_CheckSignals()
        return start
    finally:
        PyBuffer_Release(&view)
