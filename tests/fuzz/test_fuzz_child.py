"""The hostile strategies again, in a child interpreter and without the in-process safety net.

In-process, the fuzzers check that what ``load`` maps lies inside the file before they read a byte of it,
so a mapping past the end cannot kill the test run with SIGBUS. Here nothing is checked first: every view is
read, an .npz's container is closed and collected and its views read again. A crash (SIGSEGV, SIGBUS, abort)
shows as a failed child, with faulthandler's traceback.
"""

import os

from conftest import run_python
from hypothesis import settings

HERE = os.path.dirname(os.path.abspath(__file__))


def test_hostile_files_in_a_child_interpreter():
    profile = settings.default
    examples = max(profile.max_examples // 3, 10)
    proc = run_python(f"""
        import faulthandler, sys
        faulthandler.enable()
        sys.path.insert(0, {HERE!r})
        from hypothesis import HealthCheck, given, settings, strategies as st
        import fuzzlib, fuzz_strategies as s
        profile = settings(max_examples={examples}, derandomize={profile.derandomize!r}, database=None,
                           deadline=None, suppress_health_check=list(HealthCheck))
        cases = {{
            "npy": s.hostile_npy(),
            "npz": s.hostile_npz(),
            "safetensors": s.hostile_safetensors(),
            None: st.binary(max_size=200).map(lambda b: b"\\x93NUMPY\\x01\\x00" + b),
        }}
        for fmt, strategy in cases.items():
            @profile
            @given(strategy)
            def run(data):
                fuzzlib.check_hostile(data, fmt, in_process=False)
            run()
            print(fmt, "ok", flush=True)
    """, check=False, timeout=max(120, examples))
    assert proc.returncode == 0, f"child exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-5000:]}"
    assert proc.stdout.split() == ["npy", "ok", "npz", "ok", "safetensors", "ok", "None", "ok"], proc.stdout
