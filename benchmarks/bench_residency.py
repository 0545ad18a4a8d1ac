"""Residency timings: mincore and cachestat on a cached file, touch of a cold file, CLI against fincore.

Usage: ``python -m benchmarks residency [--size-mib 2048] [--rounds 7] [--tree-files 2000]``
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import mmio

from ._timing import format_table, interleaved, summarize


def willneed_only(path: str, chunk: int = 8 << 20) -> None:
    """WILLNEED per 8 MiB with os.posix_fadvise: returns once the reads are queued, not done."""
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset in range(0, size, chunk):
            os.posix_fadvise(fd, offset, chunk, os.POSIX_FADV_WILLNEED)
    finally:
        os.close(fd)


def sequential_read(path: str) -> None:
    """What ``cat file > /dev/null`` does."""
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass


def _table(title: str, samples: dict[str, list[float]], reference: str) -> str:
    return format_table(title, summarize(samples, None, reference), reference)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks residency", description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tree-files", type=int, default=2000, help="files in the CLI comparison tree")
    parser.add_argument("--dir", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mmio-bench-", dir=args.dir) as tmp:
        path = os.path.join(tmp, "big.bin")
        with open(path, "wb") as f:
            block = os.urandom(8 << 20)
            for _ in range(args.size_mib // 8):
                f.write(block)
        print(f"{args.size_mib} MiB file, {args.rounds} rounds, Linux {os.uname().release}")

        mmio.touch(path)
        cached = interleaved({"mmio.residency(path) (mincore, per page)": lambda: mmio.residency(path),
                              "mmio.cache_stat(path) (cachestat)": lambda: mmio.cache_stat(path)},
                             args.rounds, inner=5)
        print("\n" + _table("Cached file", cached, "mmio.residency(path) (mincore, per page)"))

        cases = {"WILLNEED loop only (data not yet in)": lambda: willneed_only(path),
                 "sequential read (cat)": lambda: sequential_read(path),
                 "mmio.touch(path)": lambda: mmio.touch(path),
                 "mmio.touch(path, method='populate')": lambda: mmio.touch(path, method="populate")}
        resident: dict[str, list[float]] = {name: [] for name in cases}
        cold = interleaved(cases, max(3, args.rounds // 2), before=lambda: mmio.evict(path),
                           after=lambda name: resident[name].append(mmio.residency(path).fraction))
        print("\n" + _table("Touch a cold file", cold, "sequential read (cat)"))
        print("resident right after: " + ", ".join(f"{name} {min(v):.1%}" for name, v in resident.items()))

        tree = os.path.join(tmp, "tree")
        for i in range(args.tree_files):
            sub = os.path.join(tree, f"d{i % 20}")
            os.makedirs(sub, exist_ok=True)
            with open(os.path.join(sub, f"f{i}"), "wb") as f:
                f.write(os.urandom(4096 * (1 + i % 7)))
        files = [os.path.join(root, name) for root, _, names in os.walk(tree) for name in names]
        commands = {"mmio residency -r TREE": [sys.executable, "-m", "mmio", "residency", "-r", tree],
                    "mmio residency BIG": [sys.executable, "-m", "mmio", "residency", path]}
        if shutil.which("fincore"):
            commands["fincore FILES (same tree)"] = ["fincore", *files]
            commands["fincore BIG"] = ["fincore", path]
        runs = interleaved({name: functools.partial(subprocess.run, command, stdout=subprocess.DEVNULL,
                                                    stderr=subprocess.DEVNULL, check=False)
                            for name, command in commands.items()}, args.rounds)
        reference = "fincore FILES (same tree)" if "fincore FILES (same tree)" in runs else "mmio residency -r TREE"
        print("\n" + _table(f"Command line, {len(files)} small files and the big one (whole process, start-up "
                            "included)", runs, reference))
        print(f"\n(for scale: one `python -c 'import mmio'` costs about "
              f"{statistics.median(_startup() for _ in range(3)) * 1e3:.0f} ms here)")


def _startup() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mmio"], check=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
