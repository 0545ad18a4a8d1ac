"""Process-wide locking: lock_all / unlock_all (mlockall)."""

import pytest

import mmio
from conftest import run_python

PAGE = mmio.PAGE_SIZE


@pytest.mark.not_under_sanitizer  # ASan makes mlock/munlock/mlockall no-ops
def test_lock_all_and_unlock_all():
    proc = run_python("""
        import mmio
        m = mmio.anonymous(4 * mmio.PAGE_SIZE, shared=False)
        mmio.lock_all(current=True, future=True, on_fault=True)
        flags = [l for l in open("/proc/self/status") if l.startswith("VmLck")]
        mmio.unlock_all()
        after = [l for l in open("/proc/self/status") if l.startswith("VmLck")]
        print(int(flags[0].split()[1]) > 0, int(after[0].split()[1]))
        try:
            mmio.lock_all(current=False)
        except ValueError:
            print("refused")
    """)
    assert proc.stdout.split() == ["True", "0", "refused"]
