"""The benchmark suite runs end to end (``--quick``), so it never rots. No timing is asserted."""

import json
import subprocess
import sys
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_quick_suite_runs_and_writes_json(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--json", str(out),
                           "--png", str(tmp_path / "chart.png"), "--dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    from benchmarks.bench_weights import available
    weights = {"weights", "weights-copy", "weights-first", "weights-cold"} if available() is None else set()
    scaleout = {"scaleout", "scaleout-cold"}
    assert set(results["groups"]) == {"open", "warm", "cold", "gather", "inmemory"} | weights | scaleout
    for name, rows in results["groups"].items():
        assert rows and all(r["median_s"] > 0 for r in rows), name
    cold = {r["case"]: r for r in results["groups"]["cold"]}
    assert all(r["max_resident_before"] < 0.01 for r in cold.values())  # eviction was checked
    for row in results["groups"].get("weights-cold", []):
        assert row["max_resident_before"] < 0.01
    for row in results["groups"]["scaleout-cold"]:
        assert row["max_resident_before"] < 0.01
    by_reference = [r for name in scaleout for r in results["groups"][name]
                    if r["payload"] in ("mmio.share", "load(share=True)")]
    assert by_reference and all(r["pickled_bytes"] <= 1024 for r in by_reference)  # whatever the array's size
    transports = {r["transport"] for r in results["groups"]["scaleout"]}
    assert "mp.Pool(spawn)" in transports and any(t.startswith("ProcessPoolExecutor") for t in transports)
    assert "## Cold scan" in proc.stdout


def test_open_benchmark_runs():
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "open", "--size-mib", "4", "--rounds", "5"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "np.load(npy, mmap_mode='r')" in proc.stdout
