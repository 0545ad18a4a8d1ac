"""Pictures of residency: an inline SVG strip for notebooks, and a matplotlib plot.

The SVG needs nothing but a browser (Jupyter, VS Code, GitHub render it);
matplotlib is imported only by :func:`plot`.
"""

from __future__ import annotations

import html
import os

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


def offset_ticks(offset: int, length: int, width: float, count: int = 4) -> list[tuple[float, str, str]]:
    """``(x, label, anchor)`` for the axis under a strip of ``width`` pixels: the start, a few round offsets
    (power-of-two steps, labelled in human units) and the end."""
    start = _short(offset)
    if length <= 0:
        return [(0.0, start, "start")]
    step = 1 << max(0, (max(1, length // count) - 1).bit_length())  # the power of two at or above length/count
    ticks = [(0.0, start, "start")]
    for k in range(1, length // step + 1):
        x = k * step * width / length
        if 0.12 * width < x < 0.88 * width:  # room for the labels at both ends
            ticks.append((x, _short(offset + k * step), "middle"))
    ticks.append((float(width), _short(offset + length), "end"))
    return ticks


def _short(n: int) -> str:
    return "0" if n == 0 else human_bytes(n, compact=True)


def _axis(ticks, y: float) -> str:
    parts = []
    for x, label, anchor in ticks:
        x = min(max(x, 0.5), ticks[-1][0] - 0.5) if len(ticks) > 1 else 0.5
        parts.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#718096" stroke-width="1"/>'
                     f'<text x="{x:.1f}" y="{y + 14}" font-size="10" font-family="sans-serif" fill="#4a5568" '
                     f'text-anchor="{anchor}">{html.escape(label)}</text>')
    return "".join(parts)


def _levels(fractions: np.ndarray) -> np.ndarray:
    """Colour steps: any resident page shows (at least one step); only a full bucket gets the full colour."""
    levels = np.round(fractions * LEVELS).astype(int)
    levels = np.where(fractions > 0, np.clip(levels, 1, LEVELS), 0)
    return np.where((fractions < 1) & (levels == LEVELS), LEVELS - 1, levels)


def _row_rects(levels: np.ndarray, width: float, y: float, height: float) -> list[str]:
    """One rectangle per run of equal, non-zero levels along a row of ``width`` pixels."""
    parts = []
    scale = width / max(1, levels.size)
    start = 0
    for i in range(1, levels.size + 1):
        if i == levels.size or levels[i] != levels[start]:
            if levels[start]:
                x0, x1 = start * scale, i * scale
                parts.append(f'<rect x="{x0:.2f}" y="{y:.2f}" width="{x1 - x0:.2f}" height="{height:.2f}" '
                             f'fill="{_colour(levels[start] / LEVELS)}"/>')
            start = i
    return parts


def svg_strip(pages: np.ndarray, width: int = 640, height: int = 18, ticks=None) -> str:
    """An SVG heat strip of the pages: one rectangle per run of equally resident buckets.

    With ``ticks`` (from :func:`offset_ticks`) an offset axis is drawn under the strip.
    """
    total = height + (18 if ticks else 0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total}" '
             f'viewBox="0 0 {width} {total}" role="img">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="{_colour(0)}"/>']
    parts += _row_rects(_levels(bucket_fractions(pages, width)), width, 0, height)
    if ticks:
        parts.append(_axis(ticks, height))
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


def _swatch(rgb) -> str:
    return (f'<span style="display:inline-block;width:10px;height:10px;vertical-align:-1px;'
            f'background:{_colour(1 if rgb is RESIDENT else 0)}"></span>')


def legend(residency, width: int = 640) -> str:
    """The key under a strip: what the colours mean and how many bytes one pixel stands for."""
    scale = ""
    if residency.total > width:
        scale = f"; 1 px = {human_bytes(residency.total * residency.page_size / width)}"
    return (f"{_swatch(RESIDENT)} in the page cache {_swatch(ABSENT)} not "
            f"(paler: part of the pixel's pages){scale}")


def residency_html(residency, label: str | None = None) -> str:
    """The notebook picture of one Residency: the strip with an offset axis, a key and a caption."""
    title = f"<b>{_text(label)}</b>: " if label else ""
    ticks = offset_ticks(residency.offset, residency.length, 640)
    return (f'<div class="mmio-residency">{svg_strip(residency.pages, ticks=ticks)}'
            f'<div style="font:11px sans-serif;color:#4a5568">{legend(residency)}</div>'
            f'<div style="font:12px sans-serif">{title}{html.escape(caption(residency))}</div></div>')


NUMERIC = "text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums"


def _table_figures(table, row):
    """(size, resident, percent) of a row as the tables print them."""
    from .pagecache import _figures
    if row.residency is None:
        return (human_bytes(row.size) if row.size is not None else "?"), "?", "?"
    resident, size = _figures(row)
    return human_bytes(size), human_bytes(resident), f"{resident / size if size else 0.0:.1%}"


def _shown_rows(table, limit):
    rows = table.rows if limit is None else table.rows[:max(0, limit)]
    rest = table.rows[len(rows):]
    from .pagecache import _figures
    rest_resident = sum(_figures(r)[0] for r in rest if r.residency is not None)
    return rows, rest, rest_resident


def _totals(table):
    fraction = table.resident_bytes / table.size if table.size else 0.0
    return human_bytes(table.size), human_bytes(table.resident_bytes), f"{fraction:.1%}"


def table_html(table, limit: int | None = 50) -> str:
    """One row per file (the first ``limit``): its name, size, resident bytes and fraction, its strip (or
    the error that stopped it); then how many more, and the totals over all rows."""
    rows, rest, rest_resident = _shown_rows(table, limit)
    num = f'style="{NUMERIC}"'
    body = []
    for row in rows:
        name = f'<td style="text-align:left"><code>{_text(table.name(row))}</code></td>'
        size, resident, percent = _table_figures(table, row)
        if row.residency is None:
            cell = (f"<td {num}>{size}</td>"
                    f'<td colspan="3" style="color:#a00;text-align:left">{_text(row.error or "unknown")}</td>')
        else:
            cell = (f"<td {num}>{size}</td><td {num}>{resident}</td><td {num}>{percent}</td>"
                    f"<td>{svg_strip(row.residency.pages, width=240, height=12)}</td>")
        body.append(f"<tr>{name}{cell}</tr>")
    if rest:
        body.append(f'<tr><td colspan="5" style="text-align:left;font-style:italic">and {len(rest):,} more '
                    f"files ({human_bytes(rest_resident)} resident)</td></tr>")
    size, resident, percent = _totals(table)
    errors = f", {table.errors:,} unknown" if table.errors else ""
    foot = (f'<tr><th style="text-align:left">total ({len(table.rows):,} files{errors})</th>'
            f"<th {num}>{size}</th><th {num}>{resident}</th><th {num}>{percent}</th><th></th></tr>")
    head = "".join(f'<th style="{NUMERIC if i in (1, 2, 3) else "text-align:left"}">{h}</th>'
                   for i, h in enumerate(("file", "size", "resident", "%", "pages")))
    where = f"<caption style=\"text-align:left\"><code>{_text(table.root)}</code></caption>" if table.root else ""
    return (f'<table class="mmio-residency-table">{where}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody><tfoot>{foot}</tfoot></table>")


def table_text(table, limit: int | None = 50, width: int = 20) -> str:
    """The text form of :func:`table_html`: a summary line, then columns SIZE RESIDENT % PAGES FILE."""
    rows, rest, rest_resident = _shown_rows(table, limit)
    lines = [("SIZE", "RESIDENT", "%", "PAGES".ljust(width), "FILE")]
    for row in rows:
        size, resident, percent = _table_figures(table, row)
        name = _text_name(table.name(row))
        if row.residency is None:
            lines.append((size, resident, percent, "?".ljust(width), f"{name}  ({row.error or 'unknown'})"))
        else:
            strip = row.residency.to_string(width=width, max_lines=1) if row.residency.total else ""
            lines.append((size, resident, percent, strip.ljust(width), name))
    errors = f", {table.errors:,} unknown" if table.errors else ""
    totals = (*_totals(table), " " * width, f"total ({len(table.rows):,} files{errors})")
    widths = [max(len(line[i]) for line in [*lines, totals]) for i in range(3)]

    def format(line):
        return "  ".join([*(cell.rjust(w) for cell, w in zip(line[:3], widths)), line[3], line[4]]).rstrip()

    out = [table.summary(), *(format(line) for line in lines)]
    if rest:
        out.append(f"and {len(rest):,} more files ({human_bytes(rest_resident)} resident)")
    out.append(format(totals))
    return "\n".join(out)


def _text_name(name: str) -> str:
    """A file name for a text table: control characters and undecodable bytes as escapes."""
    text = name.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c >= " " and c != "\x7f" else f"\\x{ord(c):02x}" for c in text)


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
        raise ImportError("Residency.plot needs matplotlib: pip install matplotlib (or pymmio[plot]) "
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


ERROR = "#fed7d7"              # light red: the file could not be measured at that time


def _heatmap_svg(fractions: np.ndarray, times: np.ndarray, size: int, width: int = 640,
                 max_rows: int = 120) -> str:
    """An SVG heatmap: one row per sample (grouped when there are more than ``max_rows``), time down the
    left, file offsets along the bottom."""
    n = fractions.shape[0]
    rows = max(1, min(n, max_rows))
    bounds = np.linspace(0, n, rows + 1).astype(np.int64)
    row_height = float(np.clip(240 / rows, 2, 10))
    left, height = 44, rows * row_height
    total_height = height + 18
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 4}" height="{total_height:.0f}" '
             f'viewBox="0 0 {left + width + 4} {total_height:.0f}" role="img">',
             f'<g transform="translate({left},0)">',
             f'<rect x="0" y="0" width="{width}" height="{height:.2f}" fill="{_colour(0)}"/>']
    for r in range(rows):
        group = fractions[bounds[r]:bounds[r + 1]]
        y = r * row_height
        if group.size == 0:
            continue
        known = ~np.isnan(group).all(axis=1)
        if not known.any():
            parts.append(f'<rect x="0" y="{y:.2f}" width="{width}" height="{row_height:.2f}" fill="{ERROR}"/>')
            continue
        parts += _row_rects(_levels(np.nanmean(group[known], axis=0)), width, y, row_height)
    parts.append(_axis(offset_ticks(0, size, width), height))
    parts.append("</g>")
    if n:
        labels = [(0, f"{times[0]:.1f} s")] if rows == 1 else [(0, f"{times[0]:.1f} s"),
                                                               (height - 1, f"{times[-1]:.1f} s")]
        for y, label in labels:
            parts.append(f'<text x="{left - 4}" y="{min(max(y + 9, 9), height):.1f}" font-size="10" '
                         f'font-family="sans-serif" fill="#4a5568" text-anchor="end">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def watch_html(watch, width: int = 640) -> str:
    """The notebook picture of a Watch: per file, a heatmap (time down, offset across) and a caption."""
    samples = list(watch.samples)
    times = np.array([s.time for s in samples], float)
    state = "running" if watch.running else "stopped"
    head = (f'<div style="font:12px sans-serif">{len(samples):,} samples every {watch.interval:g} s '
            f'over {times[-1] if len(times) else 0:.1f} s ({state}); time runs down, file offset across; '
            f'{_swatch(RESIDENT)} in the page cache {_swatch(ABSENT)} not '
            f'<span style="display:inline-block;width:10px;height:10px;background:{ERROR}"></span> '
            f'unknown</div>')
    parts = [f'<div class="mmio-watch">{head}']
    for i, path in enumerate(watch.paths):
        files = [s.files[i] for s in samples]
        size = max((f.size or 0 for f in files), default=0)
        fractions = watch.fractions(width, i) if samples else np.zeros((0, width))
        last = files[-1] if files else None
        if last is None:
            now = "no sample yet"
        elif last.error is not None:
            now = f"now unknown: {last.error}"
        else:
            now = f"now {last.fraction:.1%} of {human_bytes(last.size or 0)} resident"
        errors = sum(f.error is not None for f in files)
        if errors:
            first = next(f.error for f in files if f.error is not None)
            now += f"; {errors:,} samples unknown (first: {first})"
        parts.append(f'<div style="font:12px sans-serif;margin-top:6px"><b><code>{_text(path)}</code></b>: '
                     f'{_text(now)}</div>{_heatmap_svg(fractions, times, size, width)}')
    parts.append("</div>")
    return "".join(parts)


def plot_watch(watch, axes=None, buckets: int = 512):
    """Draw a Watch's heatmaps with matplotlib (one Axes per file, time down); return the Axes."""
    try:
        import matplotlib.pyplot as plt
        from matplotlib.colors import LinearSegmentedColormap
    except ImportError as exc:
        raise ImportError("Watch.plot needs matplotlib: pip install matplotlib (or pymmio[plot]) "
                          "(the notebook picture, Watch._repr_html_, does not)") from exc
    samples = list(watch.samples)
    times = np.array([s.time for s in samples], float)
    if axes is None:
        _, axes = plt.subplots(len(watch.paths), 1, figsize=(8, 2.2 * len(watch.paths)), squeeze=False)
        axes = list(axes[:, 0])
    cmap = LinearSegmentedColormap.from_list("mmio", [np.array(ABSENT) / 255, np.array(RESIDENT) / 255])
    cmap.set_bad(ERROR)
    end = times[-1] if len(times) else 1.0
    for i, (ax, path) in enumerate(zip(axes, watch.paths)):
        size = max((s.files[i].size or 0 for s in samples), default=0)
        fractions = watch.fractions(buckets, i) if samples else np.zeros((0, buckets))
        ax.imshow(np.ma.masked_invalid(fractions), aspect="auto", cmap=cmap, vmin=0, vmax=1,
                  interpolation="nearest", extent=(0, max(size, 1), end, 0))
        ax.set_xlabel("byte offset")
        ax.set_ylabel("seconds")
        ax.set_title(os.path.basename(path) or path, fontsize=9)
    return axes
