"""Pictures of residency: an inline SVG strip for notebooks, and a matplotlib plot.

The SVG needs nothing but a browser (Jupyter, VS Code, GitHub render it);
matplotlib is imported only by :func:`plot`.
"""

from __future__ import annotations

import html

import numpy as np

from ._units import human_bytes

RESIDENT = (43, 108, 176)      # blue
ABSENT = (226, 232, 240)       # light grey
LEVELS = 16                    # colour steps for partly resident buckets


def bucket_fractions(pages: np.ndarray, buckets: int) -> np.ndarray:
    """The resident fraction of each of ``buckets`` equal groups of pages (fewer if there are fewer pages)."""
    n = pages.size
    if n == 0:
        return np.zeros(0)
    buckets = max(1, min(buckets, n))
    bounds = np.linspace(0, n, buckets + 1).astype(np.int64)
    counts = np.add.reduceat(pages.astype(np.int64), bounds[:-1])
    return counts / np.diff(bounds)


def _colour(fraction: float) -> str:
    rgb = [round(a + (b - a) * fraction) for a, b in zip(ABSENT, RESIDENT)]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def svg_strip(pages: np.ndarray, width: int = 640, height: int = 18) -> str:
    """An SVG heat strip of the pages: one rectangle per run of equally resident buckets."""
    fractions = bucket_fractions(pages, width)
    # Any resident page shows (at least one step of colour); only a full bucket gets the full colour.
    levels = np.round(fractions * LEVELS).astype(int)
    levels = np.where(fractions > 0, np.clip(levels, 1, LEVELS), 0)
    levels = np.where((fractions < 1) & (levels == LEVELS), LEVELS - 1, levels)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="{_colour(0)}"/>']
    scale = width / max(1, levels.size)
    start = 0
    for i in range(1, levels.size + 1):
        if i == levels.size or levels[i] != levels[start]:
            if levels[start]:
                x0, x1 = start * scale, i * scale
                parts.append(f'<rect x="{x0:.2f}" y="0" width="{x1 - x0:.2f}" height="{height}" '
                             f'fill="{_colour(levels[start] / LEVELS)}"/>')
            start = i
    parts.append("</svg>")
    return "".join(parts)


def caption(residency) -> str:
    return (f"{residency.fraction:.1%} of {human_bytes(residency.length)} resident "
            f"({residency.resident:,} of {residency.total:,} pages)")


def _text(value) -> str:
    """HTML-escaped text that is also valid XML and UTF-8: control characters and undecodable
    bytes of file names are shown as escapes."""
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    text = "".join(c if c >= " " or c in "\t\n" else f"\\x{ord(c):02x}" for c in text)
    return html.escape(text)


def residency_html(residency, label: str | None = None) -> str:
    """The notebook picture of one Residency: the strip and a caption."""
    title = f"<b>{_text(label)}</b>: " if label else ""
    return (f'<div class="mmio-residency">{svg_strip(residency.pages)}'
            f'<div style="font:12px sans-serif">{title}{html.escape(caption(residency))}</div></div>')


def table_html(table) -> str:
    """One row per file: its name, its strip, and its figures (or the error that stopped it)."""
    rows = []
    for row in table.rows:
        name = _text(row.path)
        if row.residency is None:
            cell = f'<td colspan="2" style="color:#a00">{_text(row.error or "unknown")}</td>'
        else:
            cell = (f"<td>{svg_strip(row.residency.pages, width=320, height=14)}</td>"
                    f"<td>{html.escape(caption(row.residency))}</td>")
        rows.append(f"<tr><td><code>{name}</code></td>{cell}</tr>")
    return ('<table class="mmio-residency-table"><thead><tr><th>file</th><th>pages</th>'
            f"<th>resident</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def plot(residency, ax=None, buckets: int = 512):
    """Draw the residency strip with matplotlib; return the Axes.

    Raises
    ------
    ImportError
        matplotlib is not installed (``pip install matplotlib``).
    """
    try:
        import matplotlib.pyplot as plt
        from matplotlib.colors import LinearSegmentedColormap
    except ImportError as exc:
        raise ImportError("Residency.plot needs matplotlib: pip install matplotlib "
                          "(the notebook picture, Residency._repr_html_, does not)") from exc
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.8))
    cmap = LinearSegmentedColormap.from_list("mmio", [np.array(ABSENT) / 255, np.array(RESIDENT) / 255])
    fractions = bucket_fractions(residency.pages, buckets)
    ax.imshow(fractions[np.newaxis, :], aspect="auto", cmap=cmap, vmin=0, vmax=1,
              interpolation="nearest", extent=(0, residency.length, 0, 1))
    ax.set_yticks([])
    ax.set_xlabel("byte offset")
    ax.set_title(caption(residency), fontsize=9)
    return ax
