"""The C values mmio passes to the kernel, read from the build's headers.

Values the headers lack come from ``src/compat.h`` (the Linux ABI numbers), so every
name exists; a kernel that does not know one refuses it at call time.
"""

cimport mmio._posix as _posix

ADVICE = {
    "NORMAL": _posix.MADV_NORMAL,
    "RANDOM": _posix.MADV_RANDOM,
    "SEQUENTIAL": _posix.MADV_SEQUENTIAL,
    "WILLNEED": _posix.MADV_WILLNEED,
    "DONTNEED": _posix.MADV_DONTNEED,
    "FREE": _posix.MADV_FREE,
    "REMOVE": _posix.MADV_REMOVE,
    "DONTFORK": _posix.MADV_DONTFORK,
    "DOFORK": _posix.MADV_DOFORK,
    "MERGEABLE": _posix.MADV_MERGEABLE,
    "UNMERGEABLE": _posix.MADV_UNMERGEABLE,
    "HUGEPAGE": _posix.MADV_HUGEPAGE,
    "NOHUGEPAGE": _posix.MADV_NOHUGEPAGE,
    "DONTDUMP": _posix.MADV_DONTDUMP,
    "DODUMP": _posix.MADV_DODUMP,
    "COLD": _posix.MADV_COLD,
    "PAGEOUT": _posix.MADV_PAGEOUT,
    "POPULATE_READ": _posix.MADV_POPULATE_READ,
    "POPULATE_WRITE": _posix.MADV_POPULATE_WRITE,
    "COLLAPSE": _posix.MADV_COLLAPSE,
}

PROT = {
    "NONE": _posix.PROT_NONE,
    "READ": _posix.PROT_READ,
    "WRITE": _posix.PROT_WRITE,
    "EXEC": _posix.PROT_EXEC,
}
