"""How long it takes to get a numpy array over a large file, mmio against the alternatives.

Usage: ``python -m benchmarks open [--size-mib 1024] [--rounds 2001]``

Every case maps the same file and returns an ndarray over all of it (nothing is
read: this measures the open path, not I/O).  Cases run interleaved, and the
table reports medians and the ratio to ``mmio.open().array()``.
"""

from __future__ import annotations

import argparse
import mmap
import os
import tempfile

import numpy as np

import mmio

from ._timing import format_table, interleaved, summarize


def make_files(directory: str, size_mib: int) -> tuple[str, str, int]:
    """A sparse raw float64 file and a .npy of the same array; returns both paths and the header size."""
    items = (size_mib << 20) // 8
    npy = os.path.join(directory, "data.npy")
    np.lib.format.open_memmap(npy, mode="w+", dtype="f8", shape=(items,)).flush()
    raw = os.path.join(directory, "data.f8")
    with open(raw, "wb") as f:
        f.truncate(items * 8)
    header = os.path.getsize(npy) - items * 8
    return raw, npy, header


def cases(raw: str, npy: str, header: int) -> dict:
    def with_mmio():
        return mmio.open(raw).array("f8")

    def with_mmio_npy():
        return mmio.open(npy, offset=header).array("f8")

    def with_np_load():
        return np.load(npy, mmap_mode="r")

    def with_np_memmap():
        return np.memmap(raw, dtype="f8", mode="r")

    def with_stdlib_mmap():
        with open(raw, "rb") as f:
            return np.frombuffer(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), dtype="f8")

    def open_fstat_close():
        fd = os.open(raw, os.O_RDONLY)
        os.fstat(fd)
        os.close(fd)

    return {
        "mmio.open(raw).array('f8')": with_mmio,
        "mmio.open(npy, offset).array": with_mmio_npy,
        "np.load(npy, mmap_mode='r')": with_np_load,
        "np.memmap(raw)": with_np_memmap,
        "mmap.mmap + np.frombuffer": with_stdlib_mmap,
        "os.open+fstat+close (floor)": open_fstat_close,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks open", description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--rounds", type=int, default=2001, help="interleaved rounds (default 2001)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mmio-bench-") as tmp:
        raw, npy, header = make_files(tmp, args.size_mib)
        samples = interleaved(cases(raw, npy, header), args.rounds)
    print(f"array over a {args.size_mib} MiB file, {args.rounds} interleaved rounds, "
          f"numpy {np.__version__}, mmio {mmio.__version__}")
    reference = "mmio.open(raw).array('f8')"
    print(format_table("Open latency", summarize(samples, None, reference), reference))


if __name__ == "__main__":
    main()
