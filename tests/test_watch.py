"""mmio.watch: residency sampled on a thread, the heatmap, plot(); ``mmio residency --watch`` in a process."""

import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import mmio
from conftest import evict

PAGE = mmio.PAGE_SIZE


def _until(watch, predicate, timeout=30.0):
    """Poll until a recorded sample satisfies ``predicate``; return it (the deadline only bounds a failure)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for sample in list(watch.samples):
            if predicate(sample):
                return sample
        time.sleep(0.01)
    raise AssertionError(f"no sample satisfied the condition in {timeout} s: {watch.samples[-3:]}")


def test_samples_follow_touch_and_evict(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(64 * PAGE + 100))
    evict(path)
    with mmio.watch([path], interval=0.01) as w:
        cold = _until(w, lambda s: s.files[0].runs.size == 0)
        mmio.touch(path)
        warm = _until(w, lambda s: s.files[0].runs.tolist() == [[0, 64 * PAGE + 100]])
        assert warm.time > cold.time and warm.files[0].fraction == 1.0 and warm.files[0].size == 64 * PAGE + 100
        mmio.evict(path)
        _until(w, lambda s: s.time > warm.time and s.files[0].resident_bytes == 0)
    assert not w.running
    times = w.times
    assert times[0] >= 0 and np.all(np.diff(times) >= 0)
    assert w.resident_bytes().shape == (len(w.samples), 1)
    count = len(w.samples)
    w.stop()  # stopping twice is harmless and samples nothing more
    assert len(w.samples) == count


def test_runs_match_residency_and_fractions_follow_them(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(16 * PAGE))
    evict(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for page in (0, 1, 8):
            os.pread(fd, 1, page * PAGE)
    finally:
        os.close(fd)
    w = mmio.watch(path, interval=60)  # one sample now, one at stop()
    w.stop()
    assert len(w.samples) == 2 and w.paths == [str(path)]
    expected = mmio.residency(path).runs()
    assert [tuple(run) for run in w.samples[-1].files[0].runs.tolist()] == expected == [(0, 2 * PAGE), (8 * PAGE, 9 * PAGE)]
    fractions = w.fractions(buckets=16)
    assert fractions.shape == (2, 16)
    assert fractions[-1].tolist() == [1.0, 1.0] + [0.0] * 6 + [1.0] + [0.0] * 7
    halves = w.fractions(buckets=2)[-1]
    assert halves.tolist() == [2 / 8, 1 / 8]


def test_stop_joins_the_thread_and_duration_ends_it(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(PAGE))
    w = mmio.watch([path], interval=0.01)
    assert any(t.name == "mmio.watch" for t in threading.enumerate())
    w.stop()
    assert not w.running and not w._thread.is_alive()
    timed = mmio.watch([path], interval=0.01, duration=0.05)
    timed._thread.join(timeout=60)
    assert not timed.running and len(timed.samples) >= 1
    assert "stopped" in repr(timed)
    with pytest.raises(ValueError, match="interval"):
        mmio.watch([path], interval=0)
    with pytest.raises(ValueError, match="at least one"):
        mmio.watch([])


def test_a_file_deleted_mid_watch_is_recorded_not_raised(tmp_path):
    gone, kept = tmp_path / "gone.bin", tmp_path / "kept.bin"
    for path in (gone, kept):
        path.write_bytes(bytes(4 * PAGE))
    with mmio.watch([gone, kept], interval=0.01) as w:
        _until(w, lambda s: s.files[0].error is None)
        gone.unlink()
        failed = _until(w, lambda s: s.files[0].error is not None)
    assert "No such file" in failed.files[0].error and failed.files[0].size is None
    assert failed.files[1].error is None and failed.files[1].size == 4 * PAGE
    assert np.isnan(w.fractions(8, file=0)[-1]).all()
    page = w._repr_html_()
    ET.fromstring(page)
    assert "unknown" in page and page.count("<svg") == 2


def test_heatmap_is_valid_svg_with_rows_ticks_and_times(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(256 * PAGE))
    evict(path)
    with mmio.watch([path], interval=0.01) as w:
        with open(path, "rb") as f:
            for _ in range(4):
                f.read(64 * PAGE)
                count = len(w.samples)
                _until(w, lambda s: len(w.samples) > count + 1)
    root = ET.fromstring(w._repr_html_())
    svg = root.find("{http://www.w3.org/2000/svg}svg")
    texts = ["".join(t.itertext()) for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert texts[0] == "0" and texts[-3] == "1M" and texts[-2].startswith("0.0 s") and texts[-1].endswith(" s")
    assert len(svg.findall(".//{http://www.w3.org/2000/svg}rect")) > 2
    assert f"{len(w.samples)} samples" in "".join(root.itertext())


def test_plot_needs_matplotlib_or_draws(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(PAGE))
    w = mmio.watch([path], interval=60)
    w.stop()
    try:
        import matplotlib
        matplotlib.use("Agg")
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install matplotlib \(or pymmio\[plot\]\)"):
            w.plot()
    else:
        axes = w.plot()
        assert len(axes) == 1 and axes[0].get_ylabel() == "seconds"


# ---- the command line ------------------------------------------------------------------------------


def _mmio(*args):
    return [sys.executable, "-m", "mmio", *map(str, args)]


def test_cli_watch_prints_one_line_per_sample_when_not_a_terminal(tmp_path):
    path, missing = tmp_path / "f.bin", tmp_path / "missing.bin"
    path.write_bytes(os.urandom(8 * PAGE))
    mmio.touch(path)
    proc = subprocess.run(_mmio("residency", "--watch", "0.01", "--count", "3", "-b", path), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    for line in lines:
        stamp, rest = line.split("  ", 1)
        assert stamp.endswith("s") and float(stamp[:-1]) >= 0
        assert rest == f"{path} 100.0% {8 * PAGE}/{8 * PAGE}"
    proc = subprocess.run(_mmio("residency", "--watch", "0.01", "--count", "1", path, missing), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1 and f"{missing} ? " in proc.stdout and len(proc.stdout.splitlines()) == 1
    usage = subprocess.run(_mmio("residency", "--count", "2", path), capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "--count needs --watch" in usage.stderr
    for bad in ("0", "-1", "x"):
        assert subprocess.run(_mmio("residency", "--watch", bad, path), capture_output=True,
                              timeout=120).returncode == 2


def test_cli_watch_ends_quietly_at_ctrl_c(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(4 * PAGE))
    # SIGINT at its default in the child, whatever started this test (a background job ignores it)
    proc = subprocess.Popen(_mmio("residency", "--watch", "0.05", path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout.readline().startswith("0.")  # running, its handlers installed
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0 and err == "" and "Traceback" not in out
