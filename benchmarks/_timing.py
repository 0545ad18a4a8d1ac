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


def mib(nbytes: float | None) -> str:
    return "-" if nbytes is None else f"{nbytes / (1 << 20):.1f}"


def human_bytes(nbytes: float | None) -> str:
    if nbytes is None:
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes:.0f} B"


COLUMNS: list[tuple[str, str, int, Callable[[float], str]]] = [
    # optional columns, printed when a row has the key: (key, header, width, format); None prints "-"
    ("gb_per_s", "GB/s", 7, "{:.2f}".format),
    ("disk_mib", "disk MiB", 9, "{:.1f}".format),
    ("pickled_bytes", "pickled/task", 12, human_bytes),
    ("shipped_bytes", "shipped/task", 12, human_bytes),
    ("shm_bytes", "/dev/shm MiB", 12, mib),
    ("rss_anon_bytes", "RssAnon MiB", 11, mib),
    ("rss_file_bytes", "RssFile MiB", 11, mib),
    ("rss_shmem_bytes", "RssShmem MiB", 12, mib),
]


def format_table(title: str, rows: list[dict], reference: str) -> str:
    width = max(len(r["case"]) for r in rows)
    unit, scale = ("us", 1e6) if max(r["median_s"] for r in rows) < 1e-3 else ("ms", 1e3)
    columns = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    head = f"{'case':<{width}}  {'median':>10}  {'min-max':>19}"
    head += "".join(f"  {header:>{w}}" for _, header, w, _ in columns)
    head += f"  {'speed vs ' + reference}"
    lines = [f"## {title}", head]
    for r in rows:
        line = (f"{r['case']:<{width}}  {r['median_s'] * scale:>8.2f}{unit}  "
                f"{r['min_s'] * scale:>8.2f}-{r['max_s'] * scale:<8.2f}{unit}")
        for key, _, w, fmt in columns:
            value = r.get(key)
            line += f"  {'-' if value is None else fmt(value):>{w}}"
        line += f"  {r['vs_reference']:>6.2f}x"
        lines.append(line)
    return "\n".join(lines)
