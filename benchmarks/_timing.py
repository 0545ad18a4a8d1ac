"""Shared helpers: interleaved rounds, medians and a plain-text table."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved(cases: dict[str, Callable[[], object]], rounds: int, inner: int = 1) -> dict[str, list[float]]:
    """Run every case once per round, in turn, so machine noise hits all of them alike.

    Returns seconds per call for each case and round (``inner`` calls are timed together).
    """
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            start = time.perf_counter()
            for _ in range(inner):
                case()
            samples[name].append((time.perf_counter() - start) / inner)
    return samples


def table(samples: dict[str, list[float]], reference: str, unit: float = 1e-6, unit_name: str = "us") -> str:
    """Median, 10th and 90th percentile per case, and each median over ``reference``'s."""
    ref = statistics.median(samples[reference])
    width = max(len(name) for name in samples)
    lines = [f"{'case':<{width}}  {'median':>10}  {'p10':>10}  {'p90':>10}  {'x ' + reference:>12}"]
    for name, values in samples.items():
        values = sorted(values)
        med = statistics.median(values)
        p10 = values[len(values) // 10]
        p90 = values[(len(values) * 9) // 10]
        lines.append(f"{name:<{width}}  {med / unit:>8.2f}{unit_name}  {p10 / unit:>8.2f}{unit_name}"
                     f"  {p90 / unit:>8.2f}{unit_name}  {med / ref:>11.2f}x")
    return "\n".join(lines)
