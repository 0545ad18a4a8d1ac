"""The ``mmio`` command line (also ``python -m mmio``)."""

from __future__ import annotations

import argparse
import sys


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmio", description="Memory-mapped file I/O for Linux.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="map a cold sample array and show residency and scan speed",
        description="Write a sample float64 file, evict it from the page cache, map it, "
                    "scan it twice and show residency and throughput; then clean up.")
    demo.add_argument("--size", type=_positive_int, default=256, metavar="MIB",
                      help="size of the sample file in MiB (default 256)")
    demo.add_argument("--dir", default=None, help="where to create the temporary directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 failure, 2 bad usage)."""
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from . import demo
            demo.run(args.size, directory=args.dir)
    except (OSError, ValueError) as exc:
        print(f"mmio {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0
