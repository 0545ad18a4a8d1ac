"""Residency over time: :func:`watch` samples the page-cache residency of files on a background thread.

Each sample keeps the resident byte runs of each file (``Residency.runs()``), not its page array, so a long
watch of a large file stays small.  :class:`Watch` draws itself in notebooks as a heatmap per file (time down,
file offset across) and with matplotlib (:meth:`Watch.plot`).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class FileSample:
    """One file in one sample: its size, its resident byte runs, or the error that kept mmio from knowing.

    Attributes
    ----------
    size : int or None
        The file's size in bytes when sampled (``None`` when unknown).
    runs : numpy.ndarray
        ``(k, 2)`` int64 ``(begin, end)`` byte offsets of the resident parts, end exclusive (empty on error).
    error : str or None
        Why the file could not be measured (deleted, unreadable), else ``None``.

    Examples
    --------
    >>> from mmio.watching import FileSample
    >>> s = FileSample(8192, np.array([[0, 4096]]), None)
    >>> s.resident_bytes
    4096
    """

    size: int | None
    runs: np.ndarray
    error: str | None = None

    @property
    def resident_bytes(self) -> int:
        """Bytes of the file on resident pages."""
        return int((self.runs[:, 1] - self.runs[:, 0]).sum()) if len(self.runs) else 0

    @property
    def fraction(self) -> float:
        """Resident bytes over the file's size (``0.0`` for an empty or unknown file)."""
        return self.resident_bytes / self.size if self.size else 0.0


@dataclass(frozen=True, slots=True)
class Sample:
    """The residency of every watched file at one moment.

    Attributes
    ----------
    time : float
        Seconds since the watch started.
    files : tuple of FileSample
        One per watched path, in the order of :attr:`Watch.paths`.

    Examples
    --------
    >>> from mmio.watching import FileSample, Sample
    >>> Sample(0.5, (FileSample(4096, np.array([[0, 4096]])),)).files[0].fraction
    1.0
    """

    time: float
    files: tuple


_NO_RUNS = np.zeros((0, 2), np.int64)


def sample_file(path: str) -> FileSample:
    """Measure one file now: its runs, or the error (OSError, ValueError) as text."""
    from .pagecache import residency
    try:
        r = residency(path)
    except (OSError, ValueError) as exc:
        return FileSample(None, _NO_RUNS, str(exc))
    runs = r.runs()
    return FileSample(r.length, np.array(runs, np.int64).reshape(len(runs), 2), None)


class Watch:
    """A background sampler of files' page-cache residency; see :func:`watch`.

    Attributes
    ----------
    paths : list of str
        The files watched.
    interval : float
        Seconds between samples.
    duration : float or None
        Seconds after which sampling stops by itself (``None``: until :meth:`stop`).
    samples : list of Sample
        What has been recorded so far (appended to by the sampling thread).

    Examples
    --------
    >>> import mmio
    >>> open("/tmp/mmio-doc-watch.bin", "wb").write(bytes(8192))
    8192
    >>> w = mmio.watch(["/tmp/mmio-doc-watch.bin"], interval=0.05)
    >>> w.stop()
    >>> len(w.samples) >= 1 and w.samples[-1].files[0].size
    8192
    """

    def __init__(self, paths, interval: float = 0.5, duration: float | None = None):
        if isinstance(paths, (str, bytes, os.PathLike)):
            paths = [paths]
        self.paths = [os.fsdecode(os.fspath(p)) for p in paths]
        if not self.paths:
            raise ValueError("watch needs at least one file")
        if not interval > 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        if duration is not None and not duration >= 0:
            raise ValueError(f"duration must be a number of seconds >= 0, got {duration!r}")
        self.interval = float(interval)
        self.duration = None if duration is None else float(duration)
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="mmio.watch", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        files = tuple(sample_file(p) for p in self.paths)
        self.samples.append(Sample(time.monotonic() - self._start, files))

    def _run(self) -> None:
        while True:
            self._sample()
            elapsed = time.monotonic() - self._start
            if self.duration is not None and elapsed >= self.duration:
                return
            # The next point of a fixed grid: slow samples neither drift the rest nor run back to back.
            deadline = self._start + (elapsed // self.interval + 1) * self.interval
            if self.duration is not None:
                deadline = min(deadline, self._start + self.duration)
            if self._stop.wait(max(0.0, deadline - time.monotonic())):
                self._sample()  # the state at stop(): what the watched code left behind
                return

    @property
    def running(self) -> bool:
        """Whether the sampling thread is still running."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Take a last sample, stop the thread and wait for it (nothing happens if it has stopped)."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def times(self) -> np.ndarray:
        """Seconds since the start, one per sample."""
        return np.array([s.time for s in list(self.samples)], float)

    def resident_bytes(self) -> np.ndarray:
        """``(samples, files)`` array: bytes of each file on resident pages at each sample (0 on error)."""
        samples = list(self.samples)
        return np.array([[f.resident_bytes for f in s.files] for s in samples], np.int64).reshape(
            len(samples), len(self.paths))

    def fractions(self, buckets: int = 640, file: int = 0) -> np.ndarray:
        """``(samples, buckets)`` array: the resident fraction of each of ``buckets`` equal parts of a file
        (the largest size it had during the watch), at each sample; NaN where the file was not known."""
        samples = list(self.samples)
        size = max((s.files[file].size or 0 for s in samples), default=0)
        out = np.full((len(samples), buckets), np.nan)
        if size == 0:
            return out
        edges = np.linspace(0, size, buckets + 1)
        for i, s in enumerate(samples):
            f = s.files[file]
            if f.error is None:
                out[i] = np.diff(_covered(f.runs, edges)) / np.diff(edges)
        return out

    def _repr_html_(self) -> str:
        from .display import watch_html
        return watch_html(self)

    def plot(self, axes=None):
        """Draw the heatmaps (time down, file offset across) with matplotlib; return the Axes, one per file.

        Raises
        ------
        ImportError
            matplotlib is not installed (``pip install matplotlib`` or ``pymmio[plot]``).
        """
        from .display import plot_watch
        return plot_watch(self, axes)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<mmio.Watch {len(self.paths)} files every {self.interval:g} s, {len(self.samples)} samples, {state}>"


def _covered(runs: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Resident bytes below each offset in ``x``, for sorted non-overlapping ``runs``."""
    if len(runs) == 0:
        return np.zeros(len(x))
    begins, ends = runs[:, 0].astype(float), runs[:, 1].astype(float)
    before = np.concatenate(([0.0], np.cumsum(ends - begins)))
    i = np.searchsorted(begins, x, side="right")  # runs starting at or below x
    last = np.maximum(i - 1, 0)
    partial = np.clip(x - begins[last], 0, ends[last] - begins[last])
    return np.where(i > 0, before[last] + partial, 0.0)


def watch(paths, interval: float = 0.5, *, duration: float | None = None) -> Watch:
    """Record the page-cache residency of files over time, on a background thread.

    Sampling starts at once: a sample right away, then one every ``interval``
    seconds, and a last one when the watch stops.  Each sample keeps each
    file's resident byte runs (see :meth:`mmio.Residency.runs`), so memory grows
    with the number of runs, not the file's size.  A file that cannot be
    measured (deleted, unreadable) is recorded with its error; the thread does
    not raise.

    Parameters
    ----------
    paths : str, os.PathLike or list of them
        The files to watch.
    interval : float
        Seconds between samples.
    duration : float, optional
        Stop sampling by itself after this many seconds.

    Returns
    -------
    Watch
        A context manager (``with`` stops it); ``stop()`` stops it too.  Its
        ``samples`` hold the records, ``_repr_html_`` draws a heatmap per file
        in notebooks (time down, offset across) and ``plot()`` the same with
        matplotlib.

    Raises
    ------
    ValueError
        No paths, or an interval that is not positive.

    Examples
    --------
    >>> import mmio
    >>> open("/tmp/mmio-doc-watch.bin", "wb").write(bytes(1 << 20))
    1048576
    >>> _ = mmio.evict("/tmp/mmio-doc-watch.bin")
    >>> with mmio.watch(["/tmp/mmio-doc-watch.bin"], interval=0.05) as w:
    ...     _ = mmio.touch("/tmp/mmio-doc-watch.bin")
    >>> w.samples[-1].files[0].fraction
    1.0
    """
    return Watch(paths, interval, duration)
