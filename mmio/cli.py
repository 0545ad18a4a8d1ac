"""The ``mmio`` command line (also ``python -m mmio``).

Subcommands: ``residency`` (fincore-style table), ``touch``, ``evict``, ``lock``
(hold files in RAM until interrupted, like ``vmtouch -l``), ``maps [PID]`` and
``demo``.  Exit status: 0 success, 1 when any file failed (each failure is
reported on stderr and the rest still run), 2 bad usage.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import sys
import time

import mmio

from ._units import human_bytes
from .pagecache import walk


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _pid(text: str):
    if text == "self":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmio", description="Memory-mapped file I/O for Linux: "
                                     "page-cache residency and control from the command line.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    res = commands.add_parser("residency", help="which pages of files are in the page cache (like fincore)")
    res.add_argument("files", nargs="+", metavar="FILE|DIR")
    res.add_argument("-r", "--recursive", action="store_true", help="descend into directories")
    res.add_argument("-b", "--bytes", action="store_true", help="sizes in bytes, not human units")
    res.add_argument("-v", "--verbose", action="store_true", help="print a page map of each file")
    res.add_argument("--json", action="store_true", help="machine-readable output")
    res.add_argument("--sort", choices=("resident", "size", "name"), default=None,
                     help="order the rows: most resident first, largest first, or by name "
                          "(default: as named and walked, like fincore); unknown files last")
    res.add_argument("--top", type=_positive_int, default=None, metavar="N",
                     help="print the first N rows, then how many more (the total line is over all of them)")
    res.add_argument("--watch", type=_positive_float, default=None, metavar="SECONDS",
                     help="sample every SECONDS and redraw a live table until Ctrl-C "
                          "(one line per sample when standard output is not a terminal)")
    res.add_argument("--count", type=_positive_int, default=None, metavar="N",
                     help="with --watch: stop after N samples")
    res.set_defaults(run=_cmd_residency)

    touch = commands.add_parser("touch", help="read files into the page cache")
    touch.add_argument("files", nargs="+", metavar="FILE|DIR")
    touch.add_argument("-r", "--recursive", action="store_true")
    touch.add_argument("--method", choices=("willneed", "populate"), default="willneed",
                       help="willneed: fastest; populate: leaves 2 MiB folios (faster scans later)")
    touch.set_defaults(run=_cmd_touch)

    evict = commands.add_parser("evict", help="drop files' clean pages from the page cache")
    evict.add_argument("files", nargs="+", metavar="FILE|DIR")
    evict.add_argument("-r", "--recursive", action="store_true")
    evict.add_argument("--sync", action="store_true", help="write dirty pages first, so they can go too")
    evict.set_defaults(run=_cmd_evict)

    lock = commands.add_parser("lock", help="map, lock and hold files in RAM until interrupted")
    lock.add_argument("files", nargs="+", metavar="FILE|DIR")
    lock.add_argument("-r", "--recursive", action="store_true")
    lock.set_defaults(run=_cmd_lock)

    maps = commands.add_parser("maps", help="memory regions of a process, with smaps figures")
    maps.add_argument("pid", nargs="?", default="self", type=_pid)
    maps.add_argument("--json", action="store_true")
    maps.set_defaults(run=_cmd_maps)

    demo = commands.add_parser(
        "demo", help="map a cold sample array and show residency and scan speed",
        description="Write a sample float64 file, evict it from the page cache, map it, "
                    "scan it twice and show residency and throughput; then clean up.")
    demo.add_argument("--size", type=_positive_int, default=256, metavar="MIB",
                      help="size of the sample file in MiB (default 256; at most the free space and the RAM)")
    demo.add_argument("--dir", default=None, help="where to create the temporary directory")
    demo.set_defaults(run=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 failure, 2 bad usage)."""
    for stream in (sys.stdout, sys.stderr):  # file names need not be valid UTF-8: never fail to print one
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = _build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # `mmio maps | head`: the reader left; stop quietly, as ls does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit flush must not fail again
        return 141  # 128 + SIGPIPE, what the shell reports for ls
    except (OSError, ValueError) as exc:
        print(f"mmio {args.command}: {_shown_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# ---- helpers -------------------------------------------------------------------------------------

class _Progress:
    """A progress bar on stderr when it is a terminal (tqdm if installed), else nothing."""

    def __init__(self, total: int | None, unit: str):
        self.bar = None
        self.total, self.unit, self.done = total, unit, 0
        self.enabled = sys.stderr.isatty()
        if self.enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit=unit, unit_scale=True, file=sys.stderr, leave=False)
            except ImportError:
                pass

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled:
            of = f"/{self.total}" if self.total else ""
            print(f"\r{self.done}{of} {self.unit}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def _size(n: int | None, exact: bool) -> str:
    """Sizes as fincore prints them: ``3B``, ``4K``, ``144.3M`` (or exact bytes)."""
    if n is None:
        return "?"
    return str(n) if exact else human_bytes(n, compact=True)


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\udc80-\udcff]")  # C0, DEL, C1, undecodable bytes
_UNPRINTABLE_OR_BACKSLASH = re.compile(r"[\x00-\x1f\x7f-\x9f\udc80-\udcff\\]")
_C_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def _escape_one(match: re.Match) -> str:
    char = match.group()
    if char in _C_ESCAPES:
        return _C_ESCAPES[char]
    code = ord(char)
    return f"\\x{code - 0xDC00 if code >= 0xDC80 else code:02x}"  # an undecodable byte is the byte


def _shown(name) -> str:
    """A file name as the CLI prints it: control characters, backslashes and bytes that are not UTF-8 as C
    escapes (``\\n``, ``\\x1b``, ``\\xff``, ``\\\\``), as ``ls -b`` does, so no name can forge a line
    or reach the terminal as an escape sequence."""
    name = os.fsdecode(name) if isinstance(name, bytes) else str(name)
    return _UNPRINTABLE_OR_BACKSLASH.sub(_escape_one, name)


def _shown_message(text) -> str:
    """An error message as the CLI prints it: backslashes kept, anything unprintable escaped."""
    return _UNPRINTABLE.sub(_escape_one, str(text))


def _json_name(name, key: str = "file") -> dict:
    """A file name for ``--json``: ``key`` is valid UTF-8 (U+FFFD for bytes that are not), and
    ``<key>_base64`` holds the exact bytes when ``key`` cannot."""
    raw = os.fsencode(name)
    text = raw.decode("utf-8", "replace")
    if text.encode("utf-8") == raw:
        return {key: text}
    return {key: text, f"{key}_base64": base64.b64encode(raw).decode("ascii")}


def _fail(command: str, path: str, error) -> None:
    print(f"mmio {command}: {_shown(path)}: {_shown_message(error)}", file=sys.stderr)


# ---- residency -------------------------------------------------------------------------------------

def _cmd_residency(args) -> int:
    if args.count is not None and args.watch is None:
        print("mmio residency: --count needs --watch", file=sys.stderr)
        return 2
    if args.watch is not None:
        return _watch_residency(args)
    progress = _Progress(None, "files")
    try:
        rows = mmio.residency(args.files, recursive=args.recursive, progress=lambda path: progress.advance(),
                              sort=args.sort).rows
    finally:
        progress.close()
    failed = [r for r in rows if r.residency is None]
    for row in failed:
        _fail("residency", row.path, row.error)
    if args.json:
        print(json.dumps(_residency_json(rows), indent=1))
    else:
        _print_residency(rows, args.bytes, args.verbose, args.top)
    return 1 if failed else 0


def _residency_json(rows) -> dict:
    files = []
    for r in rows:
        item = {**_json_name(r.path), "size": r.size}
        if r.residency is None:
            item.update(res=None, pages=None, total_pages=None, fraction=None, error=r.error)
        else:
            res = r.residency
            item.update(res=res.resident * res.page_size, pages=res.resident, total_pages=res.total,
                        fraction=res.fraction, error=None)
        files.append(item)
    known = [r.residency for r in rows if r.residency is not None]
    total = {"res": sum(x.resident * x.page_size for x in known), "pages": sum(x.resident for x in known),
             "size": sum(r.size or 0 for r in rows if r.residency is not None), "files": len(known)}
    return {"files": files, "total": total}


def _print_residency(rows, exact: bool, verbose: bool, top: int | None = None) -> None:
    """fincore's columns, a row per file (the first ``top``), a line for the rest, the total over all."""
    shown = rows if top is None else rows[:top]
    table = [("RES", "PAGES", "SIZE", "FILE")]
    res_total = pages_total = size_total = 0
    for i, r in enumerate(rows):
        if r.residency is None:
            if i < len(shown):
                table.append(("?", "?", _size(r.size, exact), _shown(r.path)))
            continue
        res = r.residency
        if i < len(shown):
            table.append((_size(res.resident * res.page_size, exact), str(res.resident), _size(r.size, exact),
                          _shown(r.path)))
        res_total += res.resident * res.page_size
        pages_total += res.resident
        size_total += r.size or 0
    rest = rows[len(shown):]
    if len(rows) > 1:
        table.append((_size(res_total, exact), str(pages_total), _size(size_total, exact), "total"))
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for i, row in enumerate(table):
        if rest and i == len(shown) + 1:
            known = [r.residency for r in rest if r.residency is not None]
            res_rest = sum(x.resident * x.page_size for x in known)
            print(f"... and {len(rest)} more files ({_size(res_rest, exact)} resident)")
        print(" ".join(cell.rjust(w) for cell, w in zip(row[:3], widths)) + " " + row[3])
        source = shown[i - 1] if 0 < i <= len(shown) else None
        if verbose and source is not None and source.residency is not None and source.residency.total:
            print(source.residency.to_string(width=64, max_lines=8))


def _watch_residency(args) -> int:
    """Sample the files every ``args.watch`` seconds: a live table on a terminal, else one line per sample.

    Stops after ``args.count`` samples or at Ctrl-C (status 0; 1 when a file was unknown in the last sample).
    """
    paths = [path for path, _ in walk(args.files, args.recursive)]  # a path walk could not check fails below
    live = sys.stdout.isatty()
    start = time.monotonic()
    status, n = 0, 0
    try:
        while args.count is None or n < args.count:
            rows: list[tuple[str, mmio.Residency | None, Exception | None]] = []
            for path in paths:
                try:
                    rows.append((path, mmio.residency(path), None))
                except (OSError, ValueError) as exc:
                    rows.append((path, None, exc))
            status = 1 if any(error for _, _, error in rows) else 0
            elapsed = time.monotonic() - start
            if live:
                _draw_live(rows, elapsed, n, args)
            else:
                print(_sample_line(rows, elapsed, args.bytes), flush=True)
            n += 1
            if args.count is not None and n >= args.count:
                break
            elapsed = time.monotonic() - start  # sleep to the next point of a fixed grid: no drift, no backlog
            time.sleep(max(0.0, (elapsed // args.watch + 1) * args.watch - elapsed))
    except KeyboardInterrupt:
        if live:
            print(flush=True)
    return status


def _sample_line(rows, elapsed: float, exact: bool) -> str:
    """One sample on one line: the time, then per file ``NAME PCT% RES/SIZE`` (or ``NAME ? ERROR``)."""
    cells = []
    for path, r, error in rows:
        if r is None:
            cells.append(f"{_shown(path)} ? {_shown_message(error)}")
        else:
            resident = r.resident_bytes
            fraction = resident / r.length if r.length else 0.0
            cells.append(f"{_shown(path)} {fraction:.1%} {_size(resident, exact)}/{_size(r.length, exact)}")
    return f"{elapsed:.2f}s  " + "  ".join(cells)


def _draw_live(rows, elapsed: float, n: int, args) -> None:
    """Redraw the terminal: a header, then per file a bar, the resident fraction, bytes and the name."""
    import shutil
    columns = shutil.get_terminal_size().columns
    bar = max(10, min(60, columns - 40))
    lines = [f"mmio residency: every {args.watch:g} s, sample {n + 1}, {elapsed:.1f} s (Ctrl-C to stop)"]
    for path, r, error in rows:
        if r is None:
            lines.append(f"{'?' * bar}  {'?':>6}  {'?':>15}  {_shown(path)}: {_shown_message(error)}")
            continue
        strip = r.to_string(width=bar, max_lines=1) if r.total else ""
        resident = r.resident_bytes
        figures = f"{_size(resident, args.bytes)}/{_size(r.length, args.bytes)}"
        fraction = resident / r.length if r.length else 0.0
        lines.append(f"{strip.ljust(bar)}  {fraction:6.1%}  {figures:>15}  {_shown(path)}")
    sys.stdout.write("\033[H\033[J" + "\n".join(line[:columns] for line in lines) + "\n")
    sys.stdout.flush()


# ---- touch / evict / lock ------------------------------------------------------------------------------

def _each_file(args, action) -> int:
    """Run ``action(path)`` on every file named (walking directories); print what it returns.

    A failure is reported on stderr and the rest still run; the status is 1 if any failed.
    """
    failed = 0
    for path, error in walk(args.files, args.recursive):
        try:
            if error:
                raise OSError(error)
            line = action(path)
        except (OSError, ValueError) as exc:
            _fail(args.command, path, exc)
            failed += 1
            continue
        if line:
            print(line, flush=True)
    return 1 if failed else 0


def _cmd_touch(args) -> int:
    def one(path):
        size = os.path.getsize(path)
        progress = _Progress(size, "B")
        last = [0]

        def step(done, total):
            progress.advance(done - last[0])
            last[0] = done

        start = time.perf_counter()
        try:
            pages = mmio.touch(path, method=args.method, progress=step)
        finally:
            progress.close()
        seconds = time.perf_counter() - start
        rate = f", {size / seconds / 1e9:.2f} GB/s" if seconds > 0 and size else ""
        return f"{_shown(path)}: {pages} pages cached ({human_bytes(size)} in {seconds:.3f} s{rate})"

    return _each_file(args, one)


def _cmd_evict(args) -> int:
    def one(path):
        left = mmio.evict(path, sync=args.sync)
        what = "unknown (the kernel hides this file's page cache)" if left is None else str(left)
        return f"{_shown(path)}: {what} pages still cached"

    return _each_file(args, one)


def _cmd_lock(args) -> int:
    held = []

    def one(path):
        mapping = mmio.open(path)
        mapping.lock()
        held.append(mapping)

    status = _each_file(args, one)
    if not held:
        return status or 1
    total = sum(len(m) for m in held)
    stop = []
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.append(True))  # before anyone can see us
    print(f"locked {len(held)} files, {human_bytes(total)}; holding until interrupted (Ctrl-C)", flush=True)
    try:
        while not stop:  # short sleeps, not pause(): a signal between the check and pause() would be lost
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        for mapping in held:
            mapping.close()
    print("released", flush=True)
    return status


# ---- maps and demo --------------------------------------------------------------------------------------

def _cmd_maps(args) -> int:
    regions = mmio.maps(args.pid)
    if args.json:
        print(json.dumps([_region_json(r) for r in regions], indent=1))
        return 0
    print(f"{'START':>12} {'END':>12} PERM {'SIZE':>8} {'RSS':>8} {'PSS':>8} {'LOCKED':>8} {'HUGE':>8} PATH")
    for r in regions:
        print(f"{r.start:12x} {r.end:12x} {r.perms} {_size(r.size, False):>8} {_size(r.rss, False):>8} "
              f"{_size(r.pss, False):>8} {_size(r.locked, False):>8} {_size(r.huge_bytes, False):>8} "
              f"{_shown(r.path or '')}")
    return 0


def _region_json(region) -> dict:
    fields = {f: getattr(region, f) for f in region.__dataclass_fields__ if f not in ("path", "vm_flags")}
    path = {"path": None} if region.path is None else _json_name(region.path, "path")
    return {**fields, **path, "vm_flags": sorted(region.vm_flags)}


def _cmd_demo(args) -> int:
    from . import demo
    try:
        demo.check_size(args.size, args.dir)
    except ValueError as exc:  # an impossible size is bad usage: say so before writing anything
        print(f"mmio demo: {exc}", file=sys.stderr)
        return 2
    demo.run(args.size, directory=args.dir)
    return 0
