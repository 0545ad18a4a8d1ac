"""Sizes for people: the one byte formatter of mmio (messages, the CLI, the pictures)."""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def human_bytes(n: float, *, compact: bool = False) -> str:
    """``n`` bytes as ``1.5 GiB``, or with ``compact`` as fincore prints them (``3B``, ``4K``, ``144.3M``).

    Examples
    --------
    >>> from mmio._units import human_bytes
    >>> human_bytes(1536), human_bytes(1536, compact=True), human_bytes(100, compact=True)
    ('1.5 KiB', '1.5K', '100B')
    """
    value, unit = float(n), _UNITS[0]
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            break
        value /= 1024
    if compact:
        text = f"{value:.0f}" if unit == "B" else f"{value:.1f}".removesuffix(".0")
        return f"{text}{unit[0]}"
    return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
