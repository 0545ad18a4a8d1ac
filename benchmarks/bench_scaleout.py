"""Scale-out: a .npy of ``--size`` MiB handed to 2 worker processes that each sum the whole array, over the
transports people use, with every way of holding the array, in one run.

Transports, each started once per group run and warmed with a no-op task per worker (start-up is not
measured):

- ``ProcessPoolExecutor(2)`` with Python's default start method (fork before 3.14, forkserver after);
- ``multiprocessing.get_context("spawn").Pool(2)``;
- ``joblib.Parallel(n_jobs=2, backend="loky")``, default ``max_nbytes`` (its auto-memmapping of large arrays);
- ``distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``, one ``client.submit`` per
  task with the payload as its argument (``pure=False``, so the two tasks are two tasks).

Payloads (made once per transport, untimed, from a warm file): ``in-RAM ndarray`` (``np.load``, a private
copy), ``np.memmap`` (``np.load(mmap_mode="r")``), ``mmio.load`` (plain: an ndarray, pickles by value),
``mmio.share`` (a SharedRef, pickles by reference), ``load(share=True)`` (a SharedArray, pickles by reference)
and, on dask only, ``mmio.dask.from_file(path).sum().compute()``: one graph computing the sum once, split in
chunks across both workers (left out, saying so, when ``mmio.dask`` is not importable).

Per (transport, payload), one row:

- median and min-max wall time of submitting the 2 tasks and gathering their 2 sums (checked); the speed is
  relative to the ``in-RAM ndarray`` of the same transport;
- ``pickled/task``: ``len(pickle.dumps(payload, protocol=5))`` (for the dask graph: the pickled collection;
  the pools get the payload in a one-item list, which the task empties so that it is freed before the end);
- ``shipped/task``: what the transport serialized in this process for the workers while the case ran, per
  task, its own wrapping and the task function included: multiprocessing's ``ForkingPickler`` (ProcessPoolExecutor's
  call queue, Pool's task queue), loky's queue pickler after joblib's memmapping reducers (which write large
  arrays to a file instead), what distributed's scheduler wrote on its workers' task streams (for the dask
  graph: all its tasks). What the client sent the scheduler is ``to_scheduler_bytes`` in the JSON (for the
  graph: the graph, its own target);
- ``/dev/shm MiB``: the bytes of files under /dev/shm the worker has mapped at the end of its task (joblib's
  auto-memmapping dumps large arrays there), the larger of the two tasks. The JSON also has
  ``shm_used_delta_bytes``: ``shutil.disk_usage("/dev/shm").used`` in the worker at the end of its task minus
  the parent's just before the case, which counts every program's use of /dev/shm on the machine;
- ``RssAnon``, ``RssFile``, ``RssShmem`` MiB: the worker's ``/proc/self/status`` at the end of its task, the
  payload alive, minus that worker's own after its previous task (payload freed, ``malloc_trim``, mmio's
  cache of mapped files emptied) or after its warm-up; the larger of the two tasks. ``-`` for the dask graph,
  whose tasks are dask's.

The extras are medians over rounds. ``scaleout-cold`` runs the reference payloads and ``np.memmap`` on
ProcessPoolExecutor only, the file evicted (residency checked < 1%) before each case and the payload made
inside it (a mapping opened, nothing read), so the parent's mapping never holds the pages.

Targets (from the issue): <= 1 KiB pickled per task at any size, no /dev/shm bytes, worker RssAnon delta < 5%
of the array, >= 10x faster than by value at 1 GiB on every transport, a dask graph < 10 KiB.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import math
import multiprocessing
import os
import pickle
import shutil
import statistics
import time
from collections.abc import Callable

import numpy as np

import mmio

from ._timing import interleaved, summarize

TASKS = 2
SHM = "/dev/shm"
REFERENCE = "in-RAM ndarray"
COLD_REFERENCE = "np.memmap"


# ---- in the workers: the task, and the memory it reports -----------------------------------------------------

_baseline: dict[str, int] | None = None
"""This worker's memory after its last warm-up or task, payload freed (None until then)."""


def _status() -> dict[str, int]:
    """RssAnon, RssFile and RssShmem of this process, in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _libc():
    with contextlib.suppress(OSError):
        return ctypes.CDLL("libc.so.6")
    return None


_LIBC = _libc()


def _shm_mapped() -> int:
    """Bytes this process has mapped from files under /dev/shm (unlinked ones too)."""
    total = 0
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith(SHM + "/"):
                start, end = fields[0].split("-")
                total += int(end, 16) - int(start, 16)
    return total


def reset(collect: bool = True) -> int:
    """Free what earlier tasks left (mmio's cache of mapped files, malloc's free memory, and with ``collect``
    garbage: not in a task, where a forked worker's collection walks the parent's whole heap) and take the
    memory baseline the next task is measured against. Returns the pid."""
    global _baseline
    if collect:
        gc.collect()
    from mmio import sharing
    sharing._cache.clear()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    _baseline = _status()
    return os.getpid()


def warmup(delay: float = 0.0) -> tuple[int, str]:
    """The no-op task: imports done, baseline taken; a delay so that each idle worker gets one."""
    time.sleep(delay)
    return reset(), mmio.__file__


def task(box) -> tuple[int, float, dict[str, int] | None, tuple[int, int]]:
    """Sum the whole array: ``(pid, sum, memory delta, (/dev/shm mapped, /dev/shm used))``.

    ``box`` is a one-item list, emptied here, so the payload is freed before the task ends (the pools keep
    their task's arguments until the next one); dask passes the payload itself (its workers are reset apart).
    """
    payload = box.pop() if isinstance(box, list) else box
    total = float(payload.sum())
    status = _status()
    shm = (_shm_mapped(), shutil.disk_usage(SHM).used)
    del payload, box
    before = _baseline
    reset(collect=False)
    delta = None if before is None else {key: status[key] - before[key] for key in status}
    return os.getpid(), total, delta, shm


def _dask_tasks(dask_worker=None) -> int:
    return len(dask_worker.state.tasks)


# ---- in the parent: the transports ----------------------------------------------------------------------------

class Shipped:
    """Bytes the transports serialize in this process for the workers while recording: multiprocessing's
    ForkingPickler and loky's queue pickler are wrapped for the group run, and so is distributed's TCP write,
    sorted by ``classify`` (set by the dask transport) into what the scheduler writes to its workers' task
    streams and what the client writes to the scheduler (the graph)."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.graph: list[int] = []
        self.recording = False
        self.classify: Callable[[object], str | None] | None = None

    def record(self, nbytes: int) -> None:
        if self.recording:
            self.sizes.append(nbytes)

    def total(self) -> int | None:
        return sum(self.sizes) if self.sizes else None

    def graph_total(self) -> int | None:
        return sum(self.graph) if self.graph else None

    @contextlib.contextmanager
    def recorded(self):
        self.sizes, self.graph, self.recording = [], [], True
        try:
            yield self
        finally:
            self.recording = False

    @contextlib.contextmanager
    def patched(self):
        undo: list[Callable[[], None]] = []
        from multiprocessing.reduction import ForkingPickler
        forking = ForkingPickler.__dict__["dumps"]

        def forking_dumps(cls, obj, protocol=None):
            data = forking.__func__(cls, obj, protocol)
            self.record(memoryview(data).nbytes)
            return data
        ForkingPickler.dumps = classmethod(forking_dumps)
        undo.append(lambda: setattr(ForkingPickler, "dumps", forking))
        with contextlib.suppress(ImportError, AttributeError):
            from joblib.externals.loky.backend import queues
            loky = queues.dumps

            def loky_dumps(obj, reducers=None, protocol=None):
                data = loky(obj, reducers=reducers, protocol=protocol)
                self.record(memoryview(data).nbytes)
                return data
            queues.dumps = loky_dumps
            undo.append(lambda: setattr(queues, "dumps", loky))
        with contextlib.suppress(ImportError, AttributeError):
            from distributed.comm.tcp import TCP
            tcp_write = TCP.write

            async def write(comm, *args, **kwargs):
                nbytes = await tcp_write(comm, *args, **kwargs)
                if self.recording and self.classify is not None:
                    where = self.classify(comm)
                    if where == "worker":
                        self.sizes.append(nbytes)
                    elif where == "scheduler":
                        self.graph.append(nbytes)
                return nbytes
            TCP.write = write
            undo.append(lambda: setattr(TCP, "write", tcp_write))
        try:
            yield self
        finally:
            for step in reversed(undo):
                step()


class Transport:
    """A pool of 2 worker processes, started once; ``run`` hands each of 2 tasks the payload."""

    name = ""

    def start(self) -> None:
        raise NotImplementedError

    def attach(self, shipped: Shipped) -> None:
        """Tell ``shipped`` which of this transport's writes reach the workers (the pipes' are all theirs)."""

    def map(self, function, arguments: list) -> list:
        raise NotImplementedError

    def run(self, payload) -> list:
        return self.map(task, [[payload] for _ in range(TASKS)])

    def before(self) -> None:
        """Untimed, ahead of every case."""

    def close(self) -> None:
        raise NotImplementedError

    def warm(self) -> None:
        """A no-op task on each worker (the delay spreads them): imports, first-call costs and baselines."""
        seen: set[int] = set()
        for _ in range(5):
            for pid, path in self.map(warmup, [0.2] * TASKS):
                if path != mmio.__file__:
                    raise RuntimeError(f"{self.name} workers import mmio from {path}, not {mmio.__file__}: "
                                       "set PYTHONPATH")
                seen.add(pid)
            if len(seen) >= TASKS:
                return


class ProcessPool(Transport):
    def __init__(self) -> None:
        self.name = f"ProcessPoolExecutor({multiprocessing.get_start_method()})"

    def start(self) -> None:
        from concurrent.futures import ProcessPoolExecutor
        self.pool = ProcessPoolExecutor(TASKS)

    def map(self, function, arguments):
        futures = [self.pool.submit(function, argument) for argument in arguments]
        return [f.result() for f in futures]

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class SpawnPool(Transport):
    name = "mp.Pool(spawn)"

    def start(self) -> None:
        self.pool = multiprocessing.get_context("spawn").Pool(TASKS)

    def map(self, function, arguments):
        results = [self.pool.apply_async(function, (argument,)) for argument in arguments]
        return [r.get() for r in results]

    def close(self) -> None:
        self.pool.close()
        self.pool.join()


class Loky(Transport):
    """One ``Parallel`` call per case, as scripts make them: loky's executor (its workers) is reused across
    calls, each call's memmapping folder (the large arrays joblib dumps) is removed at its end."""

    name = "joblib(loky)"

    def start(self) -> None:
        import joblib
        self.delayed = joblib.delayed
        self.parallel = joblib.Parallel(n_jobs=TASKS, backend="loky")

    def map(self, function, arguments):
        return self.parallel(self.delayed(function)(argument) for argument in arguments)

    def before(self) -> None:
        """Wait until loky's resource tracker has unlinked the arrays the last call dumped (it does so once the
        workers let go of them), so that the next case's /dev/shm baseline does not count them."""
        deadline = time.monotonic() + 5
        while _dumped() and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        from joblib.externals.loky import reusable_executor
        executor = reusable_executor._executor
        if executor is not None:
            executor.shutdown(wait=True, kill_workers=True)


def _dumped() -> int:
    """Bytes in the files joblib dumped for this process (its memmapping folders under /dev/shm)."""
    total = 0
    prefix = f"joblib_memmapping_folder_{os.getpid()}_"
    with contextlib.suppress(OSError):
        for folder in os.scandir(SHM):
            if folder.name.startswith(prefix):
                with contextlib.suppress(OSError):
                    total += sum(entry.stat().st_size for entry in os.scandir(folder.path))
    return total


class Dask(Transport):
    name = "dask LocalCluster"

    def start(self) -> None:
        import dask
        from distributed import Client, LocalCluster
        # by-value payloads are large graphs on purpose: no warning per task
        self.config = dask.config.set({"distributed.admin.large-graph-warning-threshold": "1000GB"})
        self.config.__enter__()
        self.cluster = LocalCluster(n_workers=TASKS, threads_per_worker=1, processes=True,
                                    dashboard_address=":0", silence_logs=logging.ERROR)
        self.client = Client(self.cluster)

    def attach(self, shipped: Shipped) -> None:
        scheduler, client = self.cluster.scheduler, self.client

        def classify(comm) -> str | None:
            if any(stream.comm is comm for stream in list(scheduler.stream_comms.values())):
                return "worker"  # the scheduler's task stream to a worker
            if comm is getattr(client.scheduler_comm, "comm", None):
                return "scheduler"  # the client's graph
            return None
        shipped.classify = classify
        self.shipped = shipped

    def map(self, function, arguments):
        futures = [self.client.submit(function, argument, pure=False) for argument in arguments]
        results = self.client.gather(futures)
        del futures
        return results

    def run(self, payload):
        return self.map(task, [payload] * TASKS)

    def warm(self) -> None:
        for pid, path in self.client.run(warmup).values():
            if path != mmio.__file__:
                raise RuntimeError(f"dask workers import mmio from {path}, not {mmio.__file__}")
        super().warm()

    def before(self) -> None:
        """Wait until the workers let go of the last case's tasks (and their payloads), then reset them."""
        deadline = time.monotonic() + 5
        while any(self.client.run(_dask_tasks).values()) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.client.run(reset)

    def close(self) -> None:
        self.shipped.classify = None
        self.before()  # the workers unmap the file before they go (they exit after close returns)
        self.client.close()
        self.cluster.close()
        self.config.__exit__(None, None, None)


TRANSPORTS: list[tuple[str, Callable[[], Transport]]] = [
    ("ProcessPoolExecutor", ProcessPool), ("mp.Pool(spawn)", SpawnPool), ("joblib", Loky), ("distributed", Dask)]


def _missing(module: str) -> str | None:
    if module in ("ProcessPoolExecutor", "mp.Pool(spawn)"):
        return None
    try:
        __import__(module)
    except ImportError as exc:
        return str(exc)
    return None


def dask_available() -> str | None:
    """Why the ``mmio.dask.from_file`` case cannot run here, or None."""
    try:
        import mmio.dask
    except ImportError as exc:
        return f"mmio.dask is not importable ({exc})"
    if os.path.dirname(os.path.abspath(mmio.dask.__file__)) != os.path.dirname(os.path.abspath(mmio.__file__)):
        # an editable install's finder can supply a submodule this checkout lacks from another checkout
        return f"mmio.dask comes from {mmio.dask.__file__}, not from this mmio ({mmio.__file__})"
    return None


# ---- the payloads and the cases -------------------------------------------------------------------------------

PAYLOADS: dict[str, Callable[[str], object]] = {
    "in-RAM ndarray": lambda path: np.load(path),
    "np.memmap": lambda path: np.load(path, mmap_mode="r"),
    "mmio.load": lambda path: mmio.load(path),
    "mmio.share": lambda path: mmio.share(mmio.load(path)),
    "load(share=True)": lambda path: mmio.load(path, share=True),
}
GRAPH = "mmio.dask.from_file(...).sum()"


def _pickled(obj) -> int | None:
    try:
        return len(pickle.dumps(obj, protocol=5))
    except Exception:  # noqa: BLE001 - a dask collection may need cloudpickle
        try:
            import cloudpickle
            return len(cloudpickle.dumps(obj, protocol=5))
        except Exception:  # noqa: BLE001
            return None


class Recorder:
    """Per case, per round: the extras a task reports, folded into medians."""

    def __init__(self, expected: float, nbytes: int) -> None:
        self.expected, self.nbytes = expected, nbytes
        self.rounds: dict[str, list[dict]] = {}
        self.shm_before = 0
        self.pickled: dict[str, int | None] = {}

    def mark(self) -> None:
        self.shm_before = shutil.disk_usage(SHM).used

    def check(self, name: str, total: float) -> None:
        if not math.isclose(total, self.expected, rel_tol=1e-9):
            raise AssertionError(f"{name}: a task summed {total}, not {self.expected}")

    def add(self, name: str, results: list, shipped: Shipped, tasks: int = TASKS) -> None:
        deltas = [delta for _, _, delta, _ in results]
        known = [d for d in deltas if d is not None]
        sent, graph = shipped.total(), shipped.graph_total()
        row = {"shipped_bytes": None if sent is None else sent / tasks,
               "to_scheduler_bytes": None if graph is None else graph / tasks,
               "shm_bytes": max(shm[0] for *_, shm in results) if results else None,
               "shm_used_delta_bytes": max(shm[1] for *_, shm in results) - self.shm_before if results else None,
               "workers": len({pid for pid, *_ in results}) if results else None}
        for key, field in (("RssAnon", "rss_anon_bytes"), ("RssFile", "rss_file_bytes"),
                           ("RssShmem", "rss_shmem_bytes")):
            row[field] = max(d[key] for d in known) if known and len(known) == len(deltas) else None
        self.rounds.setdefault(name, []).append(row)

    def extra(self) -> dict[str, dict]:
        out = {}
        for name, rows in self.rounds.items():
            fields = {"pickled_bytes": self.pickled.get(name)}
            for key in rows[0]:
                values = [r[key] for r in rows if r[key] is not None]
                fields[key] = statistics.median(values) if values else None
            anon = fields.get("rss_anon_bytes")
            fields["rss_anon_fraction"] = None if anon is None else anon / self.nbytes
            out[name] = fields
        return out


def _case(transport: Transport, recorder: Recorder, shipped: Shipped, name: str, payload: Callable[[], object]):
    def case():
        with shipped.recorded():
            results = transport.run(payload())
        for _, total, _, _ in results:
            recorder.check(name, total)
        recorder.add(name, results, shipped)
    return case


def _graph_case(transport: Dask, recorder: Recorder, shipped: Shipped, name: str, path: str):
    import mmio.dask

    def case():
        with shipped.recorded():
            total = float(mmio.dask.from_file(path).sum().compute())
        recorder.check(name, total)
        recorder.add(name, [], shipped, tasks=1)
    return case


def _run_transport(make: Callable[[], Transport], path: str, rounds: int, shipped: Shipped, nbytes: int,
                   expected: float, payloads: dict[str, Callable[[str], object]], inside: bool,
                   reference: str, before: Callable[[], None] | None = None) -> list[dict]:
    """One transport: started and warmed once, then every payload once per round, interleaved."""
    transport = make()
    transport.start()  # ahead of the payloads: a forked worker inherits none of them
    try:
        transport.attach(shipped)
        transport.warm()
        recorder = Recorder(expected, nbytes)
        label = transport.name
        cases = {}
        for kind, build in payloads.items():
            name = f"{label}: {kind}"
            if inside:  # made in the timed case (a mapping opened): the parent's mapping never holds the pages
                recorder.pickled[name] = _pickled(build(path))
                cases[name] = _case(transport, recorder, shipped, name, lambda build=build: build(path))
            else:
                made = build(path)
                recorder.pickled[name] = _pickled(made)
                cases[name] = _case(transport, recorder, shipped, name, lambda made=made: made)
        if isinstance(transport, Dask) and not inside and dask_available() is None:
            import mmio.dask
            name = f"{label}: {GRAPH}"
            recorder.pickled[name] = _pickled(mmio.dask.from_file(path).sum())
            cases[name] = _graph_case(transport, recorder, shipped, name, path)

        def ahead():
            if before is not None:
                before()
            transport.before()
            recorder.mark()
        samples = interleaved(cases, rounds, before=ahead)
        cases.clear()
        rows = summarize(samples, None, f"{label}: {reference}", recorder.extra())
        for row in rows:
            row["transport"], _, row["payload"] = row["case"].partition(": ")
        return rows
    finally:
        transport.close()
        _forget_mappings()


def _forget_mappings() -> None:
    """Unmap what this process mapped for the references it received: the dask scheduler (in this process)
    unpickles every graph, and a SharedRef it sends on by value has read the whole file through a cached
    mapping, whose pages no eviction can drop while they are mapped."""
    from mmio import sharing
    gc.collect()
    sharing._cache.clear()


def _expected(path: str) -> float:
    return float(np.load(path, mmap_mode="r").sum())


def group_scaleout(path: str, nbytes: int, rounds: int) -> list[dict]:
    """Warm file: every payload on every transport (the ones whose package is missing left out, saying so)."""
    mmio.touch(path)
    expected = _expected(path)
    missing = dask_available()
    if missing:
        print(f"scaleout: leaving out {GRAPH}: {missing}", flush=True)
    rows: list[dict] = []
    with Shipped().patched() as shipped:
        for module, make in TRANSPORTS:
            why = _missing(module)
            if why:
                print(f"scaleout: leaving out {module}: {why}", flush=True)
                continue
            mmio.touch(path)
            rows += _run_transport(make, path, rounds, shipped, nbytes, expected, PAYLOADS, False, REFERENCE)
    return rows


COLD_PAYLOADS = {kind: PAYLOADS[kind] for kind in ("np.memmap", "mmio.share", "load(share=True)")}


def group_scaleout_cold(path: str, nbytes: int, rounds: int) -> list[dict]:
    """Cold file, ProcessPoolExecutor: the reference payloads against np.memmap (by value there)."""
    expected = _expected(path)
    _forget_mappings()
    left: list[float] = []

    def evict():
        deadline = time.monotonic() + 5  # a worker of the last case may still be letting go of its mapping
        while True:
            mmio.evict(path)
            fraction = mmio.residency(path).fraction
            if fraction < 0.01 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        left.append(fraction)

    with Shipped().patched() as shipped:
        rows = _run_transport(ProcessPool, path, rounds, shipped, nbytes, expected, COLD_PAYLOADS, True,
                              COLD_REFERENCE, before=evict)
    for row in rows:
        row["max_resident_before"] = max(left)
    return rows

