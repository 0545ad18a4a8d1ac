#!/usr/bin/env python3
"""A small mutation check: does the test suite catch the bugs it claims to?

Each mutant below is a deliberate bug: a file, an exact snippet of it, the snippet's replacement, and the tests
that must fail once it is in. For each one this script copies the clone's files to a scratch directory, applies
the mutant there (never to the checkout), rebuilds the compiled modules in place there, runs only the mutant's
tests (with a timeout) against that copy, and reports KILLED (they failed, crashed or hung) or SURVIVED (they
passed: a gap in the suite). It exits 1 if any mutant survived, if a snippet is no longer found exactly once
(so the list stays current with the code), or if the tests fail without any mutant.

From the root of a clone, after the README's test command (it needs the same environment):

    python3 tools/mutate.py                 # every mutant, about 3 minutes on 2 cores
    python3 tools/mutate.py sync unlock     # only the mutants whose names contain one of these words
    python3 tools/mutate.py --list          # the mutants and their tests, nothing run

``--keep`` leaves the scratch directory (one subdirectory per mutant) for a look at what ran.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPILED = (".pyx", ".pxd", ".c", ".h")


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]


M = "mmio/_mapping.pyx"
T_MAP = "tests/test_mapping.py"

MUTANTS = [
    # ---- Mapping: ranges, buffers, exports, sync and locking
    Mutant("array-shape-one-byte-over", M,
           "        if nbytes > available:\n",
           "        if nbytes > available + 1:\n",
           (f"{T_MAP}::test_array_takes_an_exact_fit_and_refuses_one_byte_more",)),
    Mutant("read-only-buffer-handed-out-writable", M,
           "        if flags & PyBUF_WRITABLE and not (prot & _posix.PROT_WRITE):\n",
           "        if False:\n",
           (f"{T_MAP}::test_writable_buffer_requests_on_a_read_only_mapping_are_refused",)),
    Mutant("close-ignores-live-exports", M,
           "        if self._exports > 0:\n            raise BufferError(f\"cannot close",
           "        if False:\n            raise BufferError(f\"cannot close",
           (f"{T_MAP}::test_close_refuses_while_exports_live",)),
    Mutant("buffer-release-not-counted", M,
           "    def __releasebuffer__(self, Py_buffer* view):\n        self._exports -= 1\n",
           "    def __releasebuffer__(self, Py_buffer* view):\n        pass\n",
           (f"{T_MAP}::test_close_with_live_memoryview",)),
    Mutant("array-writable-over-read-only-pages", M,
           "order == \"F\", prot & _posix.PROT_WRITE, export)",
           "order == \"F\", self._prot & _posix.PROT_WRITE, export)",
           (f"{T_MAP}::test_protect_ranges_cover_the_pages_they_touch",)),
    Mutant("large-copies-hold-the-gil", M,
           "        cdef bint big = n >= GIL_FREE_COPY\n",
           "        cdef bint big = False\n",
           (f"{T_MAP}::test_large_copies_release_the_gil",)),
    Mutant("sync-does-nothing", M,
           "        self._range_call(MSYNC, start, count, flags, \"could not sync the mapping to its file\")\n",
           "        pass\n",
           (f"{T_MAP}::test_sync_writes_the_dirty_pages_back",)),
    Mutant("unlock-unlocks-everything", M,
           "        self._range_call(MUNLOCK, start, count, 0, \"could not unlock the mapping\")\n",
           "        self._range_call(MUNLOCK, 0, self.length, 0, \"could not unlock the mapping\")\n",
           (f"{T_MAP}::test_unlock_of_a_range_leaves_the_rest_locked",)),
    # ---- the range engine: argument checks, page spans, the discard rule
    Mutant("range-check-one-byte-late", "mmio/_pages.pyx",
           "    elif length > size - offset:\n",
           "    elif length > size - offset + 1:\n",
           (f"{T_MAP}::test_advise_ranges_and_discard_rule",)),
    Mutant("covering-drops-the-last-partial-page", "mmio/_pages.pyx",
           "    span.end = (address + length + PAGE - 1) & ~(PAGE - 1) if length else span.first\n",
           "    span.end = (address + length) & ~(PAGE - 1) if length else span.first\n",
           ("tests/test_pages.py::test_unaligned_ranges_cover_every_page_they_touch",)),
    Mutant("discard-reaches-partial-pages", M,
           "            range_call(MADVISE, inside(<size_t>(self.data + start), count, start == 0, "
           "start + count == self.length),",
           "            range_call(MADVISE, covering(<size_t>(self.data + start), count),",
           ("tests/test_pages.py::test_discarding_advice_on_a_mapping_spares_bytes_outside_the_range",)),
    Mutant("dontneed-on-private-memory-needs-no-consent", "mmio/_flags.py",
           "return self.discards == \"always\" or (self.discards == \"private\" and private)",
           "return self.discards == \"always\"",
           (f"{T_MAP}::test_advise_ranges_and_discard_rule",)),
    # ---- the SIGBUS guard
    Mutant("guard-forgets-the-other-buffer", "mmio/src/sigbus.c",
           "    return (addr >= g->lo && addr < g->hi) || (addr >= g->lo2 && addr < g->hi2);\n",
           "    return addr >= g->lo && addr < g->hi;\n",
           ("tests/test_guard.py::test_copy_from_another_truncated_mapping_is_guarded",)),
    # ---- file residency and the page cache
    Mutant("runs-not-clipped-to-the-range", "mmio/pagecache.py",
           "            begin = max(lo, self._origin + first * self.page_size)\n",
           "            begin = self._origin + first * self.page_size\n",
           ("tests/test_residency.py::test_file_residency_at_unaligned_ranges_matches_the_pages_read",)),
    Mutant("file-residency-misses-the-last-page", "mmio/_residency.pyx",
           "    cdef size_t extent = <size_t>(offset + length - first)\n",
           "    cdef size_t extent = <size_t>length\n",
           ("tests/test_residency.py::test_file_residency_at_unaligned_ranges_matches_the_pages_read",)),
    Mutant("cache-stat-writeback-is-dirty", "mmio/_residency.pyx",
           "CacheStat(cs.nr_cache, cs.nr_dirty, cs.nr_writeback, cs.nr_evicted,",
           "CacheStat(cs.nr_cache, cs.nr_dirty, cs.nr_dirty, cs.nr_evicted,",
           ("tests/test_residency.py::test_cache_stat_counts_writeback_and_evicted_pages",)),
    Mutant("cache-stat-evicted-is-zero", "mmio/_residency.pyx",
           "CacheStat(cs.nr_cache, cs.nr_dirty, cs.nr_writeback, cs.nr_evicted,",
           "CacheStat(cs.nr_cache, cs.nr_dirty, cs.nr_writeback, 0,",
           ("tests/test_residency.py::test_cache_stat_counts_writeback_and_evicted_pages",)),
    Mutant("mincore-says-every-page-is-resident", "mmio/_pages.pyx",
           "                v[i] &= 1\n",
           "                v[i] = 1\n",
           ("tests/test_open.py::test_populate_brings_a_cold_file_in",)),
    # ---- parsers
    Mutant("safetensors-overlap-of-one-byte", "mmio/formats/safetensors.py",
           "        if begin < end:\n",
           "        if begin < end - 1:\n",
           ("tests/test_formats.py::test_safetensors_tensors_overlapping_by_one_byte_are_refused",
            "tests/test_hostile.py::test_every_hostile_file_is_a_value_error_naming_it")),
    Mutant("safetensors-offsets-may-span-less-than-the-tensor", "mmio/formats/safetensors.py",
           "    if end - begin != size:\n",
           "    if end - begin > size:\n",
           ("tests/test_formats.py::test_safetensors_refusals_name_the_tensor_and_the_cause",)),
    Mutant("npy-body-one-byte-short-accepted", "mmio/formats/npy.py",
           "    if end + header.nbytes > file_size:\n",
           "    if end + header.nbytes > file_size + 1:\n",
           ("tests/test_hostile.py::test_every_hostile_file_is_a_value_error_naming_it",)),
    Mutant("load-refuses-a-fifo-for-the-wrong-reason", "mmio/_files.pyx",
           "        raise_oserror(_posix.ENODEV, f\"cannot {verb} this file: it is not a regular file\", path)\n",
           "        raise_oserror(_posix.EINVAL, f\"cannot {verb} this file\", path)\n",
           ("tests/test_hostile.py::test_load_of_a_fifo_is_refused_not_waited_on",)),
    # ---- the command line
    Mutant("cli-each-file-exits-0-on-failure", "mmio/cli.py",
           "            print(line, flush=True)\n    return 1 if failed else 0\n",
           "            print(line, flush=True)\n    return 0\n",
           ("tests/test_cli.py::test_a_missing_file_fails_the_command_and_the_others_still_run",)),
    Mutant("cli-lock-exits-0-on-failure", "mmio/cli.py",
           "    print(\"released\", flush=True)\n    return status\n",
           "    print(\"released\", flush=True)\n    return 0\n",
           ("tests/test_cli.py::test_a_missing_file_fails_the_command_and_the_others_still_run",)),
    # ---- docstring examples
    Mutant("human-bytes-drops-the-decimal", "mmio/_units.py",
           "    return f\"{value:.0f} {unit}\" if unit == \"B\" else f\"{value:.1f} {unit}\"\n",
           "    return f\"{value:.0f} {unit}\"\n",
           ("tests/test_docs.py::test_docstring_examples_run[mmio._units]",)),
]


def _project_files() -> list[str]:
    """The clone's files: tracked, plus new ones not yet committed or ignored (as they are on disk)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return sorted(f for f in set(out.split("\0")) if f and (ROOT / f).is_file())


def _copy_tree(files: list[str], dest: Path) -> None:
    for name in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)


def _build(tree: Path, log: Path) -> bool:
    with open(log, "ab") as out:
        proc = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tree,
                              stdout=out, stderr=subprocess.STDOUT)
    return proc.returncode == 0


def _run_tests(tree: Path, tests: tuple[str, ...], timeout: float, log: Path) -> str:
    """PASSED, FAILED, CRASHED (pytest died), TIMEOUT or ERROR (pytest could not run the tests as named)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}  # the copy's mmio, also in the tests' child interpreters
    with open(log, "ab") as out:
        try:
            proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                                  cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "TIMEOUT"
    if proc.returncode == 0:
        return "PASSED"
    if proc.returncode == 1:
        return "FAILED"
    return "CRASHED" if proc.returncode < 0 else "ERROR"


def _apply(tree: Path, mutant: Mutant) -> str | None:
    """Put the mutant into the copy; the reason it cannot be, or None."""
    path = tree / mutant.file
    text = path.read_text()
    found = text.count(mutant.original)
    if found != 1:
        return f"original snippet found {found} times in {mutant.file}"
    path.write_text(text.replace(mutant.original, mutant.replacement))
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="run only the mutants whose names contain one of these words")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests, run nothing")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--timeout", type=float, default=300, help="seconds for one mutant's tests (300)")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or any(word in m.name for word in args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.name}  ({m.file})\n    " + "\n    ".join(m.tests))
        return 0
    if not chosen:
        print("no mutant matches", file=sys.stderr)
        return 2

    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="mmio-mutate-"))
    base = scratch / "base"
    try:
        _copy_tree(_project_files(), base)
        print(f"scratch copy in {scratch}; building the unmutated copy ...", flush=True)
        if not _build(base, scratch / "base.log"):
            print(f"the unmutated copy does not build: see {scratch / 'base.log'}", file=sys.stderr)
            args.keep = True
            return 2
        tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        baseline = _run_tests(base, tests, args.timeout * 2, scratch / "base.log")
        if baseline != "PASSED":
            print(f"the mutants' tests do not pass without a mutant ({baseline}): see {scratch / 'base.log'}",
                  file=sys.stderr)
            args.keep = True
            return 2
        print(f"unmutated: {len(tests)} tests pass ({time.monotonic() - started:.0f} s)\n", flush=True)

        rows = []
        width = max(len(m.name) for m in chosen)
        for mutant in chosen:
            t0 = time.monotonic()
            tree = scratch / mutant.name
            shutil.copytree(base, tree, symlinks=True)  # copy2: the timestamps say what needs no rebuild
            log = scratch / f"{mutant.name}.log"
            problem = _apply(tree, mutant)
            if problem is None and mutant.file.endswith(COMPILED) and not _build(tree, log):
                problem = f"does not build (see {log})"
            if problem is not None:
                verdict, detail = "STALE", problem
            else:
                outcome = _run_tests(tree, mutant.tests, args.timeout, log)
                verdict = {"PASSED": "SURVIVED", "ERROR": "ERROR"}.get(outcome, "KILLED")
                detail = {"FAILED": "tests failed", "CRASHED": "pytest crashed", "TIMEOUT": "tests hung",
                          "PASSED": "its tests pass", "ERROR": f"pytest could not run the tests (see {log})"}[
                    outcome]
            if not args.keep:
                shutil.rmtree(tree, ignore_errors=True)
            rows.append((mutant.name, verdict))
            print(f"{mutant.name:<{width}}  {verdict:<8}  {time.monotonic() - t0:5.0f} s  {detail}", flush=True)

        bad = [name for name, verdict in rows if verdict != "KILLED"]
        killed = len(rows) - len(bad)
        print(f"\n{killed}/{len(rows)} mutants killed in {time.monotonic() - started:.0f} s"
              + (f"; not killed: {', '.join(bad)}" if bad else ""))
        return 1 if bad else 0
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
