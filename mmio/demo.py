"""``mmio demo``: map a cold array file and show what the page cache does.

Writes a sample float64 file, evicts it from the page cache, maps it with mmio
and prints the time to map it (next to ``numpy.memmap``), the residency map
before and after a scan, and the scan throughput cold and warm.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import numpy as np

import mmio

_CHUNK_ITEMS = 1 << 21  # 16 MiB of float64 per write


def check_size(size_mib: int, directory: str | None = None) -> None:
    """Refuse a sample size the demo cannot sensibly write, before anything is written.

    Raises ``ValueError`` for fewer than 1 MiB, for more than the free space of
    ``directory`` (the system's temporary directory by default), and for more
    than the machine's RAM (the second scan is meant to run from the page
    cache). ``OSError`` if ``directory`` cannot be examined.
    """
    if size_mib < 1:
        raise ValueError(f"--size must be at least 1 MiB, got {size_mib}")
    directory = directory if directory is not None else tempfile.gettempdir()
    stat = os.statvfs(directory)
    free_mib = stat.f_bavail * stat.f_frsize >> 20
    ram_mib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 20
    if size_mib > free_mib:
        raise ValueError(f"--size {size_mib} MiB does not fit: {directory} has {free_mib} MiB free")
    if size_mib > ram_mib:
        raise ValueError(f"--size {size_mib} MiB is more than this machine's {ram_mib} MiB of RAM")


def run(size_mib: int = 256, *, out=print, directory: str | None = None) -> None:
    """Run the demo on a ``size_mib`` MiB file in a temporary directory, then remove it.

    Raises ``ValueError`` (before writing anything) for a size :func:`check_size` refuses.
    """
    check_size(size_mib, directory)
    with tempfile.TemporaryDirectory(prefix="mmio-demo-", dir=directory) as tmp:
        path = os.path.join(tmp, "sample.f64")
        out(f"mmio demo: {size_mib} MiB of float64 in {path}")
        seconds = _write_sample(path, size_mib << 20)
        out(f"  wrote the file                {seconds:8.2f} s")
        mmio.evict(path)
        mmio_us, memmap_us = _time_to_map(path)
        out(f"  map + array (mmio)            {mmio_us:8.1f} us median  "
            f"(numpy.memmap {memmap_us:.1f} us: {memmap_us / mmio_us:.1f}x slower)")
        mmio.evict(path)
        with mmio.open(path) as mapping:
            array = mapping.array("f8")
            out(_residency_line("resident before scan", mapping))
            total, cold = _timed_sum(array)
            out(_scan_line("scan 1 (cold, from disk)", mapping.size, cold, total))
            out(_residency_line("resident after scan", mapping))
            total, warm = _timed_sum(array)
            out(_scan_line("scan 2 (warm, from RAM)", mapping.size, warm, total))
            del array
        out(f"removed {tmp}")


def _write_sample(path: str, nbytes: int) -> float:
    start = time.perf_counter()
    items = nbytes // 8
    with open(path, "wb") as f:
        for first in range(0, items, _CHUNK_ITEMS):
            np.arange(first, min(items, first + _CHUNK_ITEMS), dtype="f8").tofile(f)
        f.flush()
        os.fdatasync(f.fileno())
    return time.perf_counter() - start


def _time_to_map(path: str, rounds: int = 51) -> tuple[float, float]:
    """Median microseconds to get an ndarray of the file: mmio, then numpy.memmap, interleaved."""
    mmio_times, memmap_times = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        array = mmio.open(path).array("f8")
        mmio_times.append(time.perf_counter() - start)
        del array
        start = time.perf_counter()
        array = np.memmap(path, dtype="f8", mode="r")
        memmap_times.append(time.perf_counter() - start)
        del array
    return statistics.median(mmio_times) * 1e6, statistics.median(memmap_times) * 1e6


def _timed_sum(array) -> tuple[float, float]:
    start = time.perf_counter()
    total = float(array.sum())
    return total, time.perf_counter() - start


def _residency_line(label: str, mapping) -> str:
    residency = mapping.residency()
    picture = residency.to_string(width=64, max_lines=1)
    return f"  {label:<22}{residency.fraction:7.1%}   [{picture}]"


def _scan_line(label: str, nbytes: int, seconds: float, total: float) -> str:
    return (f"  {label:<26}{seconds:8.3f} s  {nbytes / seconds / 1e9:6.2f} GB/s  "
            f"(sum = {total:.6g})")
