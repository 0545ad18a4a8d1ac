"""The one timing harness of the benchmarks: interleaved rounds, medians, and the table they print."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved(cases: dict[str, Callable[[], object]], rounds: int, before: Callable[[], None] | None = None,
                inner: int = 1, after: Callable[[str], None] | None = None) -> dict[str, list[float]]:
    """Run every case once per round, in turn, so machine noise hits all of them alike.

    ``before`` runs ahead of every single case and ``after(name)`` behind it, untimed (an eviction, a
    residency check). Returns seconds per call for each case and round (``inner`` calls are timed together,
    for cases too short to time alone).
    """
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            if before is not None:
                before()
            start = time.perf_counter()
            for _ in range(inner):
                result = case()
            samples[name].append((time.perf_counter() - start) / inner)
            del result
            if after is not None:
                after(name)
    return samples


def summarize(samples: dict[str, list[float]], nbytes: int | None, reference: str,
              extra: dict[str, dict] | None = None) -> list[dict]:
    ref = statistics.median(samples[reference])
    rows = []
    for name, values in samples.items():
        median = statistics.median(values)
        row = {"case": name, "median_s": median, "min_s": min(values), "max_s": max(values),
               "runs": len(values), "vs_reference": ref / median if median else float("inf")}
        if nbytes:
            row["gb_per_s"] = nbytes / median / 1e9
        row.update((extra or {}).get(name, {}))
        rows.append(row)
    return rows


def format_table(title: str, rows: list[dict], reference: str) -> str:
    width = max(len(r["case"]) for r in rows)
    unit, scale = ("us", 1e6) if max(r["median_s"] for r in rows) < 1e-3 else ("ms", 1e3)
    head = f"{'case':<{width}}  {'median':>10}  {'min-max':>19}"
    head += "  {:>7}".format("GB/s") if "gb_per_s" in rows[0] else ""
    head += "  {:>9}".format("disk MiB") if "disk_mib" in rows[0] else ""
    head += f"  {'speed vs ' + reference}"
    lines = [f"## {title}", head]
    for r in rows:
        line = (f"{r['case']:<{width}}  {r['median_s'] * scale:>8.2f}{unit}  "
                f"{r['min_s'] * scale:>8.2f}-{r['max_s'] * scale:<8.2f}{unit}")
        if "gb_per_s" in r:
            line += f"  {r['gb_per_s']:>7.2f}"
        if "disk_mib" in r:
            line += f"  {r['disk_mib']:>9.1f}"
        line += f"  {r['vs_reference']:>6.2f}x"
        lines.append(line)
    return "\n".join(lines)
