"""``python -m benchmarks NAME [options]``: run one benchmark (``--help`` on each for its options)."""

import importlib
import sys

BENCHMARKS = {"open": "benchmarks.bench_open"}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        print(f"usage: python -m benchmarks {{{','.join(BENCHMARKS)}}} [options]", file=sys.stderr)
        sys.exit(2)
    importlib.import_module(BENCHMARKS[sys.argv[1]]).main(sys.argv[2:])


main()
