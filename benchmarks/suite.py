"""The file-access benchmark suite: mmio's policies against numpy and the stdlib, in one run.

Usage::

    python -m benchmarks [--size MIB] [--repeat N] [--quick] [--json PATH] [--png PATH]
                         [--only GROUP,...] [--update-readme]

Groups (each a table; every case runs once per round, rounds interleave cases):

- ``open``: latency to get an ndarray over a .npy of ``--size`` MiB (nothing read).
- ``warm``: open + full scan (``sum``) of a file already in the page cache.
- ``cold``: open + full scan after the file was evicted (residency checked each round),
  then a second scan: the end-to-end cost a user pays.
- ``gather``: random elements of a cold file (100k per 2 GiB: equally sparse at every size), fancy
  indexing against ``mmio.take`` (which reads exactly the pages it needs ahead); bytes read from disk
  (``/proc/self/io``).
- ``inmemory``: a private in-memory copy of the array (``np.load`` and friends), and
  ``out=`` against a plain ``np.copyto``.
- ``weights``, ``weights-copy``, ``weights-first``, ``weights-cold``: a sharded BF16 checkpoint of
  ``--size`` MiB written by safetensors from torch tensors: safetensors' loaders against
  ``mmio.load(framework="torch")``, zero-copy, private copies (warm, and once in a fresh process) and
  cold (see benchmarks/bench_weights.py; needs torch).
- ``scaleout``, ``scaleout-cold``: the .npy handed to 2 worker processes that each sum it, over
  ProcessPoolExecutor, ``multiprocessing`` spawn Pool, joblib (loky) and a dask LocalCluster (the last two
  when installed), as an in-RAM copy, ``np.memmap``, plain ``mmio.load``, ``mmio.share``, ``load(share=True)``
  and ``mmio.dask.from_file`` (when importable): wall time, pickled and shipped bytes per task, ``/dev/shm``
  bytes and worker RssAnon/RssFile/RssShmem deltas; cold: evicted file, reference payloads against
  ``np.memmap`` on ProcessPoolExecutor (see benchmarks/bench_scaleout.py).

Results: a table per group (median, min-max, GB/s, ratio to the numpy reference),
a JSON file, and a PNG chart when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import platform
import statistics
import tempfile
import time

import numpy as np

import mmio

from . import bench_scaleout, bench_weights
from ._timing import format_table, interleaved, summarize

GATHER = 100_000
"""Elements the gather takes from a 2 GiB file; smaller files get proportionally fewer, so that every size
gathers equally sparsely (a sixth of the pages touched), as the published 2 GiB run does."""
GATHER_FILE = 2 << 30


def gather_count(nbytes: int) -> int:
    return max(1, min(nbytes // 8, GATHER * nbytes // GATHER_FILE))


# ---- files ---------------------------------------------------------------------------------

def make_files(directory: str, size_mib: int) -> dict[str, str]:
    """The same float64 data as .npy, raw and (when the package is installed) .safetensors."""
    items = (size_mib << 20) // 8
    data = np.arange(items, dtype="f8")
    paths = {"npy": os.path.join(directory, "data.npy"), "raw": os.path.join(directory, "data.f8")}
    np.save(paths["npy"], data)
    data.tofile(paths["raw"])
    try:
        from safetensors.numpy import save_file
    except ImportError:
        pass
    else:
        paths["safetensors"] = os.path.join(directory, "data.safetensors")
        save_file({"data": data}, paths["safetensors"])
    for path in paths.values():
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
    return paths


def evict(path: str, attempts: int = 5) -> float:
    """Drop the file from the page cache; return the resident fraction left (checked)."""
    for _ in range(attempts):
        mmio.evict(path)
        left = mmio.residency(path).fraction
        if left < 0.01:
            return left
        time.sleep(0.05)
    return left


def warm(path: str) -> float:
    """Read the file sequentially (leaving large folios); return the resident fraction."""
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass
    return mmio.residency(path).fraction


def read_bytes() -> int:
    """Bytes this process has caused to be read from storage (``/proc/self/io``)."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    return 0


# ---- the groups ---------------------------------------------------------------------------------

def group_open(paths, nbytes, rounds):
    npy, raw = paths["npy"], paths["raw"]

    def stdlib_mmap():
        with open(raw, "rb") as f:
            return np.frombuffer(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), dtype="f8")

    cases = {
        "mmio.load(npy)": lambda: mmio.load(npy),
        "mmio.open(raw).array": lambda: mmio.open(raw).array("f8"),
        "np.load(npy, mmap_mode='r')": lambda: np.load(npy, mmap_mode="r"),
        "np.memmap(raw)": lambda: np.memmap(raw, dtype="f8", mode="r"),
        "mmap.mmap + np.frombuffer": stdlib_mmap,
    }
    samples = interleaved(cases, rounds * 200)
    return summarize(samples, None, "np.load(npy, mmap_mode='r')")


def group_warm(paths, nbytes, rounds):
    npy, raw = paths["npy"], paths["raw"]
    ceiling = mmio.anonymous(nbytes, shared=False, populate=True).array("f8")
    cases = {
        "in-RAM array (ceiling)": lambda: ceiling.sum(),
        "mmio.load": lambda: mmio.load(npy).sum(),
        "mmio.load(populate)": lambda: mmio.load(npy, populate=True).sum(),
        "mmio.load(advice=seq)": lambda: mmio.load(npy, advice="sequential").sum(),
        "np.load(mmap_mode='r')": lambda: np.load(npy, mmap_mode="r").sum(),
        "np.memmap": lambda: np.memmap(raw, dtype="f8", mode="r").sum(),
    }
    samples = interleaved(cases, rounds, before=lambda: warm(npy) and warm(raw))
    return summarize(samples, nbytes, "np.load(mmap_mode='r')")


def group_cold(paths, nbytes, rounds):
    """Cold open + first scan + second scan per policy (the end-to-end cost)."""
    npy, raw = paths["npy"], paths["raw"]

    def twice(load):
        def case():
            array = load()
            first_start = time.perf_counter()
            array.sum()
            first = time.perf_counter() - first_start
            second_start = time.perf_counter()
            array.sum()
            seconds[case.name].append((first, time.perf_counter() - second_start))
        return case

    loaders = {
        "mmio.load": lambda: mmio.load(npy),
        "mmio.load(advice=seq)": lambda: mmio.load(npy, advice="sequential"),
        "mmio.load(prefetch)": lambda: mmio.load(npy, prefetch=True),
        "mmio.load(populate)": lambda: mmio.load(npy, populate=True),
        "mmio.load(populate, threads=2)": lambda: mmio.load(npy, populate=True, threads=2),
        "mmio.load(huge+populate)": lambda: mmio.load(npy, huge=True, populate=True),
        "mmio.load(copy, threads=2)": lambda: mmio.load(npy, copy=True, threads=2),
        "np.load(mmap_mode='r')": lambda: np.load(npy, mmap_mode="r"),
        "np.load": lambda: np.load(npy),
        "np.fromfile": lambda: np.fromfile(raw, dtype="f8"),
    }
    seconds: dict[str, list] = {name: [] for name in loaders}
    cases = {}
    for name, load in loaders.items():
        case = twice(load)
        case.name = name
        cases[name] = case
    left = []
    samples = interleaved(cases, rounds, before=lambda: left.append(max(evict(npy), evict(raw))))
    extra = {name: {"first_scan_s": statistics.median(f for f, _ in seconds[name]),
                    "second_scan_s": statistics.median(s for _, s in seconds[name]),
                    "max_resident_before": max(left)} for name in loaders}
    return summarize(samples, nbytes, "np.load(mmap_mode='r')", extra)


def group_gather(paths, nbytes, rounds):
    npy = paths["npy"]
    items = nbytes // 8
    index = np.random.default_rng(0).integers(0, items, gather_count(nbytes))
    disk: dict[str, list[int]] = {}

    def measured(name, gather):
        def case():
            before = read_bytes()
            gather().sum()
            disk.setdefault(name, []).append(read_bytes() - before)
        return case

    gathers = {
        "mmio.take(mmio.load)": lambda: mmio.take(mmio.load(npy), index),
        "mmio.take(load(advice=random))": lambda: mmio.take(mmio.load(npy, advice="random"), index),
        "mmio.load(advice=random)": lambda: mmio.load(npy, advice="random")[index],
        "mmio.load": lambda: mmio.load(npy)[index],
        "np.load(mmap_mode='r')": lambda: np.load(npy, mmap_mode="r")[index],
    }
    cases = {name: measured(name, gather) for name, gather in gathers.items()}
    samples = interleaved(cases, rounds, before=lambda: evict(npy))
    extra = {name: {"disk_mib": statistics.median(disk[name]) / (1 << 20)} for name in gathers}
    return summarize(samples, None, "np.load(mmap_mode='r')", extra)


def group_inmemory(paths, nbytes, rounds):
    npy, raw = paths["npy"], paths["raw"]
    reuse = np.empty(nbytes // 8)
    reuse[:] = 0
    source = np.load(npy)
    cases = {
        "mmio.load(copy)": lambda: mmio.load(npy, copy=True),
        "mmio.load(copy, threads=2)": lambda: mmio.load(npy, copy=True, threads=2),
        "mmio.load(out=, threads=2)": lambda: mmio.load(npy, out=reuse, threads=2),
        "np.copyto (in RAM, same size)": lambda: np.copyto(reuse, source),
        "np.load": lambda: np.load(npy),
        "np.fromfile": lambda: np.fromfile(raw, dtype="f8"),
    }
    if "safetensors" in paths:
        from safetensors.numpy import load_file
        cases["safetensors.numpy.load_file"] = lambda: load_file(paths["safetensors"])
        cases["mmio.load(safetensors, copy)"] = lambda: mmio.load(paths["safetensors"], copy=True, threads=2)
    samples = interleaved(cases, rounds, before=lambda: warm(npy) and warm(raw))
    return summarize(samples, nbytes, "np.load")


def group_weights(paths, nbytes, rounds):
    return bench_weights.group_weights(paths["checkpoint"], rounds)


def group_weights_copy(paths, nbytes, rounds):
    return bench_weights.group_weights_copy(paths["checkpoint"], rounds)


def group_weights_first(paths, nbytes, rounds):
    return bench_weights.group_weights_first(paths["checkpoint"], rounds)


def group_weights_cold(paths, nbytes, rounds):
    return bench_weights.group_weights_cold(paths["checkpoint"], rounds)


def group_scaleout(paths, nbytes, rounds):
    return bench_scaleout.group_scaleout(paths["npy"], nbytes, rounds)


def group_scaleout_cold(paths, nbytes, rounds):
    return bench_scaleout.group_scaleout_cold(paths["npy"], nbytes, rounds)


GROUPS = {
    "open": ("Open latency (an ndarray over the whole file, nothing read)", group_open),
    "warm": ("Warm scan: open + sum, file in the page cache", group_warm),
    "cold": ("Cold scan: evicted file, open + first sum (second sum in JSON)", group_cold),
    "gather": (f"Random gather from a cold file ({GATHER} elements per 2 GiB)", group_gather),
    "inmemory": ("In-memory load: a private array (warm file)", group_inmemory),
    "weights": (f"Model weights, warm, zero-copy: every tensor of a {bench_weights.SHARDS}-shard BF16 checkpoint "
                f"({bench_weights.INNER} loads per sample)", group_weights),
    "weights-copy": ("Model weights, warm, private copies: tensors owning their memory", group_weights_copy),
    "weights-first": ("Model weights, private copies in a fresh process (the load a program makes once)",
                      group_weights_first),
    "weights-cold": ("Model weights, cold: evicted shards, load + first read of every page", group_weights_cold),
    "scaleout": ((f"Scale-out, warm: {bench_scaleout.TASKS} worker tasks each summing the whole array, per "
                  "transport and payload (memory: worker deltas)"), group_scaleout),
    "scaleout-cold": ("Scale-out, cold: evicted file, ProcessPoolExecutor, payload made in the case",
                      group_scaleout_cold),
}
REFERENCES = {"open": "np.load(npy, mmap_mode='r')", "warm": "np.load(mmap_mode='r')",
              "cold": "np.load(mmap_mode='r')", "gather": "np.load(mmap_mode='r')", "inmemory": "np.load",
              "weights": "safetensors.torch.load_file", "weights-copy": "load_file + clone",
              "weights-first": "load_file + clone",
              "weights-cold": "safetensors.torch.load_file + read",
              "scaleout": f"{bench_scaleout.REFERENCE} (same transport)",
              "scaleout-cold": bench_scaleout.COLD_REFERENCE}


# ---- output --------------------------------------------------------------------------------------

def machine() -> dict:
    return {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
            "numpy": np.__version__, "mmio": mmio.__version__,
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30)}


def draw(results: dict, path: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    groups = results["groups"]
    fig, axes = plt.subplots(len(groups), 1, figsize=(8, 2.2 * len(groups)), squeeze=False)
    for ax, (name, rows) in zip(axes[:, 0], groups.items()):
        ax.barh([r["case"] for r in rows], [r["vs_reference"] for r in rows], color="tab:blue")
        ax.axvline(1.0, color="grey", lw=0.8)
        ax.set_title(f"{name}: speed relative to {REFERENCES[name]}", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def update_readme(readme: str, text: str) -> None:
    start, end = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
    with open(readme) as f:
        content = f.read()
    if start not in content:
        raise SystemExit(f"{readme} has no {start} marker")
    before, rest = content.split(start, 1)
    _, after = rest.split(end, 1)
    with open(readme, "w") as f:
        f.write(f"{before}{start}\n```\n{text}\n```\n{end}{after}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="file size in MiB (default 512)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds per group (default 5)")
    parser.add_argument("--quick", action="store_true", help="16 MiB, 2 rounds: checks the suite runs")
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups to run")
    parser.add_argument("--json", default="benchmark-results.json", help="where to write the results")
    parser.add_argument("--png", default="benchmark-results.png", help="chart (needs matplotlib)")
    parser.add_argument("--dir", default=None, help="directory for the generated files")
    parser.add_argument("--update-readme", metavar="README", help="replace the benchmark table in README")
    args = parser.parse_args(argv)
    size, rounds = (16, 2) if args.quick else (args.size, args.repeat)
    chosen = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = set(chosen) - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups: {', '.join(sorted(unknown))}")
    missing = bench_weights.available()
    if missing and any(g.startswith("weights") for g in chosen):
        print(f"leaving out the model-weights groups: they {missing}")
        chosen = [g for g in chosen if not g.startswith("weights")]
    results = {"machine": machine(), "size_mib": size, "rounds": rounds, "groups": {}}
    tables = []
    header = (f"{size} MiB float64, {rounds} interleaved rounds, {results['machine']['cpus']} CPUs, "
              f"Linux {results['machine']['kernel']}, numpy {np.__version__}, mmio {mmio.__version__}")
    print(header, flush=True)
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mmio-bench-", dir=args.dir) as tmp:
        paths = make_files(tmp, size)
        if any(g.startswith("weights") for g in chosen):
            paths["checkpoint"] = bench_weights.make_checkpoint(tmp, size)
        nbytes = (size << 20) // 8 * 8
        for name in chosen:
            title, run = GROUPS[name]
            rows = run(paths, nbytes, rounds)
            results["groups"][name] = rows
            table = format_table(title, rows, REFERENCES[name])
            tables.append(table)
            print("\n" + table, flush=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nwrote {args.json}" + (f" and {args.png}" if draw(results, args.png) else
                                    " (install matplotlib for a chart)"))
    if args.update_readme:
        update_readme(args.update_readme, header + "\n\n" + "\n\n".join(tables))
    return results
