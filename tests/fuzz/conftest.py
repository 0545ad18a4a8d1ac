"""Hypothesis profiles for the fuzzers, and a summary of where mmio and the reference readers disagree.

Profiles: ``ci`` (the default: a few hundred examples per test, derandomized, no example database, so a run
cannot flake) and ``long`` (``MMIO_FUZZ=long``: thousands of random examples). ``MMIO_FUZZ_EXAMPLES=N``
overrides the number of examples of either. See README.md.
"""

import importlib.util
import os
import pathlib
import sys

from hypothesis import HealthCheck, settings

# tests/conftest.py's helpers, re-exported: with a conftest.py here too, pytest may leave this module as
# ``conftest`` in sys.modules, and ``from conftest import run_python`` anywhere in tests/ must still work.
_spec = importlib.util.spec_from_file_location("_mmio_tests_conftest",
                                               pathlib.Path(__file__).resolve().parent.parent / "conftest.py")
_parent = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_parent)
globals().update({name: value for name, value in vars(_parent).items()
                  if not name.startswith("_") and name not in globals()
                  and type(value).__name__ != "FixtureFunctionDefinition"})

_SUPPRESSED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
               HealthCheck.large_base_example]
LONG = os.environ.get("MMIO_FUZZ") == "long"

settings.register_profile("ci", max_examples=int(os.environ.get("MMIO_FUZZ_EXAMPLES", 150)), derandomize=True,
                          database=None, deadline=None, suppress_health_check=_SUPPRESSED, print_blob=False)
settings.register_profile("long", max_examples=int(os.environ.get("MMIO_FUZZ_EXAMPLES", 5000)),
                          derandomize=False, database=None, deadline=None, suppress_health_check=_SUPPRESSED,
                          print_blob=True)
settings.load_profile("long" if LONG else "ci")


def pytest_terminal_summary(terminalreporter, config):
    fuzzlib = sys.modules.get("fuzzlib")
    if fuzzlib is None or not fuzzlib.DISAGREEMENTS:
        return
    found = fuzzlib.DISAGREEMENTS
    artifacts = os.environ.get("MMIO_FUZZ_ARTIFACTS")
    if not (LONG or artifacts or config.getoption("verbose") > 0):
        terminalreporter.write_line(f"mmio fuzz: {len(found)} kinds of acceptance disagreement with the "
                                    "reference readers (-v lists them)")
        return
    terminalreporter.section("mmio fuzz: acceptance disagreements with the reference readers")
    for key, entry in sorted(found.items()):
        terminalreporter.write_line(f"{entry.count:7d}  {key}")
    if artifacts:
        fuzzlib.write_disagreements(artifacts)
        terminalreporter.write_line(f"smallest example of each saved in {artifacts} (index.tsv)")
