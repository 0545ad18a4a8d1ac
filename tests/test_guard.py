"""Fault safety: SIGBUS from a truncated file becomes MappingFaultError in mmio's own loops.

Each scenario runs in a child interpreter so a regression kills the child, not the test run.
"""

import signal

import pytest

import mmio
from conftest import run_python

PAGE = mmio.PAGE_SIZE

SETUP = f"""
import errno, os, tempfile, mmio
PAGE = {PAGE}
path = os.path.join(tempfile.mkdtemp(), "shrinks.bin")
with open(path, "wb") as f:
    f.write(bytes(range(256)) * (8 * PAGE // 256))
"""

def test_truncated_file_raises_instead_of_killing_the_process():
    proc = run_python(setup=SETUP, code="""
        m = mmio.open(path)
        w = mmio.open(path, "r+")
        assert m[5 * PAGE] == 0
        os.truncate(path, 2 * PAGE + 10)            # someone else shrinks the file
        assert m[2 * PAGE + 9] == 9                 # still backed by the file
        for what, action in [
            ("index", lambda: m[5 * PAGE]),
            ("slice", lambda: m[PAGE:8 * PAGE]),
            ("strided", lambda: m[::PAGE]),
            ("big", lambda: m[:]),                  # the GIL-free path
            ("write", lambda: w.__setitem__(slice(3 * PAGE, 3 * PAGE + 4), b"abcd")),
            ("write1", lambda: w.__setitem__(4 * PAGE, 1)),
            ("populate", lambda: m.populate()),
            ("populate2", lambda: m.populate(threads=2)),
        ]:
            try:
                action()
            except mmio.MappingFaultError as e:
                assert e.errno == errno.EFAULT and isinstance(e, OSError)
                assert e.filename == path
                print(what, e.offset)
            else:
                print(what, "no error")
        print("alive")
    """)
    lines = dict(line.split() for line in proc.stdout.splitlines() if line != "alive")
    assert proc.stdout.endswith("alive\n")
    expected_first_bad = str(3 * PAGE)  # the page after the one holding the new end
    assert lines["index"] == str(5 * PAGE)
    assert lines["slice"] == expected_first_bad
    assert lines["strided"] == expected_first_bad
    assert lines["big"] == expected_first_bad
    assert lines["write"] == str(3 * PAGE)
    assert lines["write1"] == str(4 * PAGE)
    assert int(lines["populate"]) == 3 * PAGE
    assert int(lines["populate2"]) >= 3 * PAGE


def test_sigbus_outside_mmio_still_kills_the_process():
    """Raw numpy views are not guarded: the default SIGBUS action still runs."""
    proc = run_python(setup=SETUP, code="""
        m = mmio.open(path)
        m[0]                                         # installs mmio's handler
        arr = m.array()
        os.truncate(path, PAGE)
        print("touching", flush=True)
        arr[5 * PAGE]
        print("survived")
    """, check=False)
    assert proc.stdout == "touching\n"
    assert proc.returncode == -signal.SIGBUS


def test_faulthandler_installed_first_still_reports():
    proc = run_python(setup=SETUP, code="""
        import faulthandler
        faulthandler.enable()
        m = mmio.open(path)
        try:
            os.truncate(path, PAGE)
            m[5 * PAGE]
        except mmio.MappingFaultError:
            print("guarded", flush=True)
        m.array()[6 * PAGE]                          # unguarded: faulthandler must report it
    """, check=False)
    assert proc.stdout == "guarded\n"
    assert "Fatal Python error: Bus error" in proc.stderr
    assert proc.returncode == -signal.SIGBUS


def test_guard_in_many_threads():
    proc = run_python(setup=SETUP, code="""
        import threading
        m = mmio.open(path)
        os.truncate(path, 4 * PAGE)
        counts = []
        def work():
            n = 0
            for _ in range(200):
                try:
                    m[4 * PAGE:6 * PAGE]
                except mmio.MappingFaultError:
                    n += 1
                assert m[0:PAGE] == bytes(range(256)) * (PAGE // 256)
            counts.append(n)
        threads = [threading.Thread(target=work) for _ in range(4)]
        [t.start() for t in threads]; [t.join() for t in threads]
        print(counts)
    """)
    assert proc.stdout.strip() == "[200, 200, 200, 200]"


def test_populate_checks_a_whole_file():
    with mmio.anonymous(64 * PAGE) as m:
        m.populate(write=True, threads=3)
        assert m.residency().fraction == 1.0
    with mmio.anonymous(PAGE) as m:
        with pytest.raises(ValueError, match="threads"):
            m.populate(threads=0)
    with mmio.open("/dev/zero", length=PAGE) as m:
        with pytest.raises(TypeError, match="writable"):
            m.populate(write=True)


def test_the_offset_reported_is_the_first_byte_the_access_could_not_read():
    proc = run_python(setup=SETUP, code="""
        m = mmio.open(path, offset=100)                  # the mapping starts mid-page in the file
        os.truncate(path, 3 * PAGE)                      # mapping offsets from 3 * PAGE - 100 on are gone
        for key in [slice(PAGE + 9, PAGE - 11, -1), slice(3 * PAGE - 1, PAGE - 11, -1),
                    slice(6 * PAGE, 100, -3), slice(100, 6 * PAGE, 3), slice(2 * PAGE, 6 * PAGE)]:  # as below
            try:
                m[key]
                print("no error")
            except mmio.MappingFaultError as e:
                print(e.offset)
    """)
    first_bad = 3 * PAGE - 100
    keys = [slice(PAGE + 9, PAGE - 11, -1), slice(3 * PAGE - 1, PAGE - 11, -1), slice(6 * PAGE, 100, -3),
            slice(100, 6 * PAGE, 3), slice(2 * PAGE, 6 * PAGE)]
    expected = [str(min((i for i in range(8 * PAGE)[key] if i >= first_bad), default="no error"))
                for key in keys]
    assert expected[0] == "no error" and expected[2] != str(first_bad)  # the cases differ as intended
    assert proc.stdout.splitlines() == expected


# ---- guarded accesses next to protection and other mappings --------------------------------------


def test_unowned_sigbus_still_kills_and_guard_survives_a_kill_signal(tmp_path):
    proc = run_python(f"""
        import os, signal, mmio
        P = mmio.PAGE_SIZE
        path = {str(tmp_path / "f.bin")!r}
        open(path, "wb").write(bytes(4 * P))
        m = mmio.open(path)
        m[0]
        os.truncate(path, P)
        try:
            m[2 * P]
        except mmio.MappingFaultError:
            print("guarded", flush=True)
        os.kill(os.getpid(), signal.SIGBUS)   # the default action: the process dies
        print("survived")
    """, check=False)
    assert proc.stdout == "guarded\n" and proc.returncode == -signal.SIGBUS


def test_copy_from_another_truncated_mapping_is_guarded(tmp_path):
    proc = run_python(f"""
        import os, mmio
        P = mmio.PAGE_SIZE
        path = {str(tmp_path / "src.bin")!r}
        open(path, "wb").write(bytes(4 * P))
        src = mmio.open(path, "r+")
        dst = mmio.anonymous(4 * P)
        os.truncate(path, P)
        for action in (lambda: dst.__setitem__(slice(0, 4 * P), memoryview(src)),  # reads src
                       lambda: dst.readinto(memoryview(src))):                      # writes src
            try:
                action()
            except mmio.MappingFaultError as e:
                print("guarded", e.offset)
    """)
    assert proc.stdout.split() == ["guarded", "None", "guarded", "None"]


def test_fault_offset_is_the_first_bad_page(tmp_path):
    proc = run_python(f"""
        import os, mmio
        P = mmio.PAGE_SIZE
        path = {str(tmp_path / "f.bin")!r}
        open(path, "wb").write(bytes(1024 * P))
        m = mmio.open(path)
        os.truncate(path, P)
        for action in (lambda: m[:], lambda: m.readinto(bytearray(1024 * P), threads=2),
                       lambda: m[P - 10:P + 10]):
            try:
                action()
            except mmio.MappingFaultError as e:
                print(e.offset)
    """)
    assert proc.stdout.split() == [str(PAGE)] * 3


def test_populate_over_prot_none_refuses_instead_of_crashing():
    proc = run_python("""
        import mmio
        P = mmio.PAGE_SIZE
        m = mmio.anonymous(2 * P)
        m.protect("none", 0, P)
        try:
            m.populate()
        except PermissionError as e:
            print("refused")
        m.populate(P, P)
        print("second page ok")
    """)
    assert proc.stdout.splitlines() == ["refused", "second page ok"]


def test_load_into_out_that_maps_the_file_past_its_new_end_is_guarded(tmp_path):
    # out is a view of a mapping of the very file load reads; the file then shrinks below out.
    proc = run_python(f"""
        import numpy as np, mmio
        P = mmio.PAGE_SIZE
        path = {str(tmp_path / "a.npy")!r}
        np.save(path, np.zeros(8 * P, np.uint8))
        m = mmio.open(path, "r+")
        out = m.array(np.uint8, (4 * P,), len(m) - 4 * P)
        np.save(path, np.arange(4 * P, dtype=np.uint8))   # the file now ends where out begins
        try:
            mmio.load(path, out=out)
        except mmio.MappingFaultError:
            print("guarded")
    """)
    assert proc.stdout.split() == ["guarded"]


def test_strided_write_from_an_overlapping_source_past_the_end_is_guarded(tmp_path):
    proc = run_python(f"""
        import os, mmio
        P = mmio.PAGE_SIZE
        path = {str(tmp_path / "f.bin")!r}
        open(path, "wb").write(bytes(4 * P))
        m = mmio.open(path, "r+")
        os.truncate(path, 100)
        try:
            m[0:2000:2] = memoryview(m)[2 * P:2 * P + 1000]   # the source snapshot faults
        except mmio.MappingFaultError as e:
            print("guarded", e.offset)
    """)
    assert proc.stdout.split() == ["guarded", str(2 * PAGE)]


def test_guard_takes_sigbus_back_from_faulthandler_and_still_lets_real_faults_kill(tmp_path):
    proc = run_python(f"""
        import faulthandler, os, sys, mmio
        P = mmio.PAGE_SIZE
        path = {str(tmp_path / "f.bin")!r}
        open(path, "wb").write(bytes(4 * P))
        m = mmio.open(path)
        faulthandler.enable()
        m[0]                        # mmio's handler goes in, in front of faulthandler's
        faulthandler.disable()      # puts back what it found when enabled: mmio's handler is gone
        os.truncate(path, P)
        for step in ("after-disable", "enabled-after-mmio"):
            try:
                m[2 * P]
            except mmio.MappingFaultError as e:
                print(step, e.offset, flush=True)
            faulthandler.enable()   # now in front of mmio's handler, chaining back to it
        m.array()[3 * P]            # a fault mmio does not own: faulthandler reports, the process dies
        print("survived")
    """, check=False, timeout=60)
    assert proc.stdout.split() == ["after-disable", str(2 * PAGE), "enabled-after-mmio", str(2 * PAGE)]
    assert proc.returncode == -signal.SIGBUS and "Fatal Python error: Bus error" in proc.stderr


def test_a_handler_replaced_from_c_is_taken_back_before_long_work(tmp_path):
    proc = run_python(f"""
        import ctypes, os, signal, mmio
        P = mmio.PAGE_SIZE
        path = {str(tmp_path / "f.bin")!r}
        open(path, "wb").write(bytes(8 * P))
        m = mmio.open(path)
        m[0]                                              # mmio's handler is in place
        libc = ctypes.CDLL(None)
        libc.signal.restype = ctypes.c_void_p
        libc.signal(signal.SIGBUS, ctypes.c_void_p(0))    # SIG_DFL, behind the stdlib's back
        os.truncate(path, P)
        try:
            m.populate()                                  # long work checks the disposition first
        except mmio.MappingFaultError as e:
            print("guarded", e.offset)
    """)
    assert proc.stdout.split() == ["guarded", str(PAGE)]
